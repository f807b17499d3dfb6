"""``--user`` resolution against an image's passwd and group lines (Docker's rule, runc's
``GetExecUser``) and ``--ulimit`` parsing; the real containers are in
tests/integration/test_user_ulimit.py."""
from __future__ import annotations

import resource

import pytest

from labkit.engine.child import resolve_user
from labkit.engine.privileges import check_user, container_ulimits, parse_ulimit
from labkit.errors import LabkitError

PASSWD = ["root:x:0:0:root:/root:/bin/sh\n", "# a comment\n", "\n",
          "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n", "bob:x:1001:1001::/home/bob:/bin/sh\n"]
GROUP = ["root:x:0:\n", "alice:x:1000:\n", "bob:x:1001:\n", "audio:x:29:alice,bob\n",
         "video:x:44:alice\n", "staff:x:50:\n"]


def test_name_gets_its_gid_home_and_supplementary_groups():
    assert resolve_user("alice", PASSWD, GROUP) == (1000, 1000, [29, 44], "/home/alice")
    assert resolve_user("bob", PASSWD, GROUP) == (1001, 1001, [29], "/home/bob")


def test_a_number_in_passwd_is_that_entry_a_number_absent_is_taken_as_is():
    assert resolve_user("1000", PASSWD, GROUP) == (1000, 1000, [29, 44], "/home/alice")
    # Docker allows a uid the image does not know: gid 0, home /, no supplementary groups
    assert resolve_user("4242", PASSWD, GROUP) == (4242, 0, [], "/")
    assert resolve_user("4242:4343", PASSWD, GROUP) == (4242, 4343, [], "/")


def test_an_explicit_group_is_the_only_group_as_in_runc():
    assert resolve_user("alice:staff", PASSWD, GROUP) == (1000, 50, [], "/home/alice")
    assert resolve_user("bob:7777", PASSWD, GROUP)[:3] == (1001, 7777, [])


def test_unknown_names_are_refused_with_dockers_message():
    with pytest.raises(LookupError, match="carol.*passwd"):
        resolve_user("carol", PASSWD, GROUP)
    with pytest.raises(LookupError, match="nogroup.*group"):
        resolve_user("alice:nogroup", PASSWD, GROUP)
    with pytest.raises(LookupError):  # no passwd file at all: only numbers work
        resolve_user("alice", [], [])


@pytest.mark.parametrize("bad", ["", ":", "alice:", ":1000", "a:b:c", "al ice"])
def test_malformed_user_is_refused(bad):
    with pytest.raises(LabkitError) as exc:
        check_user(bad)
    assert exc.value.exit_code == 125


@pytest.mark.parametrize("good", ["alice", "1000", "1000:1000", "alice:staff", "www-data"])
def test_wellformed_user_passes(good):
    check_user(good)


def test_parse_ulimit_soft_hard_as_docker():
    assert parse_ulimit("nofile=256:512") == {"Name": "nofile", "Hard": 512, "Soft": 256}
    assert parse_ulimit("core=0") == {"Name": "core", "Hard": 0, "Soft": 0}  # HARD defaults to SOFT
    assert parse_ulimit("stack=-1") == {"Name": "stack", "Hard": -1, "Soft": -1}
    assert parse_ulimit("fsize=10:-1") == {"Name": "fsize", "Hard": -1, "Soft": 10}


@pytest.mark.parametrize("bad", ["nofiles=10", "nofile", "nofile=", "nofile=a", "nofile=10:b",
                                 "nofile=1.5", "nofile=-2", "nofile=10:5", "nofile=-1:5", "=5"])
def test_parse_ulimit_refuses_bad_input(bad):
    with pytest.raises(LabkitError) as exc:
        parse_ulimit(bad)
    assert exc.value.exit_code == 125


def test_container_ulimits_refuses_raising_above_the_engines_hard_limit():
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard != resource.RLIM_INFINITY  # nofile always has a finite hard limit on Linux
    with pytest.raises(LabkitError, match="nofile"):
        container_ulimits([f"nofile=10:{hard + 1}"])
    with pytest.raises(LabkitError):
        container_ulimits(["nofile=-1"])  # unlimited is above any finite limit
    # the last of one name wins, as in Docker; lowering is always allowed
    assert container_ulimits(["nofile=10:20", f"nofile=30:{hard}"]) == [
        {"Name": "nofile", "Hard": hard, "Soft": 30}]
