"""The merged view of layer directories (whiteouts, opaque dirs, links) and ``diff`` on an upper dir."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from labkit.images.changes import diff_dirs
from labkit.images.rootview import RootView
from requirements import skipif_here

needs_root = skipif_here(os.geteuid() != 0, reason="whiteouts (mknod 0/0) and trusted.* xattrs need root")


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))


def _opaque(path: Path) -> None:
    os.setxattr(path, "trusted.overlay.opaque", b"y")


@pytest.fixture
def stack(tmp_path):
    low, mid = tmp_path / "low", tmp_path / "mid"
    for d in (low / "etc", low / "usr/bin", low / "opt/app", mid / "etc", mid / "opt"):
        d.mkdir(parents=True)
    (low / "etc/passwd").write_text("root\n")
    (low / "etc/group").write_text("g\n")
    (low / "usr/bin/tool").write_text("t\n")
    os.symlink("usr/bin", low / "bin")
    (low / "opt/app/old").write_text("o\n")
    (mid / "etc/passwd").write_text("root\nana\n")
    return tmp_path, [low, mid]


@needs_root
def test_lookup_whiteouts_opaque_links(stack):
    tmp, layers = stack
    mid = layers[1]
    _whiteout(mid / "etc/group")
    (mid / "opt/app").mkdir()
    _opaque(mid / "opt/app")
    (mid / "opt/app/new").write_text("n\n")
    view = RootView(layers)
    assert Path(view.lookup("/etc/passwd").host_path).read_text() == "root\nana\n"
    assert view.lookup("/etc/group") is None
    assert view.listdir(view.lookup("/etc")) == ["passwd"]
    assert view.listdir(view.lookup("/opt/app")) == ["new"]  # opaque: the lower "old" is hidden
    assert Path(view.lookup("/bin/tool").host_path).read_text() == "t\n"  # through /bin -> usr/bin
    assert view.lookup("/bin", follow=False).is_link
    assert view.resolve_path("/bin/new-file") == "/usr/bin/new-file"
    assert view.lookup("/../../etc/passwd") is not None  # ".." stops at the image's root
    assert [rel for rel, _n in view.walk(view.lookup("/opt"))] == ["app", "app/new"]


@needs_root
def test_diff_dirs(stack):
    tmp, layers = stack
    upper = tmp / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/passwd").write_text("changed\n")
    _whiteout(upper / "etc/group")
    (upper / "new/deep").mkdir(parents=True)
    (upper / "new/deep/f").write_text("f")
    (upper / "opt/app").mkdir(parents=True)
    _opaque(upper / "opt/app")
    (upper / "opt/app/x").write_text("x")
    assert diff_dirs(upper, layers) == [
        ("C", "/etc"), ("D", "/etc/group"), ("C", "/etc/passwd"),
        ("A", "/new"), ("A", "/new/deep"), ("A", "/new/deep/f"),
        ("C", "/opt"), ("C", "/opt/app"), ("D", "/opt/app/old"), ("A", "/opt/app/x"),
    ]
