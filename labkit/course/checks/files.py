"""Checks on files: a container's overlay upper directory (copies, whiteouts, opaque
directories) and the mount table."""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterable

from labkit.errors import LabkitError
from labkit.i18n import _

from ..verdict import Verdict, fail, number, ok
from .access import find_container


def _in_upper(upper: Path, path: str) -> Path:
    rel = Path(path.lstrip("/"))
    if ".." in rel.parts or not rel.parts:
        raise LabkitError(_("invalid path inside the container: %(path)s") % {"path": path})
    return Path(upper) / rel


def container_upper_dir(name: str) -> tuple[Path | None, Verdict | None]:
    c, missing = find_container(name)
    if missing is not None:
        return None, missing
    return Path(c.upper_dir), None


def upper_has_file(upper: Path, path: str, contains: str | None = None) -> Verdict:
    """``path`` (as seen inside the container) is a regular file in ``upper``."""
    target = _in_upper(upper, path)
    try:
        st = target.lstat()
    except FileNotFoundError:
        return fail(_("%(path)s is not in the upper directory: the container has not "
                      "written it (yet).") % {"path": path})
    if is_whiteout_stat(st):
        return fail(_("%(path)s is a whiteout in the upper directory: it was deleted, "
                      "not written.") % {"path": path})
    if not stat.S_ISREG(st.st_mode):
        return fail(_("%(path)s is in the upper directory but is not a regular file.")
                    % {"path": path})
    if contains is not None:
        text = target.read_bytes().decode("utf-8", "replace")
        if contains not in text:
            return fail(_('%(path)s is in the upper directory but does not contain '
                          '"%(text)s".') % {"path": path, "text": contains})
    return ok(_("%(path)s is in the upper directory: the write landed in the "
                "container's own layer (copy-on-write).") % {"path": path})


def is_whiteout_stat(st: os.stat_result) -> bool:
    """An overlay whiteout is a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def upper_has_whiteout(upper: Path, path: str) -> Verdict:
    """Deleting a file of a lower layer leaves a whiteout in the upper dir."""
    target = _in_upper(upper, path)
    try:
        st = target.lstat()
    except FileNotFoundError:
        return fail(_("There is no whiteout for %(path)s in the upper directory: the "
                      "file was not deleted inside the container.") % {"path": path})
    if is_whiteout_stat(st):
        return ok(_("%(path)s is a whiteout (character device 0/0) in the upper "
                    "directory: the file of the image is hidden, not erased.")
                  % {"path": path})
    return fail(_("%(path)s is in the upper directory, but it is not a whiteout "
                  "(it is a file the container wrote).") % {"path": path})


def upper_has_opaque_dir(upper: Path, path: str) -> Verdict:
    """A directory removed and made again is marked opaque (xattr)."""
    target = _in_upper(upper, path)
    try:
        value = os.getxattr(target, "trusted.overlay.opaque", follow_symlinks=False)
    except OSError:
        value = b""
    if target.is_dir() and value == b"y":
        return ok(_("%(path)s is an opaque directory: the lower layers' contents are "
                    "hidden.") % {"path": path})
    return fail(_("%(path)s is not an opaque directory in the upper directory.")
                % {"path": path})


def _lower_file(lowers: Iterable[Path | str], path: str) -> Path | None:
    """The file ``path`` as the image has it: the topmost lower layer holding it."""
    for lower in lowers:
        candidate = _in_upper(Path(lower), path)
        if candidate.exists() or candidate.is_symlink():
            return candidate if candidate.is_file() else None
    return None


def upper_extends_lower(upper: Path, lowers: Iterable[Path | str], path: str,
                        added: str) -> Verdict:
    """``path`` was copied up whole and then changed: the upper copy holds every line
    of the image's file, plus a line containing ``added``."""
    found = upper_has_file(upper, path, added)
    if not found:
        return found
    original = _lower_file(lowers, path)
    if original is None:
        return fail(_("%(path)s is not in the image: there was nothing to copy up.")
                    % {"path": path})
    old = original.read_bytes().decode("utf-8", "replace").splitlines()
    new = set(_in_upper(upper, path).read_bytes().decode("utf-8", "replace").splitlines())
    lost = [line for line in old if line not in new]
    if lost:
        return fail(_("%(path)s in the upper directory lost %(n)s of the %(total)s lines "
                      "of the image's file (the first: \"%(line)s\"): it was replaced, "
                      "not changed. Append with >>.")
                    % {"path": path, "n": len(lost), "total": len(old), "line": lost[0]})
    return ok(_("%(path)s in the upper directory is the image's whole file (%(total)s "
                "lines) plus the new line: the file was copied up, then changed.")
              % {"path": path, "total": len(old)})


def container_lower_dirs(container: Any) -> list[Path]:
    """The image's layers under a container, topmost first (overlay's lowerdir order)."""
    data = container.inspect()["GraphDriver"]["Data"]
    return [Path(d) for d in str(data.get("LowerDir") or "").split(":") if d]


def container_file_extends_image(name: str, path: str, added: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return upper_extends_lower(Path(c.upper_dir), container_lower_dirs(c), path, added)


def container_has_file(name: str, path: str, contains: str | None = None) -> Verdict:
    upper, missing = container_upper_dir(name)
    return missing if missing is not None else upper_has_file(upper, path, contains)


def container_has_whiteout(name: str, path: str) -> Verdict:
    upper, missing = container_upper_dir(name)
    return missing if missing is not None else upper_has_whiteout(upper, path)


def mount_fstype(mountpoint: str | Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (the last mount wins)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    targets = {str(mountpoint), os.path.realpath(mountpoint)}
    found = None
    for line in mountinfo.splitlines():
        left, _sep, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and _unescape(fields[4]) in targets:
            found = right.split()[0] if right else None
    return found


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def overlay_mounted(mountpoint: str | Path, mountinfo: str | None = None) -> Verdict:
    fstype = mount_fstype(mountpoint, mountinfo)
    if fstype == "overlay":
        return ok(_("An overlay is mounted at %(path)s.") % {"path": mountpoint})
    if fstype is None:
        return fail(_("Nothing is mounted at %(path)s.") % {"path": mountpoint})
    return fail(_("%(path)s is a %(fstype)s mount, not an overlay.")
                % {"path": mountpoint, "fstype": fstype})
