"""Rootless pieces that need no kernel: subordinate ids, the maps, the delegated cgroup's
place, the limits refused without one, doctor's rootless items on a fake /etc and /proc."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit import doctor
from labkit.doctor_rootless import no_new_privs, rootless_checks, rootless_root_check
from labkit.errors import LabkitError
from labkit.kernel.cgroups import Limits
from labkit.kernel.cgroups import delegated
from labkit.kernel.cgroups.mountinfo import Layout
from labkit.kernel.userns import kernel_at_least, map_args, parse_subids

SUBUID = """\
# comment
ana:100000:65536
bia:165536:65536
1003:231072:65536
ana:300000:1000
broken line
caio:x:65536
"""


def test_subids_by_name_and_by_uid():
    assert parse_subids(SUBUID, "ana", 1001) == [(100000, 65536), (300000, 1000)]
    assert parse_subids(SUBUID, "dora", 1003) == [(231072, 65536)]  # shadow accepts the uid too
    assert parse_subids(SUBUID, "caio", 1004) == []  # a malformed line is not a range
    assert parse_subids("", "ana", 1001) == []


def test_map_args_root_is_the_user_then_the_range():
    assert map_args(1001, [(100000, 65536)]) == ["0", "1001", "1", "1", "100000", "65536"]
    assert map_args(1001, [(100000, 200000)])[-1] == "65536"  # at most 65536 ids
    assert map_args(1001, []) == ["0", "1001", "1"]  # one id


def test_delegated_parent_from_env_then_the_class_file(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_CGROUP_PARENT", "/lkclass/ana/")
    assert delegated.parent() == "lkclass/ana"
    monkeypatch.delenv("LABKIT_CGROUP_PARENT")
    f = tmp_path / "cgroup-parent"
    f.write_text("lkclass\n")
    monkeypatch.setattr(delegated, "PARENT_FILE", str(f))
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    assert delegated.parent() == f"lkclass/{me}"
    monkeypatch.setattr(delegated, "PARENT_FILE", str(tmp_path / "missing"))
    assert delegated.parent() is None


def _fake_v1(tmp_path: Path, sub: str, writable=("cpu", "cpuacct", "memory", "pids")) -> Layout:
    mounts = {}
    for ctrl in ("cpu", "cpuacct", "memory", "pids", "cpuset", "devices"):
        mounts[ctrl] = str(tmp_path / ctrl)
        d = tmp_path / ctrl / sub
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        if ctrl not in writable:
            (d / "cgroup.procs").chmod(0o444)
    return Layout(v1=mounts)


def test_backend_for_a_writable_v1_subtree(tmp_path):
    b = delegated.backend_for(_fake_v1(tmp_path, "lkclass/ana"), "lkclass/ana")
    assert b.delegated == "lkclass/ana"
    # the delegated controllers only, each rooted at the user's directory
    # the delegated controllers (cpuset too, delegated here), each rooted at the user's directory;
    # never devices (the user namespace forbids mknod already)
    assert b.roots == {c: str(tmp_path / c / "lkclass/ana") for c in ("cpu", "cpuacct", "memory", "pids", "cpuset")}
    assert b.handle("labkit/abc").paths()[0] == str(tmp_path / "cpu/lkclass/ana/labkit/abc")


def _as_ordinary_user(fn) -> bool:
    """``fn()`` as the user running the tests; as root, in a child that became
    ``nobody`` first (root may write any file, so a mode check needs someone else)."""
    if os.geteuid() != 0:
        return fn()
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            ok = bool(fn())
        finally:
            os._exit(0 if ok else 1)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def _owned_by_nobody_if_root(tree: Path) -> None:
    if os.geteuid() == 0:
        for d in [tree, *tree.parents]:   # pytest's tmp dirs are 0700
            if str(d) in ("/", "/tmp"):
                break
            d.chmod(d.stat().st_mode | 0o055)
        for path in [tree, *tree.rglob("*")]:
            os.chown(path, 65534, 65534)


def test_backend_for_a_subtree_not_writable(tmp_path):
    # one controller the user may write is not a delegation: no cgroups, limits refused
    some = _fake_v1(tmp_path / "some", "x", writable=("cpu",))
    every = _fake_v1(tmp_path / "every", "x")
    _owned_by_nobody_if_root(tmp_path)
    assert _as_ordinary_user(lambda: isinstance(delegated.backend_for(some, "x"), delegated.NoCgroups))
    # the same tree all writable is a delegation (the check is on the modes, not on who asks)
    assert _as_ordinary_user(lambda: not isinstance(delegated.backend_for(every, "x"), delegated.NoCgroups))


def test_without_a_subtree_limits_are_refused_never_ignored():
    b = delegated.backend_for(Layout(v1={"cpu": "/nonexistent"}), None)
    assert isinstance(b, delegated.NoCgroups) and not b.delegated
    b.create("labkit/a", Limits())  # the defaults (pids 2048 is podman's default) are fine
    b.create("labkit/a", Limits.partial())
    for limits, flag in ((Limits(memory=32 << 20), "--memory"), (Limits(cpus=0.5), "--cpus"),
                         (Limits(pids_limit=20), "--pids-limit"), (Limits(cpuset_cpus="0"), "--cpuset-cpus")):
        with pytest.raises(LabkitError) as exc:
            b.create("labkit/a", limits)
        assert flag in exc.value.message
    cg = b.open("labkit/a")
    assert (cg.exists(), cg.oom_killed(), cg.pids(), cg.paths()) == (False, False, [], [])
    with pytest.raises(LabkitError):
        cg.stats()


def test_kernel_versions_and_no_new_privs():
    assert kernel_at_least("6.18.44-fc", (5, 11)) and kernel_at_least("5.11.0", (5, 11))
    assert not kernel_at_least("5.10.200", (5, 11)) and not kernel_at_least("weird", (5, 11))
    assert no_new_privs("Name:\tx\nNoNewPrivs:\t1\n") and not no_new_privs("NoNewPrivs:\t0\n")


def test_doctor_rootless_items_for_a_user_without_ids(tmp_path, portuguese):
    (tmp_path / "subuid").write_text("outra:100000:65536\n")
    (tmp_path / "subgid").write_text("outra:100000:65536\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "status").write_text("NoNewPrivs:\t1\n")
    checks = rootless_checks(proc, which=lambda t: None, euid=4242, kernel="5.10.1", name="ana",
                             etc=tmp_path, cgroup_parent="", Check=doctor.Check)
    by = {c.key: c for c in checks}
    assert set(by) == {"rootless-uidmap", "rootless-overlay", "rootless-network", "rootless-subids",
                       "rootless-nnp", "rootless-cgroup"}
    assert not any(c.ok for c in checks)
    assert by["rootless-uidmap"].fix == "apt-get install -y uidmap"
    assert by["rootless-network"].fix == "apt-get install -y slirp4netns"
    assert "ana" in by["rootless-subids"].fix and "mapa de um só id" in by["rootless-subids"].detail
    assert "no_new_privs" in by["rootless-nnp"].detail
    assert "--memory" in by["rootless-cgroup"].detail
    # root sees only the machine's items
    assert {c.key for c in rootless_checks(proc, which=lambda t: None, euid=0, kernel="6.1",
                                           Check=doctor.Check)} == {"rootless-uidmap", "rootless-overlay",
                                                                    "rootless-network"}


def test_root_is_not_essential_when_rootless_works():
    root = doctor.Check("root", "root", False, "não (uid 1001)", "sudo -i", essential=True)
    assert rootless_root_check(root, userns_ok=False) is root
    relaxed = rootless_root_check(root, userns_ok=True)
    assert not relaxed.ok and not relaxed.essential and relaxed.fix is None


def test_backend_for_a_v2_subtree(tmp_path):
    d = tmp_path / "lkclass" / "ana"
    d.mkdir(parents=True)
    (d / "cgroup.procs").write_text("")
    b = delegated.backend_for(Layout(v2=str(tmp_path)), "lkclass/ana")
    assert (b.version, b.delegated, b.root) == ("v2", "lkclass/ana", str(d))
    assert b.handle("labkit/abc").paths() == [str(d / "labkit/abc")]
    assert isinstance(delegated.backend_for(Layout(v2=str(tmp_path)), "lkclass/bia"), delegated.NoCgroups)


def test_a_configured_parent_that_cannot_be_used_is_named_in_every_refusal(tmp_path, portuguese):
    # LABKIT_CGROUP_PARENT set, but no such directory (or not the user's): no cgroups, and each
    # refusal (and the engine's start warning) names that directory, never a silent run
    b = delegated.backend_for(_fake_v1(tmp_path, "lkclass/ana"), "lkclass/bia")
    assert isinstance(b, delegated.NoCgroups) and b.unusable == "lkclass/bia"
    b.create("labkit/a", Limits())  # no limit asked: runs, without a cgroup
    with pytest.raises(LabkitError) as exc:
        b.create("labkit/a", Limits(memory=32 << 20))
    msg = exc.value.message
    assert "--memory" in msg and "lkclass/bia" in msg and "não é gravável" in msg, msg
    warning = b.warning()
    assert warning.startswith("aviso:") and "lkclass/bia" in warning and "--memory" in warning
    # nothing configured: the old message (set LABKIT_CGROUP_PARENT), and nothing to warn about
    none = delegated.backend_for(Layout(v1={"cpu": "/nonexistent"}), None)
    assert none.warning() is None
    with pytest.raises(LabkitError) as exc:
        none.create("labkit/a", Limits(cpus=0.5))
    assert "defina LABKIT_CGROUP_PARENT" in exc.value.message
