"""QEMU: the command line, one boot, and the console protocol.

The guest has no network and no agent: everything comes back on its serial
console, which QEMU writes to a pipe we read. The guest's last script prints a
marker line (random, so no program output can forge it)::

    <mark> start          the command starts (the boot is over)
    <mark> exit <status>  the command ended with that status

Lines between the two are the command's output (stdout and stderr together).
No ``exit`` marker means the guest died first: a kernel panic, a guest-wide
OOM, or our timeout.

Used by :mod:`labkit.vm` and by ``tools/cg2vm.py``.
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..i18n import _
from .kernel import VMUnavailable


def find_qemu(name: str | None = None) -> str:
    """The emulator's path; ``$LABKIT_QEMU`` names another one (tests use it)."""
    name = name or os.environ.get("LABKIT_QEMU") or "qemu-system-x86_64"
    path = shutil.which(name)
    if not path:
        raise VMUnavailable(_("%(qemu)s not found (Debian: apt-get install qemu-system-x86)")
                            % {"qemu": name})
    return path


def new_mark() -> str:
    return "@@LABKIT-VM-" + os.urandom(6).hex() + "@@"


def command_line(qemu: str, *, machine: str, accel: str, cpus: int, memory: str, kernel: str,
                 initrd: str, append: str, cpu: str | None = None) -> list[str]:
    """What every guest shares: no firmware devices, no display, the serial console
    on our pipe, ``-no-reboot`` so a panic (``panic=-1``) ends QEMU."""
    return [qemu, "-accel", accel, "-M", machine, "-cpu", cpu or ("host" if accel == "kvm" else "max"),
            "-smp", str(cpus), "-m", memory, "-nodefaults", "-no-user-config", "-display", "none",
            "-no-reboot", "-kernel", kernel, "-initrd", initrd, "-append", append,
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con"]


def die_with_parent() -> None:
    """In the child before exec: SIGKILL when we die, even by SIGKILL (no orphan QEMU)."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Boot:
    """One run of QEMU, as seen from the host."""
    exit_code: int | None          # the command's status; None when it never reported one
    output: bytes                  # the command's output (between the markers)
    console: bytes                 # everything the serial console showed
    boot_s: float | None           # QEMU started -> the command started
    first_output_s: float | None   # QEMU started -> the command's first output
    total_s: float                 # QEMU started -> QEMU gone
    rss_peak: int                  # QEMU's peak resident memory, bytes
    timed_out: bool = False
    qemu_status: int | None = None
    qemu_stderr: bytes = field(default=b"", repr=False)


def boot(argv: list[str], mark: str, timeout: float | None,
         echo: Callable[[bytes], None] | None = None, echo_console: bool = False) -> Boot:
    """Run QEMU until it exits, or kill it at ``timeout``. ``echo`` gets the command's
    output line by line as it comes (and the boot's lines too with ``echo_console``).
    Whatever happens (an exception, Ctrl-C), QEMU is gone when this returns."""
    mk = mark.encode()
    t0 = time.monotonic()
    deadline = None if timeout is None else t0 + timeout
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=die_with_parent)
    out, console, err = bytearray(), bytearray(), bytearray()
    started = first = None
    code: int | None = None
    timed_out = False
    state = "boot"  # -> "run" -> "done"
    pending = b""
    rusage = None
    open_fds = 2
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        sel.register(p.stderr, selectors.EVENT_READ)
        while open_fds:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                timed_out = True
                break
            for key, _ev in sel.select(wait):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_fds -= 1
                    continue
                if key.fileobj is p.stderr:
                    err += chunk
                    continue
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in (ln.rstrip(b"\r") + b"\n" for ln in lines):
                    console += line
                    i = line.find(mk)
                    if i < 0:
                        if state == "run":
                            first = first or time.monotonic()
                            out += line
                        if echo and (state == "run" or (state == "boot" and echo_console)):
                            echo(line)
                        continue
                    words = line[i + len(mk):].split()
                    if i and state == "run":  # the output's last line had no newline
                        first = first or time.monotonic()
                        out += line[:i]
                        if echo:
                            echo(line[:i] + b"\n")
                    if words[:1] == [b"start"]:
                        state, started = "run", time.monotonic()
                    elif words[:1] == [b"exit"] and len(words) > 1:
                        state, code = "done", int(words[1])
        sel.close()
    finally:
        if p.returncode is None:  # never reaped (Popen.poll is not used): wait4 has its rusage
            # Not p.kill(): it polls, which would reap QEMU and lose its rusage. A signal
            # to a zombie is harmless; it ends QEMU after an exception or a timeout.
            os.kill(p.pid, signal.SIGKILL)
            _pid, status, rusage = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
        p.stdout.close()
        p.stderr.close()
    if pending:
        console += pending
        if state == "run":
            out += pending
    end = time.monotonic()
    return Boot(exit_code=code, output=bytes(out), console=bytes(console),
                boot_s=None if started is None else started - t0,
                first_output_s=None if first is None else first - t0, total_s=end - t0,
                rss_peak=(rusage.ru_maxrss * 1024) if rusage else 0, timed_out=timed_out,
                qemu_status=p.returncode, qemu_stderr=bytes(err))


def choose_accel(requested: str, verdict_file: str, probe: Callable[[], bool],
                 report: Callable[[bool, float, str], None] | None = None) -> str:
    """``auto``: KVM only when a smoke boot under KVM once worked on this machine
    (a nested or para-virtualised ``/dev/kvm`` may hang guests); the verdict is
    cached in ``verdict_file``. Otherwise TCG, the emulator. ``report(worked, seconds,
    verdict_file)`` tells a person once, after the probe."""
    if requested != "auto":
        return requested
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    try:
        with open(verdict_file) as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    t0 = time.monotonic()
    ok = probe()
    verdict = "kvm" if ok else "tcg"
    if report:
        report(ok, time.monotonic() - t0, verdict_file)
    os.makedirs(os.path.dirname(verdict_file), exist_ok=True)
    with open(verdict_file, "w") as f:
        f.write(verdict + "\n")
    return verdict
