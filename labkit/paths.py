"""Where labkit keeps its state: ``$LABKIT_HOME`` (``/var/lib/labkit`` for root)."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The state directory: images, layers, containers and the engine socket."""
    env = os.environ.get("LABKIT_HOME")
    if env:
        return Path(env).absolute()
    if os.geteuid() == 0:
        return Path("/var/lib/labkit")
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(xdg) / "labkit"


def images_dir(root: Path | None = None) -> Path:
    return (root or home()) / "images"


def layers_dir(root: Path | None = None) -> Path:
    return (root or home()) / "layers"


def containers_dir(root: Path | None = None) -> Path:
    return (root or home()) / "containers"


def engine_socket(root: Path | None = None) -> Path:
    return (root or home()) / "engine.sock"
