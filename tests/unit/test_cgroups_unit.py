"""cgroups without root: mountinfo parsing, detection, conversions, and the files the
backends write (on a fake cgroupfs made of plain files in a temp dir)."""
from __future__ import annotations

import os

import pytest

from labkit.errors import LabkitError
from labkit.kernel import cgroups
from labkit.kernel.cgroups import Limits, mountinfo
from labkit.kernel.cgroups.base import human, limited
from labkit.kernel.cgroups.v1 import V1Backend, V1Cgroup
from labkit.kernel.cgroups.v2 import V2Backend, V2Cgroup, shares_to_weight
from requirements import skip_here

# This CI machine: v1 controllers, cpu and cpuacct on separate mounts, empty cgroup2.
HYBRID = """\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

# A systemd machine (Debian 12, Fedora, Ubuntu 22.04+): one unified mount.
PURE_V2 = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:8 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""

# Debian 10 / Ubuntu 18.04 style: joined cpu,cpuacct and net_cls,net_prio, systemd hybrid.
JOINED = """\
24 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 \
rw,nsdelegate
26 24 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup \
rw,xattr,name=systemd
29 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup \
cgroup rw,cpu,cpuacct
30 24 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - \
cgroup cgroup rw,net_cls,net_prio
31 24 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup \
rw,memory
32 24 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
33 24 0:31 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup \
rw,cpuset
"""


def test_hybrid_is_v1_with_separate_cpu_and_cpuacct():
    lay = mountinfo.layout(HYBRID)
    assert lay.version == "v1"
    assert lay.v1["cpu"] == "/sys/fs/cgroup/cpu"
    assert lay.v1["cpuacct"] == "/sys/fs/cgroup/cpuacct"
    assert lay.v1["memory"] == "/sys/fs/cgroup/memory"
    assert "systemd" not in lay.v1 and "name=systemd" not in lay.v1
    assert lay.v2 == "/sys/fs/cgroup/unified"
    assert cgroups.detect(HYBRID) == "v1"


def test_pure_v2():
    lay = mountinfo.layout(PURE_V2)
    assert lay.version == "v2" and lay.v1 == {} and lay.v2 == "/sys/fs/cgroup"
    assert cgroups.detect(PURE_V2) == "v2"
    b = cgroups.backend(PURE_V2)
    assert isinstance(b, V2Backend) and b.root == "/sys/fs/cgroup"


def test_joined_cpu_cpuacct_share_one_directory():
    lay = mountinfo.layout(JOINED)
    assert lay.version == "v1"
    assert lay.v1["cpu"] == lay.v1["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert lay.v1["net_prio"] == "/sys/fs/cgroup/net_cls,net_prio"
    b = cgroups.backend(JOINED)
    assert isinstance(b, V1Backend)
    cg = V1Cgroup("labkit/abc", b.roots)
    # one directory per hierarchy, not per controller
    assert cg.paths() == [
        "/sys/fs/cgroup/cpu,cpuacct/labkit/abc",
        "/sys/fs/cgroup/memory/labkit/abc",
        "/sys/fs/cgroup/pids/labkit/abc",
        "/sys/fs/cgroup/cpuset/labkit/abc",
    ]


def test_no_cgroups_is_a_clear_error():
    with pytest.raises(LabkitError):
        cgroups.detect("22 28 0:21 / /sys rw - sysfs sysfs rw\n")


def test_escaped_mount_point_and_bind_mount_preference():
    text = (
        "50 31 0:32 /sub /mnt/my\\040cg rw - cgroup cgroup rw,memory\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    )
    assert mountinfo.parse(text)[0].mountpoint == "/mnt/my cg"
    assert mountinfo.layout(text).v1["memory"] == "/sys/fs/cgroup/memory"


def test_this_machine_detects():
    if not os.path.exists("/proc/self/mountinfo"):
        skip_here("no /proc")
    assert cgroups.detect() in ("v1", "v2")


def test_shares_to_weight_like_runc():
    assert shares_to_weight(2) == 1
    assert shares_to_weight(262144) == 10000
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(512) == 20
    assert shares_to_weight(0) == 1  # clamped like the kernel


def test_limits_partial_and_helpers(monkeypatch):
    p = Limits.partial(cpus=0.2)
    assert p.cpus == 0.2 and p.pids_limit is None and p.memory is None
    assert Limits().pids_limit == 2048
    assert limited(9223372036854771712) is None and limited(-1) is None
    assert limited(None) is None and limited(64 << 20) == 64 << 20
    monkeypatch.setenv("LABKIT_LANG", "en")
    assert human(32 << 20) == "32.0 MiB"
    monkeypatch.setenv("LABKIT_LANG", "pt_BR")
    assert human(32 << 20) == "32,0 MiB"
    with pytest.raises(LabkitError):
        cgroups.base.check_name("labkit/../etc")


def _fake_v2(tmp_path, **files):
    d = tmp_path / "labkit" / "x"
    d.mkdir(parents=True)
    defaults = {
        "cgroup.procs": "", "cpu.max": "max 100000", "cpu.weight": "100", "cpuset.cpus": "",
        "memory.max": "max", "memory.swap.max": "max", "memory.current": "1048576",
        "memory.stat": "anon 1048576\nfile 0\ninactive_file 4096\n", "pids.max": "max",
        "pids.current": "3", "memory.events": "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 10\n"
                    "nr_throttled 4\nthrottled_usec 700\n",
    }
    defaults.update(files)
    for k, v in defaults.items():
        (d / k).write_text(v)
    return V2Cgroup("labkit/x", str(tmp_path)), d


def test_v2_files_written(tmp_path):
    cg, d = _fake_v2(tmp_path)
    cg.set_limits(Limits(cpus=0.5, cpu_shares=512, cpuset_cpus="0", memory=32 << 20,
                         memory_swap=None, pids_limit=20), creating=True)
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpu.weight").read_text() == "20"
    assert (d / "cpuset.cpus").read_text() == "0"
    assert (d / "memory.max").read_text() == str(32 << 20)
    assert (d / "memory.swap.max").read_text() == str(32 << 20)  # Docker: 2x memory in total
    assert (d / "pids.max").read_text() == "20"
    cg.set_limits(Limits.partial(memory=64 << 20, memory_swap=64 << 20))
    assert (d / "memory.swap.max").read_text() == "0"
    cg.set_limits(Limits.partial(cpus=0, pids_limit=-1, memory_swap=-1))
    assert (d / "cpu.max").read_text() == "max 100000"
    assert (d / "pids.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"


def test_v2_stats_and_oom(tmp_path):
    cg, d = _fake_v2(tmp_path, **{"cpu.max": "20000 100000", "memory.max": "33554432",
                                  "memory.swap.max": "0"})
    s = cg.stats()
    assert s["cpu_usage_ns"] == 2_500_000 and s["throttled_ns"] == 700_000
    assert s["nr_periods"] == 10 and s["nr_throttled"] == 4
    assert s["memory_usage"] == 1048576 and s["memory_inactive_file"] == 4096
    assert s["memory_limit"] == 33554432 and s["memory_swap_limit"] == 33554432
    assert s["pids_current"] == 3 and s["pids_limit"] is None
    assert s["cpu_quota_cores"] == pytest.approx(0.2) and s["oom_kills"] == 1
    assert cg.oom_killed()


def test_v2_refuses_memory_below_unreclaimable_usage(tmp_path, monkeypatch):
    monkeypatch.setattr("labkit.kernel.cgroups.v2._swap_available", lambda: False)
    cg, d = _fake_v2(tmp_path, **{"memory.current": str(64 << 20),
                                  "memory.stat": "file 0\ninactive_file 0\n"})
    with pytest.raises(LabkitError) as e:
        cg.set_limits(Limits.partial(memory=16 << 20))
    assert "16" in str(e.value) and "64" in str(e.value) and "MiB" in str(e.value)
    assert (d / "memory.max").read_text() == "max"  # untouched


def test_bad_swap_and_cpus_are_refused(tmp_path):
    cg, _ = _fake_v2(tmp_path)
    with pytest.raises(LabkitError):
        cg.set_limits(Limits.partial(memory_swap=64 << 20))  # swap without memory
    with pytest.raises(LabkitError):
        cg.set_limits(Limits.partial(memory=64 << 20, memory_swap=32 << 20))
    with pytest.raises(LabkitError):
        cg.set_limits(Limits.partial(cpus=(os.cpu_count() or 1) + 1))


def test_v1_stats_unlimited_is_none(tmp_path):
    roots = {}
    for ctrl, files in {
        "cpu": {"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "1024",
                "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
        "cpuacct": {"cpuacct.usage": "123456789"},
        "memory": {"memory.usage_in_bytes": "4096", "memory.limit_in_bytes": "9223372036854771712",
                   "memory.memsw.limit_in_bytes": "9223372036854771712",
                   "memory.max_usage_in_bytes": "8192",
                   "memory.stat": "cache 0\ntotal_inactive_file 1024\n",
                   "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"},
        "pids": {"pids.current": "1", "pids.max": "max"},
    }.items():
        d = tmp_path / ctrl / "labkit" / "y"
        d.mkdir(parents=True)
        for k, v in files.items():
            (d / k).write_text(v)
        roots[ctrl] = str(tmp_path / ctrl)
    s = V1Cgroup("labkit/y", roots).stats()
    assert s["cpu_usage_ns"] == 123456789 and s["cpu_quota_cores"] is None
    assert s["memory_limit"] is None and s["memory_swap_limit"] is None
    assert s["memory_inactive_file"] == 1024 and s["pids_limit"] is None
    assert s["oom_kills"] == 2
    keys = {"cpu_usage_ns", "memory_usage", "memory_inactive_file", "memory_limit",
            "pids_current", "pids_limit", "nr_periods", "nr_throttled", "throttled_ns",
            "oom_kills", "cpu_quota_cores"}
    assert keys <= set(s)
