"""OCI layout (atomic, locked writes), references, the store and the busybox image."""
from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
from pathlib import Path

import pytest

from labkit.errors import Conflict, LabkitError, NotFound
from labkit.images import archive, busybox, refs
from labkit.images.layout import REF_NAME, DigestMismatch, Layout
from labkit.images.store import Store


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "home"
    monkeypatch.setenv("LABKIT_HOME", str(h))
    return h


# --------------------------------------------------------------------------- layout
def test_layout_files(tmp_path):
    lay = Layout(tmp_path / "l").ensure()
    assert json.loads((lay.root / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((lay.root / "index.json").read_text())["schemaVersion"] == 2
    d = lay.put_blob(b"hello")
    assert d == lay.put_blob(b"hello")
    assert lay.read_blob(d["digest"], verify=True) == b"hello"
    with pytest.raises(DigestMismatch):
        lay.put_stream(io.BytesIO(b"x"), expect="sha256:" + "0" * 64)
    with pytest.raises(DigestMismatch):
        lay.put_blob(b"x", expect="sha256:" + "0" * 64)
    assert not [p for p in lay.blobs.iterdir() if p.name.startswith(".tmp-")]


def _writer(root: str, n: int) -> None:
    lay = Layout(root)
    for i in range(10):
        with lay.writing():
            desc = lay.put_json({"n": n, "i": i}, "application/vnd.oci.image.manifest.v1+json")
            lay.set_ref(f"localhost/w{n}:t{i}", desc)


def test_concurrent_writers_lose_nothing(tmp_path):
    root = tmp_path / "l"
    Layout(root).ensure()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(root), n)) for n in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    names = {m["annotations"][REF_NAME] for m in Layout(root).index()["manifests"]}
    assert names == {f"localhost/w{n}:t{i}" for n in range(6) for i in range(10)}


def test_set_ref_moves_name_and_keeps_old_image_untagged(tmp_path):
    lay = Layout(tmp_path / "l").ensure()
    a = lay.put_json({"a": 1}, "application/vnd.oci.image.manifest.v1+json")
    b = lay.put_json({"b": 1}, "application/vnd.oci.image.manifest.v1+json")
    lay.set_ref("localhost/x:latest", a)
    lay.set_ref("localhost/x:latest", b)
    entries = lay.index()["manifests"]
    assert [(e["digest"], (e.get("annotations") or {}).get(REF_NAME)) for e in entries] == [
        (a["digest"], None), (b["digest"], "localhost/x:latest")]
    lay.set_ref("localhost/y:latest", a)  # naming the untagged one replaces its entry
    assert len(lay.index()["manifests"]) == 2


def test_gc_removes_only_unreferenced(tmp_path):
    lay = Layout(tmp_path / "l").ensure()
    keep = lay.put_blob(b"layer")
    cfg = lay.put_json({"c": 1}, "application/vnd.oci.image.config.v1+json")
    man = lay.put_json({"schemaVersion": 2, "config": cfg, "layers": [keep]}, "application/vnd.oci.image.manifest.v1+json")
    lay.set_ref("localhost/k:latest", man)
    junk = lay.put_blob(b"junk")
    assert lay.gc() == [junk["digest"]]
    assert all(lay.has_blob(d["digest"]) for d in (keep, cfg, man))


# --------------------------------------------------------------------------- refs
@pytest.mark.parametrize("ref,want", [
    ("busybox", "localhost/busybox:latest"),
    ("busybox:latest", "localhost/busybox:latest"),
    ("localhost/busybox", "localhost/busybox:latest"),
    ("localhost/busybox:1.35", "localhost/busybox:1.35"),
    ("meu/app:v1", "localhost/meu/app:v1"),
    ("registry.local:5000/a/b", "registry.local:5000/a/b:latest"),
    ("docker.io/library/debian:bookworm", "docker.io/library/debian:bookworm"),
    ("x@sha256:" + "a" * 64, "localhost/x@sha256:" + "a" * 64),
])
def test_normalize(ref, want):
    assert refs.normalize(ref) == want


@pytest.mark.parametrize("bad", ["", "UPPER", "a b", "x:", "x:bad tag", ":t", "a//b", "x@sha256:12"])
def test_invalid_refs(bad):
    with pytest.raises(LabkitError):
        refs.normalize(bad)


def test_candidates_and_familiar():
    assert refs.candidates("busybox") == ["localhost/busybox:latest", "docker.io/library/busybox:latest"]
    assert refs.familiar("localhost/busybox:latest") == "busybox:latest"
    assert refs.familiar("docker.io/library/debian:12") == "debian:12"
    assert refs.normalize_hub("busybox:1") == "docker.io/library/busybox:1"


# --------------------------------------------------------------------------- store + busybox
def test_busybox_digest_is_reproducible(tmp_path):
    a = Store(tmp_path / "a").resolve("busybox")
    b = Store(tmp_path / "b").resolve("busybox")
    assert a.digest == b.digest and a.id == b.id
    la = Layout(tmp_path / "a/images")
    for d in [a.digest, a.id] + [layer["digest"] for layer in a.layers]:
        assert la.read_blob(d) == Layout(tmp_path / "b/images").read_blob(d)


def test_busybox_image_content(home):
    img = Store().resolve("busybox")
    assert img.ref == busybox.REF
    idx = json.loads((home / "images/index.json").read_text())
    assert idx["manifests"][0]["annotations"][REF_NAME] == "localhost/busybox:latest"
    assert img.config["config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in img.config["config"]["Env"])
    with tarfile.open(fileobj=Layout(home / "images").open_blob(img.layers[0]["digest"])) as tf:
        members = tf.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=str.encode)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    by = {m.name: m for m in members}
    assert by["tmp"].mode == 0o1777 and by["bin/sh"].linkname == "/bin/busybox"
    for d in ("sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "root", "var", "etc/passwd", "etc/group"):
        assert d in by
    for alias in ("busybox", "busybox:latest", "localhost/busybox", "localhost/busybox:latest", img.short_id, img.id):
        assert Store().resolve(alias).digest == img.digest


def test_layer_dirs_unpack_once(home):
    img = Store().resolve("busybox")
    (d,) = img.layer_dirs()
    assert d.parent == home / "layers" and d.name == img.diff_ids[0].split(":")[1]
    assert os.readlink(d / "bin/sh") == "/bin/busybox"
    assert (d / "bin/busybox").stat().st_size > 100_000
    ino = d.stat().st_ino
    assert img.layer_dirs()[0].stat().st_ino == ino
    assert not [p for p in (home / "layers").iterdir() if p.name.startswith(".tmp")]


def _unpack(home: str, q) -> None:
    os.environ["LABKIT_HOME"] = home
    q.put(str(Store().resolve("busybox").layer_dirs()[0]))


def test_layer_dirs_concurrent(home):
    Store().resolve("busybox")
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_unpack, args=(str(home), q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    dirs = {q.get() for _ in procs}
    assert len(dirs) == 1
    assert [p.name for p in (home / "layers").iterdir()] == [Path(dirs.pop()).name]


def test_tag_remove_and_not_found(home):
    s = Store()
    img = s.resolve("busybox")
    s.tag("busybox", "meu/app:v1")
    assert s.resolve("meu/app:v1").id == img.id
    assert sorted(s.resolve("busybox").repo_tags) == ["localhost/busybox:latest", "localhost/meu/app:v1"]
    with pytest.raises(Conflict):
        s.remove(img.short_id)
    assert s.remove("meu/app:v1") == ["Untagged: meu/app:v1"]
    img.layer_dirs()
    out = s.remove("busybox")
    assert out == ["Untagged: busybox:latest", f"Deleted: {img.id}"]
    assert Layout(home / "images").index()["manifests"] == []
    assert list((home / "images/blobs/sha256").iterdir()) == []
    assert [p for p in (home / "layers").iterdir() if not p.name.startswith(".")] == []
    with pytest.raises(NotFound):
        s.resolve("nothere")
    with pytest.raises(NotFound):
        s.remove("nothere")


def test_write_image_from_dir(home, tmp_path):
    s = Store()
    src = tmp_path / "upper"
    (src / "opt").mkdir(parents=True)
    (src / "opt/hello").write_text("hi")
    layer = s.add_layer_from_dir(src)
    base = s.resolve("busybox")
    cfg = json.loads(json.dumps(base.config))
    cfg["rootfs"]["diff_ids"].append(layer["diff_id"])
    img = s.write_image(cfg, base.layers + [layer], ref="meu/img")
    dirs = s.resolve("meu/img").layer_dirs()
    assert len(dirs) == 2 and (dirs[1] / "opt/hello").read_text() == "hi"
    assert img.ref == "localhost/meu/img:latest"


# --------------------------------------------------------------------------- archives (labkit <-> labkit)
@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_save_load_round_trip(tmp_path, fmt):
    a = Store(tmp_path / "a")
    img = a.resolve("busybox")
    out = tmp_path / f"bb-{fmt}.tar"
    archive.save(["busybox"], out, format=fmt, store=a)
    again = tmp_path / "again.tar"
    archive.save(["busybox"], again, format=fmt, store=a)
    assert out.read_bytes() == again.read_bytes()
    b = Store(tmp_path / "b")
    (loaded,) = archive.load(out, store=b)
    assert loaded.ref == "localhost/busybox:latest" and loaded.id == img.id
    assert (loaded.layer_dirs()[0] / "bin/busybox").is_file()


def _tar(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        for name, target in (symlinks or {}).items():
            ti = tarfile.TarInfo(name)
            ti.type, ti.linkname = tarfile.SYMTYPE, target
            tf.addfile(ti)
    return buf.getvalue()


def test_evil_archive_is_refused(tmp_path):
    s = Store(tmp_path / "h")
    # a docker-archive whose paths point out of the archive: nothing is read from the host
    manifest = json.dumps([{"Config": "../../../../etc/hostname", "RepoTags": ["x:1"], "Layers": []}]).encode()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(_tar({"manifest.json": manifest}, {"cfg.json": "/etc/passwd"}))
    with pytest.raises(LabkitError):
        archive.load(bad, store=s)
    manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["x:1"], "Layers": []}]).encode()
    bad.write_bytes(_tar({"manifest.json": manifest}, {"cfg.json": "/etc/passwd"}))
    with pytest.raises(LabkitError):
        archive.load(bad, store=s)
    # a layer that escapes: loads (it is only stored), refused when unpacked, leaving nothing
    layer = _tar({"../../escape.txt": b"x"})
    import hashlib

    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l.tar"]}]).encode()
    bad.write_bytes(_tar({"manifest.json": manifest, "c.json": cfg, "l.tar": layer}))
    (img,) = archive.load(bad, store=s)
    with pytest.raises(LabkitError):
        img.layer_dirs()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "h/escape.txt").exists()
    assert [p for p in (tmp_path / "h/layers").iterdir()] == []
    # a blob that does not match its digest
    oci = tmp_path / "oci.tar"
    index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                 "digest": "sha256:" + "1" * 64, "size": 2}]}
    oci.write_bytes(_tar({"oci-layout": b"{}", "index.json": json.dumps(index).encode(),
                          "blobs/sha256/" + "1" * 64: b"{}"}))
    with pytest.raises(LabkitError):
        archive.load(oci, store=s)


def test_load_gzipped_and_docker25_style_archives(tmp_path):
    import gzip

    a = Store(tmp_path / "a")
    img = a.resolve("busybox")
    plain = tmp_path / "d.tar"
    archive.save(["busybox"], plain, format="docker-archive", store=a)
    gz = tmp_path / "d.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    (loaded,) = archive.load(gz, store=Store(tmp_path / "b"))
    assert loaded.id == img.id and loaded.ref == "localhost/busybox:latest"
    # Docker 25+: an OCI layout whose index names only a tag, plus manifest.json pointing into blobs/
    oci = tmp_path / "o.tar"
    archive.save(["busybox"], oci, format="oci-archive", store=a)
    with tarfile.open(oci) as tf:
        files = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}
    index = json.loads(files["index.json"])
    index["manifests"][0]["annotations"] = {REF_NAME: "latest", "io.containerd.image.name": "docker.io/library/busybox:latest"}
    files["index.json"] = json.dumps(index).encode()
    files["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{img.id[7:]}", "RepoTags": ["busybox:latest"],
        "Layers": [f"blobs/sha256/{img.layers[0]['digest'][7:]}"]}]).encode()
    d25 = tmp_path / "d25.tar"
    d25.write_bytes(_tar(files))
    (loaded,) = archive.load(d25, store=Store(tmp_path / "c"))
    assert loaded.ref == "docker.io/library/busybox:latest" and loaded.id == img.id
    assert Store(tmp_path / "c").resolve("busybox").id == img.id  # found by its familiar name
    del files["manifest.json"]
    only_oci = tmp_path / "only.tar"
    only_oci.write_bytes(_tar(files))
    (loaded,) = archive.load(only_oci, store=Store(tmp_path / "e"))
    assert loaded.ref == "docker.io/library/busybox:latest" and loaded.digest == img.digest


def test_gc_removes_stale_temporaries(home):
    """A temporary file or directory no live writer holds (its flock is free: the writer was
    killed) goes, whatever its age; one a writer holds stays (labkit/images/tempfiles.py)."""
    from labkit.images import tempfiles

    s = Store()
    s.resolve("busybox").layer_dirs()
    dead_dir = home / "layers/.tmp-deadbeef-x"
    (dead_dir / "bin").mkdir(parents=True)
    dead_blob = home / "images/blobs/sha256/.tmp-dead"
    dead_blob.write_bytes(b"half")
    held_dir_fd, held_dir = tempfiles.temp_dir(home / "layers", prefix=".tmp-young-")
    held_blob_fd, held_blob = tempfiles.temp_file(home / "images/blobs/sha256")
    try:
        s.gc()
        assert not dead_dir.exists() and not dead_blob.exists()
        assert os.path.isdir(held_dir) and os.path.isfile(held_blob)
    finally:
        os.close(held_dir_fd)
        os.close(held_blob_fd)
    s.gc()
    assert not os.path.exists(held_dir) and not os.path.exists(held_blob)
    assert len([p for p in (home / "layers").iterdir() if not p.name.startswith(".")]) == 1


def test_busybox_is_dated_by_its_binary(tmp_path, monkeypatch):
    """`labkit images` must not say 'há 56 anos': the image carries its binary's date."""
    from labkit.images import busybox

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    binary = busybox.find_binary()
    img = Store(tmp_path / "a").resolve("busybox")
    assert img.created is not None and int(img.created.timestamp()) == int(binary.stat().st_mtime)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    fixed = Store(tmp_path / "b").resolve("busybox")
    assert int(fixed.created.timestamp()) == 1700000000 and fixed.id != img.id
