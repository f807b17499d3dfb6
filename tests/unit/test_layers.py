"""Safe layer extraction (security-baseline P7-P10) and reproducible layer tarballs."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from labkit.images import layers
from labkit.images.layers import UnsafeLayer
from requirements import skipif_here

ROOT = os.geteuid() == 0
needs_root = skipif_here(not ROOT, reason="mknod and trusted.* xattrs need root")


# --------------------------------------------------------------------------- helpers
def make_tar(members: list[tuple], gz: bool = False) -> bytes:
    """members: (kind, name, extra) with kind in file/dir/sym/link/chr/blk/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kind, name, *rest in members:
            extra = rest[0] if rest else None
            ti = tarfile.TarInfo(name)
            ti.mode = 0o644
            data = None
            if kind == "file":
                data = extra if isinstance(extra, bytes) else b"payload\n"
                ti.size = len(data)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            elif kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = extra
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif kind == "suid":
                data = b"#!/bin/sh\n"
                ti.size, ti.mode = len(data), 0o4755
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0) if gz else raw


def snapshot(top: Path) -> dict:
    """Everything observable about a tree: type, mode, size, inode, mtime and content hash."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames + [""]:
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            digest = None
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[p] = (st.st_mode, st.st_size, st.st_ino, st.st_nlink, st.st_mtime_ns, digest)
    return out


def inodes(top: Path) -> set[tuple[int, int]]:
    out = set()
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out.add((st.st_dev, st.st_ino))
    return out


def devices(top: Path) -> list[tuple[str, int]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in filenames + dirnames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                out.append((p, st.st_rdev))
    return out


@pytest.fixture
def sandbox(tmp_path):
    """dest/ (where the layer goes) beside outside/ (the "host", with a victim file)."""
    dest = tmp_path / "work" / "dest"
    dest.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.txt").write_text("host data\n")
    return dest, outside


def run_evil(dest: Path, outside: Path, data: bytes, refuse: bool):
    before = snapshot(outside)
    parent_before = sorted(os.listdir(dest.parent))
    host = inodes(outside) | {(os.lstat(p).st_dev, os.lstat(p).st_ino) for p in ("/etc/passwd", "/etc/hostname") if os.path.exists(p)}
    if refuse:
        with pytest.raises(UnsafeLayer):
            layers.extract(io.BytesIO(data), dest)
        report = None
    else:
        report = layers.extract(io.BytesIO(data), dest)
    assert snapshot(outside) == before, "something outside the destination changed"
    assert sorted(os.listdir(dest.parent)) == parent_before, "something appeared beside the destination"
    assert not (inodes(dest) & host), "an extracted inode is a host inode"
    assert all(rdev == 0 for _p, rdev in devices(dest)), "a device node other than 0/0 was created"
    return report


# --------------------------------------------------------------------------- evil tarballs
def test_dotdot_is_refused(sandbox):
    dest, outside = sandbox
    run_evil(dest, outside, make_tar([("file", "ok.txt"), ("file", "../escape.txt")]), refuse=True)
    run_evil(dest, outside, make_tar([("file", "a/../../../outside/victim.txt", b"pwned")]), refuse=True)


def test_absolute_path_is_kept_inside(sandbox):
    dest, outside = sandbox
    target = outside / "abs_escape.txt"
    run_evil(dest, outside, make_tar([("file", str(target), b"abs")]), refuse=False)
    assert not target.exists()
    inside = dest / str(target).lstrip("/")
    assert inside.read_bytes() == b"abs"


@pytest.mark.parametrize("link", ["ABS", "../../outside", "lnk2"])
def test_write_through_symlink_is_refused(sandbox, link):
    dest, outside = sandbox
    target = str(outside) if link == "ABS" else link
    members = [("sym", "lnk2", str(outside)), ("sym", "lnk", target), ("file", "lnk/through_symlink.txt", b"pwned"),
               ("file", "lnk/victim.txt", b"pwned")]
    run_evil(dest, outside, make_tar(members), refuse=True)
    assert not (outside / "through_symlink.txt").exists()


def test_directory_through_symlink_is_refused(sandbox):
    dest, outside = sandbox
    run_evil(dest, outside, make_tar([("sym", "etc", str(outside)), ("dir", "etc/sub")]), refuse=True)


def test_file_over_symlink_replaces_the_link(sandbox):
    dest, outside = sandbox
    members = [("sym", "victim.txt", str(outside / "victim.txt")), ("file", "victim.txt", b"layer data")]
    run_evil(dest, outside, make_tar(members), refuse=False)
    assert not (dest / "victim.txt").is_symlink()
    assert (dest / "victim.txt").read_bytes() == b"layer data"


@pytest.mark.parametrize("linkname", ["ABS", "../../outside/victim.txt", "missing.txt"])
def test_hardlink_to_host_file_is_refused(sandbox, linkname):
    dest, outside = sandbox
    target = str(outside / "victim.txt") if linkname == "ABS" else linkname
    run_evil(dest, outside, make_tar([("file", "ok.txt"), ("link", "hl", target)]), refuse=True)
    assert os.stat(outside / "victim.txt").st_nlink == 1


def test_hardlink_through_symlink_is_refused(sandbox):
    dest, outside = sandbox
    members = [("sym", "lnk", str(outside)), ("link", "hl", "lnk/victim.txt")]
    run_evil(dest, outside, make_tar(members), refuse=True)
    assert os.stat(outside / "victim.txt").st_nlink == 1


def test_hardlink_inside_layer_is_kept(sandbox):
    dest, outside = sandbox
    run_evil(dest, outside, make_tar([("file", "a/orig", b"x"), ("link", "b/copy", "a/orig")]), refuse=False)
    assert os.stat(dest / "a/orig").st_ino == os.stat(dest / "b/copy").st_ino


def test_device_nodes_are_not_created(sandbox):
    dest, outside = sandbox
    members = [("chr", "dev/mem", (1, 1)), ("blk", "dev/sda", (8, 0)), ("chr", "dev/null", (1, 3)),
               ("file", "ok.txt"), ("fifo", "pipe")]
    report = run_evil(dest, outside, make_tar(members), refuse=False)
    assert not os.path.lexists(dest / "dev/mem")
    assert not os.path.lexists(dest / "dev/sda")
    assert not os.path.lexists(dest / "dev/null")
    assert stat.S_ISFIFO(os.lstat(dest / "pipe").st_mode)
    assert len(report.skipped) == 3


@needs_root
def test_setuid_is_kept_like_docker(sandbox):
    dest, outside = sandbox
    run_evil(dest, outside, make_tar([("suid", "bin/su")]), refuse=False)
    assert stat.S_IMODE(os.stat(dest / "bin/su").st_mode) == 0o4755


def test_overlay_xattrs_from_the_tar_are_ignored(sandbox):
    dest, outside = sandbox
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("d")
        ti.type = tarfile.DIRTYPE
        ti.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc"}
        tf.addfile(ti)
    run_evil(dest, outside, buf.getvalue(), refuse=False)
    with pytest.raises(OSError):
        os.getxattr(dest / "d", "trusted.overlay.redirect")


def test_diff_id_is_checked(sandbox):
    dest, _outside = sandbox
    data = make_tar([("file", "a")], gz=True)
    want = "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest()
    report = layers.extract(io.BytesIO(data), dest, expect_diff_id=want)
    assert report.diff_id == want and report.size == len(gzip.decompress(data))
    with pytest.raises(UnsafeLayer):
        layers.extract(io.BytesIO(data), dest.parent / "other", expect_diff_id="sha256:" + "0" * 64)


def test_garbage_is_refused(sandbox):
    dest, _outside = sandbox
    with pytest.raises(UnsafeLayer):
        layers.extract(io.BytesIO(b"\x1f\x8b" + b"not really gzip" * 50), dest)


# --------------------------------------------------------------------------- whiteouts
@needs_root
def test_whiteouts_become_overlay_whiteouts(sandbox):
    dest, _outside = sandbox
    members = [("dir", "etc"), ("file", "etc/.wh.motd", b""), ("dir", "var/cache"), ("file", "var/cache/.wh..wh..opq", b""),
               ("file", "var/cache/new", b"n"), ("file", "keep", b"k"), ("file", ".wh.keep", b""),
               ("file", ".wh..wh.plnk", b"")]
    report = layers.extract(io.BytesIO(make_tar(members)), dest)
    st = os.lstat(dest / "etc/motd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not os.path.lexists(dest / "etc/.wh.motd")
    assert os.getxattr(dest / "var/cache", "trusted.overlay.opaque") == b"y"
    assert not os.path.lexists(dest / "var/cache/.wh..wh..opq")
    assert (dest / "var/cache/new").read_bytes() == b"n"
    # a whiteout does not hide a file of its own layer
    assert (dest / "keep").read_bytes() == b"k"
    assert not os.path.lexists(dest / ".wh..wh.plnk")
    assert report.whiteouts == 1 and report.opaque == 1


@needs_root
def test_whiteout_round_trip(tmp_path):
    src = tmp_path / "upper"
    (src / "etc").mkdir(parents=True)
    os.mknod(src / "etc/motd", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (src / "opaque").mkdir()
    os.setxattr(src / "opaque", "trusted.overlay.opaque", b"y")
    (src / "opaque/file").write_text("f")
    buf = io.BytesIO()
    res = layers.tar_from_dir(src, buf, compress=None)
    names = tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getnames()
    assert "etc/.wh.motd" in names and "opaque/.wh..wh..opq" in names
    assert "etc/motd" not in names
    dest = tmp_path / "back"
    rep = layers.extract(io.BytesIO(buf.getvalue()), dest, expect_diff_id=res.diff_id)
    assert rep.whiteouts == 1 and rep.opaque == 1
    assert layers.is_whiteout(os.lstat(dest / "etc/motd"))
    assert layers.is_opaque(dest / "opaque")
    # and once more: the tar of the extracted tree is byte-identical
    again = layers.tar_from_dir(dest, io.BytesIO(), compress=None)
    assert again.diff_id == res.diff_id


# --------------------------------------------------------------------------- reproducible tars
def _tree(top: Path) -> None:
    (top / "b/sub").mkdir(parents=True)
    (top / "a.txt").write_text("a")
    (top / "b/sub/z").write_text("z")
    (top / "b/é-unicode").write_text("u")
    os.symlink("/a.txt", top / "link")
    os.link(top / "a.txt", top / "b/hard")
    os.chmod(top / "b", 0o750)


def test_tar_from_dir_is_reproducible(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):
        d.mkdir()
        _tree(d)
    os.utime(two / "a.txt", (12345, 12345))
    r1 = layers.tar_from_dir(one, tmp_path / "1.tar.gz")
    r2 = layers.tar_from_dir(two, tmp_path / "2.tar.gz")
    assert (tmp_path / "1.tar.gz").read_bytes() == (tmp_path / "2.tar.gz").read_bytes()
    assert r1.digest == r2.digest and r1.diff_id == r2.diff_id
    assert r1.media_type.endswith("+gzip")
    with tarfile.open(tmp_path / "1.tar.gz") as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.encode()) or names == [
        "a.txt", "b", "b/hard", "b/sub", "b/sub/z", "b/é-unicode", "link"]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    by = {m.name: m for m in members}
    assert by["b/hard"].islnk() and by["b/hard"].linkname == "a.txt"
    assert by["link"].issym() and by["link"].linkname == "/a.txt"
    assert by["b"].mode == 0o750


def test_tar_from_dir_owner_and_mtime_can_be_kept(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("x")
    os.utime(src / "f", (1000, 1000))
    if ROOT:
        os.chown(src / "f", 65534, 65534)
    buf = io.BytesIO()
    layers.tar_from_dir(src, buf, owner=None, mtime=None, compress=None, prefix="opt")
    (m,) = [m for m in tarfile.open(fileobj=io.BytesIO(buf.getvalue())).getmembers()]
    assert m.name == "opt/f" and m.mtime == 1000
    if ROOT:
        assert (m.uid, m.gid) == (65534, 65534)


@pytest.mark.parametrize("members", [
    [("dir", "d"), ("sym", "d", "OUT")],
    [("dir", "a"), ("dir", "a/sub"), ("sym", "a", "OUT")],
])
def test_directory_replaced_by_symlink_does_not_touch_the_host(sandbox, members):
    """Directory modes and times are applied at the end: never through a link that replaced the directory."""
    dest, outside = sandbox
    (outside / "sub").mkdir()
    os.chmod(outside / "sub", 0o755)
    os.chmod(outside, 0o755)
    members = [(k, n, str(outside) if e == "OUT" else e) if e else (k, n) for k, n, *rest in members
               for e in [rest[0] if rest else None]]
    # modes that differ from the host's, so a chmod through the link would show
    data = make_tar(members)
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        infos = tf.getmembers()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti in infos:
            if ti.isdir():
                ti.mode, ti.mtime = 0o700, 12345
            tf.addfile(ti)
    run_evil(dest, outside, buf.getvalue(), refuse=False)
    assert os.readlink(dest / members[-1][1]) == str(outside)
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(outside / "sub").st_mode) == 0o755
