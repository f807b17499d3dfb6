"""The build cache: a step's key chains the previous key with what the step saw.

A step's key is the SHA-256 of the previous step's key, the instruction as
shown (after ``ARG``/``ENV`` expansion) and what else decides its result: the
copied files' content for ``COPY``/``ADD``, the build args and the network for
``RUN``. A hit reuses the layer the step wrote before.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path


def chain_key(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


class BuildCache:
    """``$LABKIT_HOME/build-cache/<key>.json``: what a step produced."""

    def __init__(self, home: Path, layout) -> None:
        self.dir = home / "build-cache"
        self.layout = layout

    def get(self, key: str) -> dict | None:
        try:
            entry = json.loads((self.dir / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        layer = entry.get("layer")
        if layer and not self.layout.has_blob(layer["digest"]):
            return None  # pruned since
        return entry

    def put(self, key: str, entry: dict) -> None:
        from ..layout import atomic_write

        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / f"{key}.json", json.dumps(entry, sort_keys=True).encode())

    def clear(self) -> int:
        n = 0
        if self.dir.is_dir():
            for p in self.dir.glob("*.json"):
                p.unlink(missing_ok=True)
                n += 1
        return n


