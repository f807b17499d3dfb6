"""Device control: the cgroup rules (v1 files, v2 eBPF) and ``--device``.

The eBPF program is checked on whatever cgroup2 mount this machine has: the
whole tree on a pure v2 host, ``/sys/fs/cgroup/unified`` on a hybrid one (the
kernel runs cgroup device programs of the unified tree on hybrid hosts too).
"""
from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

import labkit
from labkit.kernel.cgroups import backend, devices, mountinfo

sys.path.insert(0, str(Path(__file__).parent))
from labkit_cli import cli  # noqa: E402
from requirements import skip_here, skipif_here  # noqa: E402

pytestmark = pytest.mark.root

# A device outside Docker's default set that this machine has, opened but never used.
EXTRA = next((p for p in ("/dev/kvm", "/dev/vcs", "/dev/loop-control", "/dev/fuse", "/dev/net/tun")
              if os.path.exists(p) and stat.S_ISCHR(os.stat(p).st_mode)), None)


@pytest.fixture
def cgroup2_dir():
    root = mountinfo.layout().v2
    if root is None:
        skip_here("no cgroup2 mount on this machine")
    d = os.path.join(root, f"labkit-devtest-{os.getpid()}")
    os.mkdir(d)
    yield d
    os.rmdir(d)


def _try_in(cgroup_dir: str, actions: list[tuple[str, str]]) -> list[str]:
    """In a child moved into ``cgroup_dir``: each (path, "r"|"w"|"m") -> "ok" or the errno name."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = []
        try:
            with open(os.path.join(cgroup_dir, "cgroup.procs"), "w") as f:
                f.write("0")
            for path, what in actions:
                try:
                    if what == "m":
                        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 7))
                        os.unlink(path)
                    else:
                        os.close(os.open(path, os.O_RDONLY if what == "r" else os.O_WRONLY))
                    out.append("ok")
                except OSError as exc:
                    out.append(os.strerror(exc.errno))
        finally:
            os.write(w, json.dumps(out).encode())
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_ebpf_program_allows_only_its_rules(cgroup2_dir, tmp_path):
    node = str(tmp_path / "full")
    devices.write_v2(cgroup2_dir, [devices.Rule("c", 1, 3), devices.Rule("c", 1, 5, "r")])
    assert devices.attached(cgroup2_dir) == 1
    got = _try_in(cgroup2_dir, [("/dev/null", "r"), ("/dev/null", "w"), ("/dev/zero", "r"),
                                ("/dev/zero", "w"), ("/dev/full", "r"), (node, "m")])
    print(got)
    denied = os.strerror(1)
    assert got == ["ok", "ok", "ok", denied, denied, denied]
    # a second program replaces the first (one device program per cgroup): now mknod of any
    # char device, and /dev/full, but no longer /dev/null
    devices.write_v2(cgroup2_dir, [devices.Rule("c", None, None, "m"), devices.Rule("c", 1, 7)])
    assert devices.attached(cgroup2_dir) == 1
    got = _try_in(cgroup2_dir, [("/dev/null", "r"), ("/dev/full", "w"), (node, "m")])
    assert got == [denied, "ok", "ok"]


def test_ebpf_allow_all_rule_is_accepted_by_the_verifier(cgroup2_dir):
    # an unconditional rule ends the program: instructions after it would be unreachable
    devices.write_v2(cgroup2_dir, [devices.Rule("a", None, None), devices.Rule("c", 1, 3)])
    assert _try_in(cgroup2_dir, [("/dev/full", "r")]) == ["ok"]


def test_every_container_gets_docker_default_rules(detached):
    ctr = detached()
    rules = {str(r) for r in devices.DEFAULT_RULES}
    assert "c 1:3 rwm" in rules and "c 136:* rwm" in rules and "b *:* m" in rules
    if backend().version == "v1":
        devdir = next(p for p in ctr.cgroup.paths() if "/devices/" in p)
        with open(os.path.join(devdir, "devices.list")) as f:
            listed = set(f.read().split("\n")) - {""}
        assert listed == rules
    else:
        assert devices.attached(ctr.cgroup.paths()[0]) == 1
    # the default set is usable inside
    r = ctr.exec(["sh", "-c", "head -c1 /dev/zero >/dev/null && echo >/dev/null && echo ok"])
    assert r.stdout == "ok\n", r.stderr


@skipif_here(EXTRA is None, reason="no spare character device on this machine")
def test_device_flag_makes_the_node_and_allows_only_its_access():
    r = cli("run", "--rm", "--device", f"{EXTRA}:/dev/extra:r", "busybox", "sh", "-c",
            "stat -c '%t,%T %a' /dev/extra; (exec 3</dev/extra) && echo read=ok; "
            "(exec 3>/dev/extra) 2>/dev/null || echo write=denied")
    print(r.stdout, r.stderr)
    st = os.stat(EXTRA)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{os.major(st.st_rdev):x},{os.minor(st.st_rdev):x} {stat.S_IMODE(st.st_mode):o}"
    assert lines[1:] == ["read=ok", "write=denied"]
    # without the flag, the same node (through a volume) cannot be opened: see test_security P14


@skipif_here(EXTRA is None, reason="no spare character device on this machine")
def test_inspect_shows_the_devices(detached):
    ctr = labkit.run("busybox", ["sleep", "300"], detach=True, devices=[f"{EXTRA}:/dev/x"])
    try:
        assert ctr.inspect()["HostConfig"]["Devices"] == [
            {"PathOnHost": EXTRA, "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}]
        assert ctr.exec("test -c /dev/x").exit_code == 0
    finally:
        ctr.remove(force=True)


@pytest.mark.parametrize("spec, words", [
    ("/dev/labkit-no-such-device", "/dev/labkit-no-such-device"),
    ("/etc/hostname", "não é um nó de dispositivo"),
    ("/dev/null:/dev/x:rwz", "especificação de dispositivo inválida"),
    ("dev/null", "especificação de dispositivo inválida"),
])
def test_bad_device_is_refused_and_leaves_nothing(spec, words):
    before = cli("ps", "-a", "-q").stdout
    r = cli("run", "--rm", "--device", spec, "busybox", "true")
    print(r.stderr)
    assert r.returncode == 125
    assert words in r.stderr
    assert cli("ps", "-a", "-q").stdout == before  # and the autouse fixture: no cgroup, no mount
