"""OCI image layout on disk: ``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``.

This is the format skopeo, umoci and podman read as is (``oci:DIR:REF``).
Blobs are content addressed and written atomically (temporary file in the
same directory, fsync, rename), so a reader never sees half a blob. Changes
to ``index.json`` happen under an exclusive ``flock`` and are also written
atomically. Garbage collection takes a second lock exclusively; writers hold
it shared while they add blobs and point ``index.json`` at them, so GC can
never delete a blob a writer is about to reference.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from .tempfiles import abandoned, is_temporary, temp_file

OCI_LAYOUT = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = (MT_MANIFEST, MT_DOCKER_MANIFEST)
INDEX_TYPES = (MT_INDEX, MT_DOCKER_LIST)

_CHUNK = 1 << 20


def canonical_json(obj: Any) -> bytes:
    """The bytes labkit writes for a JSON document: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def split_digest(digest: str) -> tuple[str, str]:
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"unsupported or malformed digest: {digest!r}")
    return algo, hexpart


@contextlib.contextmanager
def atomic_file(path: Path, *, sync: bool = True, prefix: str = ".tmp-") -> Iterator[IO[bytes]]:
    """A file that appears at ``path`` whole or not at all: written aside, then renamed.

    ``sync`` waits for the data to reach the disk before the rename (the store's
    index and blobs); a file a person asked for (``labkit save``) does without.
    """
    fd, tmp = temp_file(path.parent, prefix)  # locked while written: see tempfiles.py
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # before the close: the lock covers the whole life of the name
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


class DigestMismatch(ValueError):
    """A blob's content does not match the digest it was announced with."""


class Layout:
    """An OCI image layout rooted at ``root`` (created on first write)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs" / "sha256"

    # -- structure -------------------------------------------------------------
    def exists(self) -> bool:
        return (self.root / "oci-layout").is_file()

    def ensure(self) -> "Layout":
        """Create ``oci-layout``, ``index.json`` and ``blobs/sha256`` if missing."""
        if (self.root / "index.json").is_file() and self.blobs.is_dir():
            return self
        self.blobs.mkdir(parents=True, exist_ok=True)
        if not (self.root / "oci-layout").is_file():
            atomic_write(self.root / "oci-layout", canonical_json(OCI_LAYOUT))
        with self.index_lock():
            if not (self.root / "index.json").is_file():
                atomic_write(
                    self.root / "index.json",
                    canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}),
                )
        return self

    # -- locks -----------------------------------------------------------------
    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def index_lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock around a read-modify-write of ``index.json``."""
        return self._flock(".index.lock", fcntl.LOCK_EX)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while adding blobs that ``index.json`` will reference (shared)."""
        return self._flock(".gc.lock", fcntl.LOCK_SH)

    def collecting(self) -> contextlib.AbstractContextManager[None]:
        """Hold while deleting unreferenced blobs (exclusive)."""
        return self._flock(".gc.lock", fcntl.LOCK_EX)

    # -- blobs -----------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        return self.blobs / split_digest(digest)[1]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str, verify: bool = False) -> bytes:
        data = self.blob_path(digest).read_bytes()
        if verify and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DigestMismatch(digest)
        return data

    def read_json(self, digest: str) -> dict:
        return json.loads(self.read_blob(digest))

    def open_blob(self, digest: str) -> IO[bytes]:
        return open(self.blob_path(digest), "rb")

    def put_blob(self, data: bytes, expect: str | None = None) -> dict:
        """Store ``data``; return ``{"digest", "size"}``. ``expect`` is verified."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expect is not None and expect != digest:
            raise DigestMismatch(f"expected {expect}, got {digest}")
        path = self.blob_path(digest)
        if not path.is_file():
            self.blobs.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        return {"digest": digest, "size": len(data)}

    def put_json(self, obj: Any, media_type: str) -> dict:
        desc = self.put_blob(canonical_json(obj))
        return {"mediaType": media_type, **desc}

    def put_stream(self, stream: IO[bytes], expect: str | None = None) -> dict:
        """Copy a stream into the store, hashing on the way; return ``{"digest","size"}``."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = temp_file(self.blobs)
        try:
            with os.fdopen(fd, "wb") as f:
                while True:
                    chunk = stream.read(_CHUNK)
                    if not chunk:
                        break
                    h.update(chunk)
                    size += len(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
                digest = "sha256:" + h.hexdigest()
                if expect is not None and expect != digest:
                    raise DigestMismatch(f"expected {expect}, got {digest}")
                os.chmod(tmp, 0o644)
                os.replace(tmp, self.blob_path(digest))  # before the close, as atomic_file
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return {"digest": digest, "size": size}

    def put_file(self, path: Path | str, expect: str | None = None) -> dict:
        with open(path, "rb") as f:
            return self.put_stream(f, expect)

    def new_blob_writer(self) -> "BlobWriter":
        """A file-like object that becomes a blob on ``commit()``."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        return BlobWriter(self)

    # -- index -----------------------------------------------------------------
    def index(self) -> dict:
        try:
            return json.loads((self.root / "index.json").read_bytes())
        except FileNotFoundError:
            return {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}

    def update_index(self, change: Callable[[list[dict]], list[dict] | None]) -> dict:
        """Apply ``change(manifests)`` to ``index.json`` under the index lock.

        ``change`` edits the list in place or returns a new one.
        """
        self.ensure()
        with self.index_lock():
            index = self.index()
            manifests = list(index.get("manifests", []))
            result = change(manifests)
            if result is not None:
                manifests = result
            index["manifests"] = manifests
            index.setdefault("schemaVersion", 2)
            atomic_write(self.root / "index.json", canonical_json(index))
            return index

    def set_ref(self, ref: str | None, descriptor: dict) -> None:
        """Point ``ref`` at ``descriptor`` (a manifest). Any entry that had ``ref`` loses it.

        A manifest left with no name stays in the index untagged (Docker's
        ``<none>`` image) until pruned. ``ref=None`` adds an untagged entry.
        """
        entry = {k: v for k, v in descriptor.items() if k in ("mediaType", "digest", "size", "platform")}
        entry.setdefault("mediaType", MT_MANIFEST)
        if ref is not None:
            entry["annotations"] = {REF_NAME: ref}

        def change(manifests: list[dict]) -> list[dict]:
            out = []
            for m in manifests:
                name = (m.get("annotations") or {}).get(REF_NAME)
                if ref is not None and name == ref:
                    if m["digest"] == entry["digest"]:
                        continue
                    # the old image stays, untagged, unless something else names it
                    if not any(
                        o["digest"] == m["digest"] and o is not m for o in manifests
                    ):
                        out.append({k: v for k, v in m.items() if k != "annotations"})
                    continue
                if name is None and m["digest"] == entry["digest"]:
                    continue  # the untagged entry becomes the named one
                out.append(m)
            if ref is None and any(m["digest"] == entry["digest"] for m in out):
                return out
            out.append(entry)
            return out

        self.update_index(change)

    # -- garbage collection ----------------------------------------------------
    def referenced(self) -> set[str]:
        """Every blob digest reachable from ``index.json``."""
        seen: set[str] = set()
        todo = [m for m in self.index().get("manifests", [])]
        while todo:
            desc = todo.pop()
            digest = desc.get("digest")
            if not digest or digest in seen:
                continue
            seen.add(digest)
            mt = desc.get("mediaType", "")
            if mt in MANIFEST_TYPES or mt in INDEX_TYPES or not mt:
                try:
                    doc = self.read_json(digest)
                except (FileNotFoundError, ValueError):
                    continue
                if "manifests" in doc:
                    todo.extend(doc["manifests"])
                if "config" in doc:
                    seen.add(doc["config"]["digest"])
                for layer in doc.get("layers", []):
                    seen.add(layer["digest"])
        return seen

    def gc(self) -> list[str]:
        """Delete blobs nothing references; return their digests."""
        removed = []
        with self.collecting():
            keep = self.referenced()
            if not self.blobs.is_dir():
                return removed
            for entry in os.scandir(self.blobs):
                if is_temporary(entry.name):
                    # a writer killed half-way leaves its temporary file; a live one holds its lock
                    if abandoned(entry.path):
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
                    continue
                digest = "sha256:" + entry.name
                if digest not in keep:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                    removed.append(digest)
        return removed


class BlobWriter:
    """Write a blob of unknown digest; it lands under its digest on ``commit()``."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        fd, self.tmp = temp_file(layout.blobs)
        self.file = os.fdopen(fd, "wb")
        self._h = hashlib.sha256()
        self.size = 0
        self.descriptor: dict | None = None

    def write(self, data: bytes) -> int:
        self._h.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()

    def commit(self) -> dict:
        self.file.flush()
        os.fsync(self.file.fileno())
        digest = "sha256:" + self._h.hexdigest()
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.layout.blob_path(digest))  # before the close, as atomic_file
        self.file.close()
        self.descriptor = {"digest": digest, "size": self.size}
        return self.descriptor

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or self.descriptor is None:
            self.abort()
