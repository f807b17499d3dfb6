"""Deletions in a layer, spelled two ways.

In a tar: an empty file ``.wh.NAME`` deletes ``NAME`` of the layers below;
``.wh..wh..opq`` in a directory hides everything the lower layers had in it
(opaque directory). In OverlayFS: a character device 0/0 named ``NAME``, and
the extended attribute ``trusted.overlay.opaque=y`` on the directory.
"""
from __future__ import annotations

import os
import stat

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"


class UnsafeLayer(ValueError):
    """The tarball tries to write outside its destination, or is malformed."""


def is_whiteout(st: os.stat_result) -> bool:
    """True for an overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | os.PathLike) -> bool:
    """True if the directory carries ``trusted.overlay.opaque=y``."""
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False
