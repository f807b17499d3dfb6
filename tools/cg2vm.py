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

usage: tools/cg2vm.py [-m 512M] [--cpus 2] [--timeout 900] [--rw DIR] [-e NAME=VAL]
                      [--skip-missing] -- 'shell command'
Stdlib only. Kernel cache: $CG2VM_CACHE or <project>/.cache/cg2vm.
"""
from __future__ import annotations

import argparse
import lzma
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = ["9p", "9pnet_virtio", "virtio_pci", "overlay"]  # + their deps, from modules.dep

# Stage 1 (/init in the initramfs): load modules, build the root, switch to it.
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /mod/$m || echo "cg2vm: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,cache=loose,msize=512000 hostroot /lower \
  || { echo "cg2vm: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o mode=755 rw /rw; mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot
R=/newroot
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
mount -t tmpfs -o mode=755 run $R/run; mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
while read tag dir mode; do mkdir -p "$R$dir"; mount -t 9p -o $mode,trans=virtio,version=9p2000.L,access=any,msize=512000 $tag "$R$dir"; done </rw.list
echo "$(sed 's/\([a-z_]*\)/+\1/g' $R/sys/fs/cgroup/cgroup.controllers)" > $R/sys/fs/cgroup/cgroup.subtree_control
mkdir -p $R/run/cg2vm; cp /bin/busybox /cmd.sh /stage2 $R/run/cg2vm/
exec switch_root $R /run/cg2vm/busybox sh /run/cg2vm/stage2
"""

# Stage 2 (PID 1 inside the real root): run the command, report, power off.
STAGE2 = r"""B=/run/cg2vm/busybox
/bin/sh /run/cg2vm/cmd.sh </dev/null >/dev/console 2>&1
echo "@@MARK@@ $?" >/dev/console
$B sync; $B poweroff -f
"""


def extract_vmlinux(bz: str, out: str) -> str:
    """PVH-bootable ELF from a bzImage: skips firmware + in-guest xz (~4 s under TCG)."""
    data = open(bz, "rb").read()
    for magic, dec in ((b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
                       (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(31).decompress(b))):
        i = data.find(magic)
        while i != -1:
            try:
                elf = dec(data[i:])
                if elf[:4] == b"\x7fELF":
                    tmp = f"{out}.{os.getpid()}.tmp"
                    with open(tmp, "wb") as f:
                        f.write(elf)
                    os.rename(tmp, out)
                    return out
            except Exception:
                pass
            i = data.find(magic, i + 1)
    return bz  # unknown compression (zstd): let QEMU boot the bzImage (slower)


def mod_order(kver: str) -> list[tuple[str, str]]:
    base = f"/lib/modules/{kver}"
    dep = {}
    for line in open(f"{base}/modules.dep"):
        k, v = line.split(":", 1)
        dep[k] = v.split()
    by_name = {os.path.basename(k).split(".ko")[0].replace("-", "_"): k for k in dep}
    order: list[str] = []

    def add(path):
        for d in dep[path]:
            add(d)
        if path not in order:
            order.append(path)
    for m in MODULES:
        if m in by_name:  # absent = built in
            add(by_name[m])
    return [(os.path.join(base, p), os.path.basename(p)) for p in order]


def cpio(entries) -> bytes:
    """newc archive; entries: (name, mode, data or None[, (rdev major, minor)])."""
    out = bytearray()
    for ino, (name, mode, data, *rdev) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        data = data or b""
        nm = name.encode() + b"\0"
        maj, mnr = rdev[0] if rdev else (0, 0)
        hdr = "070701" + "".join("%08x" % x for x in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, maj, mnr, len(nm), 0))
        out += hdr.encode() + nm
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def build_initrd(kver, busybox, script, stage2, rw) -> bytes:
    ents = [(d, 0o40755, None) for d in ("bin", "dev", "proc", "sys", "mod", "lower", "rw", "newroot")]
    ents.append(("bin/busybox", 0o100755, open(busybox, "rb").read()))
    names = []
    for path, name in mod_order(kver):
        body = open(path, "rb").read()
        if name.endswith(".xz"):
            body, name = lzma.decompress(body), name[:-3]
        elif name.endswith(".gz"):
            body, name = zlib.decompress(body, 31), name[:-3]
        ents.append(("mod/" + name, 0o100644, body))
        names.append(name)
    ents.append(("modules.list", 0o100644, "\n".join(names).encode()))
    ents.append(("init", 0o100755, INIT.encode()))
    ents.append(("stage2", 0o100644, stage2.encode()))
    ents.append(("rw.list", 0o100644, "".join(f"rw{i} {d} {m}\n" for i, (d, m) in enumerate(rw)).encode()))
    ents.append(("cmd.sh", 0o100644, script.encode()))
    ents.insert(1, ("dev/console", 0o20600, None, (5, 1)))  # stdio of /init
    return cpio(ents)


def _vkey(v: str):
    return [int(x) if x.isdigit() else x for x in v.replace("-", ".").split(".")]


def missing(a) -> str | None:
    """Why this machine cannot run the VM, or None."""
    if not shutil.which(a.qemu):
        return f"{a.qemu} not found (Debian: apt-get install qemu-system-x86)"
    if not a.kver:
        vers = [v for v in os.listdir("/lib/modules") if os.path.exists(f"/boot/vmlinuz-{v}")] \
            if os.path.isdir("/lib/modules") else []
        if not vers:
            return "no kernel image with modules in /boot + /lib/modules (apt-get install linux-image-amd64)"
        a.kver = sorted(vers, key=_vkey)[-1]
    for p in (f"/boot/vmlinuz-{a.kver}", f"/lib/modules/{a.kver}/modules.dep"):
        if not os.access(p, os.R_OK):
            return f"cannot read {p}"
    if not os.path.exists(a.busybox):
        return f"{a.busybox} not found (apt-get install busybox-static)"
    if b"ld-linux" in open(a.busybox, "rb").read(8192):
        return f"{a.busybox} is dynamically linked (apt-get install busybox-static)"
    return None


def run_vm(a, kernel: str, cmd: str, accel: str, timeout: float, quiet: bool = False) -> int:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "LANG": "C.UTF-8", "TERM": "dumb", "CG2VM": "1"}
    env.update(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in a.env)
    script = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
    script += f"cd {shlex.quote(a.dir)} || exit 125\n{cmd}\n"
    rw = [(os.path.realpath(d), "rw") for d in a.rw]
    # The guest's /tmp and /run are fresh tmpfs (labkit needs a real upper dir there, not
    # an overlay): a project checked out below them (CI clones into /tmp) is shared again,
    # read-only, at the same path, before the --rw dirs that may sit inside it.
    here = os.path.realpath(a.dir)
    if here.startswith(("/tmp/", "/run/")):
        rw.insert(0, (here, "ro"))
    mark = b"@@CG2VM-EXIT-" + os.urandom(6).hex().encode() + b"@@"  # unforgeable by test output
    arc = build_initrd(a.kver, a.busybox, script, STAGE2.replace("@@MARK@@", mark.decode()), rw)
    initrd = os.path.join(a.cache, f"initrd-{os.getpid()}.cpio")
    with open(initrd, "wb") as f:
        f.write(arc)
    cpu = a.cpu or ("host" if accel == "kvm" else "max")
    qemu = [a.qemu, "-accel", accel, "-M", "q35", "-cpu", cpu, "-smp", str(a.cpus),
            "-m", a.mem, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 rdinit=/init " + ("" if a.verbose else "quiet loglevel=1"),
            "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot"]
    for i, (d, mode) in enumerate(rw):
        ro = ",readonly=on" if mode == "ro" else ""
        qemu += ["-fsdev", f"local,id=rw{i},path={d},security_model=none,multidevs=remap{ro}",
                 "-device", f"virtio-9p-pci,fsdev=rw{i},mount_tag=rw{i}"]
    p = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL if quiet else None)
    rc = [255]
    out = sys.stdout.buffer

    def on_timeout(*_):
        if not quiet:
            out.write(f"\ncg2vm: timeout after {timeout:.0f}s, killing VM\n".encode())
        p.kill()
        rc[0] = 124

    def on_term(signum, _):
        p.kill()
        p.wait()
        if os.path.exists(initrd):
            os.unlink(initrd)
        sys.exit(128 + signum)
    old = signal.signal(signal.SIGALRM, on_timeout)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        for line in p.stdout:
            line = line.replace(b"\r\n", b"\n")
            i = line.find(mark)
            if i >= 0:  # "<last output without newline>MARK rc"
                if i and not quiet:
                    out.write(line[:i] + b"\n")
                rc[0] = int(line[i:].split()[1])
            elif (rc[0] == 255 or a.verbose) and not quiet:  # after the marker: shutdown noise
                out.write(line)
            out.flush()
        p.wait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if p.poll() is None:
            p.kill()
            p.wait()
        if os.path.exists(initrd):
            os.unlink(initrd)
    return rc[0]


def choose_accel(a, kernel: str) -> str:
    """``auto``: KVM only when a timed smoke boot under KVM printed its exit status."""
    if a.accel != "auto":
        return a.accel
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    verdict_file = os.path.join(a.cache, f"kvm-verdict-{a.kver}")
    try:
        return open(verdict_file).read().strip()
    except FileNotFoundError:
        pass
    t0 = time.monotonic()
    ok = run_vm(a, kernel, "exit 7", "kvm", timeout=20, quiet=True) == 7
    verdict = "kvm" if ok else "tcg"
    print(f"cg2vm: KVM smoke boot {'worked' if ok else 'failed'} in {time.monotonic() - t0:.1f} s:"
          f" using {verdict} (cached in {verdict_file})", file=sys.stderr)
    with open(verdict_file, "w") as f:
        f.write(verdict + "\n")
    return verdict


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--mem", default=os.environ.get("CG2VM_MEM", "512M"))
    ap.add_argument("--cpus", default=os.environ.get("CG2VM_CPUS", "2"))
    ap.add_argument("--accel", default=os.environ.get("CG2VM_ACCEL", "auto"),
                    choices=("auto", "tcg", "kvm"))
    ap.add_argument("--cpu", default=os.environ.get("CG2VM_CPU"), help="qemu -cpu model")
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("CG2VM_TIMEOUT", 900)))
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
    kernel = os.path.join(a.cache, f"vmlinux-{a.kver}")
    if not os.path.exists(kernel):
        kernel = extract_vmlinux(f"/boot/vmlinuz-{a.kver}", kernel)
    accel = choose_accel(a, kernel)
    t0 = time.monotonic()
    rc = run_vm(a, kernel, cmd, accel, a.timeout)
    print(f"cg2vm: kernel {a.kver}, {accel}, {a.cpus} CPUs, {a.mem}: exit {rc} after "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
