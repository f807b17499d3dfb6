"""COPY and ADD: sources from the context or a stage become sorted tar entries.

The files are written straight into a tar (owner 0:0 unless ``--chown``,
mtime 0) placed at the destination, which is resolved in the image so far
(``/bin`` may be a link to ``usr/bin``). The cache key includes the content
of every entry, so changing a copied file invalidates the step.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import LabkitError
from ...i18n import _
from ..dockerfile import DockerfileError, Instruction, expand_word
from .cache import chain_key
from .state import State, note_input

if TYPE_CHECKING:
    from .builder import Builder


def copy_step(b: Builder, state: State, instr: Instruction, add: bool = False) -> None:
    from .. import layers

    # --link changes only how Docker stores the layer; the content is the same here
    form = instr.json_list()
    try:
        args = form if form is not None else b.words(state, instr)
        if form is not None:
            env = state.expand_env()
            args = [expand_word(a, env) for a in args]
    except ValueError as exc:
        raise instr.error(str(exc)) from None
    if len(args) < 2:
        raise instr.error(_("needs at least a source and a destination"))
    *srcs, dest = args
    shown = f"{instr.cmd} " + " ".join(f"--{k}={v}" for k, v in sorted(instr.flags.items())) \
        + (" " if instr.flags else "") + " ".join(args)
    b.announce(instr, shown)
    b.ensure_dirs(state)
    workdir = state.cfg.get("WorkingDir") or "/"
    if not dest.startswith("/"):
        dest_abs = posixpath.join(workdir, dest)
    else:
        dest_abs = dest
    dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    owner = _chown(b, state, instr)
    chmod = None
    if instr.flags.get("chmod"):
        try:
            chmod = int(instr.flags["chmod"], 8)
        except ValueError:
            raise instr.error(_("invalid --chmod: %(v)s") % {"v": instr.flags["chmod"]}) from None
    source_view = None
    from_ref = instr.flags.get("from")
    if from_ref:
        source_view = _source_stage(b, state, instr, from_ref)
    # collect the sources: (name in the layer relative to dest, kind, data)
    # (path under dest, "file"|"dir"|"link"|"tar", source, came from a directory source)
    items: list[tuple[str, str, object, bool]] = []
    multi = len(srcs) > 1
    for src in srcs:
        if add and (src.startswith("http://") or src.startswith("https://") or src.startswith("git@")):
            raise instr.error(_("ADD from a URL is not supported by labkit (no network in the course); "
                                "download the file into the context and use COPY"))
        matched = _match_sources(b, instr, src, source_view)
        if len(matched) > 1 or any(c in src for c in "*?["):
            multi = multi or len(matched) > 1
        for rel, node in matched:
            items.extend(_source_items(b, instr, rel, node, source_view, add))
    if multi and not dest_is_dir:
        raise instr.error(_("when copying several sources the destination must end with /"))
    view = b.view(state)
    # the destination directory, with links in the image resolved
    real_dest = view.resolve_path(dest_abs) if view else posixpath.normpath(dest_abs)
    if view is not None and not dest_is_dir:
        node = view.lookup(real_dest)
        if node is not None and node.is_dir:
            dest_is_dir = True
    entries: list = []
    content = hashlib.sha256()
    seen_dirs: set[str] = set()
    for sub, kind, source, from_dir in items:
        if kind == "tar":
            # ADD: a local archive, unpacked safely into the destination directory
            tmpdir = Path(tempfile.mkdtemp(dir=b.tmp))
            try:
                layers.extract(source, tmpdir)
            except layers.UnsafeLayer as exc:
                raise instr.error(_("unsafe archive %(name)s refused: %(reason)s")
                                  % {"name": sub, "reason": exc}) from None
            base = real_dest.strip("/")
            # the archive's owners and times are kept, unless --chown says otherwise (as Docker)
            keep = None if "chown" not in instr.flags else owner
            for e in layers.dir_entries(tmpdir, owner=keep, mtime=None, whiteouts=False, prefix=base):
                entries.append(e)
                content.update(_entry_fingerprint(e))
            continue
        if from_dir:
            target = posixpath.join(real_dest, sub) if sub else real_dest
        elif dest_is_dir:
            target = posixpath.join(real_dest, sub)
        else:
            target = real_dest
        name = target.strip("/")
        if not name:
            continue
        e = _entry(b, name, kind, source, owner, chmod)
        if e.info.isdir():
            if name in seen_dirs:
                continue
            seen_dirs.add(name)
        entries.append(e)
        content.update(_entry_fingerprint(e))
    # parent directories, with the image's metadata when they exist
    names = {e.info.name for e in entries}
    parents: dict[str, object] = {}
    for e in list(entries):
        for p in _parents_of(e.info.name):
            if p not in names and p not in parents:
                parents[p] = _parent_entry(b, view, p)
    entries.extend(parents.values())
    entries.sort(key=lambda e: e.info.name.encode())
    # drop duplicates (last wins, as a later source overwrites an earlier one)
    uniq: dict[str, object] = {}
    for e in entries:
        uniq[e.info.name] = e
    entries = sorted(uniq.values(), key=lambda e: e.info.name.encode())
    key = chain_key(state.key, shown, content.hexdigest())
    if b.use_cache(state, key, shown):
        return
    b.write_layer(state, key, shown, entries)

def _chown(b: Builder, state: State, instr: Instruction) -> tuple[int, int] | None:
    spec = instr.flags.get("chown")
    if not spec:
        return (0, 0)
    try:
        spec = expand_word(spec, state.expand_env())
    except ValueError as exc:
        raise instr.error(str(exc)) from None
    user, _sep, group = spec.partition(":")
    uid = _lookup_id(b, state, instr, user, "passwd")
    gid = _lookup_id(b, state, instr, group, "group") if group else uid
    if not group and not user.isdigit():
        gid = _primary_gid(b, state, user)
    return (uid, gid)

def _read_image_file(b: Builder, state: State, path: str) -> str:
    view = b.view(state)
    node = view.lookup(path) if view else None
    if node is None or node.is_dir:
        return ""
    try:
        return Path(node.host_path).read_text(errors="replace")
    except OSError:
        return ""

def _lookup_id(b: Builder, state: State, instr: Instruction, name: str, db: str) -> int:
    if name.isdigit():
        return int(name)
    for line in _read_image_file(b, state, f"/etc/{db}").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
            return int(fields[2])
    raise instr.error(_("unknown user or group %(name)s in the image's /etc/%(db)s") % {"name": name, "db": db})

def _primary_gid(b: Builder, state: State, user: str) -> int:
    for line in _read_image_file(b, state, "/etc/passwd").splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == user and fields[3].isdigit():
            return int(fields[3])
    return 0

def _source_stage(b: Builder, state: State, instr: Instruction, ref: str):
    from ..rootview import RootView

    key = ref.lower()
    if key in b.stages:
        src = b.stages[key]
        b.ensure_dirs(src)
        return RootView(src.layer_dirs)
    try:
        img = b.base_image(ref, instr)
    except DockerfileError:
        raise instr.error(_("--from=%(ref)s: no such stage or image") % {"ref": ref}) from None
    return RootView(img.layer_dirs())

def _match_sources(b: Builder, instr: Instruction, src: str, view) -> list[tuple[str, object]]:
    """Sources as (relative name, host path or Node); wildcards expanded; context kept closed."""
    if view is not None:
        node = view.lookup(src if src.startswith("/") else "/" + src)
        if node is None:
            if any(c in src for c in "*?["):
                parent = view.lookup(posixpath.dirname("/" + src.lstrip("/")))
                pat = posixpath.basename(src)
                out = []
                if parent is not None and parent.is_dir:
                    for name in view.listdir(parent):
                        if fnmatch.fnmatchcase(name, pat):
                            out.append((name, view.child(parent, name)))
                if out:
                    return out
            raise instr.error(_("%(src)s: not found in the source stage") % {"src": src})
        return [(posixpath.basename(src.rstrip("/")) or "", node)]
    rel = posixpath.normpath(src.lstrip("/"))
    if rel == "..":
        rel = "."
    if rel.startswith("../"):
        raise instr.error(_("%(src)s: outside the build context") % {"src": src})
    if any(c in rel for c in "*?["):
        out = []
        for path in sorted(_context_files(b, dirs=True)):
            if fnmatch.fnmatchcase(path, rel) and "/" not in path[len(posixpath.dirname(rel)) + 1 if posixpath.dirname(rel) else 0:]:
                out.append((posixpath.basename(path), b.context / path))
        if not out:
            raise instr.error(_("no source files were specified (%(src)s matches nothing in the context)")
                              % {"src": src})
        return out
    path = _in_context(b, instr, rel)
    if rel != "." and b.ignore.excluded(rel):
        raise instr.error(_("%(src)s: excluded by .dockerignore") % {"src": src})
    if not os.path.lexists(path):
        raise instr.error(_("%(src)s: not found in the build context") % {"src": src})
    return [(posixpath.basename(rel) if rel != "." else "", path)]

def _in_context(b: Builder, instr: Instruction, rel: str) -> Path:
    """The host path of ``rel``; a symlink at the top is followed but must stay in the context."""
    path = b.context / rel if rel != "." else b.context
    real = Path(os.path.realpath(path))
    if real != b.context and b.context not in real.parents:
        raise instr.error(_("%(src)s: outside the build context") % {"src": rel})
    return real

def _context_files(b: Builder, dirs: bool = False) -> list[str]:
    out = []
    for root, dnames, fnames in os.walk(b.context):
        rel_root = os.path.relpath(root, b.context)
        rel_root = "" if rel_root == "." else rel_root
        for n in (fnames + (dnames if dirs else [])):
            rel = f"{rel_root}/{n}" if rel_root else n
            if not b.ignore.excluded(rel):
                out.append(rel)
    return out

def _source_items(b: Builder, instr: Instruction, name: str, source, view, add: bool) -> list[tuple]:
    """Expand one source into items relative to the destination."""
    from ..rootview import Node

    items: list[tuple[str, str, object]] = []
    if isinstance(source, Node):
        if source.is_dir:
            for rel, node in view.walk(source):
                items.append((rel, _kind(node.st), node.host_path, True))
            return items or [("", "dir", source.host_path, True)]
        return [(name, _kind(source.st), source.host_path, False)]
    path = Path(source)
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        base_rel = os.path.relpath(path, b.context)
        base_rel = "" if base_rel == "." else base_rel
        for root, dnames, fnames in os.walk(path):
            dnames.sort()
            for n in sorted(dnames + fnames):
                full = Path(root) / n
                rel_ctx = os.path.relpath(full, b.context)
                if b.ignore.excluded(rel_ctx):
                    continue
                items.append((os.path.relpath(full, path), _kind(os.lstat(full)), str(full), True))
        return items or [("", "dir", str(path), True)]
    if add and _is_archive(path):
        return [(name, "tar", str(path), True)]
    return [(name, _kind(st), str(path), False)]

def _is_archive(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" \
            or head[:4] == b"\x28\xb5\x2f\xfd":
        return True
    return len(head) == 512 and head[257:262] == b"ustar"

def _kind(st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISLNK(st.st_mode):
        return "link"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "other"

def _entry(b: Builder, name: str, kind: str, source, owner, chmod):
    from .. import layers

    uid, gid = owner or (0, 0)
    st = os.lstat(source)
    if str(source).startswith(str(b.context) + os.sep) or str(source) == str(b.context):
        note_input(st.st_mtime)  # a file of the context: an input that dates the image
    if kind == "dir":
        return layers.dir_entry(name, chmod if chmod is not None else stat.S_IMODE(st.st_mode), uid, gid)
    if kind == "link":
        return layers.symlink_entry(name, os.readlink(source), uid, gid)
    if kind == "file":
        ti = tarfile.TarInfo(name)
        ti.type, ti.size = tarfile.REGTYPE, st.st_size
        ti.mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid, ti.mtime = uid, gid, 0
        return layers.Entry(ti, path=str(source))
    raise LabkitError(_("cannot copy %(name)s: not a file, directory or link") % {"name": name})

def _entry_fingerprint(e) -> bytes:
    ti = e.info
    h = hashlib.sha256()
    h.update(f"{ti.name}\0{ti.type!r}\0{ti.mode}\0{ti.uid}\0{ti.gid}\0{ti.linkname}\0{ti.size}\0".encode(
        "utf-8", "surrogateescape"))
    if e.data is not None:
        h.update(e.data)
    elif e.path is not None and ti.type == tarfile.REGTYPE:
        with open(e.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.digest()

def _parents_of(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]

def _parent_entry(b: Builder, view, name: str):
    from .. import layers

    node = view.lookup("/" + name, follow=False) if view else None
    if node is not None and node.is_dir:
        st = node.st
        return layers.dir_entry(name, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return layers.dir_entry(name, 0o755)

def parent_entries(b: Builder, state: State, name: str) -> list:
    view = b.view(state)
    return [_parent_entry(b, view, p) for p in _parents_of(name)]
