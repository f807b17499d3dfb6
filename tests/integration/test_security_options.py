"""``--cap-add``/``--cap-drop`` and ``--read-only``: what changes inside, what inspect says,
and bad input (pt-BR message, exit 125, nothing left)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import labkit
from labkit.kernel import capabilities

sys.path.insert(0, str(Path(__file__).parent))
from labkit_cli import cli  # noqa: E402

pytestmark = pytest.mark.root


def cap_eff(text: str) -> int:
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("CapEff:")), 16)


def test_cap_add_mknod_makes_a_node_the_device_cgroup_still_denies():
    # baseline P14 as written: with MKNOD kept (Docker keeps it) the node can be made,
    # but the device cgroup refuses to open it
    r = labkit.run("busybox", ["sh", "-c", "mknod /tmp/sda b 8 0 && echo made; head -c1 /tmp/sda; echo rc=$?"],
                   cap_add=["MKNOD"])
    print(r.stdout, r.stderr)
    assert r.stdout.splitlines()[0] == "made"
    assert "rc=1" in r.stdout and "Operation not permitted" in r.stderr


def test_cap_drop_all_then_add_one_and_exec_gets_the_same(detached):
    ctr = detached(cap_drop=["ALL"], cap_add=["cap_chown"])
    assert cap_eff(ctr.exec(["grep", "Cap", "/proc/self/status"]).stdout) == capabilities.mask(["CHOWN"])
    with open(f"/proc/{ctr.pid}/status") as f:
        status = f.read()
    assert cap_eff(status) == capabilities.mask(["CHOWN"])
    hc = ctr.inspect()["HostConfig"]
    assert (hc["CapAdd"], hc["CapDrop"], hc["ReadonlyRootfs"]) == (["cap_chown"], ["ALL"], False)


def test_cap_drop_one_and_add_one():
    r = labkit.run("busybox", ["sh", "-c", "grep CapEff /proc/self/status; chown 1 /tmp; echo rc=$?"],
                   cap_drop=["CHOWN"], cap_add=["NET_RAW"])
    want = (capabilities.mask(capabilities.DEFAULT) & ~capabilities.mask(["CHOWN"])) | capabilities.mask(["NET_RAW"])
    assert cap_eff(r.stdout) == want
    assert "rc=1" in r.stdout


def test_default_caps_unchanged_for_root_and_none_for_another_user():
    r = labkit.run("busybox", ["grep", "CapEff", "/proc/self/status"])
    assert cap_eff(r.stdout) == capabilities.mask(capabilities.DEFAULT)
    r = labkit.run("busybox", ["grep", "CapEff", "/proc/self/status"], user="1000", cap_add=["NET_RAW"])
    assert cap_eff(r.stdout) == 0


@pytest.mark.parametrize("flag, name", [("--cap-add", "CAP_NOPE"), ("--cap-drop", "sys_nope")])
def test_unknown_capability_is_refused_and_leaves_nothing(flag, name):
    before = cli("ps", "-a", "-q").stdout
    r = cli("run", flag, name, "busybox", "true")
    print(r.stderr)
    assert r.returncode == 125
    assert f'capability desconhecida: "{name}"' in r.stderr
    assert cli("ps", "-a", "-q").stdout == before  # and the autouse fixture: no cgroup, no mount


def test_read_only_root_but_dev_shm_and_volumes_writable(tmp_path):
    r = labkit.run("busybox", ["sh", "-c", "touch /x; echo root=$?; touch /dev/shm/a; echo shm=$?; "
                                          "touch /v/a; echo vol=$?"],
                   read_only=True, volumes=[f"{tmp_path}:/v"])
    print(r.stdout, r.stderr)
    assert r.stdout.split() == ["root=1", "shm=0", "vol=0"]
    assert "Read-only file system" in r.stderr
    assert (tmp_path / "a").exists()


def test_read_only_on_the_spare_path_and_inspect(detached):
    labkit.run("busybox", ["true"])  # the next container may come from a spare with its root built
    ctr = detached(read_only=True)
    r = ctr.exec(["sh", "-c", "touch /x; echo rc=$?"])
    assert r.stdout.strip() == "rc=1"
    assert ctr.inspect()["HostConfig"]["ReadonlyRootfs"] is True
