"""The init layer: empty ``/etc/hostname``, ``/etc/hosts`` and ``/etc/resolv.conf`` above the image.

The engine bind-mounts a container's own copies of these three files (its name, its peers,
its resolvers). A bind mount needs a file to mount on; made in the merged root, that file
would land in the container's upper directory, and ``labkit diff`` and ``commit`` would
show files the container never wrote. Docker keeps them in an "-init" layer between the image
and the container's layer; here that layer is one read-only directory per home, the same for
every container (its content never changes), as the topmost lowerdir.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

FILES = ("hostname", "hosts", "resolv.conf")


def init_layer(home: Path) -> str:
    """``$LABKIT_HOME/init``, made once (whole or absent, even if the engine is killed)."""
    final = Path(home) / "init"
    if (final / "etc" / FILES[-1]).is_file():
        return str(final)
    tmp = Path(home) / f".init-{secrets.token_hex(8)}"
    try:
        (tmp / "etc").mkdir(parents=True, mode=0o755)
        os.chmod(tmp, 0o755)
        for name in FILES:
            (tmp / "etc" / name).touch(mode=0o644)
        try:
            os.rename(tmp, final)
        except OSError:  # another start made it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)
