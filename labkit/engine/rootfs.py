"""The container's filesystem, built inside its new mount namespace.

Order matters and follows runc: make every mount private, mount the
OverlayFS root, add the volumes (targets resolved inside the root), a fresh
``/proc`` and a read-only ``/sys`` with the container's own cgroup at
``/sys/fs/cgroup``, a small ``/dev``, mask and protect the
sensitive ``/proc`` and ``/sys`` paths, then ``pivot_root`` into it.
Everything here runs in the forked child that becomes the container, so a
failure only ever affects that child's private mount table.
"""
from __future__ import annotations

import os
import stat

from ..i18n import _
from ..kernel import mounts
from ..kernel.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
from ..kernel.openat2 import fd_path, open_in_root
from ..kernel.userns import rootless

# Docker/podman defaults (moby daemon/pkg/oci/defaults.go, containers/common).
MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
    "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

ROOTLESS = rootless()  # the engine's user namespace (see kernel/userns.py); fixed for its life

# name, major, minor
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
           ("urandom", 1, 9), ("tty", 5, 0))


class RootfsError(Exception):
    """The root filesystem cannot be built; ``str()`` is shown to the user."""


def _mount_on(root_fd: int, path: str, source: str, fstype: str, flags: int, data: str | None = None) -> None:
    """Mount on ``path`` of the image; a symlink there (``/proc -> /``) is refused."""
    try:
        fd = open_in_root(root_fd, path, create="dir", symlinks=False)
    except OSError as exc:
        raise RootfsError(_("%(path)s in the image cannot be used as a mount point (a symlink?): %(err)s")
                          % {"path": path, "err": exc.strerror}) from None
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise RootfsError(_("%(path)s is not a directory in the image") % {"path": path})
        mounts.mount(source, fd_path(fd), fstype, flags, data)
    finally:
        os.close(fd)


def _mount_dev(root_fd: int) -> None:
    _mount_on(root_fd, "/dev", "tmpfs", "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    # re-resolve: the tmpfs now covers the old /dev
    dev_fd = open_in_root(root_fd, "/dev", symlinks=False)
    dev_dir = os.open(fd_path(dev_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    os.close(dev_fd)
    try:
        old = os.umask(0)
        try:
            for name, major, minor in DEVICES:
                if ROOTLESS:  # no mknod in a user namespace: the host's node, bound (as podman)
                    os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o666, dir_fd=dev_dir))
                    mounts.bind(f"/dev/{name}", f"{fd_path(dev_dir)}/{name}", recursive=False)
                    continue
                os.mknod(name, 0o666 | stat.S_IFCHR, os.makedev(major, minor), dir_fd=dev_dir)
            os.mkdir("pts", 0o755, dir_fd=dev_dir)
            os.mkdir("shm", 0o1777, dir_fd=dev_dir)
            os.mkdir("mqueue", 0o755, dir_fd=dev_dir)
        finally:
            os.umask(old)
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_dir)
        os.symlink("/proc/self/fd", "fd", dir_fd=dev_dir)
        for i, name in enumerate(("stdin", "stdout", "stderr")):
            os.symlink(f"/proc/self/fd/{i}", name, dir_fd=dev_dir)
        base = fd_path(dev_dir)
        try:
            mounts.mount("devpts", f"{base}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                         "newinstance,ptmxmode=0666,mode=0620,gid=5")
        except OSError:
            if not ROOTLESS:
                raise
            # a one-id map has no gid 5 (tty): the terminals belong to root's group
            mounts.mount("devpts", f"{base}/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                         "newinstance,ptmxmode=0666,mode=0620")
        mounts.mount("shm", f"{base}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     "mode=1777,size=65536k")
        mounts.mount("mqueue", f"{base}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    finally:
        os.close(dev_dir)


def _make_devices(root_fd: int, devices: list[dict]) -> None:
    """``--device``: the host node's twin (type, numbers, mode, owner) at its path in the
    container; the device cgroup allows it (see kernel/cgroups/devices.py)."""
    for d in devices:
        parent, name = os.path.split(d["path"])
        dir_fd = open_in_root(root_fd, parent, create="dir", symlinks=False)
        try:
            try:
                os.unlink(name, dir_fd=dir_fd)  # Docker replaces a default node of that name
            except FileNotFoundError:
                pass
            if ROOTLESS:  # no mknod in a user namespace: the host's node itself, bound; opening
                # it is up to its owner and mode on the host, as for the user (no device cgroup)
                os.close(os.open(name, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=dir_fd))
                mounts.bind(d["host"], f"{fd_path(dir_fd)}/{name}", recursive=False)
                continue
            kind = stat.S_IFCHR if d["type"] == "c" else stat.S_IFBLK
            os.mknod(name, kind | d["mode"], os.makedev(d["major"], d["minor"]), dir_fd=dir_fd)
            os.chmod(name, d["mode"], dir_fd=dir_fd)  # mknod applies the umask
            os.chown(name, d["uid"], d["gid"], dir_fd=dir_fd, follow_symlinks=False)
        finally:
            os.close(dir_fd)


def _mount_cgroups(root_fd: int, writable: bool = False) -> None:
    """The container's own cgroup, read-only at ``/sys/fs/cgroup``, as Docker does
    (``writable``: ``--privileged``, where Docker mounts it read-write).

    The process joined its cgroup and then made a cgroup namespace, so a cgroup file
    system mounted now has that cgroup as its root: the container reads its own limits
    (``memory.max``, ``pids.max``) and sees no other cgroup. On v2 that is one
    ``cgroup2`` mount; on v1, a tmpfs holding one mount per hierarchy labkit uses
    (``cpu``, ``memory``, ``pids``, ...). The limits the engine writes later (the spare
    builds its root before it knows them) show through: these are the live files.
    """
    from ..kernel.cgroups import backend
    from ..kernel.cgroups.mountinfo import layout

    flags = (0 if writable else MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC
    cgroups = backend()
    if ROOTLESS:
        from .rootless import mount_cgroups

        mount_cgroups(root_fd, cgroups, _mount_on, _remount_readonly)
        return
    if cgroups.version == "v2":
        _mount_on(root_fd, "/sys/fs/cgroup", "cgroup2", "cgroup2", flags)
        return
    _mount_on(root_fd, "/sys/fs/cgroup", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    fd = open_in_root(root_fd, "/sys/fs/cgroup", symlinks=False)  # the tmpfs, not the dir under it
    try:
        base = fd_path(fd)
        every = layout().v1  # all controllers of a hierarchy must be named to mount it
        for mountpoint in dict.fromkeys(cgroups.roots.values()):
            ctrls = sorted(c for c, m in every.items() if m == mountpoint)
            name = os.path.basename(mountpoint)  # "memory", or joined: "cpu,cpuacct"
            os.mkdir(f"{base}/{name}", 0o755)
            try:
                mounts.mount("cgroup", f"{base}/{name}", "cgroup", flags, ",".join(ctrls))
            except OSError:  # a hierarchy with options of its own (name=, noprefix): a view
                os.rmdir(f"{base}/{name}")  # less, rather than a container that cannot start
                continue
            for ctrl in ctrls:
                if ctrl != name:
                    os.symlink(name, f"{base}/{ctrl}")  # cpu -> cpu,cpuacct, as systemd does
    finally:
        os.close(fd)
    if not writable:
        _remount_readonly(root_fd, "/sys/fs/cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _remount_readonly(root_fd: int, path: str, extra: int = 0) -> None:
    # Re-open: the fd used for the bind names the dentry *under* the new mount;
    # only a fresh lookup reaches the bind mount itself.
    fd = open_in_root(root_fd, path, symlinks=False)
    try:
        if ROOTLESS:  # a user namespace may not clear the flags the mount came with
            extra |= mounts.locked_flags(fd_path(fd))
        mounts.mount(None, fd_path(fd), None, mounts.MS_BIND | mounts.MS_REMOUNT | MS_RDONLY | extra)
    finally:
        os.close(fd)


def _mask_and_protect(root_fd: int) -> None:
    null = open_in_root(root_fd, "/dev/null", symlinks=False)
    try:
        for path in MASKED_PATHS:
            try:
                fd = open_in_root(root_fd, path, symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    mounts.mount("tmpfs", fd_path(fd), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                                 "size=0")
                else:
                    mounts.mount(fd_path(null), fd_path(fd), None, mounts.MS_BIND)
            finally:
                os.close(fd)
    finally:
        os.close(null)
    for path in READONLY_PATHS:
        try:
            fd = open_in_root(root_fd, path, symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            mounts.bind(fd_path(fd), fd_path(fd))
        finally:
            os.close(fd)
        _remount_readonly(root_fd, path, MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _mount_volume(root_fd: int, source: str, target: str, readonly: bool) -> None:
    kind = "dir" if os.path.isdir(source) else "file"
    fd = open_in_root(root_fd, target, create=kind)
    try:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        if is_dir != (kind == "dir"):
            raise RootfsError(_("volume %(src)s:%(dst)s: a file cannot be mounted on a directory, nor a "
                                "directory on a file") % {"src": source, "dst": target})
        mounts.bind(source, fd_path(fd))
    finally:
        os.close(fd)
    if readonly:
        _remount_readonly(root_fd, target)


def _mount_storage(root_fd: int, m: dict) -> None:
    """A mount of the run request (see :mod:`labkit.engine.volumes`): a bind, a volume
    (its ``_data`` directory, filled from the image first if empty), or a tmpfs."""
    if m["type"] != "tmpfs":
        if m["type"] == "volume" and not m.get("nocopy"):
            from .copyup import populate

            populate(root_fd, m["target"], m["source"])
        _mount_volume(root_fd, m["source"], m["target"], bool(m["readonly"]))
        return
    words = set(m.get("flags") or ())
    flags = (0 if "suid" in words else MS_NOSUID) | (0 if "dev" in words else MS_NODEV) \
        | (0 if "exec" in words else MS_NOEXEC) | (MS_RDONLY if m["readonly"] or "ro" in words else 0)
    fd = open_in_root(root_fd, m["target"], create="dir")
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            raise RootfsError(_("%(path)s is not a directory in the image") % {"path": m["target"]})
        mounts.mount("tmpfs", fd_path(fd), "tmpfs", flags, m.get("options") or None)
    finally:
        os.close(fd)


def build(spec: dict) -> None:
    """Assemble the root described by ``spec`` and pivot into it.

    ``spec``: ``lowerdirs`` (bottom first), ``upperdir``, ``workdir``,
    ``rootfs`` (mount point), ``volumes`` ([source, target, readonly], or the dicts of
    :mod:`labkit.engine.volumes`: bind, volume, tmpfs),
    ``devices`` (``--device``: path, type, major, minor, mode, uid, gid).
    """
    try:
        mounts.make_private("/")
    except OSError:  # EINVAL: "/" is no mount point, i.e. we are in a chroot
        raise RootfsError(_CHROOT()) from None
    rootfs = spec["rootfs"]
    lowers = list(reversed(spec["lowerdirs"]))
    if spec.get("initdir"):  # /etc's three name files, above the image (engine/initlayer.py)
        lowers.insert(0, spec["initdir"])
    mounts.overlay(lowers, spec["upperdir"], spec["workdir"], rootfs)
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for item in spec.get("volumes", ()):
            if isinstance(item, dict):
                _mount_storage(root_fd, item)
            else:  # [source, target, readonly]: the files the engine writes (/etc/hosts...)
                _mount_volume(root_fd, *item)
        _mount_on(root_fd, "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        privileged = bool(spec.get("privileged"))  # --privileged: /sys writable, nothing masked
        try:
            _mount_on(root_fd, "/sys", "sysfs", "sysfs", (0 if privileged else MS_RDONLY) | MS_NOSUID
                      | MS_NODEV | MS_NOEXEC)
        except OSError:
            if not ROOTLESS:
                raise
            # --network host in a user namespace: sysfs belongs to the host's network
            # namespace and cannot be mounted; the host's /sys, bound read-only (as podman)
            fd = open_in_root(root_fd, "/sys", symlinks=False)
            try:
                mounts.bind("/sys", fd_path(fd))
            finally:
                os.close(fd)
            _remount_readonly(root_fd, "/sys")
        _mount_cgroups(root_fd, writable=privileged)
        _mount_dev(root_fd)
        _make_devices(root_fd, spec.get("devices", ()))
        if not privileged:
            _mask_and_protect(root_fd)
    finally:
        os.close(root_fd)
    mounts.enter_root(rootfs)
    _check_namespace_root()


def make_readonly() -> None:
    """``--read-only``: the root (the overlay mount, after ``pivot_root``) becomes
    read-only; /dev, /dev/shm, /proc and the volumes are mounts of their own and keep
    their flags, as in Docker."""
    mounts.mount(None, "/", None, mounts.MS_BIND | mounts.MS_REMOUNT | MS_RDONLY)


def _CHROOT() -> str:
    return _("labkit cannot run a container here: / is not the root of this mount namespace "
             "(a chroot?), so pivot_root would leave the host's tree reachable; use a real "
             "machine or a VM")


def _check_namespace_root() -> None:
    """Make sure nothing is left above the new root.

    ``pivot_root`` swaps the mount at the *process's* root. If that root is not
    the mount namespace's own root (a chroot, even onto a bind mount), the
    host's tree stays above it, reachable by ".." after a chroot or by
    ``setns``. Re-entering our own namespace resets the root to the
    namespace's root: it must be the container's.
    """
    from ..kernel import namespaces

    before = os.stat("/")
    fd = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        namespaces.setns(fd, namespaces.CLONE_NEWNS)
    finally:
        os.close(fd)
    after = os.stat("/")
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
        raise RootfsError(_CHROOT())
