"""``labkit.vm.run``: an image booted as a VM, its command's output and status back.

The same image a container runs: its layers (the ext4 disk of :mod:`.rootdisk`)
become the guest's root, under a tmpfs overlay so the guest may write and
nothing reaches the disk; the host's kernel boots it, with the modules it needs
from a small initramfs; the image's Entrypoint, Cmd, Env and WorkingDir decide
what runs, as in :mod:`labkit.engine.lifecycle`. A busybox of our own runs the
command (from ``/dev/.labkit``), so an image without ``/bin/sh`` boots too.
"""
from __future__ import annotations

import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import LabkitError
from ..i18n import _
from . import initramfs, kernel, qemu, rootdisk

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Measured in bench/bench_vm.py: under TCG here, q35 and microvm boot the PVH
# vmlinux in about the same time (2-4 s, noise from the load); q35 needs no TSC
# hints and no virtio-mmio, and is what tools/cg2vm.py boots.
MACHINE = "q35"
# crc32c: a soft dependency of ext4 (modules.softdep), loaded by modprobe on a real system.
MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "overlay"]
APPEND = "console=ttyS0 panic=-1 rdinit=/init no_timer_check " + os.environ.get("LABKIT_VM_APPEND", "quiet loglevel=1")

# Stage 1, /init in the initramfs: modules, the root (ext4 read-only + tmpfs
# overlay), the API file systems, then PID 1 becomes stage 2 inside that root.
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /mod/$m || echo "labkit-vm: insmod $m failed"; done
[ -s /disk ] && { i=0; while [ ! -b /dev/vda ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; }
mkdir -p /lower /rw /newroot
if [ -s /disk ]; then
  mount -t ext4 -o ro,noload /dev/vda /lower || { echo "labkit-vm: cannot mount the root disk"; poweroff -f; }
fi
mount -t tmpfs -o mode=755 rw /rw; mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot
R=/newroot
mkdir -p $R/proc $R/sys $R/dev
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/dev/.labkit
mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
cp /bin/busybox /stage2 $R/dev/.labkit/
exec switch_root $R /dev/.labkit/busybox sh /dev/.labkit/stage2
"""

# Stage 2, PID 1 in the image's root: the command, its status, power off.
# Through a pipe, as a container's output: programs see no terminal (ls prints one column).
STAGE2 = """B=/dev/.labkit/busybox
set -o pipefail
cd {workdir} 2>/dev/null || {{ $B mkdir -p {workdir} && cd {workdir}; }}
echo "{mark} start" >/dev/console
$B env -i {env} {argv} </dev/null 2>&1 | $B cat >/dev/console
echo "{mark} exit $?" >/dev/console
$B sync; $B poweroff -f
"""


@dataclass
class VMResult:
    """What :func:`run` returns: the command's status and output, and the costs."""
    exit_code: int
    stdout: str              # stdout and stderr together (one serial console)
    boot_s: float            # QEMU started -> the command started (0 if it never did)
    total_s: float           # QEMU started -> QEMU gone
    rss_peak: int            # QEMU's peak resident memory, bytes
    accel: str               # "kvm" or "tcg"
    kernel: str              # the guest kernel's version
    first_output_s: float | None = None
    panicked: bool = False   # the guest ended without reporting a status
    console: str = ""        # the whole serial console (kernel messages, a panic)
    disk: str = ""           # the root disk file


class VMTimeout(LabkitError):
    """The command did not end in time; the VM was killed."""

    def __init__(self, message: str, result: VMResult) -> None:
        super().__init__(message, exit_code=124)
        self.result = result


def command_argv(cmd: str | Iterable[str] | None) -> list[str]:
    if cmd is None:
        return []
    if isinstance(cmd, str):
        return shlex.split(cmd)
    return list(cmd)


def memory_arg(memory: Any) -> str:
    """QEMU's ``-m`` in MiB, from ``256m``, ``1g`` or a number of bytes."""
    from ..kernel.cgroups import parse_size

    size = parse_size(memory) if isinstance(memory, str) else int(memory)
    return f"{max(size >> 20, 64)}M"


def accel(requested: str = "auto", kver: str | None = None) -> str:
    """``kvm`` or ``tcg``; ``auto`` asks :func:`.qemu.choose_accel` (a cached smoke boot)."""
    requested = os.environ.get("LABKIT_VM_ACCEL", requested)
    kver = kver or kernel.pick_version()
    verdict = os.path.join(kernel.cache_dir(), f"kvm-verdict-{kver}")
    return qemu.choose_accel(requested, verdict, lambda: _smoke(kver), report=_report_probe)


def _report_probe(worked: bool, seconds: float, where: str) -> None:
    from ..i18n import decimal

    msg = (_("labkit vm: a test boot with KVM worked in %(s)s s: VMs will use KVM (kept in %(file)s)")
           if worked else
           _("labkit vm: a test boot with KVM failed after %(s)s s: VMs will use TCG, the "
             "emulator (kept in %(file)s)"))
    print(msg % {"s": decimal(seconds, 1), "file": where}, file=sys.stderr)


def _smoke(kver: str) -> bool:
    b = _boot(kver, None, ["/dev/.labkit/busybox", "sh", "-c", "exit 7"], {}, "/", "kvm", 1, "256M",
              timeout=20)
    return b.exit_code == 7


def _boot(kver: str, disk: str | None, argv: list[str], env: dict, workdir: str, acc: str,
          cpus: int, memory: str, timeout: float | None,
          echo: Callable[[bytes], None] | None = None) -> qemu.Boot:
    mark = qemu.new_mark()
    stage2 = STAGE2.format(mark=mark, workdir=shlex.quote(workdir),
                           env=" ".join(shlex.quote(f"{k}={v}") for k, v in env.items()),
                           argv=" ".join(shlex.quote(a) for a in argv))
    arc = initramfs.build(initramfs.find_busybox(), kernel.modules(kver, MODULES),
                          {"init": (0o100755, INIT.encode()), "stage2": (0o100644, stage2.encode()),
                           "disk": (0o100644, b"1" if disk else b"")},
                          dirs=("lower", "rw", "newroot"))
    cmdline_qemu = qemu.find_qemu()
    fd, initrd = tempfile.mkstemp(prefix="labkit-vm-", suffix=".cpio")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(arc)
        argv_q = qemu.command_line(cmdline_qemu, machine=MACHINE, accel=acc, cpus=cpus,
                                   memory=memory, kernel=kernel.boot_image(kver), initrd=initrd,
                                   append=APPEND)
        if disk:
            argv_q += ["-drive", f"file={disk},format=raw,if=none,id=root,readonly=on",
                       "-device", "virtio-blk-pci,drive=root"]
        return qemu.boot(argv_q, mark, timeout, echo=echo)
    finally:
        os.unlink(initrd)


def run(image: str, cmd: str | Iterable[str] | None = None, *, memory: Any = "256m", cpus: int = 1,
        timeout: float | None = 600, entrypoint: str | Iterable[str] | None = None,
        env: dict | None = None, workdir: str | None = None, accel_mode: str = "auto",
        stdout: Any = None, home: Any = None) -> VMResult:
    """Boot ``image`` as a VM, run its command (``cmd`` replaces the image's Cmd),
    return when it ends. ``stdout`` (a stream or a callable) shows the output live.
    Raises :class:`VMTimeout` after ``timeout`` seconds (the VM is killed) and
    :class:`.kernel.VMUnavailable` when qemu, a kernel or busybox is missing."""
    from ..images.store import Store

    qemu.find_qemu()
    kver = kernel.pick_version()
    initramfs.find_busybox()
    img = Store(home).resolve(image)
    icfg = (img.config or {}).get("config") or {}
    argv = command_argv(entrypoint) or list(icfg.get("Entrypoint") or [])
    argv += command_argv(cmd) or ([] if entrypoint else list(icfg.get("Cmd") or []))
    if not argv:
        raise LabkitError(_("no command specified"))
    envd = dict(e.split("=", 1) for e in icfg.get("Env") or [] if "=" in e)
    envd.setdefault("PATH", DEFAULT_PATH)
    envd.setdefault("HOME", "/root")
    envd.update(env or {})
    disk = str(rootdisk.disk_for(img, home))
    acc = accel(accel_mode, kver)
    echo = None
    if stdout is not None:
        if callable(stdout):
            echo = stdout
        else:
            def echo(chunk: bytes) -> None:
                buf = getattr(stdout, "buffer", None)
                if buf is not None:
                    buf.write(chunk)
                else:
                    stdout.write(chunk.decode(errors="replace"))
                stdout.flush()
    b = _boot(kver, disk, argv, envd, workdir or icfg.get("WorkingDir") or "/", acc, cpus,
              memory_arg(memory), timeout, echo)
    res = VMResult(exit_code=255 if b.exit_code is None else b.exit_code,
                   stdout=b.output.decode(errors="replace"), boot_s=b.boot_s or 0.0,
                   total_s=b.total_s, rss_peak=b.rss_peak, accel=acc, kernel=kver,
                   first_output_s=b.first_output_s, panicked=b.exit_code is None and not b.timed_out,
                   console=b.console.decode(errors="replace"), disk=disk)
    if b.timed_out:
        raise VMTimeout(_("timed out after %(s)s s; the VM was killed") % {"s": timeout}, res)
    if b.exit_code is None and not b.console and b.qemu_stderr:
        raise LabkitError(_("qemu failed: %(err)s")
                          % {"err": b.qemu_stderr.decode(errors="replace").strip()[-500:]})
    return res
