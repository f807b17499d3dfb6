"""Where labkit keeps its state: ``$LABKIT_HOME`` (``/var/lib/labkit`` for root)."""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def home_str() -> str:
    """:func:`home` as a string, for the ``labkit run`` path that does not import pathlib."""
    env = os.environ.get("LABKIT_HOME")
    if env:
        return env if os.path.isabs(env) else os.path.join(os.getcwd(), env)
    if os.geteuid() == 0:
        return "/var/lib/labkit"
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(xdg, "labkit")


def home() -> Path:
    """The state directory: images, layers, containers and the engine socket."""
    from pathlib import Path

    return Path(home_str())


def images_dir(root: Path | None = None) -> Path:
    return (root or home()) / "images"


def layers_dir(root: Path | None = None) -> Path:
    return (root or home()) / "layers"


def containers_dir(root: Path | None = None) -> Path:
    return (root or home()) / "containers"


SOCKET_NAME = "engine.sock"


def engine_socket(root: Path | None = None) -> Path:
    return (root or home()) / SOCKET_NAME


def volumes_dir(root: Path | None = None) -> Path:
    """Named and anonymous volumes: ``volumes/<name>/_data`` (Docker's layout)."""
    return (root or home()) / "volumes"
