"""labkit doctor: mountinfo parsing (v1, hybrid, v2), the checks on a fake /proc, the checklist."""
from __future__ import annotations

import os
import sys

import pytest

from labkit import doctor, i18n
from labkit.doctor import parse_mountinfo, usable_controllers

# A Debian 12 machine booted with systemd.unified_cgroup_hierarchy=0 and no cgroup2 at all.
MOUNTINFO_V1 = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
25 28 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=4010972k,nr_inodes=1002743,mode=755
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
31 22 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
35 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
36 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
37 31 0:32 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,pids
38 31 0:33 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpuset
39 31 0:34 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,devices
"""

# This CI machine: separate cpu and cpuacct hierarchies, cgroup2 on /sys/fs/cgroup/unified,
# and the same mounts again inside a chroot (which must not win).
MOUNTINFO_HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
44 43 0:28 / /var/tmp/chroot/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
45 44 0:29 / /var/tmp/chroot/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
54 44 0:38 / /var/tmp/chroot/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A current distribution (Debian 12, Ubuntu 22.04+, Fedora): the unified hierarchy only.
MOUNTINFO_V2 = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
28 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""


def test_v1():
    m = parse_mountinfo(MOUNTINFO_V1)
    assert m.layout == "v1"
    assert m.v2 is None
    assert m.v1["cpu"] == m.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert m.v1["memory"] == "/sys/fs/cgroup/memory"
    assert m.named == {"name=systemd": "/sys/fs/cgroup/systemd"}
    assert usable_controllers(m, read=lambda p: "") == {
        "v1": ["cpu", "cpuacct", "cpuset", "memory", "pids"], "v2": []}


def test_hybrid_prefers_the_standard_place():
    m = parse_mountinfo(MOUNTINFO_HYBRID)
    assert m.layout == "hybrid"
    assert m.v2 == "/sys/fs/cgroup/unified"
    assert m.v1["cpu"] == "/sys/fs/cgroup/cpu"
    assert m.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert "name=systemd" not in m.v1
    seen = []
    ctl = usable_controllers(m, read=lambda p: seen.append(p) or "hugetlb\n")
    assert seen == ["/sys/fs/cgroup/unified/cgroup.controllers"]
    assert ctl == {"v1": ["cpu", "cpuacct", "cpuset", "memory", "pids"], "v2": ["hugetlb"]}


def test_v2():
    m = parse_mountinfo(MOUNTINFO_V2)
    assert m.layout == "v2" and m.v1 == {} and m.v2 == "/sys/fs/cgroup"
    ctl = usable_controllers(m, read=lambda p: "cpuset cpu io memory hugetlb pids rdma misc\n")
    assert ctl["v2"] == ["cpu", "cpuset", "hugetlb", "io", "memory", "misc", "pids", "rdma"]


def test_v2_unreadable_controllers_file():
    def fail(path):
        raise PermissionError(path)
    assert usable_controllers(parse_mountinfo(MOUNTINFO_V2), read=fail)["v2"] == []


def test_no_cgroups_and_garbage_lines():
    assert parse_mountinfo("").layout == "none"
    assert parse_mountinfo("garbage\n1 2 3\n").layout == "none"


def test_escaped_mount_point():
    text = r"30 22 0:26 / /mnt/my\040cgroup rw - cgroup2 cgroup2 rw" + "\n"
    assert parse_mountinfo(text).v2 == "/mnt/my cgroup"


# ---------------------------------------------------------------------------------------------
# run_checks on a fake machine


def fake_machine(tmp_path, mountinfo=MOUNTINFO_V2, filesystems="nodev\toverlay\n", userns="1000",
                 clone=None, namespaces=doctor.NAMESPACES, kernel_image=True):
    proc, boot = tmp_path / "proc", tmp_path / "boot"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "sys" / "user").mkdir(parents=True)
    (proc / "sys" / "kernel").mkdir(parents=True)
    boot.mkdir()
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "filesystems").write_text("nodev\tsysfs\nnodev\tproc\n\text4\n" + filesystems)
    (proc / "sys" / "user" / "max_user_namespaces").write_text(userns + "\n")
    if clone is not None:
        (proc / "sys" / "kernel" / "unprivileged_userns_clone").write_text(clone + "\n")
    for ns in namespaces:
        os.symlink(f"{ns}:[4026531836]", proc / "self" / "ns" / ns)
    if kernel_image:
        (boot / "vmlinuz-6.1.0-18-amd64").write_bytes(b"")
    return proc, boot


def static_busybox(tmp_path):
    """A minimal 64-bit ELF with one PT_LOAD header and no PT_INTERP."""
    import struct
    path = tmp_path / "busybox"
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)        # e_phoff
    struct.pack_into("<HH", header, 0x36, 56, 1)    # e_phentsize, e_phnum
    ph = bytearray(56)
    struct.pack_into("<I", ph, 0, 1)                # PT_LOAD
    path.write_bytes(bytes(header + ph))
    return str(path)


def checks_by_key(checks):
    return {c.key: c for c in checks}


@pytest.fixture
def portuguese(monkeypatch):
    for var in ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "pt_BR.UTF-8")
    i18n.reset()
    yield
    i18n.reset()


def test_everything_present(tmp_path, english, monkeypatch):
    proc, boot = fake_machine(tmp_path)
    bb = static_busybox(tmp_path)
    monkeypatch.setattr(doctor, "find_busybox", lambda which: bb)
    checks = doctor.run_checks(proc=proc, boot=boot, which=lambda n: f"/usr/bin/{n}", euid=0,
                               kernel="6.1.0-18-amd64", read=lambda p: "cpu memory pids io\n")
    by = checks_by_key(checks)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert by["cgroups"].data["layout"] == "v2"
    assert by["kernel"].detail == "6.1.0-18-amd64"
    assert by["busybox"].data["path"] == bb
    assert doctor.essentials_ok(checks)
    text = doctor.format_checks(checks)
    assert "✘" not in text and text.count("✔") == len(checks)
    assert "The essentials are here" in text


def test_missing_pieces_come_with_their_fix(tmp_path, english, monkeypatch):
    proc, boot = fake_machine(tmp_path, filesystems="", userns="0", kernel_image=False)
    monkeypatch.setattr(doctor, "find_busybox", lambda which: None)
    checks = doctor.run_checks(proc=proc, boot=boot, which=lambda n: None, euid=1000,
                               read=lambda p: "cpu\n")
    by = checks_by_key(checks)
    assert not by["root"].ok and by["root"].essential
    assert by["overlay"].fix == "modprobe overlay"
    assert by["busybox"].fix == "apt-get install -y busybox-static"
    assert by["qemu"].fix == "apt-get install -y qemu-system-x86"
    assert by["kernel-image"].fix == "apt-get install -y linux-image-amd64"
    assert by["podman"].fix == "apt-get install -y podman"
    assert by["skopeo"].fix == "apt-get install -y skopeo"
    assert by["userns"].fix == "sysctl -w user.max_user_namespaces=15000"
    assert not by["cgroups"].ok and by["cgroups"].data["missing"] == ["memory", "pids"]
    assert "+memory +pids" in by["cgroups"].fix
    assert not doctor.essentials_ok(checks)
    text = doctor.format_checks(checks)
    assert "✘" in text and "→ modprobe overlay" in text
    assert "Something essential is missing" in text


def test_v1_missing_memory_and_debian_userns_switch(tmp_path, english):
    mountinfo = "\n".join(l for l in MOUNTINFO_V1.splitlines() if "memory" not in l)
    proc, boot = fake_machine(tmp_path, mountinfo=mountinfo, clone="0")
    by = checks_by_key(doctor.run_checks(proc=proc, boot=boot, euid=0))
    assert by["cgroups"].data["layout"] == "v1"
    assert by["cgroups"].data["missing"] == ["memory"]
    assert "cgroup_enable=memory" in by["cgroups"].fix
    assert by["userns"].fix == "sysctl -w kernel.unprivileged_userns_clone=1"


def test_v1_controller_enabled_but_not_mounted(tmp_path, english):
    mountinfo = "\n".join(l for l in MOUNTINFO_V1.splitlines() if "pids" not in l)
    proc, boot = fake_machine(tmp_path, mountinfo=mountinfo)
    (proc / "cgroups").write_text("#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
                                  "cpu\t2\t1\t1\nmemory\t3\t1\t1\npids\t0\t1\t1\n")
    by = checks_by_key(doctor.run_checks(proc=proc, boot=boot, euid=0))
    assert by["cgroups"].data["missing"] == ["pids"]
    assert by["cgroups"].fix == ("mkdir -p /sys/fs/cgroup/pids && "
                                 "mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids")


def test_chroot_is_reported(tmp_path, english):
    # inside a plain chroot, mountinfo has no line for "/" (only what was mounted inside it)
    assert doctor.root_is_mount_point(MOUNTINFO_V2)
    assert not doctor.root_is_mount_point("1000 27 0:347 / /proc rw,relatime - proc proc rw\n")
    proc, boot = fake_machine(tmp_path, mountinfo="1000 27 0:347 / /proc rw,relatime - proc proc rw\n")
    checks = doctor.run_checks(proc=proc, boot=boot, euid=0)
    by = checks_by_key(checks)
    assert not by["mount-root"].ok and by["mount-root"].essential
    assert "mount --bind DIR DIR" in by["mount-root"].fix
    assert not doctor.essentials_ok(checks)


def test_proc_cgroups():
    text = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t3\t1\nmemory\t0\t1\t0\n"
    assert doctor.parse_proc_cgroups(text) == {"cpu": True, "memory": False}


def test_hybrid_is_fine(tmp_path, english):
    proc, boot = fake_machine(tmp_path, mountinfo=MOUNTINFO_HYBRID)
    by = checks_by_key(doctor.run_checks(proc=proc, boot=boot, euid=0, read=lambda p: ""))
    assert by["cgroups"].ok and by["cgroups"].data["layout"] == "hybrid"
    assert "cgroup2 at /sys/fs/cgroup/unified: no controllers" in by["cgroups"].detail


def test_missing_namespace_is_essential(tmp_path, english):
    proc, boot = fake_machine(tmp_path, namespaces=("mnt", "uts", "ipc", "net"))
    by = checks_by_key(doctor.run_checks(proc=proc, boot=boot, euid=0))
    assert not by["namespaces"].ok and by["namespaces"].essential
    assert "pid" in by["namespaces"].detail


def test_static_elf_detection(tmp_path):
    assert doctor.is_static_elf(static_busybox(tmp_path))
    assert not doctor.is_static_elf(os.path.realpath(sys.executable))  # dynamically linked
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not doctor.is_static_elf(str(tmp_path / "script"))
    assert not doctor.is_static_elf(str(tmp_path / "absent"))


def test_portuguese_by_default(tmp_path, portuguese):
    proc, boot = fake_machine(tmp_path, filesystems="")
    text = doctor.format_checks(doctor.run_checks(proc=proc, boot=boot, euid=0))
    assert "o que esta máquina tem para o curso" in text
    assert "Falta algo essencial" in text


def test_cli_verb(capsys, english):
    from labkit.cli import main
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc in (0, 1)
    assert "labkit doctor" in out and ("✔" in out or "✘" in out)
    assert rc == (0 if "The essentials are here" in out else 1)


def test_vm_acceleration_reads_the_smoke_boot_verdict(tmp_path):
    from labkit.doctor import vm_accel_check

    kvm = tmp_path / "kvm"
    c = vm_accel_check("/boot/vmlinuz-6.1.0-1-amd64", kvm=str(kvm), cache=str(tmp_path))
    assert c.data == {"accel": "tcg"}  # no /dev/kvm
    kvm.write_text("")  # a readable and writable /dev/kvm stand-in
    c = vm_accel_check("/boot/vmlinuz-6.1.0-1-amd64", kvm=str(kvm), cache=str(tmp_path))
    assert c.ok and c.data == {"accel": None}  # not tested yet
    (tmp_path / "kvm-verdict-6.1.0-1-amd64").write_text("tcg\n")
    c = vm_accel_check("/boot/vmlinuz-6.1.0-1-amd64", kvm=str(kvm), cache=str(tmp_path))
    assert not c.ok and c.data == {"accel": "tcg"} and "TCG" in c.detail
    (tmp_path / "kvm-verdict-6.1.0-1-amd64").write_text("kvm\n")
    assert vm_accel_check("/boot/vmlinuz-6.1.0-1-amd64", kvm=str(kvm), cache=str(tmp_path)).ok
