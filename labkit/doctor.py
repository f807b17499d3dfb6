"""``labkit doctor``: what this machine has for the course, and how to get what is missing.

:func:`run_checks` returns a list of :class:`Check` (structured, for notebooks and tests);
:func:`format_checks` turns it into the checklist the command prints. Every probe reads plain
kernel files (``/proc/self/mountinfo``, ``/proc/filesystems``, ``/proc/sys/user/...``) or looks
for a program, so the notebook "comece aqui" can show the same files by hand.

The essentials (without them no container runs): root, ``/`` being a mount point (not a chroot),
OverlayFS, namespaces, a static busybox.
"""
from __future__ import annotations

import os
import platform
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .i18n import _

# cgroup v1 controllers the course uses; on v2 the same names appear in cgroup.controllers
# (cpuacct is part of "cpu" there).
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "cpuset")
V1_NEEDED = ("cpu", "cpuacct", "memory", "pids")
V2_NEEDED = ("cpu", "memory", "pids")
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")
CGROUP_ROOT = "/sys/fs/cgroup"


@dataclass
class Check:
    """One line of the checklist."""

    key: str                 # stable id: "root", "kernel", "cgroups", "overlay", ...
    title: str               # translated label
    ok: bool
    detail: str = ""         # translated: what was found
    fix: str | None = None   # a command (or a short instruction) that fixes it
    essential: bool = False
    data: dict = field(default_factory=dict)  # raw facts (versions, paths, controllers)


# ---------------------------------------------------------------------------------------------
# cgroups: parse /proc/self/mountinfo


@dataclass
class CgroupMounts:
    v1: dict[str, str] = field(default_factory=dict)  # controller -> mount point
    named: dict[str, str] = field(default_factory=dict)  # "name=systemd" -> mount point
    v2: str | None = None                              # cgroup2 mount point

    @property
    def layout(self) -> str:
        """``"v1"``, ``"hybrid"`` (v1 controllers and a cgroup2 mount), ``"v2"`` or ``"none"``."""
        if self.v1:
            return "hybrid" if self.v2 else "v1"
        return "v2" if self.v2 else "none"


def _unescape(path: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (``\\040``)."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and len(path[i + 1:i + 4]) == 3 and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def _prefer(current: str | None, candidate: str) -> bool:
    """Keep the first mount, unless a later one is the standard place under /sys/fs/cgroup."""
    if current is None:
        return True
    std = lambda p: p == CGROUP_ROOT or p.startswith(CGROUP_ROOT + "/")  # noqa: E731
    return std(candidate) and not std(current)


def parse_mountinfo(text: str) -> CgroupMounts:
    """Find the cgroup v1 hierarchies and the cgroup2 mount in a ``/proc/self/mountinfo`` text.

    A line is ``id parent major:minor root mountpoint options [optional...] - fstype source
    superoptions``; for a v1 hierarchy the super options name its controllers (``rw,cpu,cpuacct``).
    When a hierarchy is mounted twice (bind mounts, chroots) the one under /sys/fs/cgroup wins.
    """
    mounts = CgroupMounts()
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        left, right = line.split(" - ", 1)
        fstype, *rest = right.split()
        mountpoint = _unescape(left.split()[4])
        if fstype == "cgroup2":
            if _prefer(mounts.v2, mountpoint):
                mounts.v2 = mountpoint
        elif fstype == "cgroup":
            options = rest[1].split(",") if len(rest) > 1 else []
            for opt in options:
                if opt in V1_CONTROLLERS or opt in ("devices", "freezer", "blkio", "net_cls",
                                                     "net_prio", "perf_event", "hugetlb", "rdma",
                                                     "misc"):
                    if _prefer(mounts.v1.get(opt), mountpoint):
                        mounts.v1[opt] = mountpoint
                elif opt.startswith("name="):
                    if _prefer(mounts.named.get(opt), mountpoint):
                        mounts.named[opt] = mountpoint
    return mounts


def root_is_mount_point(text: str) -> bool:
    """True when some line of ``/proc/self/mountinfo`` mounts ``/`` itself. Inside a plain chroot
    no line does, and then neither pivot_root nor a private ``/`` (runc, podman, labkit) work."""
    for line in text.splitlines():
        fields = line.split()
        if " - " in line and len(fields) >= 5 and fields[4] == "/":
            return True
    return False


def usable_controllers(mounts: CgroupMounts, read: Callable[[str], str] | None = None) -> dict:
    """The controllers labkit can use: ``{"v1": [...], "v2": [...]}`` (each sorted)."""
    read = read or (lambda p: Path(p).read_text())
    v2: list[str] = []
    if mounts.v2:
        try:
            v2 = sorted(read(os.path.join(mounts.v2, "cgroup.controllers")).split())
        except OSError:
            v2 = []
    v1 = sorted(c for c in mounts.v1 if c in V1_CONTROLLERS)
    return {"v1": v1, "v2": v2}


def parse_proc_cgroups(text: str) -> dict[str, bool]:
    """``/proc/cgroups``: {controller: enabled} for the controllers this kernel knows."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and not line.startswith("#"):
            out[fields[0]] = fields[3] == "1"
    return out


# ---------------------------------------------------------------------------------------------
# small probes


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def is_static_elf(path: str) -> bool:
    """True when ``path`` is an ELF executable without a PT_INTERP (dynamic loader) header."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                return False
            is64 = head[4] == 2
            end = "<" if head[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(end + "Q", head, 0x20)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
            else:
                phoff, = struct.unpack_from(end + "I", head, 0x1C)
                phentsize, phnum = struct.unpack_from(end + "HH", head, 0x2A)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
        for i in range(phnum):
            p_type, = struct.unpack_from(end + "I", table, i * phentsize)
            if p_type == 3:  # PT_INTERP
                return False
        return True
    except (OSError, struct.error):
        return False


def find_busybox(which: Callable[[str], str | None] = shutil.which) -> str | None:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", which("busybox")):
        if candidate and os.path.exists(candidate):
            return os.path.realpath(candidate)
    return None


def kernel_images(boot: Path = Path("/boot")) -> list[str]:
    try:
        return sorted(str(p) for p in boot.glob("vmlinuz-*"))
    except OSError:
        return []


def _apt(package: str) -> str:
    return f"apt-get install -y {package}"


# ---------------------------------------------------------------------------------------------
# the checks


def run_checks(
    proc: Path = Path("/proc"),
    boot: Path = Path("/boot"),
    which: Callable[[str], str | None] = shutil.which,
    euid: int | None = None,
    kernel: str | None = None,
    read: Callable[[str], str] | None = None,
) -> list[Check]:
    """Probe this machine; every argument can be replaced by a test."""
    checks: list[Check] = []
    yes, no = _("yes"), _("no")

    # root
    euid = os.geteuid() if euid is None else euid
    checks.append(Check(
        "root", _("root"), euid == 0,
        (yes + " (uid 0)") if euid == 0 else (no + f" (uid {euid})"),
        None if euid == 0 else _("sudo -i  (the course runs as root)"),
        essential=True, data={"euid": euid},
    ))

    # kernel version
    release = kernel or platform.release()
    checks.append(Check("kernel", _("kernel"), True, release, data={"release": release}))

    # cgroups
    mounts = parse_mountinfo(_read(proc / "self" / "mountinfo") or "")
    controllers = usable_controllers(mounts, read)
    layout = mounts.layout
    names = {"v1": _("v1"), "hybrid": _("hybrid (v1 + v2)"), "v2": _("v2 (unified)"),
             "none": _("not mounted")}
    if layout == "v2":
        missing = [c for c in V2_NEEDED if c not in controllers["v2"]]
        shown = controllers["v2"]
    else:
        missing = [c for c in V1_NEEDED if c not in controllers["v1"]]
        shown = controllers["v1"]
    detail = names[layout]
    if layout != "none":
        detail += "; " + _("controllers: %(list)s") % {"list": ", ".join(shown) or "-"}
    fix = None
    if layout == "none":
        fix = f"mount -t cgroup2 none {CGROUP_ROOT}"
    elif missing:
        detail += "; " + _("missing: %(list)s") % {"list": ", ".join(missing)}
        enabled = parse_proc_cgroups(_read(proc / "cgroups") or "")
        if layout == "v2":
            fix = _("delegate them to this tree: echo '%(ctl)s' > cgroup.subtree_control of the parent "
                    "cgroup (on the host), and check /proc/cmdline for cgroup_disable=") % {
                "ctl": " ".join("+" + c for c in missing)}
        elif all(enabled.get(c) for c in missing):
            # compiled in and enabled, just not mounted
            fix = " && ".join(f"mkdir -p {CGROUP_ROOT}/{c} && mount -t cgroup -o {c} cgroup {CGROUP_ROOT}/{c}"
                              for c in missing)
        else:
            fix = _("add cgroup_enable=%(ctl)s to the kernel command line (GRUB_CMDLINE_LINUX in "
                    "/etc/default/grub), run update-grub and reboot") % {"ctl": ",".join(missing)}
    if layout == "hybrid":
        detail += "; " + _("cgroup2 at %(path)s: %(list)s") % {
            "path": mounts.v2, "list": ", ".join(controllers["v2"]) or _("no controllers")}
    checks.append(Check("cgroups", _("cgroups"), layout != "none" and not missing, detail, fix,
                        data={"layout": layout, "v1": mounts.v1, "v2_mount": mounts.v2,
                              "controllers": controllers, "missing": missing}))

    # / must be a mount point (pivot_root); it is not inside a plain chroot
    mountinfo = _read(proc / "self" / "mountinfo") or ""
    rooted = root_is_mount_point(mountinfo)
    checks.append(Check(
        "mount-root", _("/ is a mount point"), rooted,
        _("yes") if rooted else _("no: this looks like a chroot, where pivot_root cannot work"),
        None if rooted else _("run the course outside the chroot, or bind-mount its directory onto "
                              "itself before entering it: mount --bind DIR DIR"),
        essential=True,
    ))

    # OverlayFS
    filesystems = _read(proc / "filesystems") or ""
    overlay = any(line.split()[-1] == "overlay" for line in filesystems.splitlines() if line.split())
    checks.append(Check("overlay", "OverlayFS", overlay,
                        _("available") if overlay else _("not in /proc/filesystems"),
                        None if overlay else "modprobe overlay", essential=True))

    # namespaces (the ones every container gets)
    ns_dir = proc / "self" / "ns"
    have_ns = [n for n in NAMESPACES if os.path.lexists(ns_dir / n)]
    missing_ns = [n for n in NAMESPACES if n not in have_ns and n != "cgroup"]
    checks.append(Check(
        "namespaces", _("namespaces"), not missing_ns,
        ", ".join(have_ns) + ("; " + _("missing: %(list)s") % {"list": ", ".join(missing_ns)}
                               if missing_ns else ""),
        None if not missing_ns else _("use a kernel built with CONFIG_NAMESPACES (Debian's is)"),
        essential=True, data={"namespaces": have_ns},
    ))

    # user namespaces (rootless use)
    max_userns = (_read(proc / "sys" / "user" / "max_user_namespaces") or "").strip()
    clone = (_read(proc / "sys" / "kernel" / "unprivileged_userns_clone") or "").strip()
    apparmor = (_read(proc / "sys" / "kernel" / "apparmor_restrict_unprivileged_userns") or "").strip()
    userns_fix = None
    if not max_userns or max_userns == "0":
        userns_ok, userns_detail = False, _("disabled (max_user_namespaces = %(n)s)") % {"n": max_userns or "?"}
        userns_fix = "sysctl -w user.max_user_namespaces=15000"
    elif clone == "0":
        userns_ok, userns_detail = False, _("only root may create them (unprivileged_userns_clone = 0)")
        userns_fix = "sysctl -w kernel.unprivileged_userns_clone=1"
    elif apparmor == "1":
        userns_ok, userns_detail = False, _("restricted by AppArmor (apparmor_restrict_unprivileged_userns = 1)")
        userns_fix = "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
    else:
        userns_ok, userns_detail = True, _("available (max_user_namespaces = %(n)s)") % {"n": max_userns}
    checks.append(Check("userns", _("user namespaces (rootless)"), userns_ok, userns_detail, userns_fix,
                        data={"max_user_namespaces": max_userns, "unprivileged_userns_clone": clone}))
    from .doctor_rootless import rootless_checks, rootless_root_check  # the rest of rootless, item by item

    checks[0] = rootless_root_check(checks[0], userns_ok)
    checks += rootless_checks(proc, which, euid, kernel, Check=Check)

    # busybox (static: it is copied into the busybox image and must run without libc)
    busybox = find_busybox(which)
    static = bool(busybox) and is_static_elf(busybox)
    if not busybox:
        bb_detail = _("not found")
    elif not static:
        bb_detail = _("%(path)s is dynamically linked") % {"path": busybox}
    else:
        bb_detail = _("%(path)s (static)") % {"path": busybox}
    checks.append(Check("busybox", _("static busybox"), static, bb_detail,
                        None if static else _apt("busybox-static"), essential=True,
                        data={"path": busybox}))

    # qemu + a kernel image (the "VM vs container" notebook)
    qemu = which("qemu-system-x86_64")
    checks.append(Check("qemu", "qemu-system-x86_64", bool(qemu), qemu or _("not found"),
                        None if qemu else _apt("qemu-system-x86"), data={"path": qemu}))
    images = kernel_images(boot)
    checks.append(Check("kernel-image", _("kernel image in /boot"), bool(images),
                        images[-1] if images else _("not found"),
                        None if images else _apt("linux-image-amd64"), data={"images": images}))

    checks.append(vm_accel_check(images[-1] if images else None))
    mke2fs = which("mke2fs")
    checks.append(Check("mke2fs", _("mke2fs (VM root disks)"), bool(mke2fs), mke2fs or _("not found"),
                        None if mke2fs else _apt("e2fsprogs"), data={"path": mke2fs}))

    # podman and skopeo (compare with labkit, read its image store)
    for tool in ("podman", "skopeo"):
        path = which(tool)
        checks.append(Check(tool, tool, bool(path), path or _("not found"),
                            None if path else _apt(tool), data={"path": path}))
    return checks


def vm_accel_check(image: str | None, kvm: str = "/dev/kvm", cache: str | None = None) -> Check:
    """KVM usable or TCG only, for ``labkit vm``: the verdict of the smoke boot that
    ``labkit vm run`` makes once (doctor itself boots nothing)."""
    from .vm.kernel import cache_dir

    title = _("VM acceleration")
    if not os.access(kvm, os.R_OK | os.W_OK):
        return Check("vm-accel", title, False, _("TCG only (no usable /dev/kvm): VMs are emulated, "
                                                  "10-25x slower"), data={"accel": "tcg"})
    kver = os.path.basename(image or "").removeprefix("vmlinuz-")
    try:
        with open(os.path.join(cache or cache_dir(), f"kvm-verdict-{kver}")) as f:
            verdict = f.read().strip()
    except OSError:
        return Check("vm-accel", title, True, _("/dev/kvm present, not tested yet (the first "
                                                 "labkit vm run tests it)"), data={"accel": None})
    if verdict == "kvm":
        return Check("vm-accel", title, True, _("KVM usable"), data={"accel": "kvm"})
    return Check("vm-accel", title, False, _("TCG only (a test boot with KVM failed here): VMs are "
                                              "emulated, 10-25x slower"), data={"accel": "tcg"})


def essentials_ok(checks: list[Check]) -> bool:
    return all(c.ok for c in checks if c.essential)


def format_checks(checks: list[Check]) -> str:
    """The checklist: ``✔``/``✘`` per line, the fixing command under each missing piece."""
    lines = [_("labkit doctor: what this machine has for the course"), ""]
    width = max(len(c.title) for c in checks)
    for c in checks:
        mark = "✔" if c.ok else "✘"
        tag = "" if c.ok or not c.essential else " [" + _("essential") + "]"
        lines.append(f" {mark} {c.title.ljust(width)}  {c.detail}{tag}")
        if not c.ok and c.fix:
            lines.append(f"   {' ' * width}  → {c.fix}")
    lines.append("")
    if essentials_ok(checks):
        lines.append(_("The essentials are here: containers can run."))
    else:
        lines.append(_("Something essential is missing: run the commands marked with → above."))
    return "\n".join(lines)


def main() -> int:
    checks = run_checks()
    print(format_checks(checks))
    return 0 if essentials_ok(checks) else 1
