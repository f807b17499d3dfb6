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
USER_OPAQUE_XATTR = "user.overlay.opaque"


class UnsafeLayer(ValueError):
    """The tarball tries to write outside its destination, or is malformed."""


def is_whiteout(st: os.stat_result) -> bool:
    """True for an overlay whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def opaque_xattr() -> str:
    """The opaque attribute this process writes: ``trusted.overlay.opaque``, or in a user
    namespace (a rootless engine, whose overlay mounts use ``userxattr``), which may not
    write ``trusted.*``, ``user.overlay.opaque``."""
    from ...kernel.userns import rootless

    return USER_OPAQUE_XATTR if rootless() else OPAQUE_XATTR


def is_opaque(path: str | os.PathLike) -> bool:
    """True if the directory carries ``trusted.overlay.opaque=y`` (or ``user.overlay.opaque=y``)."""
    for name in (OPAQUE_XATTR, USER_OPAQUE_XATTR):
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False
