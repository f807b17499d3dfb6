"""Removing images: ``rmi`` (untag, then delete), ``prune``, and the garbage collection.

Blobs no manifest references and unpacked layers no image (and no mounted
overlay) uses are deleted; a half-made unpack older than an hour is too.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from typing import Callable

from .. import paths
from ..errors import Conflict, NotFound
from ..i18n import _
from ..kernel.userns import remove_tree
from . import refs as _refs
from .image import HEX
from .layout import REF_NAME
from .tempfiles import abandoned, is_temporary
STALE_TMP_SECONDS = 3600  # kept for callers; a temporary file is now judged by its lock (tempfiles.py)


class Removal:
    """Removal and garbage collection, mixed into :class:`~labkit.images.store.Store`."""

    def _in_use(self) -> set[str]:
        """diff_id hexes of unpacked layers an OverlayFS mount is using right now."""
        used: set[str] = set()
        root = str(self.layers_root)
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    if root not in line.replace("\\040", " "):
                        continue
                    for m in re.finditer(re.escape(root) + r"/([0-9a-f]{64})", line):
                        used.add(m.group(1))
        except OSError:
            pass
        return used

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """Docker's ``rmi``: untag ``ref``; delete the image when no name is left.

        Removing by ID an image with several names needs ``force``. The last
        name of an image a container uses (any state, or whose layers are
        mounted) is refused unless ``force``; then only the name goes and the
        image stays, untagged, for its containers. Returns what
        was done, as Docker prints it (``Untagged: ...``, ``Deleted: ...``).
        """
        img = self.find_by_name(ref)
        by_name = img is not None
        if img is None:
            img = self._find_by_id(ref)
        if img is None:
            raise NotFound(_("no such image: %(ref)s") % {"ref": ref})
        names = img.repo_tags
        if not by_name and len(names) > 1 and not force:
            raise Conflict(
                _("unable to delete %(id)s (must be forced): image is referenced in multiple repositories")
                % {"id": img.short_id}
            )
        targets = [img.ref] if by_name else (names or [None])
        last = by_name and len(names) == 1 or not by_name
        users = self.containers_using(img.id) if last else []
        mounted = last and any(d[7:] in self._in_use() for d in img.diff_ids)
        if (users or mounted) and not force:
            if users:
                raise Conflict(
                    _("unable to remove %(ref)s (must be forced): container %(id)s is using its image")
                    % {"ref": ref, "id": users[0][:12]}
                )
            raise Conflict(_("image %(ref)s is in use by a running container") % {"ref": ref})
        keep_untagged = bool(users or mounted)  # forced: the name goes, the image stays for its containers
        done = [f"Untagged: {_refs.familiar(n)}" for n in targets if n]
        digest = img.digest

        def change(manifests: list[dict]) -> list[dict]:
            out = []
            for m in manifests:
                name = (m.get("annotations") or {}).get(REF_NAME)
                if m.get("digest") == digest and (name in targets or (not by_name)):
                    continue
                out.append(m)
            if keep_untagged and not any(m.get("digest") == digest for m in out):
                out.append({k: v for k, v in img.descriptor.items() if k != "annotations"})
            return out

        self.layout.update_index(change)
        if last and not keep_untagged:
            done.append(f"Deleted: {img.id}")
            self.gc()
        return done

    def containers_using(self, image_id: str) -> list[str]:
        """IDs of containers (any state) whose ``container.json`` names this image ID."""
        users = []
        cdir = paths.containers_dir(self.home)
        try:
            entries = list(os.scandir(cdir))
        except OSError:
            return users
        for entry in entries:
            try:
                with open(os.path.join(entry.path, "container.json")) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("Image") == image_id:
                users.append(str(doc.get("Id") or entry.name))
        return users

    def prune(self) -> list[str]:
        """Remove untagged images no container uses; return their manifest digests."""
        used = set()
        for m in self._entries():
            if not (m.get("annotations") or {}).get(REF_NAME):
                try:
                    if self.containers_using(self._image(m).id):
                        used.add(m["digest"])
                except (OSError, ValueError, KeyError):
                    continue
        return self.drop_manifests(
            lambda m: bool((m.get("annotations") or {}).get(REF_NAME)) or m["digest"] in used)

    def drop_manifests(self, keep: Callable[[dict], bool]) -> list[str]:
        """Take out of ``index.json`` every manifest ``keep`` says no to (in one locked
        update), then collect the garbage; return the digests taken out."""
        gone: list[str] = []

        def change(manifests: list[dict]) -> list[dict]:
            kept = []
            for m in manifests:
                if keep(m):
                    kept.append(m)
                else:
                    gone.append(m["digest"])
            return kept

        self.layout.update_index(change)
        if gone:
            self.gc()
        return gone

    def gc(self) -> None:
        """Delete unreferenced blobs and unpacked layers no image (or mount) uses."""
        self.layout.gc()
        if not self.layers_root.is_dir():
            return
        wanted: set[str] = set()
        for m in self._entries():
            try:
                wanted.update(d[7:] for d in self._image(m).diff_ids)
            except (OSError, ValueError, KeyError):
                continue
        used = self._in_use()
        for entry in os.scandir(self.layers_root):
            if is_temporary(entry.name):  # an unpack killed half-way (kill -9, power loss)
                if abandoned(entry.path):  # its writer's lock is free: see tempfiles.py
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            if len(entry.name) == 64 and HEX.match(entry.name) and entry.name not in wanted | used:
                remove_tree(entry.path)  # rootless: its files may belong to the user's subordinate ids
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._sizes / entry.name)
