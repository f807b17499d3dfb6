"""The host's ``/`` as a guest's root: read-only over virtio-9p, under a tmpfs overlay.

What ``tools/cg2vm.py`` (one command in a throw-away cgroup-v2 VM) and
:mod:`.machine` (a long-lived second machine running labkit) boot. The guest
sees the venv and the project at the same paths and may write anywhere, with
nothing reaching the host, except the directories shared read-write (or
read-only again) at their own paths. Its ``/init``:

- loads the modules (9p, virtio, overlay; bridge, veth and nf_tables for labkit's
  networks; a NIC when asked) from the host's ``/lib/modules``;
- mounts the root, ``/proc``, ``/sys``, ``/dev``, fresh tmpfs on ``/run`` and
  ``/tmp`` (labkit needs a real upper dir there, not an overlay), cgroup2 at
  ``/sys/fs/cgroup`` with every controller enabled at the root, then the shares;
- switch_root; PID 1 (busybox sh) runs ``stage2`` from :data:`DIR`, next to a copy
  of busybox and of every other file given.
"""
from __future__ import annotations

import os

from . import initramfs, kernel

DIR = "/run/labkit-vm"  # in the guest: busybox, stage2 and the caller's files

MODULES = ["9p", "9pnet_virtio", "virtio_pci", "overlay",  # + their deps, from modules.dep
           # bridge networks: the bridge and veth links, labkit's nftables table (nat chains,
           # masquerade, DNAT, fib daddr type local, ct status)
           # (libcrc32c, under nf_tables, needs a crc32c first: a softdep modules.dep leaves out)
           "bridge", "veth", "crc32c_generic", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq",
           "nft_fib_inet", "nft_ct"]
NET_MODULES = ["virtio_net"]  # a NIC for QEMU's user network (net_failover comes as a dep)

# Stage 1 (/init in the initramfs): load modules, build the root, switch to it.
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /mod/$m || echo "labkit-vm: insmod $m failed"; done
ip link set lo up  # 127.0.0.1, as on any booted system (a published port answers there)
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,cache=loose,msize=512000 hostroot /lower \
  || { echo "labkit-vm: 9p mount failed"; poweroff -f; }
mount -t tmpfs -o mode=755 rw /rw; mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot
R=/newroot
mount -t proc proc $R/proc; mount -t sysfs sys $R/sys; mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs shm $R/dev/shm
ln -s /proc/self/fd $R/dev/fd; ln -s fd/0 $R/dev/stdin; ln -s fd/1 $R/dev/stdout; ln -s fd/2 $R/dev/stderr
mount -t tmpfs -o mode=755 run $R/run; mount -t tmpfs -o mode=1777 tmp $R/tmp
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
while read tag dir mode; do mkdir -p "$R$dir"; mount -t 9p -o $mode,trans=virtio,version=9p2000.L,access=any,msize=512000 $tag "$R$dir"; done </rw.list
echo "$(sed 's/\([a-z_]*\)/+\1/g' $R/sys/fs/cgroup/cgroup.controllers)" > $R/sys/fs/cgroup/cgroup.subtree_control
mkdir -p $R@DIR@; cp /bin/busybox /vm/* $R@DIR@/
exec switch_root $R @DIR@/busybox sh @DIR@/stage2
""".replace("@DIR@", DIR)


def under_tmpfs(paths: list[str]) -> list[str]:
    """Which of ``paths`` the guest's fresh ``/tmp`` and ``/run`` would hide (a venv or a
    checkout there: CI clones into ``/tmp``), outermost only: to share again, read-only."""
    hidden = sorted({os.path.realpath(p) for p in paths
                     if os.path.realpath(p).startswith(("/tmp/", "/run/"))})
    return [p for p in hidden if not any(p.startswith(q + "/") for q in hidden if q != p)]


def shares(rw: list[str] = (), ro: list[str] = ()) -> list[tuple[str, str]]:
    """``(host dir, "ro" | "rw")`` in mount order: the read-only ones first (a share may
    sit inside one), each dir by its real path (the guest mounts it at that path)."""
    return [(os.path.realpath(d), "ro") for d in ro] + [(os.path.realpath(d), "rw") for d in rw]


def initrd(busybox: str, kver: str, stage2: str, files: dict[str, bytes] | None = None,
           share: list[tuple[str, str]] = (), modules: list[str] = MODULES,
           modroot: str = "/lib/modules") -> bytes:
    """The initramfs: :data:`INIT`, ``stage2`` and ``files`` (copied to :data:`DIR` in
    the guest), the list of shares, and the modules with their dependencies."""
    vm = {"vm/stage2": (0o100644, stage2.encode())}
    vm.update({f"vm/{name}": (0o100644, data) for name, data in (files or {}).items()})
    return initramfs.build(busybox, kernel.modules(kver, list(modules), root=modroot), {
        "init": (0o100755, INIT.encode()),
        "rw.list": (0o100644, "".join(f"rw{i} {d} {m}\n" for i, (d, m) in enumerate(share)).encode()),
        **vm}, dirs=("lower", "rw", "newroot", "vm"))


def qemu_args(share: list[tuple[str, str]] = ()) -> list[str]:
    """QEMU's devices for the root (the host's ``/``, read-only) and each share."""
    argv = ["-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot"]
    for i, (d, mode) in enumerate(share):
        ro = ",readonly=on" if mode == "ro" else ""
        argv += ["-fsdev", f"local,id=rw{i},path={d.replace(',', ',,')},security_model=none,"
                 f"multidevs=remap{ro}", "-device", f"virtio-9p-pci,fsdev=rw{i},mount_tag=rw{i}"]
    return argv
