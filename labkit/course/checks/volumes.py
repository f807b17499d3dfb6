"""Checks on data outside containers: a volume's files on the host, a container's mounts
(``inspect()["Mounts"]``, Docker's shape)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.errors import NotFound
from labkit.i18n import _

from ..verdict import Verdict, fail, ok
from . import access
from .access import find_container


def find_volume(name: str) -> tuple[Any, Verdict | None]:
    """The volume called ``name``, or a ✘ verdict saying it does not exist."""
    try:
        return access.api_module().get_volume(name), None
    except NotFound:
        return None, fail(_('There is no volume named "%(name)s". Create it first (see the '
                            'exercise statement).') % {"name": name})


def file_in_dir(root: Path, path: str) -> Path:
    """``path`` inside ``root``, never above it (a check must not read the host's files)."""
    rel = Path(path.lstrip("/"))
    if not rel.parts or ".." in rel.parts:
        raise ValueError(path)
    return Path(root) / rel


def dir_has_file(root: Path, volume: str, path: str, contains: str | None = None) -> Verdict:
    """Pure part of :func:`volume_has_file`: ``path`` is a regular file under ``root``."""
    target = file_in_dir(root, path)
    if target.is_symlink() or not target.is_file():
        return fail(_('The volume "%(volume)s" has no file %(path)s.')
                    % {"volume": volume, "path": path})
    if contains is not None and contains not in target.read_text(errors="replace"):
        return fail(_('The file %(path)s of the volume "%(volume)s" does not contain "%(text)s".')
                    % {"volume": volume, "path": path, "text": contains})
    return ok(_('The volume "%(volume)s" has the file %(path)s.') % {"volume": volume, "path": path})


def volume_has_file(volume: str, path: str, contains: str | None = None) -> Verdict:
    v, missing = find_volume(volume)
    if missing is not None:
        return missing
    return dir_has_file(Path(v.mountpoint), volume, path, contains)


def volume_lacks_file(volume: str, path: str) -> Verdict:
    v, missing = find_volume(volume)
    if missing is not None:
        return missing
    target = file_in_dir(Path(v.mountpoint), path)
    if target.exists() or target.is_symlink():
        return fail(_('The volume "%(volume)s" has the file %(path)s: the write worked.')
                    % {"volume": volume, "path": path})
    return ok(_('The volume "%(volume)s" has no file %(path)s.') % {"volume": volume, "path": path})


def mount_of(mounts: list[dict], volume: str, target: str) -> dict | None:
    """The entry of ``inspect()["Mounts"]`` that puts ``volume`` at ``target``."""
    for m in mounts:
        if m.get("Type") == "volume" and m.get("Name") == volume and \
                m.get("Destination", "").rstrip("/") == target.rstrip("/"):
            return m
    return None


def mounts_volume(name: str, mounts: list[dict], volume: str, target: str,
                  read_only: bool | None = None) -> Verdict:
    """Pure part of :func:`container_mounts_volume`."""
    m = mount_of(mounts, volume, target)
    if m is None:
        return fail(_('The container "%(name)s" does not mount the volume "%(volume)s" at '
                      '%(target)s.') % {"name": name, "volume": volume, "target": target})
    if read_only is True and m.get("RW", True):
        return fail(_('The container "%(name)s" mounts "%(volume)s" read-write: use :ro.')
                    % {"name": name, "volume": volume})
    if read_only is False and not m.get("RW", True):
        return fail(_('The container "%(name)s" mounts "%(volume)s" read-only.')
                    % {"name": name, "volume": volume})
    mode = _("read-only") if not m.get("RW", True) else _("read-write")
    return ok(_('The container "%(name)s" mounts the volume "%(volume)s" at %(target)s '
                '(%(mode)s).') % {"name": name, "volume": volume, "target": target, "mode": mode})


def container_mounts_volume(name: str, volume: str, target: str,
                            read_only: bool | None = None) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return mounts_volume(name, c.inspect().get("Mounts") or [], volume, target, read_only)
