"""Who is in the class: student names checked as Debian checks user names, read from a
list (``ana,bruno``) or a file (one a line, ``name[:password]``, ``#`` comments)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import LabkitError
from ..i18n import _

# Debian's adduser.conf NAME_REGEX (and useradd's 32-character cap): a lowercase letter, then
# lowercase letters, digits, '-' or '_'; a trailing '$' is for Samba machine accounts only.
NAME_REGEX = re.compile(r"[a-z][-a-z0-9_]*")
MAX_NAME = 32


@dataclass(frozen=True)
class Student:
    name: str
    password: str | None = None  # only used when setup creates the account


def check_name(name: str) -> str:
    """``name`` if it is a valid user name, else a pt-BR error (exit 125)."""
    if not NAME_REGEX.fullmatch(name) or len(name) > MAX_NAME:
        raise LabkitError(
            _("invalid student name: %(name)r (a user name is a lowercase letter followed by "
              "lowercase letters, digits, '-' or '_', at most %(max)d characters)")
            % {"name": name, "max": MAX_NAME})
    return name


def parse_students(text: str) -> list[Student]:
    """Students from a file's text or a comma list; duplicates are an error."""
    out: list[Student] = []
    seen: set[str] = set()
    for raw in re.split(r"[,\n]", text):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, password = line.partition(":")
        name = check_name(name.strip())
        if name in seen:
            raise LabkitError(_("student %(name)s is listed twice") % {"name": name})
        seen.add(name)
        out.append(Student(name, password if sep and password else None))
    if not out:
        raise LabkitError(_("no students given (--students FILE or NAME,NAME...)"))
    return out


def read_students(spec: str) -> list[Student]:
    """``spec`` is a file's path (when such a file exists) or ``NAME,NAME,...``."""
    if os.path.isfile(spec):
        with open(spec, encoding="utf-8") as f:
            return parse_students(f.read())
    if "/" in spec:
        raise LabkitError(_("no such students file: %(path)s") % {"path": spec})
    return parse_students(spec)
