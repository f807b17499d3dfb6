"""``save`` and ``load``: images as one tar file, in the two formats podman and Docker use.

* ``oci-archive``: a tar of an OCI image layout (``oci-layout``, ``index.json``,
  ``blobs/sha256/...``), each image named by the ``org.opencontainers.image.ref.name``
  annotation with its full name (``localhost/busybox:latest``), as podman writes it.
* ``docker-archive``: Docker's ``docker save`` format: ``manifest.json``
  (``Config``, ``RepoTags``, ``Layers``), the config as ``<id>.json`` and each
  layer as an uncompressed ``<diff_id>.tar``.

:func:`load` reads both (and Docker 25's mix of the two, gzip-compressed
archives too). An archive is untrusted: nothing in it is extracted to disk;
every blob is copied through a sha256 check into the store, and layers are
unpacked later by the safe extractor.
"""
from __future__ import annotations

import io
import json
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Iterable

from ..errors import LabkitError
from ..i18n import _
from . import layers as _layers
from . import refs as _refs
from .tempfiles import disk_full_is_an_error
from .layout import (
    INDEX_TYPES, MANIFEST_TYPES, MT_CONFIG, MT_LAYER, MT_MANIFEST, OCI_LAYOUT, REF_NAME,
    DigestMismatch, atomic_file, canonical_json, split_digest,
)
from .store import Image, Store

FORMATS = ("oci-archive", "docker-archive")


def _images(store: Store, refs: Iterable[str]) -> list[tuple[Image, str | None]]:
    """(image, name to save it under) for each ref; an ID saves the image untagged."""
    out = []
    for ref in refs:
        img = store.resolve(ref)
        name = img.ref if store.find_by_name(ref) is not None else None
        out.append((img, name))
    return out


def save(refs: str | Iterable[str], path: str | os.PathLike | IO[bytes] | None,
         format: str = "oci-archive", store: Store | None = None) -> None:
    """Write the images ``refs`` to ``path`` (``None`` or ``"-"``: standard output)."""
    if isinstance(refs, str):
        refs = [refs]
    if format not in FORMATS:
        raise LabkitError(_("unknown archive format %(format)s (use oci-archive or docker-archive)")
                          % {"format": format})
    store = store or Store()
    images = _images(store, refs)
    if not images:
        raise LabkitError(_("no image to save"))
    writer = _save_oci if format == "oci-archive" else _save_docker
    if path is None or path == "-":
        writer(store, images, sys.stdout.buffer)
        sys.stdout.flush()
        return
    if hasattr(path, "write"):
        writer(store, images, path)  # type: ignore[arg-type]
        return
    path = Path(path)  # type: ignore[arg-type]
    with disk_full_is_an_error(str(path)), atomic_file(path, sync=False, prefix=f".{path.name}.") as f:
        writer(store, images, f)


def _save_oci(store: Store, images: list[tuple[Image, str | None]], out: IO[bytes]) -> None:
    blobs: dict[str, Path] = {}
    manifests = []
    for img, name in images:
        blobs[img.digest] = store.layout.blob_path(img.digest)
        blobs[img.id] = store.layout.blob_path(img.id)
        for layer in img.layers:
            blobs[layer["digest"]] = store.layout.blob_path(layer["digest"])
        entry = {"mediaType": img.descriptor.get("mediaType", MT_MANIFEST), "digest": img.digest,
                 "size": img.descriptor.get("size") or blobs[img.digest].stat().st_size}
        if name:
            entry["annotations"] = {REF_NAME: name}
        if entry not in manifests:
            manifests.append(entry)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    entries = [_layers.dir_entry("blobs"), _layers.dir_entry("blobs/sha256")]
    for digest in sorted(blobs):
        hexpart = split_digest(digest)[1]
        ti = tarfile.TarInfo(f"blobs/sha256/{hexpart}")
        ti.type, ti.mode, ti.size = tarfile.REGTYPE, 0o644, blobs[digest].stat().st_size
        entries.append(_layers.Entry(ti, path=str(blobs[digest])))
    entries.append(_layers.file_entry("index.json", canonical_json(index)))
    entries.append(_layers.file_entry("oci-layout", canonical_json(OCI_LAYOUT)))
    _layers.write_tar(entries, out, compress=None)


def _save_docker(store: Store, images: list[tuple[Image, str | None]], out: IO[bytes]) -> None:
    manifest = []
    entries: list[_layers.Entry] = []
    written: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="labkit-save-") as tmpdir:
        for img, name in images:
            config_name = img.id.split(":", 1)[1] + ".json"
            layer_names = []
            for desc, diff_id in zip(img.layers, img.diff_ids):
                layer_name = diff_id.split(":", 1)[1] + ".tar"
                layer_names.append(layer_name)
                if layer_name in written:
                    continue
                written.add(layer_name)
                src = store.layout.blob_path(desc["digest"])
                with open(src, "rb") as f:
                    head = f.read(4)
                if _layers.compression_of(head) is None:
                    path = str(src)
                else:  # docker-archive layers are plain tars: decompress once to a temp file
                    path = os.path.join(tmpdir, layer_name)
                    with open(src, "rb") as f, open(path, "wb") as dst:
                        shutil.copyfileobj(_layers.open_uncompressed(f), dst, 1 << 20)
                ti = tarfile.TarInfo(layer_name)
                ti.type, ti.mode, ti.size = tarfile.REGTYPE, 0o644, os.path.getsize(path)
                entries.append(_layers.Entry(ti, path=path))
            if config_name not in written:
                written.add(config_name)
                entries.append(_layers.file_entry(config_name, store.layout.read_blob(img.id)))
            tags = [name] if name else []
            for item in manifest:
                if item["Config"] == config_name:
                    item["RepoTags"] = sorted(set(item["RepoTags"]) | set(tags))
                    break
            else:
                manifest.append({"Config": config_name, "RepoTags": tags, "Layers": layer_names})
        repositories: dict[str, dict[str, str]] = {}
        for item in manifest:
            for tag in item["RepoTags"]:
                repo, t = _refs.split(tag)
                repositories.setdefault(repo, {})[t] = item["Layers"][-1][:-4] if item["Layers"] else ""
        entries.append(_layers.file_entry("manifest.json", json.dumps(manifest, separators=(",", ":")).encode()))
        entries.append(_layers.file_entry("repositories", json.dumps(repositories, sort_keys=True).encode()))
        entries.sort(key=lambda e: e.info.name)
        _layers.write_tar(entries, out, compress=None)


# --------------------------------------------------------------------------- load
class _Archive:
    """Read-only view of a tar archive by member name, following links inside it."""

    def __init__(self, tf: tarfile.TarFile) -> None:
        self.tf = tf
        self.members: dict[str, tarfile.TarInfo] = {}
        for m in tf.getmembers():
            name = posixpath.normpath(m.name.lstrip("/"))
            if not name.startswith(".."):
                self.members[name] = m

    def has(self, name: str) -> bool:
        return posixpath.normpath(name) in self.members

    def open(self, name: str) -> IO[bytes]:
        name = posixpath.normpath(name.lstrip("/"))
        for _hop in range(8):
            m = self.members.get(name)
            if m is None:
                raise LabkitError(_("archive is incomplete: %(name)s is missing") % {"name": name})
            if m.issym():
                name = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
                continue
            if m.islnk():
                name = posixpath.normpath(m.linkname.lstrip("/"))
                continue
            if not m.isreg():
                break
            f = self.tf.extractfile(m)
            if f is not None:
                return f
            break
        raise LabkitError(_("archive member %(name)s is not a file") % {"name": name})

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise LabkitError(_("archive member %(name)s is too large") % {"name": name})
        return data

    def blob(self, digest: str) -> IO[bytes]:
        return self.open("blobs/sha256/" + split_digest(digest)[1])


def load(path: str | os.PathLike | IO[bytes] | None, store: Store | None = None) -> list[Image]:
    """Load an ``oci-archive`` or ``docker-archive`` (podman's or Docker's) into the store."""
    store = store or Store()
    store.layout.ensure()
    spool = None
    try:
        if path is None or path == "-":
            spool = tempfile.TemporaryFile(prefix="labkit-load-")
            shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            spool.seek(0)
            tf = tarfile.open(fileobj=spool, mode="r:*")
        elif hasattr(path, "read"):
            tf = tarfile.open(fileobj=path, mode="r:*")  # type: ignore[arg-type]
        else:
            try:
                tf = tarfile.open(os.fspath(path), mode="r:*")  # type: ignore[arg-type]
            except FileNotFoundError:
                raise LabkitError(_("no such file: %(path)s") % {"path": path}) from None
    except tarfile.TarError as exc:
        raise LabkitError(_("not an image archive: %(reason)s") % {"reason": exc}) from exc
    try:
        with tf:
            archive = _Archive(tf)
            with store.layout.writing():
                if archive.has("manifest.json"):
                    return _load_docker(store, archive)
                if archive.has("index.json"):
                    return _load_oci(store, archive)
                raise LabkitError(_("not an image archive: no manifest.json or index.json"))
    except DigestMismatch as exc:
        raise LabkitError(_("archive is corrupt: %(reason)s") % {"reason": exc}) from exc
    except (KeyError, ValueError, TypeError, tarfile.TarError) as exc:
        if isinstance(exc, LabkitError):
            raise
        raise LabkitError(_("not an image archive: %(reason)s") % {"reason": exc}) from exc
    finally:
        if spool is not None:
            spool.close()


def _name_from_annotations(annotations: dict | None) -> str | None:
    annotations = annotations or {}
    for key in ("io.containerd.image.name", REF_NAME):
        value = annotations.get(key)
        if not value or ("/" not in value and ":" not in value):
            continue  # a bare tag ("latest") does not say which repository
        try:
            return _refs.normalize(value)
        except LabkitError:
            continue
    return None


def _copy_blob(store: Store, archive: _Archive, digest: str) -> None:
    if store.layout.has_blob(digest):
        return
    with archive.blob(digest) as f:
        store.layout.put_stream(f, expect=digest)


def _load_oci(store: Store, archive: _Archive) -> list[Image]:
    index = json.loads(archive.read("index.json"))
    loaded = []
    for entry in index.get("manifests", []):
        name = _name_from_annotations(entry.get("annotations"))
        desc = entry
        for _depth in range(4):  # a multi-platform index: keep this machine's manifest
            if desc.get("mediaType") not in INDEX_TYPES:
                break
            sub = json.loads(_read_verified(archive, desc["digest"]))
            from .store import host_arch

            options = sub.get("manifests", [])
            chosen = [m for m in options if (m.get("platform") or {}).get("architecture") == host_arch()]
            desc = (chosen or options)[0]
            name = name or _name_from_annotations(desc.get("annotations"))
        raw = _read_verified(archive, desc["digest"])
        manifest = json.loads(raw)
        if manifest.get("mediaType", desc.get("mediaType", MT_MANIFEST)) not in MANIFEST_TYPES and "layers" not in manifest:
            continue
        _copy_blob(store, archive, manifest["config"]["digest"])
        for layer in manifest.get("layers", []):
            _copy_blob(store, archive, layer["digest"])
        stored = store.layout.put_blob(raw, expect=desc["digest"])
        mdesc = {"mediaType": manifest.get("mediaType") or desc.get("mediaType") or MT_MANIFEST, **stored}
        loaded.append(store.add(mdesc, name))
    if not loaded:
        raise LabkitError(_("not an image archive: index.json lists no image"))
    return loaded


def _read_verified(archive: _Archive, digest: str) -> bytes:
    import hashlib

    data = archive.read("blobs/sha256/" + split_digest(digest)[1])
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise DigestMismatch(digest)
    return data


def _load_docker(store: Store, archive: _Archive) -> list[Image]:
    manifest = json.loads(archive.read("manifest.json"))
    if not isinstance(manifest, list) or not manifest:
        raise LabkitError(_("not an image archive: manifest.json lists no image"))
    loaded = []
    for item in manifest:
        config_raw = archive.read(item["Config"])
        config = json.loads(config_raw)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(item.get("Layers", [])):
            raise LabkitError(_("archive is corrupt: layers and diff_ids differ"))
        config_desc = {"mediaType": MT_CONFIG, **store.layout.put_blob(config_raw)}
        layer_descs = []
        for layer_name, diff_id in zip(item["Layers"], diff_ids):
            with archive.open(layer_name) as f:
                desc = store.add_layer(f)
            if desc["diff_id"] != diff_id:
                raise LabkitError(_("archive is corrupt: layer %(name)s does not match its diff_id")
                                  % {"name": layer_name})
            layer_descs.append({k: desc[k] for k in ("mediaType", "digest", "size")})
        doc = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config_desc, "layers": layer_descs}
        mdesc = store.layout.put_json(doc, MT_MANIFEST)
        tags = item.get("RepoTags") or []
        if not tags:
            loaded.append(store.add(mdesc, None))
        for tag in tags:
            loaded.append(store.add(mdesc, _refs.normalize_hub(tag)))
    return loaded
