"""What setup made, in ``<etc>/classroom.json``, so teardown undoes exactly that (and a
second setup knows what is already there). Written whole or not at all."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

ETC = "/etc/labkit"
DATA = "/var/lib/labkit/classroom"
STATE = "classroom.json"
PARENT_FILE = "cgroup-parent"   # read by the rootless engine: the class parent's path


@dataclass
class StudentState:
    created: bool = False                # setup made the account (teardown deletes it)
    subuid: list[int] | None = None      # [start, count] setup added
    subgid: list[int] | None = None
    home_mode: int | None = None         # an existing home's mode before 0700
    course: str | None = None            # where setup copied the course (left to the student)
    password: str | None = None          # never stored; only reported by setup


@dataclass
class State:
    cgroup: str = ""
    parent: str = "lkclass"
    parent_dirs: list[str] = field(default_factory=list)
    class_caps: dict[str, Any] = field(default_factory=dict)
    student_caps: dict[str, Any] = field(default_factory=dict)
    teacher_group: str = ""
    teacher_gid: int | None = None
    teacher_group_created: bool = False
    proc: str | None = None               # the proc mount setup remounted
    proc_old: dict[str, str] | None = None
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)   # made by setup, removed if empty
    data: str | None = None                          # the hub's data dir, if setup made it
    students: dict[str, StudentState] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for s in data["students"].values():
            s.pop("password", None)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "State":
        data = json.loads(text)
        students = {k: StudentState(**v) for k, v in data.pop("students", {}).items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(students=students, **known)


def path(etc: str = ETC) -> str:
    return os.path.join(etc, STATE)


def load(etc: str = ETC) -> State | None:
    try:
        with open(path(etc), encoding="utf-8") as f:
            return State.from_json(f.read())
    except FileNotFoundError:
        return None


def atomic_write(target: str, text: str, mode: int = 0o644, gid: int | None = None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if gid is not None:
            os.chown(tmp, 0, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(state: State, etc: str = ETC) -> None:
    # 0640, group teachers: it names the class's accounts; the dashboard reads it, and a
    # student who cannot read it is refused the dashboard.
    atomic_write(path(etc), state.to_json(), 0o640, state.teacher_gid)
