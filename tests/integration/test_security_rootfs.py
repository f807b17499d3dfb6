"""Hostile images, tested on the rootfs code itself (security-baseline P5, P6).

There is no image builder in these tests, so the hostile layer is a
directory made here (``proc -> /``, ``data -> /host/victim``...), stacked on
the real busybox layers and given to :mod:`labkit.engine.rootfs`. Anything
that mounts runs in a forked child inside a new, private mount namespace:
even a regression could not touch the host's mount table.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from labkit.engine import rootfs
from labkit.kernel import mounts, namespaces
from labkit.kernel.openat2 import fd_path, open_in_root

pytestmark = pytest.mark.root


def in_child(fn):
    """Run ``fn()`` in a forked child with a private mount namespace; return its result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            namespaces.unshare(namespaces.CLONE_NEWNS)
            mounts.make_private("/")
            payload = {"ok": True, "result": fn()}
        except BaseException as exc:  # noqa: BLE001
            payload = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        try:
            os.write(w, json.dumps(payload).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(b"".join(chunks) or b'{"ok": false, "type": "none", "error": "child died"}')


@pytest.fixture
def busybox_layers() -> list[str]:
    from labkit.images.store import Store

    return [str(p) for p in Store().resolve("busybox").layer_dirs()]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A host directory an evil image tries to reach."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "host-file").write_text("host\n")
    return v


def make_spec(tmp_path: Path, lowers: list[str], evil: Path, volumes=()) -> dict:
    c = tmp_path / "ctr"
    for sub in ("upper", "work", "rootfs"):
        (c / sub).mkdir(parents=True, exist_ok=True)
    return {"lowerdirs": lowers + [str(evil)], "upperdir": str(c / "upper"), "workdir": str(c / "work"),
            "rootfs": str(c / "rootfs"), "volumes": [list(v) for v in volumes]}


# -- P6: volume targets through symlinks ---------------------------------------------------------------


@pytest.mark.parametrize("link", ["absolute", "relative", "dotdot-path"])
def test_p6_open_in_root_never_leaves_the_root(tmp_path: Path, victim: Path, link: str):
    root = tmp_path / "root"
    root.mkdir()
    if link == "absolute":
        os.symlink(str(victim), root / "data")
        target = "/data"
    elif link == "relative":
        os.symlink("../" * 20 + str(victim).lstrip("/"), root / "data")
        target = "/data"
    else:
        target = "/../../../../" + str(victim).lstrip("/")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = open_in_root(root_fd, target, create="dir")
        try:
            resolved = os.readlink(fd_path(fd))
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
    print(f"{link}: {target} -> {resolved}")
    assert resolved.startswith(str(root) + "/")
    assert resolved == str(root) + str(victim)  # created inside the root, at the link's path
    assert sorted(os.listdir(victim)) == ["host-file"]


def test_p6_volume_through_a_symlink_in_the_image_mounts_inside(tmp_path: Path, busybox_layers, victim: Path):
    evil = tmp_path / "evil"
    evil.mkdir()
    os.symlink(str(victim), evil / "data")  # the image says /data -> <host victim path>
    source = tmp_path / "volume"
    source.mkdir()
    (source / "from-volume").write_text("v\n")
    spec = make_spec(tmp_path, busybox_layers, evil, [(str(source), "/data", False)])

    def child():
        mounts.overlay(list(reversed(spec["lowerdirs"])), spec["upperdir"], spec["workdir"], spec["rootfs"])
        root_fd = os.open(spec["rootfs"], os.O_RDONLY | os.O_DIRECTORY)
        rootfs._mount_volume(root_fd, str(source), "/data", False)
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        return {"points": points, "victim": sorted(os.listdir(victim)),
                "inside": sorted(os.listdir(spec["rootfs"] + str(victim)))}

    out = in_child(child)
    assert out["ok"], out
    res = out["result"]
    print(f"victim on the host still holds {res['victim']}; the volume landed at rootfs{victim}")
    assert str(victim) not in res["points"]
    assert spec["rootfs"] + str(victim) in res["points"]
    assert res["victim"] == ["host-file"]
    assert res["inside"] == ["from-volume"]


# -- P5: /proc, /sys, /dev symlinks in the image ----------------------------------------------------------


@pytest.mark.parametrize("name,target", [("proc", "/"), ("sys", "/"), ("dev", "/"), ("proc", "/etc"),
                                         ("sys", "../../../../sys")])
def test_p5_symlinked_special_dir_in_the_image_is_refused(tmp_path: Path, busybox_layers, name, target):
    evil = tmp_path / "evil"
    evil.mkdir()
    os.symlink(target, evil / name)
    spec = make_spec(tmp_path, busybox_layers, evil)
    out = in_child(lambda: rootfs.build(spec))
    print(out)
    assert not out["ok"]
    assert out["type"] == "RootfsError"
    assert f"/{name}" in out["error"]


def test_p5_dev_null_symlink_in_the_image_is_not_used_for_masking(tmp_path: Path, busybox_layers, victim):
    """runc CVE-2025-31133: masking binds /dev/null; the image's own /dev/null must not be it."""
    evil = tmp_path / "evil"
    (evil / "dev").mkdir(parents=True)
    os.symlink(str(victim / "host-file"), evil / "dev" / "null")
    spec = make_spec(tmp_path, busybox_layers, evil)

    def child():
        rootfs.build(spec)  # pivots: from here on "/" is the container's root
        res = {}
        for path in ("/proc/keys", "/proc/timer_list", "/dev/null"):
            if os.path.exists(path):
                st = os.lstat(path)
                res[path] = [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev)]
        return res

    out = in_child(child)
    assert out["ok"], out
    print(out["result"])
    for path, (is_chr, major, minor) in out["result"].items():
        assert is_chr and (major, minor) == (1, 3), path
    assert (victim / "host-file").read_text() == "host\n"


def test_p5_full_build_of_a_normal_image_works(tmp_path: Path, busybox_layers):
    """Control for the refusals above: the same code builds the plain busybox root."""
    evil = tmp_path / "plain"
    evil.mkdir()
    spec = make_spec(tmp_path, busybox_layers, evil)

    def child():
        rootfs.build(spec)
        return sorted(os.listdir("/"))

    out = in_child(child)
    assert out["ok"], out
    assert {"bin", "dev", "proc", "sys", "etc"} <= set(out["result"])
