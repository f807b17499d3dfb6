"""A second machine: a long-lived QEMU VM that runs labkit, driven from the host.

Notebook 06's "máquina B": its own kernel (``/boot``'s, booted by QEMU), its own
hostname, cgroups, bridges and nftables, and labkit from the host's files
(:mod:`.hostroot`: the host's ``/`` read-only under a tmpfs overlay), so nothing
it does reaches the host but through what is given here:

- ``shares``: host directories shared read-write at the same path (a volume's
  folder as a "network disk");
- ``ports``: ``"HOST:GUEST"``, QEMU's ``hostfwd`` from ``127.0.0.1:HOST`` on the
  host to the guest's ``GUEST`` port (a port a container publishes there);
- ``forwards``: host loopback addresses (``127.0.0.1:5000``, a registry) the guest
  reaches at ``10.0.2.100:<port>`` (``guestfwd``: :mod:`.relay` per connection).

The user network runs with ``restrict=on``: the guest reaches nothing else, not
even the host, and no packet of its leaves this machine.

Commands go through a directory shared with the guest (the *channel*): the host
writes ``<n>.cmd``, the guest's PID 1 polls for it, runs it and writes ``<n>.out``
and then ``<n>.status``. Slow (a poll), simple, and nothing to install in the guest.

    with Machine("maquina-b", ports=["8080:8000"]) as m:
        m.run("uname -r").output          # the guest's kernel
        m.python("import labkit; ...")    # one guest python process, labkit's API

QEMU dies with us (``PR_SET_PDEATHSIG``); :meth:`Machine.stop` (also on leaving
the ``with`` block, on an error or Ctrl-C) powers it off and removes the channel.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import LabkitError
from ..i18n import _
from . import hostroot, initramfs, kernel, qemu, runner

GUEST_IP = "10.0.2.15"      # QEMU's user network: the guest, the host (10.0.2.2), DNS (10.0.2.3)
FORWARD_IP = "10.0.2.100"   # where the guest finds each forwarded host address
POLL_S = 0.05
RELAY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "relay.py")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{0,62}$")

# Stage 2, PID 1 in the guest: name, network, the environment, then the command loop.
STAGE2 = r"""B=@DIR@/busybox
C=@CHAN@
$B hostname @NAME@
$B ip link set eth0 up && $B ip addr add @IP@/24 dev eth0 || echo "labkit-vm: no network" >/dev/console
. @DIR@/env.sh
echo up >$C/ready.tmp && $B mv $C/ready.tmp $C/ready
while :; do
  for f in $C/*.cmd; do
    [ -e "$f" ] || continue
    n=${f%.cmd}
    $B mv "$f" "$n.sh"
    (cd / && /bin/sh "$n.sh" </dev/null >"$n.out" 2>&1; echo $? >"$n.st")
    $B mv "$n.st" "$n.status"
  done
  $B sleep @POLL@
done
"""


def _reap(procs: list[subprocess.Popen], directory: str) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class MachineResult:
    """A guest command's status and output (stdout and stderr together)."""
    exit_code: int
    output: str


def parse_ports(ports: Iterable[str]) -> list[tuple[int, int]]:
    """``"HOST:GUEST"`` (or ``"PORT"`` for both) as ``(host, guest)`` TCP ports."""
    out = []
    for p in ports:
        parts = str(p).split(":")
        try:
            nums = [int(x) for x in parts]
        except ValueError:
            nums = []
        if len(nums) == 1:
            nums *= 2
        if len(nums) != 2 or not all(0 < n < 65536 for n in nums):
            raise LabkitError(_("invalid port mapping %(spec)s for the machine: use HOST:GUEST, "
                                "e.g. 8080:8000") % {"spec": p})
        out.append((nums[0], nums[1]))
    return out


def parse_forwards(forwards: Iterable[str]) -> list[tuple[str, int]]:
    """Host addresses ``127.0.0.1:PORT`` (or ``localhost:PORT``) as ``(host, port)``: only
    loopback, so a guest connection never becomes a packet to another machine."""
    out = []
    for f in forwards:
        host, _sep, port = str(f).rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit() or not 0 < int(port) < 65536:
            raise LabkitError(_("the machine forwards only to this host's loopback "
                                "(127.0.0.1:PORT), not %(addr)s") % {"addr": f})
        out.append(("127.0.0.1", int(port)))
    return out


def netdev(ports: list[tuple[int, int]], forwards: list[tuple[str, int]], python: str) -> list[str]:
    """QEMU's user network, closed (``restrict=on``) but for the given forwards, and a
    virtio NIC on it."""
    opts = ["user", "id=net0", "restrict=on", "net=10.0.2.0/24"]
    opts += [f"hostfwd=tcp:127.0.0.1:{h}-{GUEST_IP}:{g}" for h, g in ports]
    esc = (lambda s: s.replace(",", ",,"))
    opts += [f"guestfwd=tcp:{FORWARD_IP}:{port}-cmd:{esc(python)} -I {esc(RELAY)} {host} {port}"
             for host, port in forwards]
    return ["-netdev", ",".join(opts), "-device", "virtio-net-pci,netdev=net0"]


def guest_env(home: str, extra: dict | None = None) -> dict[str, str]:
    """What every guest command sees: this venv first on ``PATH``, our language, the
    guest's own ``LABKIT_HOME`` (on its tmpfs: labkit needs a real upper dir there)."""
    env = {"PATH": os.path.dirname(sys.executable) + ":" + runner.DEFAULT_PATH, "HOME": "/root",
           "TERM": "dumb", "LABKIT_HOME": home, "PYTHONDONTWRITEBYTECODE": "1"}
    for k in ("LABKIT_LANG", "LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        if os.environ.get(k):
            env[k] = os.environ[k]
    env.update(extra or {})
    return env


class Machine:
    """A VM running labkit: see the module's docstring. Boots in ``__init__``."""

    def __init__(self, name: str = "maquina-b", *, shares: Iterable[str] = (),
                 ports: Iterable[str] = (), forwards: Iterable[str] = (), memory: str = "1g",
                 cpus: int = 2, accel_mode: str = "auto", boot_timeout: float = 180,
                 env: dict | None = None, home: str = "/run/labkit") -> None:
        if not _NAME.match(name):
            raise LabkitError(_("invalid machine name %(name)s: letters, digits and '-' "
                                "(a host name)") % {"name": name})
        self.name = name
        self.ports = parse_ports(ports)
        fwd = parse_forwards(forwards)
        self.forwarded = {f"{h}:{p}": f"{FORWARD_IP}:{p}" for h, p in fwd}
        shares = [os.path.abspath(str(s)) for s in shares]
        for s in shares:
            if not os.path.isdir(s):
                raise LabkitError(_("cannot share %(path)s with the machine: not a directory")
                                  % {"path": s})
        self.memory = runner.memory_arg(memory)
        qemu_bin = qemu.find_qemu()
        self.kernel = kernel.pick_version()
        busybox = initramfs.find_busybox()
        self.accel = runner.accel(accel_mode, self.kernel)
        self._n = 0
        self._proc: subprocess.Popen | None = None
        self._qemu: list[subprocess.Popen] = []
        self.dir = tempfile.mkdtemp(prefix="labkit-machine-")
        # A machine dropped without stop() (a notebook cell run again rebinds the name) or
        # left at the interpreter's exit takes its QEMU and its directory with it.
        self._cleanup = weakref.finalize(self, _reap, self._qemu, self.dir)
        try:
            self.channel = os.path.join(self.dir, "channel")
            os.mkdir(self.channel)
            # this venv and labkit, read-only again if the guest's own /tmp or /run hides them
            code = [sys.prefix, os.path.dirname(os.path.dirname(os.path.dirname(RELAY)))]
            share = hostroot.shares(rw=[self.channel, *shares], ro=hostroot.under_tmpfs(code))
            chan = os.path.realpath(self.channel)
            stage2 = (STAGE2.replace("@DIR@", hostroot.DIR).replace("@CHAN@", shlex.quote(chan))
                      .replace("@NAME@", name).replace("@IP@", GUEST_IP).replace("@POLL@", str(POLL_S)))
            envsh = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in guest_env(home, env).items())
            initrd = os.path.join(self.dir, "initrd.cpio")
            with open(initrd, "wb") as f:
                f.write(hostroot.initrd(busybox, self.kernel, stage2, {"env.sh": envsh.encode()},
                                        share, hostroot.MODULES + hostroot.NET_MODULES))
            argv = qemu.command_line(qemu_bin, machine=runner.MACHINE, accel=self.accel, cpus=cpus,
                                     memory=self.memory, kernel=kernel.boot_image(self.kernel),
                                     initrd=initrd, append=runner.APPEND)
            argv += hostroot.qemu_args(share) + netdev(self.ports, fwd, sys.executable)
            self.argv = argv
            self._console = open(os.path.join(self.dir, "console.log"), "wb")
            self._err = open(os.path.join(self.dir, "qemu.err"), "wb")
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._console,
                                          stderr=self._err, preexec_fn=qemu.die_with_parent)
            self._qemu.append(self._proc)
            t0 = time.monotonic()
            self._wait_for(os.path.join(self.channel, "ready"), boot_timeout,
                           _("the machine %(name)s did not boot in %(s)s s") % {"name": name,
                                                                                "s": boot_timeout})
            self.boot_s = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise

    # ---- the channel
    def _wait_for(self, path: str, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if self._proc is None or self._proc.poll() is not None:
                raise LabkitError(_("the machine %(name)s stopped: %(why)s")
                                  % {"name": self.name, "why": self._last_words()})
            if time.monotonic() > deadline:
                raise LabkitError(message)
            time.sleep(POLL_S)

    def _last_words(self) -> str:
        text = ""
        for f in ("qemu.err", "console.log"):
            try:
                with open(os.path.join(self.dir, f), "rb") as fh:
                    text += fh.read().decode(errors="replace")
            except OSError:
                pass
        return text.strip()[-600:] or _("no message")

    def run(self, cmd: str | Iterable[str], timeout: float = 600) -> MachineResult:
        """Run ``cmd`` (a shell command line, or an argv) as root in the guest; wait for
        it. After ``timeout`` seconds the guest kills it (status 137)."""
        if not self.running:
            raise LabkitError(_("the machine %(name)s is not running") % {"name": self.name})
        line = cmd if isinstance(cmd, str) else shlex.join(list(cmd))
        self._n += 1
        base = os.path.join(self.channel, str(self._n))
        with open(base + ".tmp", "w") as f:
            f.write(f"exec {hostroot.DIR}/busybox timeout -s KILL {int(timeout)} /bin/sh -c "
                    f"{shlex.quote(line)}\n")
        os.rename(base + ".tmp", base + ".cmd")  # the guest sees it whole or not at all
        self._wait_for(base + ".status", timeout + 60,
                       _("the machine %(name)s did not answer in %(s)s s") % {"name": self.name,
                                                                             "s": timeout + 60})
        with open(base + ".status") as f:
            code = int(f.read().strip() or 255)
        with open(base + ".out", "rb") as f:
            out = f.read().decode(errors="replace")
        for ext in (".sh", ".out", ".status"):
            os.unlink(base + ext)
        return MachineResult(exit_code=code, output=out)

    def python(self, code: str, timeout: float = 600) -> MachineResult:
        """Run ``code`` in one guest python process (this venv's interpreter)."""
        path = os.path.join(self.channel, f"py-{self._n + 1}.py")
        with open(path, "w") as f:
            f.write(code)
        try:
            return self.run([sys.executable, path], timeout)
        finally:
            os.unlink(path)

    # ---- life
    @property
    def pid(self) -> int | None:
        """QEMU's process id while the machine runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """Power the guest off (QEMU is killed if it does not end in ``timeout``) and
        remove the channel. Safe to call twice."""
        p, self._proc = self._proc, None
        if p is not None:
            if p.poll() is None and os.path.isdir(self.channel):
                try:
                    with open(os.path.join(self.channel, "0.tmp"), "w") as f:
                        f.write(f"{hostroot.DIR}/busybox sync; {hostroot.DIR}/busybox poweroff -f\n")
                    os.rename(os.path.join(self.channel, "0.tmp"), os.path.join(self.channel, "0.cmd"))
                    p.wait(timeout)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            if p.poll() is None:
                p.kill()
                p.wait()
        for fh in (getattr(self, "_console", None), getattr(self, "_err", None)):
            if fh is not None:
                fh.close()
        self._cleanup()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Machine {self.name} {state} kernel={self.kernel} accel={self.accel}>"
