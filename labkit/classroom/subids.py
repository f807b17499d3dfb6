"""Subordinate uid/gid ranges (``/etc/subuid``, ``/etc/subgid``): the ids a student's user
namespace maps through ``newuidmap``. Each line is ``owner:start:count``; ranges of different
owners must never overlap, or one student's "root" would be another's files.

Allocation is pure (tests feed it text); writing goes through ``usermod --add-subuids``, which
takes the shadow suite's lock, so a concurrent ``useradd`` cannot interleave with us.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass

from ..errors import LabkitError
from ..i18n import _

RANGE = 65536          # ids per student, as Debian's useradd gives (SUB_UID_COUNT)
FLOOR = 100000         # SUB_UID_MIN in /etc/login.defs
CEILING = 600100000    # SUB_UID_MAX


@dataclass(frozen=True)
class Range:
    owner: str
    start: int
    count: int

    @property
    def end(self) -> int:  # exclusive
        return self.start + self.count

    def overlaps(self, other: "Range") -> bool:
        return self.start < other.end and other.start < self.end

    def text(self) -> str:
        return f"{self.start}-{self.end - 1}"  # usermod's FIRST-LAST


def parse(text: str) -> list[Range]:
    """The ranges in a subuid/subgid file; malformed lines are skipped, as the shadow suite does."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.lstrip().startswith("#"):
            continue
        try:
            start, count = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        if count > 0:
            out.append(Range(parts[0], start, count))
    return out


def read(path: str) -> list[Range]:
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f.read())
    except FileNotFoundError:
        return []


def owned(ranges: list[Range], owner: str, uid: int | None = None) -> list[Range]:
    """A user's ranges (the owner field may be the name or the numeric uid)."""
    keys = {owner} | ({str(uid)} if uid is not None else set())
    return [r for r in ranges if r.owner in keys]


def check_overlaps(ranges: list[Range], owner: str, uid: int | None, kind: str) -> None:
    """A pt-BR error when one of ``owner``'s ranges overlaps another owner's."""
    keys = {owner} | ({str(uid)} if uid is not None else set())
    mine = [r for r in ranges if r.owner in keys]
    for r in mine:
        for o in ranges:
            if o.owner not in keys and r.overlaps(o):
                raise LabkitError(
                    _("the %(kind)s range %(range)s of %(user)s overlaps %(other)s's "
                      "(%(orange)s): fix /etc/%(kind)s first")
                    % {"kind": kind, "range": r.text(), "user": owner, "other": o.owner,
                       "orange": o.text()})


def allocate(ranges: list[Range], count: int = RANGE, floor: int = FLOOR,
             ceiling: int = CEILING) -> int:
    """The lowest start >= ``floor`` where ``count`` ids overlap no existing range."""
    start = floor
    for r in sorted(ranges, key=lambda r: r.start):
        if r.end <= start:
            continue
        if r.start >= start + count:
            break
        start = r.end
    if start + count > ceiling:
        raise LabkitError(_("no free subordinate id range of %(n)d ids below %(max)d")
                          % {"n": count, "max": ceiling})
    return start


def add(user: str, uid_range: Range | None, gid_range: Range | None) -> None:
    """Give ``user`` the ranges (usermod locks /etc/subuid and /etc/subgid while it writes)."""
    args = []
    if uid_range is not None:
        args += ["--add-subuids", uid_range.text()]
    if gid_range is not None:
        args += ["--add-subgids", gid_range.text()]
    if args:
        _usermod(args + [user])


def remove(user: str, uid_range: Range | None, gid_range: Range | None) -> None:
    args = []
    if uid_range is not None:
        args += ["--del-subuids", uid_range.text()]
    if gid_range is not None:
        args += ["--del-subgids", gid_range.text()]
    if args:
        _usermod(args + [user])


def _usermod(args: list[str]) -> None:
    proc = subprocess.run(["usermod", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabkitError(_("usermod failed: %(err)s") % {"err": proc.stderr.strip()})
