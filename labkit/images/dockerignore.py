"""``.dockerignore``: which files of the build context a build may see.

Same rules as Docker: one pattern per line, ``#`` starts a comment, a leading
``!`` re-includes what an earlier pattern excluded, the last matching pattern
wins, ``*`` and ``?`` do not cross ``/``, ``**`` matches any number of
directories, and a pattern that matches a directory excludes everything in it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path


def _translate(pattern: str) -> re.Pattern[str]:
    """Turn one cleaned pattern into a regular expression on '/'-paths."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "**/" = zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class DockerIgnore:
    """The parsed patterns of one ``.dockerignore`` file."""

    def __init__(self, lines: list[str] | None = None) -> None:
        self.rules: list[tuple[bool, re.Pattern[str], str]] = []
        for raw in lines or []:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line in (".", ""):
                continue
            self.rules.append((negate, _translate(line), line))

    @classmethod
    def load(cls, context: Path) -> "DockerIgnore":
        path = Path(context) / ".dockerignore"
        if not path.is_file():
            return cls([])
        return cls(path.read_text(encoding="utf-8", errors="replace").splitlines())

    def excluded(self, rel: str) -> bool:
        """True if the context path ``rel`` ('a/b.txt', no leading '/') is ignored."""
        if not self.rules:
            return False
        rel = rel.strip("/")
        parts = rel.split("/")
        prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
        result = False
        for negate, rx, _pat in self.rules:
            # a pattern matches the path itself or one of its parent directories
            if any(rx.match(p) for p in prefixes):
                result = not negate
        return result

    def __bool__(self) -> bool:
        return bool(self.rules)
