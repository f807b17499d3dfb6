#!/usr/bin/env python3
"""cg2vm: run one shell command in a throw-away QEMU VM with a pure cgroup v2 hierarchy.

Why: this CI host is hybrid (cgroup v1), most learners' machines are pure v2, and
the v2 backend needs a real v2 kernel to be tested. The VM boots the distribution
kernel from /boot (``linux-image-amd64``) with a tiny busybox initramfs built here,
in memory, on every run. Its ``/init``:

- loads 9p/virtio/overlay modules from the host's ``/lib/modules``;
- mounts the host's ``/`` read-only over virtio-9p under a tmpfs overlay, so the
  guest sees the venv and the project at the same paths and may write anywhere,
  with nothing reaching the host (except ``--rw DIR``, shared read-write);
- mounts cgroup2 at ``/sys/fs/cgroup`` and enables every controller at the root;
- switch_root; PID 1 (busybox sh) runs the command as root in our cwd, prints a
  random marker with ``$?`` on the serial console and powers off.

Our exit status is the command's; 124 = timed out, 125 = cannot cd, 255 = the VM
ended without reporting one (panic, guest-wide OOM), 128+N = killed by signal N.

``--accel auto`` (default) uses KVM only if a timed smoke boot with KVM worked
once on this machine (the verdict is cached); otherwise TCG. Nested or
para-virtualised /dev/kvm devices may hang guests, hence the probe.

``--skip-missing``: when qemu, a kernel image or a static busybox is missing,
print why and exit 0 (used by ``make test-cgroup2``: skipped loudly, not failed),
except under ``CI=true``, where make setup has installed them: then it is exit 127.

usage: tools/cg2vm.py [-m 512M] [--cpus 2] [--timeout 2400] [--rw DIR] [-e NAME=VAL]
                      [--skip-missing] -- 'shell command'
Boots through labkit.vm (hostroot: the root and its /init; kernel, initramfs, qemu): one
place boots a guest kernel.
Kernel cache: $CG2VM_CACHE or <project>/.cache/cg2vm.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # labkit.vm from this checkout, whatever python runs us

from labkit.vm import hostroot, initramfs, kernel, qemu  # noqa: E402 - after the path

# Stage 2 (PID 1 inside the real root, labkit.vm.hostroot's): run the command, report, power off.
STAGE2 = r"""B=@DIR@/busybox
echo "@@MARK@@ start" >/dev/console
/bin/sh @DIR@/cmd.sh </dev/null >/dev/console 2>&1
echo "@@MARK@@ exit $?" >/dev/console
$B sync; $B poweroff -f
""".replace("@DIR@", hostroot.DIR)


def missing(a) -> str | None:
    """Why this machine cannot run the VM, or None."""
    try:
        a.qemu = qemu.find_qemu(a.qemu)
        a.kver = kernel.pick_version(a.kver)
        initramfs.find_busybox(a.busybox)
    except kernel.VMUnavailable as exc:
        return str(exc)
    return None


def run_vm(a, kernel_file: str, cmd: str, accel: str, timeout: float, quiet: bool = False) -> int:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "TERM": "dumb", "CG2VM": "1"}
    env.update(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in a.env)
    script = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script += f"cd {shlex.quote(a.dir)} || exit 125\n{cmd}\n"
    # The guest's /tmp and /run are fresh tmpfs (labkit needs a real upper dir there, not
    # an overlay): a project checked out below them (CI clones into /tmp) is shared again,
    # read-only, at the same path, before the --rw dirs that may sit inside it.
    here = os.path.realpath(a.dir)
    share = hostroot.shares(rw=a.rw, ro=[here] if here.startswith(("/tmp/", "/run/")) else [])
    mark = qemu.new_mark()  # unforgeable by test output
    arc = hostroot.initrd(a.busybox, a.kver, STAGE2.replace("@@MARK@@", mark),
                          {"cmd.sh": script.encode()}, share)
    initrd = os.path.join(a.cache, f"initrd-{os.getpid()}.cpio")
    with open(initrd, "wb") as f:
        f.write(arc)
    argv = qemu.command_line(a.qemu, machine="q35", accel=accel, cpus=a.cpus, memory=a.mem,
                             kernel=kernel_file, initrd=initrd, cpu=a.cpu,
                             append="console=ttyS0 panic=-1 rdinit=/init "
                             + ("" if a.verbose else "quiet loglevel=1"))
    argv += hostroot.qemu_args(share)
    out = sys.stdout.buffer

    def echo(line: bytes) -> None:
        out.write(line)
        out.flush()

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)  # qemu.boot's cleanup kills the VM on the way out
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        b = qemu.boot(argv, mark, timeout, echo=None if quiet else echo, echo_console=True)
    finally:
        if os.path.exists(initrd):
            os.unlink(initrd)
    if not quiet:
        if b.qemu_stderr:
            sys.stderr.buffer.write(b.qemu_stderr)
        if a.verbose and b.exit_code is not None:
            out.write(b.console[b.console.rfind(mark.encode()):])
        if b.timed_out:
            out.write(f"\ncg2vm: timeout after {timeout:.0f}s, killing VM\n".encode())
        out.flush()
    if b.timed_out:
        return 124
    return 255 if b.exit_code is None else b.exit_code


def choose_accel(a, kernel_file: str) -> str:
    """``auto``: KVM only when a timed smoke boot under KVM printed its exit status."""
    return qemu.choose_accel(
        a.accel, os.path.join(a.cache, f"kvm-verdict-{a.kver}"),
        lambda: run_vm(a, kernel_file, "exit 7", "kvm", timeout=20, quiet=True) == 7,
        report=lambda ok, secs, where: print(
            f"cg2vm: KVM smoke boot {'worked' if ok else 'failed'} in {secs:.1f} s: using "
            f"{'kvm' if ok else 'tcg'} (cached in {where})", file=sys.stderr))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mem", default=os.environ.get("CG2VM_MEM", "512M"))
    ap.add_argument("--cpus", default=os.environ.get("CG2VM_CPUS", "2"))
    ap.add_argument("--accel", default=os.environ.get("CG2VM_ACCEL", "auto"),
                    choices=("auto", "tcg", "kvm"))
    ap.add_argument("--cpu", default=os.environ.get("CG2VM_CPU"), help="qemu -cpu model")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("CG2VM_TIMEOUT", 2400)))
    ap.add_argument("--kver", default=os.environ.get("CG2VM_KVER"))
    ap.add_argument("--cache", default=os.environ.get("CG2VM_CACHE",
                                                      os.path.join(ROOT, ".cache", "cg2vm")))
    ap.add_argument("--qemu", default=os.environ.get("CG2VM_QEMU", "qemu-system-x86_64"))
    ap.add_argument("--busybox", default=os.environ.get("CG2VM_BUSYBOX", "/bin/busybox"))
    ap.add_argument("-C", "--dir", default=os.getcwd(), help="run the command there")
    ap.add_argument("--rw", action="append", default=[], metavar="DIR",
                    help="share host DIR read-write at the same path (junit xml, reports)")
    ap.add_argument("-e", "--env", action="append", default=[],
                    help="NAME=VAL (or NAME: copy from our environment) for the command")
    ap.add_argument("--skip-missing", action="store_true",
                    help="exit 0 after printing the reason when qemu/kernel/busybox is missing")
    ap.add_argument("-v", "--verbose", action="store_true", help="show kernel messages")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = " ".join(a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd)
    if not cmd:
        ap.error("no command")
    why = missing(a)
    if why:
        # Under CI the VM's needs are what make setup installs: a skip there would hide a
        # broken set-up, so --skip-missing does not apply.
        ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
        if a.skip_missing and not ci:
            print(f"cg2vm: SKIPPED, cannot boot the cgroup-v2 VM: {why}", file=sys.stderr)
            return 0
        print(f"cg2vm: cannot boot the cgroup-v2 VM: {why}"
              + (" (CI=true: make setup installs it, so this is a failure, not a skip)" if ci else ""),
              file=sys.stderr)
        return 127
    os.makedirs(a.cache, exist_ok=True)
    for d in a.rw:
        os.makedirs(d, exist_ok=True)
    kernel_file = kernel.boot_image(a.kver, a.cache)
    accel = choose_accel(a, kernel_file)
    t0 = time.monotonic()
    rc = run_vm(a, kernel_file, cmd, accel, a.timeout)
    print(f"cg2vm: kernel {a.kver}, {accel}, {a.cpus} CPUs, {a.mem}: exit {rc} after "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
