"""Temporary files and directories of the store that say whether their writer is still alive.

A blob being written, a blob being downloaded (``.part``), a layer being unpacked and a
build's scratch directory all live next to their final place until a rename. If the
process writing them is killed (``kill -9``, an out-of-memory kill, a power cut) they stay.
Their age cannot tell a dead writer from a slow one, so each writer holds an exclusive
``flock`` on its temporary file or directory for as long as it writes: the kernel drops
the lock when the process dies, whatever killed it. :func:`abandoned` tries to take that
lock; if it can, nobody is writing and the file may go.

The lock is taken before the file gets its ``.tmp-`` name (created as ``.new-``, locked,
renamed): a checker never sees a ``.tmp-`` file in the moment between its creation and
its lock. A ``.new-`` file is abandoned only when it is older than an hour. At the other
end, a writer renames its file to the final name *before* it closes it (and so drops the
lock), for the same reason.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from ..errors import LabkitError
from ..i18n import _

TEMP_PREFIX = ".tmp-"
NEW_PREFIX = ".new-"
PART_SUFFIX = ".part"
SCRATCH_PREFIX = "build-"  # $LABKIT_HOME/tmp/build-*: a build's scratch directory
BUILD_CONTAINER_PREFIX = "labkit-build-"  # + the scratch's suffix + a random part
SCRATCH_ANNOTATION = "org.labkit.build.scratch"  # on a RUN step's temporary image: its build's scratch
STALE_SECONDS = 3600  # a ``.new-`` file this old lost its writer between create and lock


def _locked_name(staging: str, prefix: str, suffix: str) -> str:
    directory, name = os.path.split(staging)
    return os.path.join(directory, prefix + name[len(NEW_PREFIX):] + suffix)


def temp_file(directory: Path | str, prefix: str = TEMP_PREFIX, suffix: str = "") -> tuple[int, str]:
    """Create a temporary file in ``directory``, locked by this process; return ``(fd, path)``.

    The lock lasts as long as ``fd`` (and any copy of it) is open.
    """
    fd, staging = tempfile.mkstemp(prefix=NEW_PREFIX, dir=directory)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = _locked_name(staging, prefix, suffix)
        os.rename(staging, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise
    return fd, path


def temp_dir(directory: Path | str, prefix: str = TEMP_PREFIX) -> tuple[int, str]:
    """Create a temporary directory in ``directory``, locked by this process; return ``(fd, path)``."""
    staging = tempfile.mkdtemp(prefix=NEW_PREFIX, dir=directory)
    fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = _locked_name(staging, prefix, "")
        os.rename(staging, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(staging)
        raise
    return fd, path


def build_container_name(scratch: Path) -> str:
    """The name of a RUN step's container: it says which build (scratch directory) runs it."""
    return f"{BUILD_CONTAINER_PREFIX}{scratch.name[len(SCRATCH_PREFIX):]}-{os.urandom(3).hex()}"


def build_is_gone(home: Path, container_name: str) -> bool:
    """True for a RUN step's container whose build was killed (its scratch is abandoned)."""
    if not container_name.startswith(BUILD_CONTAINER_PREFIX):
        return False
    suffix = container_name[len(BUILD_CONTAINER_PREFIX):].rsplit("-", 1)[0]
    scratch = home / "tmp" / (SCRATCH_PREFIX + suffix)
    return not scratch.exists() or abandoned(scratch)


def is_temporary(name: str) -> bool:
    """A name only a writer at work (or a dead one) uses."""
    return name.startswith((TEMP_PREFIX, NEW_PREFIX)) or name.endswith(PART_SUFFIX)


def abandoned(path: Path | str) -> bool:
    """True when no live process holds the lock of this temporary file or directory."""
    path = str(path)
    if os.path.basename(path).startswith(NEW_PREFIX):
        try:
            return os.lstat(path).st_mtime < time.time() - STALE_SECONDS
        except FileNotFoundError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return False  # finished (renamed) or removed meanwhile
    except OSError:
        return True  # a symlink or something unreadable: nobody writes through it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


class DiskFull(LabkitError):
    """The file system under ``$LABKIT_HOME`` (or the file asked for) has no space left."""


@contextlib.contextmanager
def disk_full_is_an_error(what: str) -> Iterator[None]:
    """Turn ENOSPC/EDQUOT while ``what`` is written into a clear :class:`DiskFull` error.

    The writers under it already removed their temporary files (each ``except`` does), so
    nothing half-written stays behind or is referenced by ``index.json``.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(_("no space left on disk while writing %(what)s: free some space "
                         "(labkit prune, labkit rmi, labkit system check --fix) and try again")
                       % {"what": what}) from exc
