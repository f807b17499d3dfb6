"""``labkit system df``: what the images, the containers and the build cache take on disk.

Docker's columns: TOTAL, ACTIVE (in use by a container), SIZE and RECLAIMABLE (what removing
the unused ones would free). A layer shared by several images counts once; sizes are the
files' apparent sizes, uncompressed for layers, as ``docker system df`` shows them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable


@dataclass
class Usage:
    kind: str  # "images" | "containers" | "build-cache"
    total: int
    active: int
    size: int
    reclaimable: int


def tree_size(path: Path | str) -> int:
    """Apparent size of the files under ``path`` (symlinks not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def disk_usage(store, containers: Iterable[tuple[str, bool, Path]]) -> list[Usage]:
    """``containers``: ``(image id, running, upper dir)`` of every container of this home."""
    containers = list(containers)
    used_ids = {image_id for image_id, _running, _upper in containers}
    layer_size: dict[str, int] = {}
    layer_users: dict[str, set[str]] = {}
    images = store.images_by_id()
    for image_id, imgs in images.items():
        img = imgs[0]
        try:
            for desc, diff_id in zip(img.layers, img.diff_ids):
                layer_size[diff_id] = store.uncompressed_size(desc, diff_id)
                layer_users.setdefault(diff_id, set()).add(image_id)
        except (OSError, ValueError, KeyError):
            continue
    reclaim_layers = sum(size for diff_id, size in layer_size.items() if not (layer_users[diff_id] & used_ids))
    rows = [Usage("images", len(images), len(set(images) & used_ids), sum(layer_size.values()), reclaim_layers)]
    sizes = [(running, tree_size(upper)) for _image_id, running, upper in containers]
    rows.append(Usage("containers", len(sizes), sum(1 for r, _s in sizes if r), sum(s for _r, s in sizes),
                      sum(s for r, s in sizes if not r)))
    referenced = store.layout.referenced()
    cache = []
    if store.layout.blobs.is_dir():
        for entry in os.scandir(store.layout.blobs):
            if len(entry.name) == 64 and "sha256:" + entry.name not in referenced:
                cache.append(entry.stat().st_size)
    rows.append(Usage("build-cache", len(cache), 0, sum(cache), sum(cache)))
    return rows
