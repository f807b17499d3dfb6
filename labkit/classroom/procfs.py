"""``/proc`` with ``hidepid=invisible``: a student sees only their own processes (not
another's command lines, environments or open files); the teachers' group (``gid=``) and
root still see everyone. Since Linux 5.8 each proc mount has its own options, so the
remount changes this mount only, and teardown puts back the options it found.
"""
from __future__ import annotations

import subprocess

from ..errors import LabkitError
from ..i18n import _
from ..kernel.cgroups.mountinfo import parse

PROC = "/proc"


def options(mountpoint: str = PROC, mountinfo: str | None = None) -> dict[str, str]:
    """``{"hidepid": ..., "gid": ...}`` of the proc mount at ``mountpoint`` (missing = default)."""
    if mountinfo is None:
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
    found = None
    for m in parse(mountinfo):
        if m.mountpoint == mountpoint and m.fstype == "proc":
            found = m  # the last one is the one on top
    if found is None:
        raise LabkitError(_("no proc filesystem is mounted at %(path)s") % {"path": mountpoint})
    out = {}
    for opt in found.super_options:
        key, _sep, value = opt.partition("=")
        if key in ("hidepid", "gid"):
            out[key] = value
    return out


def remount(mountpoint: str, hidepid: str, gid: int | str) -> None:
    proc = subprocess.run(
        ["mount", "-o", f"remount,hidepid={hidepid},gid={gid}", mountpoint],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabkitError(_("cannot remount %(path)s with hidepid: %(err)s")
                          % {"path": mountpoint, "err": proc.stderr.strip()})


def hide(mountpoint: str, gid: int) -> dict[str, str]:
    """Remount with ``hidepid=invisible,gid=<gid>``; returns the options found before."""
    old = options(mountpoint)
    remount(mountpoint, "invisible", gid)
    return old


def restore(mountpoint: str, old: dict[str, str]) -> None:
    """Put back what :func:`hide` found (no hidepid = ``off``, no gid = ``0``)."""
    remount(mountpoint, old.get("hidepid", "off"), old.get("gid", "0"))
