"""Images: the OCI layout store, layers, the busybox base image, save/load.

Nothing is imported eagerly (the CLI must start fast): ``labkit.images.Store``
and ``labkit.images.Image`` load :mod:`labkit.images.store` on first use.
"""
from __future__ import annotations

__all__ = ["Store", "Image"]


def __getattr__(name: str):
    if name in __all__:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
