"""Safety of a labkit container, against security-baseline.md's pitfalls P1-P15.

Each test runs real containers and checks one property podman/Docker
guarantee by default, often with a positive control that shows the check
would catch the failure. Probes are small static C programs from
``probes/`` mounted read-only at ``/probes``. Nothing here ever *writes* to a
sensitive file: the /proc/sys and /sys checks only open for writing.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import labkit


sys.path.insert(0, str(Path(__file__).parent))
import probes as _probes  # noqa: E402
from requirements import require, require_tool  # noqa: E402

pytestmark = pytest.mark.root

CAPS_PODMAN_11 = 0x800405FB
MASKED = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/acpi",
          "/proc/latency_stats", "/proc/scsi", "/proc/interrupts", "/proc/asound", "/proc/timer_stats",
          "/sys/firmware", "/sys/devices/virtual/powercap")
READ_ONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


@pytest.fixture(scope="module")
def probe_dir():
    """The compiled probes, in a world-readable host directory."""
    require_tool("gcc", package="gcc")
    d = Path(tempfile.mkdtemp(prefix="labkit-probes-"))
    d.chmod(0o755)
    try:
        _probes.build(d)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(d)
        require(False, f"a static libc to build the probes ({exc.stderr})", package="Debian package libc6-dev")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def sh(script: str, probe_dir: Path | None = None, volumes=(), **kw) -> labkit.Result:
    vols = list(volumes)
    if probe_dir is not None:
        vols.append(f"{probe_dir}:/probes:ro")
    return labkit.run("busybox", ["sh", "-c", script], volumes=vols, **kw)


def mountinfo_inside(**kw) -> list[list[str]]:
    r = sh("cat /proc/self/mountinfo", **kw)
    assert r.exit_code == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()]


def optional_fields(fields: list[str]) -> list[str]:
    return fields[6:fields.index("-")]


def host_mountpoints() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture
def shared_dir(tmp_path: Path):
    """A host directory made a *shared* bind mount, as on systemd hosts (baseline Q4)."""
    d = tmp_path / "shared"
    (d / "sub").mkdir(parents=True)
    (d / "sub2").mkdir()
    subprocess.run(["mount", "--bind", str(d), str(d)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(d)], check=True)
        yield d
    finally:
        for m in (d / "sub2", d / "sub"):
            subprocess.run(["umount", "-l", str(m)], capture_output=True)
        subprocess.run(["umount", "-l", str(d)], check=True)



# -- P1: mount propagation --------------------------------------------------------------------


def test_p1_no_shared_mounts_inside(shared_dir: Path):
    mounts = mountinfo_inside(volumes=[f"{shared_dir}:/vol"])
    root = next(m for m in mounts if m[4] == "/")
    vol = next(m for m in mounts if m[4] == "/vol")
    print("inside: /", optional_fields(root), "/vol", optional_fields(vol))
    assert not any(f.startswith(("shared:", "master:")) for m in mounts for f in optional_fields(m)), mounts
    # the host side of the volume is shared: the container's copy is not in its peer group
    with open("/proc/self/mountinfo") as f:
        host = next(ln.split() for ln in f if ln.split()[4] == str(shared_dir))
    assert any(f.startswith("shared:") for f in optional_fields(host))


def test_p1_control_unchanged_propagation_would_leak(shared_dir: Path):
    """The check below can see a leak: a mount ns that keeps propagation leaks to the host."""
    subprocess.run(["unshare", "-m", "--propagation", "unchanged",
                    "mount", "-t", "tmpfs", "labkit-p1-control", str(shared_dir / "sub")], check=True)
    try:
        assert str(shared_dir / "sub") in host_mountpoints()
    finally:
        subprocess.run(["umount", str(shared_dir / "sub")], check=True)


def test_p1_mount_inside_does_not_reach_the_host(shared_dir: Path, detached):
    ctr = detached(volumes=[f"{shared_dir}:/vol"])
    pid = ctr.pid
    # a mount made inside the container (by a process with CAP_SYS_ADMIN in its mount ns)
    subprocess.run(["nsenter", "-t", str(pid), "-m", "mount", "-t", "tmpfs", "labkit-p1", "/vol/sub"],
                   check=True)
    inside = ctr.exec("cat /proc/self/mountinfo").stdout
    assert any(ln.split()[4] == "/vol/sub" for ln in inside.splitlines()), inside
    time.sleep(0.1)
    assert str(shared_dir / "sub") not in host_mountpoints()
    # and the other way: a mount made on the host under the shared volume stays on the host
    subprocess.run(["mount", "-t", "tmpfs", "labkit-p1-host", str(shared_dir / "sub2")], check=True)
    inside = ctr.exec("cat /proc/self/mountinfo").stdout
    assert not any(ln.split()[4] == "/vol/sub2" for ln in inside.splitlines()), inside


def test_p1_runtime_mounts_do_not_leak_from_a_shared_home(shared_dir: Path):
    """With LABKIT_HOME under a shared mount, the overlay, /proc, /dev... stay private."""
    home = shared_dir / "home"
    home.mkdir()
    before = host_mountpoints()
    ctr = labkit.run("busybox", ["sleep", "300"], detach=True, home=home)
    try:
        assert labkit.Container(ctr.id, home=home).status == "running"
        leaked = sorted(m for m in host_mountpoints() - before if m.startswith(str(shared_dir)))
        print(f"host mount points added under the shared home: {leaked}")
        assert leaked == []
    finally:
        ctr.remove(force=True)
        labkit.engine_stop(home)


# -- P2: pivot_root, not chroot --------------------------------------------------------------


def test_p2_control_the_escape_probe_escapes_a_plain_chroot(probe_dir: Path, tmp_path: Path):
    jail = tmp_path / "jail"
    jail.mkdir()
    shutil.copy(probe_dir / "escape", jail / "escape")
    marker = tmp_path / "host-marker"
    marker.write_text("host\n")
    out = subprocess.run(["chroot", str(jail), "/escape", "/", str(marker)], capture_output=True,
                         text=True, check=True).stdout
    assert out == "HOST FILESYSTEM REACHED\n"


def test_p2_chroot_escape_stays_inside(probe_dir: Path, tmp_path: Path):
    marker = tmp_path / "host-marker"
    marker.write_text("host\n")
    r = sh(f"/probes/escape /tmp {marker}; echo rc=$?", probe_dir)
    print(r.stdout, r.stderr)
    assert r.stdout == "still inside\nrc=0\n"


def test_p2_root_is_the_overlay_and_no_host_root_is_mounted():
    mounts = mountinfo_inside()
    root = next(m for m in mounts if m[4] == "/")
    assert root[m_idx(root) + 1] == "overlay"
    host_root_dev = os.stat("/").st_dev
    # Docker's three name files are bound from the container's state directory, one file each
    names = {"/etc/resolv.conf", "/etc/hostname", "/etc/hosts"}
    for m in mounts:
        if m[4] in names:
            assert "/containers/" in m[3] and m[3].endswith("/" + m[4].rsplit("/", 1)[1]), m
    devs = {m[2] for m in mounts if m[4] not in names}
    assert f"{os.major(host_root_dev)}:{os.minor(host_root_dev)}" not in devs, devs
    # /proc/1/root is the container's root, not the host's
    r = sh("ls /proc/1/root/ | tr '\\n' ' '; echo; ls / | tr '\\n' ' '")
    a, b = r.stdout.splitlines()
    assert a == b


def m_idx(fields: list[str]) -> int:
    return fields.index("-")


# -- P3: file descriptors ----------------------------------------------------------------------


def test_p3_inherited_fd_is_not_visible(tmp_path: Path, detached):
    secret = tmp_path / "host-secret"
    secret.write_text("segredo\n")
    fds = [os.open(secret, os.O_RDONLY), os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)]
    for fd in fds:
        os.set_inheritable(fd, True)
    try:
        r = labkit.run("busybox", ["ls", "-l", "/proc/self/fd/"])  # ls is PID 1, no shell in between
        names = [ln.split()[-3] for ln in r.stdout.splitlines() if "->" in ln]
        print(f"test process leaked fds {fds}; inside, ls sees {names}")
        assert names in (["0", "1", "2"], ["0", "1", "2", "3"])  # 3 = ls's own directory fd
        assert "host-secret" not in r.stdout and str(tmp_path) not in r.stdout
        r = sh(f"cat /proc/self/fd/{fds[0]}")
        assert r.exit_code != 0 and "segredo" not in r.stdout
        # a long-running PID 1, seen from the host
        ctr = detached()
        pid = ctr.pid
        held = sorted(os.listdir(f"/proc/{pid}/fd"), key=int)
        print(f"PID 1 ({pid}) holds fds {held}: {[os.readlink(f'/proc/{pid}/fd/{n}') for n in held]}")
        assert held == ["0", "1", "2"]
    finally:
        for fd in fds:
            os.close(fd)


def test_p3_inherited_fd_through_the_cli_and_exec(tmp_path: Path, detached):
    secret = tmp_path / "host-secret"
    secret.write_text("segredo\n")
    fd = os.open(secret, os.O_RDONLY)
    os.set_inheritable(fd, True)
    try:
        cli = subprocess.run([str(Path(sys.executable).parent / "labkit"), "run", "--rm", "busybox", "ls",
                              "/proc/self/fd"], pass_fds=(fd,), capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.split() == ["0", "1", "2", "3"], cli.stdout
        ctr = detached()
        r = ctr.exec(["ls", "/proc/self/fd"])
        assert r.stdout.split() == ["0", "1", "2", "3"]
    finally:
        os.close(fd)


@pytest.mark.parametrize("n", range(3, 9))
def test_p3_cwd_in_proc_self_fd_is_refused(n):
    """CVE-2024-21626: a workdir of /proc/self/fd/N must not land in a host directory."""
    from labkit.errors import LabkitError

    try:
        r = sh("pwd; ls", workdir=f"/proc/self/fd/{n}")
    except LabkitError as exc:
        print(n, exc.exit_code, exc.message)
        assert exc.exit_code == 126
        return
    print(n, r.exit_code, r.stdout.strip(), r.stderr.strip())
    assert r.exit_code != 0


# -- P4: /proc/sys, /sys ------------------------------------------------------------------------


def test_p4_core_pattern_cannot_be_opened_for_writing(probe_dir: Path):
    r = sh("/probes/openprobe /proc/sys/kernel/core_pattern /proc/sys/kernel/hostname "
           "/proc/sys/vm/drop_caches", probe_dir)
    print(r.stdout)
    for line in r.stdout.splitlines():
        assert f"errno={errno.EROFS} " in line, line
    # the same with the shell: <> opens read-write and writes nothing
    r = sh(": 1<>/proc/sys/kernel/core_pattern; echo rc=$?")
    assert r.stdout == "rc=1\n" or r.exit_code != 0
    assert "Read-only file system" in r.stderr


def test_p4_sys_is_read_only(probe_dir: Path):
    mounts = mountinfo_inside()
    sysfs = next(m for m in mounts if m[4] == "/sys")
    assert "ro" in sysfs[5].split(","), sysfs
    candidates = ["/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/profiling",
                  "/sys/power/state", "/sys/class/net/lo/mtu", "/sys/kernel/uevent_helper"]
    r = sh("/probes/openprobe " + " ".join(candidates), probe_dir)
    checked = [ln for ln in r.stdout.splitlines() if f"errno={errno.ENOENT} " not in ln]
    print(checked)
    assert checked
    for line in checked:
        assert f"errno={errno.EROFS} " in line, line


def test_p4_read_only_paths_are_read_only():
    mounts = {m[4]: m for m in mountinfo_inside()}
    seen = []
    for path in READ_ONLY:
        if not os.path.exists(path):
            continue
        assert path in mounts, f"{path} is not a read-only bind mount"
        assert "ro" in mounts[path][5].split(","), mounts[path]
        seen.append(path)
    print(f"read-only inside: {seen}; absent on this kernel: {sorted(set(READ_ONLY) - set(seen))}")
    assert "/proc/sys" in seen


def test_p4_masked_paths_are_masked(probe_dir: Path):
    present = [p for p in MASKED if os.path.exists(p)]
    assert present, "nothing to mask on this kernel?"
    script = "; ".join(
        f"echo \"{p} $(stat -c '%F %t,%T' {p}) $(cat {p} 2>/dev/null | wc -c) $(ls -A {p} 2>/dev/null | wc -l)\""
        for p in present)
    r = sh(script)
    print(r.stdout)
    for line in r.stdout.splitlines():
        path, rest = line.split(" ", 1)
        nbytes, nentries = rest.split()[-2:]
        if os.path.isdir(path):
            assert rest.startswith("directory "), line
            assert nentries == "0", line
        else:
            assert rest.startswith("character special file 1,3 "), line  # /dev/null
            assert nbytes == "0", line
    # a masked path cannot be unmounted to uncover it
    r = sh("umount /proc/keys; echo rc=$?; umount -l /sys/firmware; echo rc=$?")
    assert r.stdout == "rc=1\nrc=1\n" or "rc=0" not in r.stdout


def test_p4_masked_path_on_the_host_is_really_there():
    """Control for the test above: on the host these paths are not /dev/null."""
    assert os.path.exists("/proc/keys")
    assert not os.path.samestat(os.stat("/proc/keys"), os.stat("/dev/null"))


# -- capabilities, no_new_privs (P11 partly) --------------------------------------------------------


def test_capabilities_are_podmans_11_and_no_new_privs():
    r = sh("grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status")
    fields = {k: v.strip() for k, v in (ln.split(":", 1) for ln in r.stdout.splitlines())}
    print(fields)
    for key in ("CapPrm", "CapEff", "CapBnd"):
        assert int(fields[key], 16) == CAPS_PODMAN_11, key
    assert int(fields["CapInh"], 16) == 0 and int(fields["CapAmb"], 16) == 0
    assert fields["NoNewPrivs"] == "1"


@pytest.mark.parametrize("script,expect", [
    ("mkdir -p /tmp/m && mount -t tmpfs x /tmp/m", "permission denied"),
    ("unshare -m true", "Operation not permitted"),
    ("mknod /tmp/null2 c 1 3", "Operation not permitted"),
    ("mount -o remount,rw /sys", "permission denied"),
    ("mount -o remount,rw /proc/sys", "permission denied"),
    ("ip link add dummy0 type dummy", ""),
    ("hostname renamed", ""),
    ("sysctl -w kernel.domainname=x", ""),
])
def test_privileged_operations_fail(script, expect):
    r = sh(f"{script}; echo rc=$?")
    print(script, "->", r.stdout.strip(), r.stderr.strip())
    assert "rc=0" not in r.stdout
    assert expect.lower() in r.stderr.lower()


# -- P10: setuid binaries ----------------------------------------------------------------------------


def test_p10_setuid_binary_does_not_raise_privileges(probe_dir: Path):
    d = Path(tempfile.mkdtemp(prefix="labkit-suid-"))
    try:
        d.chmod(0o755)
        suid = d / "suidprobe"
        shutil.copy(probe_dir / "suidprobe", suid)
        os.chown(suid, 0, 0)
        suid.chmod(0o4755)
        # control: on the host the bit works (uid 1000 becomes euid 0)
        host = subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", str(suid)],
                              capture_output=True, text=True)
        print("host:", host.stdout.strip())
        host_works = "euid=0" in host.stdout
        r = labkit.run("busybox", ["sh", "-c", "stat -c %A /s/suidprobe; grep ' /s ' /proc/self/mountinfo; "
                                   "/s/suidprobe"], user="1000", volumes=[f"{d}:/s"])
        print("container:", r.stdout, r.stderr)
        mode, mountline, ids = r.stdout.splitlines()[:3]
        assert mode == "-rwsr-xr-x"
        assert "ruid=1000 euid=1000" in ids
        assert "CapEff:\t0000000000000000" in r.stdout
        assert "NoNewPrivs:\t1" in r.stdout
        if "nosuid" not in mountline and host_works:
            print("the volume allows setuid; no_new_privs alone kept euid at 1000")
    finally:
        shutil.rmtree(d)


# -- P11, P12: nested user namespaces and cgroupfs -------------------------------------------------------


def test_p11_new_user_namespace_is_denied_as_in_docker():
    # the seccomp filter (labkit/kernel/seccomp.py) answers unshare(CLONE_NEWUSER) with EPERM
    r = sh("unshare -U true; echo rc=$?")
    assert "rc=0" not in r.stdout and "rc=" in r.stdout
    assert "Operation not permitted" in r.stderr


def test_p11_nested_userns_cannot_mount_proc_or_cgroup_or_write_proc_sys(probe_dir: Path):
    r = sh("unshare -Urmpf --mount-proc true; echo proc=$?; "
           "unshare -Urm sh -c 'mkdir -p /tmp/cg; mount -t cgroup -o pids cgroup /tmp/cg; echo cgroup=$?; "
           "/probes/openprobe /proc/sys/kernel/core_pattern'", probe_dir)
    print(r.stdout, r.stderr)
    assert "proc=1" in r.stdout
    # Since the seccomp filter the nested user namespace is not even created (both unshares fail
    # with EPERM), so the mounts below it never run; without the filter they failed (EPERM/EROFS).
    assert "cgroup=" not in r.stdout and "core_pattern" not in r.stdout
    assert r.stderr.count("Operation not permitted") == 2, r.stderr


def test_p12_own_cgroup_read_only_and_no_release_agent():
    # /sys/fs/cgroup is the container's own cgroup, read-only (see test_cgroup_view.py); the
    # release_agent file exists only at a hierarchy's real root, which the namespace hides
    r = sh("find /sys/fs/cgroup -name release_agent | wc -l; "
           "grep ' /sys/fs/cgroup' /proc/self/mountinfo | grep -vc ' ro,'")
    agents, writable = r.stdout.split()
    assert (agents, writable) == ("0", "0"), r.stdout
    r = sh("mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg; echo rc=$?")
    assert "rc=0" not in r.stdout


def test_p12_cgroup_namespace_hides_the_host_path(detached):
    ctr = detached()
    r = ctr.exec("cat /proc/self/cgroup")
    print(r.stdout)
    # inside the cgroup namespace the container's own cgroup is the root
    for line in r.stdout.splitlines():
        assert ctr.id not in line and "labkit" not in line, line


# -- P13: pids (see test_runtime for the fork loop) --------------------------------------------------


def test_p13_default_pids_limit(detached):
    ctr = detached()
    assert ctr.cgroup.stats()["pids_limit"] == 2048


# -- P14, P15: devices -------------------------------------------------------------------------------


def test_p15_dev_has_exactly_the_expected_nodes():
    r = sh("ls -A /dev | tr '\\n' ' '; echo; stat -c '%n %t,%T' /dev/null /dev/zero /dev/full /dev/random "
           "/dev/urandom /dev/tty; for l in ptmx fd stdin stdout stderr; do readlink /dev/$l; done; "
           "ls -A /dev/pts | tr '\\n' ' '; echo; grep ' /dev ' /proc/self/mountinfo")
    lines = r.stdout.splitlines()
    names = set(lines[0].split())
    print("dev:", sorted(names))
    assert names == {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
                     "fd", "stdin", "stdout", "stderr"}
    assert lines[1:7] == ["/dev/null 1,3", "/dev/zero 1,5", "/dev/full 1,7", "/dev/random 1,8",
                          "/dev/urandom 1,9", "/dev/tty 5,0"]
    assert lines[7:12] == ["pts/ptmx", "/proc/self/fd", "/proc/self/fd/0", "/proc/self/fd/1",
                           "/proc/self/fd/2"]
    assert set(lines[12].split()) <= {"ptmx"}  # a new devpts instance: none of the host's ptys
    assert "tmpfs" in lines[13] and "devtmpfs" not in lines[13]


def test_p14_container_cannot_create_device_nodes(probe_dir: Path):
    r = sh("mknod /tmp/mem c 1 1; echo rc=$?; mknod /tmp/vda b 253 0; echo rc=$?; ls /tmp")
    assert r.stdout.splitlines()[:2] == ["rc=1", "rc=1"], r.stdout
    assert "mem" not in r.stdout


def test_p14_host_device_node_in_a_volume_is_not_usable(probe_dir: Path, tmp_path: Path):
    st = os.stat(next(p for p in ("/dev/kvm", "/dev/vcs", "/dev/vda") if os.path.exists(p)))
    d = tmp_path / "devs"
    d.mkdir()
    # /dev/kvm or /dev/vcs (in no runtime's allow-list); only opened (O_RDONLY), never used
    os.mknod(d / "disk", st.st_mode, st.st_rdev)
    r = sh("/probes/openprobe -r /d/disk", probe_dir, volumes=[f"{d}:/d"])
    print(r.stdout)
    assert "/d/disk ok" not in r.stdout


# -- P3 again: the engine's own process while it becomes the container (CVE-2019-5736 class) ---------


def test_p3_exec_helper_is_not_reachable_through_proc_before_exec(detached):
    """During ``exec`` a forked copy of the engine joins the container's PID namespace and runs
    until ``execve``. If the container can open its ``/proc/PID/exe`` (the host's Python) or
    ``/proc/PID/fd/*`` in that window, it holds host files (runc CVE-2019-5736). runc makes its
    init non-dumpable; so must labkit."""
    interp = os.path.realpath(sys.executable)
    ctr = detached("while :; do for p in /proc/[0-9]*; do l=$(readlink $p/exe 2>/dev/null); "
                   "case $l in *python*) echo SEEN $p $l; ls -l $p/fd/ 2>&1 | head -5;; esac; done; done")
    for _ in range(150):
        ctr.exec("true")
        if "SEEN" in ctr.logs():
            break
    time.sleep(0.3)
    print(f"interpreter {interp}; container saw: {ctr.logs()[:600]!r}")
    assert "SEEN" not in ctr.logs()
