"""``labkit system check``: is the store what ``index.json`` says it is?

Every blob is hashed and compared with its name; every descriptor reachable from
``index.json`` (index → manifests → config and layers) must name a blob that exists,
with the size the descriptor says. Besides the blobs, the store may hold what a killed
process left: a blob half written or half downloaded, a layer half unpacked, a build's
scratch directory and the temporary images of its RUN steps. Those are found by the lock
their writer no longer holds (:mod:`labkit.images.tempfiles`), never by their age.

``fix=True`` removes what is safe to remove: leftovers, blobs and unpacked layers nothing
references, and corrupt blobs (a pull can then fetch them again: with a corrupt blob in
place it would say "already here"). A blob that is referenced but missing cannot be
fixed here; the message says which image to pull or build again.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..i18n import _
from .image import HEX
from .integrity import file_digest
from .layout import INDEX_TYPES, MANIFEST_TYPES, REF_NAME
from .tempfiles import SCRATCH_ANNOTATION, SCRATCH_PREFIX, abandoned, is_temporary


# Reported, removed by ``fix``, but no reason for exit status 1: a blob nothing references
# is the build cache of a step (labkit/images/build/cache.py) until a garbage collection,
# and a store another process writes to cannot be searched for those.
NOT_PROBLEMS = ("orphan", "busy")


@dataclass
class Problem:
    kind: str  # corrupt | size | missing | unreadable | partial | orphan | busy
    path: str
    message: str  # for a person, translated
    fixed: bool = False


class _Check:
    def __init__(self, store, fix: bool, verify: bool = True) -> None:
        self.store = store
        self.layout = store.layout
        self.fix = fix
        self.verify = verify
        self.problems: list[Problem] = []
        self.sizes: dict[str, tuple[int, str]] = {}  # digest -> (file size, actual digest)

    def report(self, kind: str, path: Path | str, message: str, remove: bool = False) -> None:
        fixed = False
        if remove and self.fix:
            with contextlib.suppress(FileNotFoundError):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            fixed = True
        self.problems.append(Problem(kind, str(path), message, fixed))

    # -- leftovers of a killed writer ---------------------------------------------------
    def leftovers(self) -> None:
        places = [self.layout.blobs, self.store.layers_root]
        for place in places:
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(place):
                    if is_temporary(entry.name) and abandoned(entry.path):
                        self.report("partial", entry.path, _(
                            "%(path)s: left half-written by a process that was killed") % {"path": entry.path},
                            remove=True)
        scratch = self.store.home / "tmp"
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(scratch):
                if entry.name.startswith(SCRATCH_PREFIX) and abandoned(entry.path):
                    self.report("partial", entry.path, _(
                        "%(path)s: scratch directory of a build that was killed") % {"path": entry.path},
                        remove=True)

    def dead_build_images(self) -> None:
        """RUN steps' temporary images whose build is gone (their scratch is abandoned)."""
        scratch = self.store.home / "tmp"
        dead: set[str] = set()
        for m in self.layout.index().get("manifests", []):
            if (m.get("annotations") or {}).get(REF_NAME):
                continue
            try:
                doc = self.layout.read_json(m["digest"])
            except (OSError, ValueError, KeyError):
                continue
            owner = (doc.get("annotations") or {}).get(SCRATCH_ANNOTATION)
            if owner and (not (scratch / owner).exists() or abandoned(scratch / owner)):
                dead.add(m["digest"])
        for digest in sorted(dead):
            self.report("orphan", self.layout.root / "index.json", _(
                "%(digest)s: temporary image of a build that was killed") % {"digest": digest})
        if dead and self.fix:
            self.store.layout.update_index(lambda ms: [m for m in ms if m.get("digest") not in dead])
            for p in self.problems[-len(dead):]:
                p.fixed = True

    # -- the blobs and what references them ----------------------------------------------
    def blobs(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(self.layout.blobs), key=lambda e: e.name):
                if is_temporary(entry.name):
                    continue
                digest = "sha256:" + entry.name
                if len(entry.name) != 64 or not HEX.match(entry.name) or not entry.is_file(follow_symlinks=False):
                    self.report("unreadable", entry.path, _(
                        "%(path)s: not a blob (its name is not a sha256 digest)") % {"path": entry.path})
                    continue
                if not self.verify:
                    self.sizes[digest] = (entry.stat().st_size, digest)
                    continue
                try:
                    actual, size = file_digest(entry.path)
                except OSError as exc:
                    self.report("unreadable", entry.path, _("%(path)s: cannot be read (%(error)s)")
                                % {"path": entry.path, "error": exc.strerror or exc})
                    continue
                self.sizes[digest] = (size, actual)
                if actual != digest:
                    self.report("corrupt", entry.path, _(
                        "blob %(digest)s is corrupt: its content has the digest %(actual)s")
                        % {"digest": digest, "actual": actual}, remove=True)

    def references(self) -> set[str]:
        """Walk index.json; report descriptors whose blob is missing or of another size."""
        seen: set[str] = set()
        todo = [(m, _image_name(m)) for m in self.layout.index().get("manifests", [])]
        while todo:
            desc, owner = todo.pop()
            digest = desc.get("digest", "")
            if digest in seen:
                continue
            seen.add(digest)
            have = self.sizes.get(digest)
            if have is None:
                self.report("missing", self.layout.root / "index.json", _(
                    "%(owner)s: blob %(digest)s is missing; pull or build the image again")
                    % {"owner": owner, "digest": digest})
                continue
            if "size" in desc and int(desc["size"]) != have[0]:
                self.report("size", str(self.layout.blob_path(digest)), _(
                    "%(owner)s: blob %(digest)s has %(actual)d bytes, its descriptor says %(size)d")
                    % {"owner": owner, "digest": digest, "actual": have[0], "size": int(desc["size"])})
            mt = desc.get("mediaType", "")
            if (mt in MANIFEST_TYPES or mt in INDEX_TYPES or not mt) and have[1] == digest:
                try:
                    doc = json.loads(self.layout.blob_path(digest).read_bytes())
                except (OSError, ValueError):
                    continue
                if not isinstance(doc, dict):
                    continue
                todo.extend((d, owner) for d in doc.get("manifests", []))
                if isinstance(doc.get("config"), dict):
                    todo.append((doc["config"], owner))
                todo.extend((d, owner) for d in doc.get("layers", []))
        return seen

    def orphans(self, referenced: set[str]) -> None:
        for digest in sorted(set(self.sizes) - referenced):
            path = self.layout.blob_path(digest)
            if path.exists():  # a corrupt one may be gone already
                self.report("orphan", path, _("blob %(digest)s: nothing references it") % {"digest": digest},
                            remove=True)
        wanted: set[str] = set()
        for img in self.store.list():
            with contextlib.suppress(OSError, ValueError, KeyError):
                wanted.update(d[7:] for d in img.diff_ids)
        used = self.store._in_use()
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.store.layers_root):
                name = entry.name
                if len(name) == 64 and HEX.match(name) and name not in wanted | used:
                    self.report("orphan", entry.path, _("unpacked layer %(id)s: no image uses it")
                                % {"id": name[:12]}, remove=True)


def _image_name(desc: dict) -> str:
    return (desc.get("annotations") or {}).get(REF_NAME) or desc.get("digest", "?")[:19]


def check(store, *, fix: bool = False, verify: bool = True) -> list[Problem]:
    """Check (and with ``fix``, repair) the store; return the problems found.

    Orphans are only looked for when no other process is writing to the store (the
    garbage collector's lock is free): a pull or a build in progress writes blobs before
    ``index.json`` names them.
    """
    c = _Check(store, fix, verify)
    c.leftovers()
    c.dead_build_images()
    c.blobs()
    if not store.layout.root.exists():
        return c.problems
    lock = os.open(store.layout.root / ".gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            c.references()
            c.problems.append(Problem("busy", str(store.layout.root), _(
                "another process is writing to the store: unreferenced blobs were not looked for")))
            return c.problems
        referenced = c.references()
        c.orphans(referenced)
    finally:
        os.close(lock)
    return c.problems


def recover(store) -> list[Problem]:
    """What an engine does when it starts: remove what killed writers left (half-written
    blobs, half-unpacked layers, builds' scratch and temporary images), hashing nothing.
    Complete blobs nothing references stay: they are the build cache until a garbage
    collection (``rmi``, ``image prune``, ``system check --fix``). Returns what it removed."""
    c = _Check(store, fix=True, verify=False)
    c.leftovers()
    c.dead_build_images()
    return c.problems


def system_check(fix: bool = False, home: Path | None = None) -> list[Problem]:
    """``labkit system check [--fix]`` as a function: the problems of the store of ``home``
    (``Problem.kind``, ``.path``, ``.message`` in pt-BR, ``.fixed``); kinds in
    :data:`NOT_PROBLEMS` are notes."""
    from .store import Store

    return check(Store(home), fix=fix)
