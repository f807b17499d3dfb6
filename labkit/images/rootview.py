"""Read the merged view of a stack of unpacked layers without mounting it.

OverlayFS merges ``lowerdir``s: the top layer wins, a whiteout (character
device 0/0) hides a name of the layers below, and an opaque directory
(``trusted.overlay.opaque=y``) hides everything below it. The builder needs
that view to resolve ``COPY`` destinations (``/bin`` may be a symlink to
``usr/bin``), to read ``COPY --from=stage`` sources, and ``diff`` needs it to
tell an added file from a changed one. This module reads it with ``lstat``
only, never following a link out of the stack.
"""
from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .layers import is_opaque, is_whiteout


@dataclass
class Node:
    """A merged entry: a directory (several layer dirs, top first) or one file."""

    path: str                 # the path in the image, "/a/b"
    st: os.stat_result
    sources: list[str] = field(default_factory=list)  # host paths, top first (dirs: all merged)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.st.st_mode)

    @property
    def host_path(self) -> str:
        return self.sources[0]


class RootView:
    """The merged tree of ``layer_dirs`` (bottom layer first, as ``Image.layer_dirs()``)."""

    def __init__(self, layer_dirs: list[Path | str]) -> None:
        self.tops = [os.fspath(d) for d in reversed(layer_dirs)]

    def root(self) -> Node | None:
        if not self.tops:
            return None
        return Node("/", os.lstat(self.tops[0]), list(self.tops))

    def child(self, parent: Node, name: str) -> Node | None:
        """The entry ``name`` of the merged directory ``parent`` (no link followed)."""
        found: Node | None = None
        for d in parent.sources:
            p = os.path.join(d, name)
            try:
                st = os.lstat(p)
            except (FileNotFoundError, NotADirectoryError):
                if is_opaque(d) and d is not parent.sources[-1]:
                    pass
                continue
            if is_whiteout(st):
                break
            if found is None:
                found = Node(posixpath.join(parent.path, name), st, [p])
                if not stat.S_ISDIR(st.st_mode) or is_opaque(p):
                    break
            else:
                if not stat.S_ISDIR(st.st_mode):
                    break  # a lower non-directory is hidden by the upper directory
                found.sources.append(p)
                if is_opaque(p):
                    break
        return found

    def _truncate(self, node: Node) -> Node:
        return node

    def listdir(self, node: Node) -> list[str]:
        """Names in a merged directory, sorted."""
        names: set[str] = set()
        hidden: set[str] = set()
        for d in node.sources:
            try:
                entries = list(os.scandir(d))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for e in entries:
                if e.name in hidden or e.name in names:
                    continue
                st = e.stat(follow_symlinks=False)
                if is_whiteout(st):
                    hidden.add(e.name)
                else:
                    names.add(e.name)
        return sorted(names)

    def lookup(self, path: str, follow: bool = True, _depth: int = 0) -> Node | None:
        """Resolve ``path`` in the image; symlinks are followed inside the image.

        With ``follow=False`` a final symlink is returned as itself.
        """
        node = self.root()
        if node is None:
            return None
        stack = [node]
        parts = [p for p in path.split("/") if p and p != "."]
        i = 0
        while i < len(parts):
            part = parts[i]
            i += 1
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            cur = stack[-1]
            if not cur.is_dir:
                return None
            nxt = self.child(cur, part)
            if nxt is None:
                return None
            if nxt.is_link and (follow or i < len(parts)):
                if _depth > 40:
                    return None
                target = os.readlink(nxt.host_path)
                _depth += 1
                if target.startswith("/"):
                    stack = [stack[0]]
                parts = [p for p in target.split("/") if p and p != "."] + parts[i:]
                i = 0
                continue
            stack.append(nxt)
        node = stack[-1]
        # the path is the resolved one
        return node

    def resolve_path(self, path: str) -> str:
        """``path`` with every symlink in its *parent* directories resolved (for writing into).

        The last component is kept as is; missing components are kept literally.
        """
        parts = [p for p in path.split("/") if p and p != "."]
        resolved: list[str] = []
        depth = 0
        i = 0
        while i < len(parts):
            part = parts[i]
            i += 1
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            if i == len(parts):
                resolved.append(part)
                break
            node = self.lookup("/" + "/".join(resolved + [part]), follow=False)
            if node is not None and node.is_link and depth < 40:
                depth += 1
                target = os.readlink(node.host_path)
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p and p != "."] + parts[i:]
                i = 0
                continue
            resolved.append(part)
        return "/" + "/".join(resolved)

    def walk(self, node: Node):
        """Yield (relative path, Node) under a merged directory, sorted, depth first."""
        for name in self.listdir(node):
            child = self.child(node, name)
            if child is None:
                continue
            rel = name
            yield rel, child
            if child.is_dir:
                for sub, n in self.walk(child):
                    yield f"{rel}/{sub}", n
