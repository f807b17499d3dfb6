"""``--user`` and ``--ulimit`` on real containers (issue 14, items 4 and 6).

The user's names come from the container's own /etc/passwd and /etc/group (here files
mounted over the image's, so the supplementary groups are known), never from the host's;
limits can only be lowered: the engine's hard limit is the ceiling.
"""
from __future__ import annotations

import resource
from pathlib import Path

import pytest

import labkit
from labkit.errors import LabkitError
from labkit_cli import cli  # tests/integration/labkit_cli.py

pytestmark = pytest.mark.root

PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "aluna:x:1500:1500:Aluna:/home/aluna:/bin/sh\n")
GROUP = ("root:x:0:\naluna:x:1500:\naudio:x:29:aluna\nvideo:x:44:outra,aluna\nstaff:x:50:\n")


@pytest.fixture
def etc(tmp_path: Path) -> list[str]:
    """The image's user tables replaced by ours: a user with two supplementary groups."""
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    return [f"{tmp_path / 'passwd'}:/etc/passwd:ro", f"{tmp_path / 'group'}:/etc/group:ro"]


def test_user_by_name_gets_uid_gid_groups_and_home_from_the_image(etc):
    r = labkit.run("busybox", ["sh", "-c", "id; echo $HOME"], user="aluna", volumes=etc)
    print(r.stdout)
    assert r.exit_code == 0, r.stderr
    ident, home = r.stdout.splitlines()
    # busybox's id lists getgroups() only: Docker's set, the groups naming the login
    assert ident == "uid=1500(aluna) gid=1500(aluna) groups=29(audio),44(video)"
    assert home == "/home/aluna"


def test_user_with_group_name_and_numeric_forms(etc):
    r = labkit.run("busybox", ["id"], user="aluna:staff", volumes=etc)
    assert r.stdout.strip() == "uid=1500(aluna) gid=50(staff)"  # runc: a given group is the only one
    r = labkit.run("busybox", ["id"], user="1500", volumes=etc)  # a number in passwd: that entry
    assert r.stdout.strip() == "uid=1500(aluna) gid=1500(aluna) groups=29(audio),44(video)"
    # Docker allows ids the image does not have: gid 0 unless given, no supplementary groups
    r = labkit.run("busybox", ["sh", "-c", "id -u; id -g; id -G; echo $HOME"], user="4242", volumes=etc)
    assert r.stdout.split() == ["4242", "0", "0", "/"]
    r = labkit.run("busybox", ["sh", "-c", "id -u; id -g"], user="4242:4343", volumes=etc)
    assert r.stdout.split() == ["4242", "4343"]


def test_names_come_from_the_image_not_the_host():
    image = labkit.run("busybox", ["cat", "/etc/passwd"]).stdout
    image_names = {line.split(":")[0] for line in image.splitlines() if line}
    host_names = [line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines() if line]
    host_only = next((n for n in host_names if n not in image_names), None)
    assert host_only is not None  # Debian has _apt, systemd-* ...; busybox does not
    with pytest.raises(LabkitError) as info:
        labkit.run("busybox", ["true"], user=host_only)
    print(info.value)
    assert info.value.exit_code == 125
    assert host_only in str(info.value)
    r = labkit.run("busybox", ["id"], user="nobody")  # busybox's own entry works
    assert r.stdout.startswith("uid=65534(nobody)")


def test_exec_user_uses_the_containers_tables(detached, etc):
    ctr = detached(volumes=etc)
    r = ctr.exec(["id"], user="aluna")
    assert r.stdout.strip() == "uid=1500(aluna) gid=1500(aluna) groups=29(audio),44(video)"
    with pytest.raises(LabkitError) as info:
        ctr.exec(["true"], user="ninguem-aqui")
    assert "ninguem-aqui" in str(info.value)
    assert ctr.status == "running"


def test_cli_user_and_inspect_shows_config_user(etc):
    r = cli("run", "-d", "-u", "aluna:audio", "-v", etc[0], "-v", etc[1], "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    try:
        assert labkit.get(cid).inspect()["Config"]["User"] == "aluna:audio"
        r = cli("exec", "-u", "1500", cid, "id", "-G")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1500", "29", "44"]  # busybox: id -G starts with the gid
    finally:
        assert cli("rm", "-f", cid).returncode == 0


def _lower_than_engine(which: int) -> int:
    """A hard limit below the engine's (inherited from this test's, which started it)."""
    hard = resource.getrlimit(which)[1]
    return 512 if hard == resource.RLIM_INFINITY or hard > 512 else hard - 1


def test_ulimit_nofile_inside_and_in_exec_and_inspect(detached):
    hard = _lower_than_engine(resource.RLIMIT_NOFILE)
    soft = hard // 2
    ctr = detached("ulimit -n > /tmp/soft; ulimit -Hn > /tmp/hard; sleep 300",
                   ulimits=[f"nofile={soft}:{hard}", "core=0"])
    r = ctr.exec(["sh", "-c", "cat /tmp/soft /tmp/hard; ulimit -n; ulimit -Hn; ulimit -c"])
    print(r.stdout)
    assert r.stdout.split() == [str(soft), str(hard), str(soft), str(hard), "0"]
    assert ctr.inspect()["HostConfig"]["Ulimits"] == [
        {"Name": "nofile", "Hard": hard, "Soft": soft}, {"Name": "core", "Hard": 0, "Soft": 0}]


def test_ulimit_from_the_cli_and_soft_only():
    r = cli("run", "--rm", "--ulimit", "nofile=100:200", "--ulimit", "fsize=4", "busybox", "sh", "-c",
            "ulimit -n; ulimit -Hn; ulimit -f; ulimit -Hf")
    assert r.returncode == 0, r.stderr
    # busybox's ulimit -f counts 512-byte blocks; setrlimit got bytes: fsize=4 is 4 bytes -> 0 blocks
    assert r.stdout.split() == ["100", "200", "0", "0"]


def test_ulimit_fsize_stops_a_write():
    r = labkit.run("busybox", ["sh", "-c", "head -c 8192 /dev/zero > /tmp/f; echo rc=$?; wc -c < /tmp/f"],
                   ulimits={"fsize": (4096, 4096)})
    print(r.stdout, r.stderr)
    lines = r.stdout.split()
    assert lines[0] != "rc=0" and lines[1] == "4096"


def test_ulimit_above_the_engines_hard_limit_is_refused(container_dirs):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    before = container_dirs()
    with pytest.raises(LabkitError) as info:
        labkit.run("busybox", ["true"], ulimits=[f"nofile=1024:{hard + 1}"])
    assert info.value.exit_code == 125
    assert "nofile" in str(info.value)
    assert container_dirs() == before
