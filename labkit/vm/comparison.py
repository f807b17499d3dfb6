"""The same image and command as a VM and as a container, measured side by side.

    >>> c = labkit.vm.compare("busybox", ["md5sum", "/bin/busybox"])
    >>> c.vm.uptime_s < c.container.uptime_s   # the guest's kernel booted just now
    True
    >>> c.figure()                             # what notebook 07 shows

Each side runs twice: first a probe (the command with its output discarded,
then the kernel's view from inside: ``/proc/meminfo``, the memory cgroup's
peak, ``/proc/uptime``, ``/proc/cpuinfo``, ``dmesg``, ``uname -r``, and a
fixed busybox ``awk`` loop timed with ``/proc/uptime``), then the command
itself, timed from the Python call to its first output and to its return. The
probe also warms both sides up (the VM's root disk made, the engine started),
so the timed run measures a start, not a first use.

Both sides run the same statically linked busybox for the probe: the VM's own
(``/dev/.labkit/busybox``), bind-mounted read-only into the container, so the
loop is the same program on the same input.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import LabkitError
from ..i18n import _
from . import initramfs
from .runner import command_argv, run as vm_run

LOOP_N = 500_000  # about 0.1 s on this host (busybox awk), 2 s under TCG
BB_IN_CONTAINER = "/.labkit/busybox"  # named busybox: it picks the applet from argv[0]
BB_IN_VM = "/dev/.labkit/busybox"

# "$@" is the image's command; its output is not the probe's. Each fact is a line "@key value".
PROBE = r"""B={bb}
"$@" >/dev/null 2>&1; echo "@cmd $?"
$B awk '/^MemTotal:/{{t=$2}} /^MemAvailable:/{{a=$2}} END{{print "@mem", t*1024, (t-a)*1024}}' /proc/meminfo
for f in /sys/fs/cgroup/memory.peak /sys/fs/cgroup/memory/memory.max_usage_in_bytes; do
  [ -r $f ] && {{ echo "@peak $f $($B cat $f)"; break; }}
done
echo "@uptime $($B cut -d' ' -f1 /proc/uptime)"
echo "@cpu $($B awk -F': ' '/^model name/{{print $2; exit}}' /proc/cpuinfo)"
n=$($B dmesg 2>/dev/null | $B wc -l); [ "$n" -gt 0 ] && echo "@dmesg $n"
echo "@uname $($B uname -r)"
t0=$($B cut -d' ' -f1 /proc/uptime)
$B awk 'BEGIN{{for(i=0;i<{n};i++)s+=i%7; print "@sum", s}}'
t1=$($B cut -d' ' -f1 /proc/uptime)
echo "@loop {n} $t0 $t1"
"""


@dataclass
class Side:
    """One way of running the image: what the command did and what the kernel showed inside."""
    exit_code: int
    output: str                   # the timed run's output (stdout and stderr)
    first_output_s: float | None  # Python call -> first output (None: it printed nothing)
    exit_s: float                 # Python call -> return
    memory_peak: int              # VM: QEMU's peak RSS; container: its memory cgroup's peak
    memory_peak_source: str       # "qemu-rss", "memory.peak", "memory.max_usage_in_bytes", "sampled"
    mem_total: int                # MemTotal of the /proc/meminfo seen inside, bytes
    mem_used: int                 # MemTotal - MemAvailable seen inside, bytes
    disk: int                     # VM: its root disk file; container: the image's layers (shared)
    uptime_s: float               # /proc/uptime inside
    cpu_model: str                # /proc/cpuinfo's "model name" inside
    dmesg_lines: int | None       # the kernel log seen inside (None: not readable there)
    kernel_release: str           # uname -r inside
    loop_iterations: int
    loop_s: float                 # the loop's time by /proc/uptime inside (10 ms steps)

    @property
    def loop_rate(self) -> float:
        """Iterations per second of the busybox awk loop (0 when too fast to time)."""
        return self.loop_iterations / self.loop_s if self.loop_s > 0 else 0.0


@dataclass
class Host:
    """The host's own view, read right after the probes."""
    uptime_s: float
    cpu_model: str
    dmesg_lines: int | None
    kernel_release: str
    mem_total: int


@dataclass
class Comparison:
    """What :func:`compare` returns; :meth:`table` and :meth:`figure` show it in Portuguese."""
    image: str
    command: list[str]
    accel: str          # "kvm" or "tcg" (TCG emulates every guest instruction)
    memory: str         # the guest's RAM (QEMU -m)
    vm: Side
    container: Side
    host: Host

    def rows(self) -> list[tuple[str, str, str]]:
        from .comparison_view import rows

        return rows(self)

    def table(self) -> str:
        """A text table, one line per measure: the VM, the container."""
        from .comparison_view import table

        return table(self)

    def figure(self):
        """A matplotlib ``Figure``: times, memory, disk, uptime and CPU loop, VM beside container."""
        from .comparison_view import figure

        return figure(self)

    def __str__(self) -> str:
        return self.table()


def _facts(text: str) -> dict[str, list[str]]:
    facts: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("@"):
            key, _sep, value = line[1:].partition(" ")
            facts[key] = value.split(" ") if key not in ("cpu", "uname") else [value.strip()]
    return facts


def _argv_of(img, cmd: list[str]) -> list[str]:
    """The image's Entrypoint + (cmd or Cmd), as both runners compute it."""
    icfg = (img.config or {}).get("config") or {}
    argv = list(icfg.get("Entrypoint") or []) + (cmd or list(icfg.get("Cmd") or []))
    if not argv:
        raise LabkitError(_("no command specified"))
    return argv


class _Clock:
    """A text stream without a descriptor: the engine (or QEMU's reader) hands it each chunk;
    it keeps the time of the first one."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.first: float | None = None

    def write(self, chunk: Any) -> None:
        if self.first is None and chunk:
            self.first = time.monotonic() - self.t0

    def __call__(self, chunk: bytes) -> None:  # labkit.vm.run's callable form
        self.write(chunk)

    def flush(self) -> None:
        pass


class _Sampler(threading.Thread):
    """The fallback where the kernel keeps no peak (cgroup v2 before Linux 5.19): the largest
    memory.current seen while the container runs, polled from the host."""

    def __init__(self, name: str, home: Any) -> None:
        super().__init__(daemon=True)
        self.name_, self.home, self.peak = name, home, 0
        self.done = threading.Event()

    def run(self) -> None:
        import labkit

        while not self.done.is_set():
            try:
                ctr = labkit.get(self.name_, home=self.home)
                self.peak = max(self.peak, ctr.cgroup.stats()["memory_usage"])
            except Exception:  # noqa: BLE001 - not started yet, or already gone
                pass
            self.done.wait(0.02)


def _host(busybox: str) -> Host:
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    model, total = "", 0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    r = subprocess.run([busybox, "dmesg"], capture_output=True)
    lines = r.stdout.count(b"\n") if r.returncode == 0 else None
    return Host(uptime_s=uptime, cpu_model=model, dmesg_lines=lines or None,
                kernel_release=os.uname().release, mem_total=total)


def _side(facts: dict[str, list[str]], timed, clock: _Clock, exit_s: float, output: str,
          peak: int, source: str, disk: int) -> Side:
    mem = facts.get("mem", ["0", "0"])
    loop = facts.get("loop", ["0", "0", "0"])
    return Side(exit_code=timed, output=output, first_output_s=clock.first, exit_s=exit_s,
                memory_peak=peak, memory_peak_source=source, mem_total=int(mem[0]),
                mem_used=int(mem[1]), disk=disk, uptime_s=float(facts["uptime"][0]),
                cpu_model=facts.get("cpu", [""])[0],
                dmesg_lines=int(facts["dmesg"][0]) if "dmesg" in facts else None,
                kernel_release=facts.get("uname", [""])[0], loop_iterations=int(loop[0]),
                loop_s=round(float(loop[2]) - float(loop[1]), 2))


def compare(image: str, cmd: str | Iterable[str] | None = None, *, memory: str = "256m",
            accel_mode: str = "auto", timeout: float = 600, home: Any = None) -> Comparison:
    """Run ``cmd`` (the image's own command if None) in ``image`` as a VM and as a container,
    from real runs, and return every measure of both (see :class:`Side`)."""
    import labkit

    from ..images.store import Store

    bb = initramfs.find_busybox()
    img = Store(home).resolve(image)
    argv = _argv_of(img, command_argv(cmd))
    probe_vm = [BB_IN_VM, "sh", "-c", PROBE.format(bb=BB_IN_VM, n=LOOP_N), "probe"]
    probe_ctr = [BB_IN_CONTAINER, "sh", "-c", PROBE.format(bb=BB_IN_CONTAINER, n=LOOP_N), "probe"]

    # The probes first: they make the VM's disk and start the engine before anything is timed.
    vprobe = vm_run(image, argv, entrypoint=probe_vm, memory=memory, timeout=timeout,
                    accel_mode=accel_mode, home=home)
    if vprobe.exit_code != 0:
        raise LabkitError(_("the VM's probe failed (exit code %(code)d): %(out)s")
                          % {"code": vprobe.exit_code, "out": vprobe.console[-500:]})
    name = "cmp-" + os.urandom(4).hex()
    sampler = _Sampler(name, home)
    sampler.start()
    try:
        cprobe = labkit.run(image, argv, entrypoint=probe_ctr, name=name, home=home, timeout=timeout,
                            volumes=[f"{bb}:{BB_IN_CONTAINER}:ro"])
    finally:
        sampler.done.set()
        sampler.join()
    if cprobe.exit_code != 0:
        raise LabkitError(_("the container's probe failed (exit code %(code)d): %(out)s")
                          % {"code": cprobe.exit_code, "out": cprobe.output[-500:]})
    host = _host(bb)
    vf, cf = _facts(vprobe.stdout), _facts(cprobe.stdout)
    if "peak" in cf:
        cpeak, csource = int(cf["peak"][1]), os.path.basename(cf["peak"][0])
    else:
        cpeak, csource = sampler.peak, "sampled"

    vclock = _Clock()
    vres = vm_run(image, argv, memory=memory, timeout=timeout, accel_mode=accel_mode, home=home,
                  stdout=vclock)
    vexit = time.monotonic() - vclock.t0
    cclock = _Clock()
    cres = labkit.run(image, argv, home=home, timeout=timeout, stdout=cclock, stderr=cclock)
    cexit = time.monotonic() - cclock.t0

    vside = _side(vf, vres.exit_code, vclock, vexit, vres.stdout, vres.rss_peak, "qemu-rss",
                  os.stat(vres.disk).st_size)
    cside = _side(cf, cres.exit_code, cclock, cexit, cres.output, cpeak, csource, img.size)
    return Comparison(image=image, command=argv, accel=vres.accel, memory=memory, vm=vside,
                      container=cside, host=host)
