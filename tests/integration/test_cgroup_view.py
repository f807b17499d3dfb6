"""Inside a container, ``/sys/fs/cgroup`` is the container's own cgroup, read-only (as Docker).

Through the cgroup namespace the container's cgroup is the root of what it mounts: it reads
its own limits (what a JVM, Go's runtime or Node look at) and sees no other container.
"""
from __future__ import annotations

import pytest

import labkit
from labkit.kernel.cgroups import detect

pytestmark = pytest.mark.root

V2 = detect() == "v2"
MEMORY = "/sys/fs/cgroup/memory.max" if V2 else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
PIDS = "/sys/fs/cgroup/pids.max" if V2 else "/sys/fs/cgroup/pids/pids.max"


def sh(script: str, **kw) -> labkit.Result:
    return labkit.run("busybox", ["sh", "-c", script], **kw)


def test_container_reads_its_own_limits_and_cannot_write_them():
    r = sh(f"cat {MEMORY} {PIDS}; echo 10 > {PIDS}; echo rc=$?; cat {PIDS}",
           memory="64m", pids_limit=50)
    print(r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[:2] == [str(64 << 20), "50"]
    assert lines[2] != "rc=0" and lines[3] == "50"
    assert "Read-only file system" in r.stderr


def test_every_cgroup_mount_is_read_only_and_rooted_at_the_container():
    r = sh("grep -E ' - (cgroup|cgroup2|tmpfs) ' /proc/self/mountinfo | grep /sys/fs/cgroup")
    fields = [line.split() for line in r.stdout.splitlines()]
    print(r.stdout)
    kinds = {f[f.index("-") + 1] for f in fields}
    assert kinds == ({"cgroup2"} if V2 else {"tmpfs", "cgroup"})
    for f in fields:
        assert "ro" in f[5].split(","), f
        assert f[3] == "/", f  # the namespace root: no host path shows
    if not V2:
        names = {f[4].rsplit("/", 1)[-1] for f in fields if f[f.index("-") + 1] == "cgroup"}
        assert {"memory", "pids", "cpu", "cpuacct", "devices"} <= {
            n for name in names for n in name.split(",")}


def test_no_other_container_is_visible(detached):
    other = detached()
    me = detached(memory="32m")
    r = me.exec(["sh", "-c", "find /sys/fs/cgroup -mindepth 1 -type d; echo end; "
                              "grep -rl . /sys/fs/cgroup/ 2>/dev/null | wc -l"])
    print(r.stdout)
    dirs = r.stdout.split("end")[0].split()
    # v1: one directory per hierarchy (the container's cgroup, no child); v2: none
    assert all(d.count("/") == 4 for d in dirs) if not V2 else dirs == []
    assert other.id not in r.stdout and me.id not in r.stdout
    assert int(r.stdout.split("end")[1]) > 0  # the files are readable (a positive control)
    mem = me.exec(["cat", MEMORY]).stdout.strip()
    assert mem == str(32 << 20)


def test_limits_changed_later_show_inside(detached):
    ctr = detached(pids_limit=30)
    ctr.update(pids_limit=40)
    assert ctr.exec(["cat", PIDS]).stdout.strip() == "40"
