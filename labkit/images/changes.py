"""What changed: ``history`` of an image, ``diff`` and ``commit`` of a container, ``image prune``.

A container's changes are all in its OverlayFS *upper* directory: a new or
modified file is there in full (copy-up), a deleted one is a whiteout (a
character device 0/0) and a directory whose old content was thrown away is
*opaque* (``trusted.overlay.opaque=y``). Comparing the upper directory with
the image's layers (the lower directories) tells ``A`` (added) from ``C``
(changed), exactly as ``docker diff`` prints them.
"""
from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _
from ..kernel.userns import as_root
from .layers import is_opaque, is_whiteout
from .rootview import RootView


# --------------------------------------------------------------------------- history
@dataclass
class HistoryRow:
    id: str            # the layer's digest, or "<missing>" for config-only steps
    created: str
    created_by: str
    size: int
    comment: str
    empty: bool


def _content_size(store, desc: dict, diff_id: str) -> int:
    """Bytes of the files a layer holds (what ``docker history`` shows), not of its tarball."""
    d = store.layer_dir(diff_id)
    if not d.is_dir():
        return store.uncompressed_size(desc, diff_id)
    total = 0
    for root, _dirs, files in os.walk(d):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
            elif stat.S_ISLNK(st.st_mode):
                total += len(os.readlink(os.path.join(root, name)))
    return total


def history(ref: str, store=None) -> list[HistoryRow]:
    """Steps of the image ``ref``, newest first (``docker history``)."""
    from .store import Store

    store = store or Store()
    img = store.resolve(ref)
    layers = img.layers
    diff_ids = img.diff_ids
    rows: list[HistoryRow] = []
    i = 0
    entries = img.config.get("history") or []
    if not entries:  # images with no history: one row per layer
        entries = [{"created_by": "", "created": img.config.get("created", "")} for _ in layers]
    for entry in entries:
        empty = bool(entry.get("empty_layer"))
        size = 0
        ident = "<missing>"
        if not empty and i < len(layers):
            size = _content_size(store, layers[i], diff_ids[i])
            ident = layers[i]["digest"]
            i += 1
        rows.append(HistoryRow(ident, entry.get("created", ""), entry.get("created_by", ""),
                               size, entry.get("comment", ""), empty))
    rows.reverse()
    if rows:
        rows[0].id = img.id
    return rows


# --------------------------------------------------------------------------- diff
def _container(ref):
    import labkit.api as api

    return ref if hasattr(ref, "upper_dir") else api.get(ref)


def _image_of(container, store):
    data = container.inspect()
    for ref in (data.get("Image"), data.get("ImageRef")):
        if ref:
            img = store.find(ref)
            if img is not None:
                return img
    return store.resolve(data.get("ImageRef") or data.get("Image"))


def diff_dirs(upper: Path | str, layer_dirs: list[Path]) -> list[tuple[str, str]]:
    """``[(kind, path)]`` with kind ``A``, ``C`` or ``D``, sorted by path."""
    view = RootView(layer_dirs)
    out: list[tuple[str, str]] = []
    upper = os.fspath(upper)

    def walk(rel: str) -> None:
        host = os.path.join(upper, rel) if rel else upper
        try:
            names = sorted(os.listdir(host))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            r = f"{rel}/{name}" if rel else name
            p = os.path.join(upper, r)
            st = os.lstat(p)
            path = "/" + r
            if is_whiteout(st):
                if view.lookup(path, follow=False) is not None or not layer_dirs:
                    out.append(("D", path))
                continue
            lower = view.lookup(path, follow=False)
            if lower is None:
                out.append(("A", path))
                if stat.S_ISDIR(st.st_mode):
                    walk_added(r)
                continue
            out.append(("C", path))
            if stat.S_ISDIR(st.st_mode):
                if lower.is_dir and is_opaque(p):
                    present = set(os.listdir(p))
                    for child in view.listdir(lower):
                        if child not in present:
                            out.append(("D", f"{path}/{child}"))
                    walk_opaque(r)
                elif lower.is_dir:
                    walk(r)
                else:
                    walk_added(r)

    def walk_added(rel: str) -> None:
        for root, dnames, fnames in os.walk(os.path.join(upper, rel)):
            dnames.sort()
            for n in sorted(dnames + fnames):
                full = os.path.join(root, n)
                st = os.lstat(full)
                if is_whiteout(st):
                    continue
                out.append(("A", "/" + os.path.relpath(full, upper)))

    def walk_opaque(rel: str) -> None:
        # under an opaque dir only this layer counts: names the lower had are "changed"
        base = os.path.join(upper, rel)
        for name in sorted(os.listdir(base)):
            r = f"{rel}/{name}"
            full = os.path.join(upper, r)
            st = os.lstat(full)
            if is_whiteout(st):
                continue
            kind = "C" if view.lookup("/" + r, follow=False) is not None else "A"
            out.append((kind, "/" + r))
            if stat.S_ISDIR(st.st_mode):
                walk_added(r)

    walk("")
    out.sort(key=lambda x: x[1])
    return out


def diff(container, store=None) -> list[tuple[str, str]]:
    """``docker diff``: the container's changes against its image."""
    from .store import Store

    store = store or Store()
    ctr = _container(container)
    img = _image_of(ctr, store)
    # rootless: read in the engine's user namespace (the upper dir holds its subordinate ids' files)
    return [tuple(change) for change in as_root(diff_dirs, ctr.upper_dir, img.layer_dirs())]


# --------------------------------------------------------------------------- commit
def commit(container, ref: str | None = None, *, message: str = "", author: str = "",
           store=None, pause: bool = True):
    """``docker commit``: a new image = the container's image + its upper dir as one layer."""
    import copy

    from .store import Store

    store = store or Store()
    ctr = _container(container)
    data = ctr.inspect()
    img = _image_of(ctr, store)
    upper = Path(ctr.upper_dir)
    if not upper.is_dir():
        raise LabkitError(_("the container %(name)s has no filesystem left to commit")
                          % {"name": data.get("Name", ctr.id[:12])})
    frozen = False
    if pause and data.get("State", {}).get("Running"):
        frozen = _freeze(ctr, True)
    try:
        with store.layout.writing():
            desc = as_root(_layer_of, store, upper)  # rootless: the owners as the image sees them
            cfg = copy.deepcopy(img.config)
            cfg.setdefault("config", {})
            ccfg = data.get("Config") or {}
            image_cmd = (cfg["config"].get("Entrypoint") or []) + (cfg["config"].get("Cmd") or [])
            if ccfg.get("Cmd") and ccfg["Cmd"] != image_cmd and not cfg["config"].get("Entrypoint"):
                cfg["config"]["Cmd"] = ccfg["Cmd"]
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            cfg["created"] = now
            if author:
                cfg["author"] = author
            cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(desc["diff_id"])
            entry = {"created": now, "created_by": "labkit commit " + " ".join(ccfg.get("Cmd") or [])}
            if message:
                entry["comment"] = message
            if author:
                entry["author"] = author
            cfg.setdefault("history", []).append(entry)
            return store.write_image(cfg, [*img.layers, desc], ref)
    finally:
        if frozen:
            _freeze(ctr, False)


def _layer_of(store, upper: Path) -> dict:
    return store.add_layer_from_dir(upper, owner=None, mtime=None)


def _freeze(ctr, on: bool) -> bool:
    """Pause the container's processes with the cgroup freezer while its files are read."""
    try:
        cg = ctr.cgroup
        for path in cg.paths():
            for name, value in (("cgroup.freeze", "1" if on else "0"),
                                ("freezer.state", "FROZEN" if on else "THAWED")):
                f = Path(path) / name
                if f.exists():
                    f.write_text(value)
                    return True
        # v1 freezer may be its own hierarchy
        base = Path("/sys/fs/cgroup/freezer") / cg.name
        if base.is_dir():
            (base / "freezer.state").write_text("FROZEN" if on else "THAWED")
            return True
    except (OSError, LabkitError, AttributeError):
        pass
    return False


# --------------------------------------------------------------------------- prune
def prune_images(all: bool = False, store=None) -> list[str]:
    """``docker image prune``: remove untagged images (``all``: every image no container uses).

    Returns the removed manifest digests; also forgets build-cache entries whose layers are gone.
    """
    from .store import Store

    store = store or Store()
    gone = list(dict.fromkeys(store.prune()))
    if all:
        used: set[str] = set()
        try:
            import labkit.api as api

            for c in api.containers(all=True):
                used.add(c.attrs.get("Image", ""))
        except (LabkitError, OSError):
            pass

        def in_use(m: dict) -> bool:
            try:
                return store.layout.read_json(m["digest"])["config"]["digest"] in used
            except (OSError, ValueError, KeyError):
                return "" in used

        removed = store.drop_manifests(in_use)
        gone += [d for d in dict.fromkeys(removed) if d not in gone]
    cache = store.home / "build-cache"
    if cache.is_dir():
        import json

        for p in cache.glob("*.json"):
            try:
                layer = json.loads(p.read_text()).get("layer")
            except (OSError, ValueError):
                layer = None
            if layer and not store.layout.has_blob(layer["digest"]):
                p.unlink(missing_ok=True)
    return gone
