"""``--privileged`` (issue 14, item 4): what it gives away, each part checked from inside,
and the warning that says so."""
from __future__ import annotations

import os

import pytest

import labkit
from labkit_cli import cli  # tests/integration/labkit_cli.py
from requirements import skipif_here  # tests/requirements.py

pytestmark = pytest.mark.root

PROBE = ("grep -E '^(CapEff|Seccomp):' /proc/self/status; "
         "grep -cE ' /proc/(kcore|sys|keys) ' /proc/self/mountinfo; "
         "grep -E ' /sys ' /proc/self/mountinfo | grep -c ' ro,'; "
         ": < /dev/kmsg && echo kmsg=ok")


def _host_bounding() -> str:
    """The capabilities this test (and the engine it started) may hold, as /proc shows them."""
    for line in open("/proc/self/status"):
        if line.startswith("CapBnd:"):
            return line.split()[1]
    raise AssertionError("no CapBnd in /proc/self/status")


def _lines(stdout: str) -> list[str]:
    return [line.split(":", 1)[-1].strip() for line in stdout.splitlines()]


@skipif_here(not os.path.exists("/dev/kmsg"), "the host has no /dev/kmsg")
def test_privileged_gives_every_capability_no_seccomp_no_masks_every_device(capsys):
    r = labkit.run("busybox", ["sh", "-c", PROBE], privileged=True)
    warning = capsys.readouterr().err  # the API warns on this process's stderr
    print(r.stdout, r.stderr)
    assert r.exit_code == 0, r.stderr
    capeff, seccomp, masked, sys_ro, kmsg = _lines(r.stdout)
    assert capeff == _host_bounding()
    assert seccomp == "0"
    assert masked == "0" and sys_ro == "0"
    assert kmsg == "kmsg=ok"
    assert "--privileged" in warning and "CAP_SYS_ADMIN" in warning


def test_a_default_container_has_none_of_that():
    r = labkit.run("busybox", ["sh", "-c", PROBE])
    capeff, seccomp, masked, sys_ro = _lines(r.stdout)[:4]
    assert capeff != _host_bounding()
    assert seccomp == "2"
    assert int(masked) >= 2 and int(sys_ro) >= 1
    assert "kmsg=ok" not in r.stdout


def test_cli_warns_loudly_in_pt_br_and_inspect_and_exec_show_it():
    r = cli("run", "-d", "--privileged", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        print(r.stderr)
        assert "ATENÇÃO: --privileged desliga as proteções do contêiner" in r.stderr
        assert "tomar conta do host" in r.stderr
        assert labkit.get(cid).inspect()["HostConfig"]["Privileged"] is True
        e = cli("exec", cid, "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status")
        assert _lines(e.stdout) == [_host_bounding(), "0"]
    finally:
        assert cli("rm", "-f", cid).returncode == 0
    r = cli("run", "--rm", "--privileged", "busybox", "true", lang="en")
    assert "ATTENTION: --privileged turns off the container's protections" in r.stderr


# The container's own cgroup: read-write under --privileged (Docker mounts it rw), read-only
# otherwise. A child cgroup made and removed from inside proves it on v1 (the pids hierarchy,
# which labkit always uses) and on v2 (the one cgroup2 mount).
CGROUP_PROBE = ("d=/sys/fs/cgroup; [ -d $d/pids ] && d=$d/pids; "
                "grep -E ' /sys/fs/cgroup(/[a-z,_]+)? ' /proc/self/mountinfo | grep -c ' ro,'; "
                "if mkdir $d/lk-child 2>/dev/null; then rmdir $d/lk-child && echo mkdir=ok; "
                "else echo mkdir=refused; fi")


def test_privileged_cgroup_is_writable_default_is_not():
    priv = labkit.run("busybox", ["sh", "-c", CGROUP_PROBE], privileged=True)
    default = labkit.run("busybox", ["sh", "-c", CGROUP_PROBE])
    print("privileged:", priv.stdout, priv.stderr, "default:", default.stdout, default.stderr)
    assert priv.exit_code == 0 and default.exit_code == 0
    assert priv.stdout.split() == ["0", "mkdir=ok"]
    ro_mounts, result = default.stdout.split()
    assert int(ro_mounts) >= 1 and result == "mkdir=refused"
