"""The teacher's view: every student's slice (``<parent>/<user>``) and every cgroup below it
(the JupyterLab leaf, each container labkit made), read with the course's own monitor.

The counters are world-readable files, so the gate is ours: root or a member of the teachers'
group (the same group ``hidepid`` exempts). In a notebook :func:`dashboard` draws them live
(:mod:`labkit.live`); in a terminal ``labkit classroom top`` prints a table each second.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from ..errors import LabkitError
from ..i18n import _
from ..kernel.cgroups.mountinfo import layout
from .accounts import group_gid
from .delegation import Tree
from .state import ETC, PARENT_FILE, load


@dataclass(frozen=True)
class Slice:
    """One cgroup of the class, as the monitor takes it: ``name`` and ``paths()``."""
    name: str            # "ana" (the student's slice) or "ana:jupyter", "ana:labkit/3f2a..."
    dirs: tuple[str, ...]

    def paths(self) -> list[str]:
        return list(self.dirs)


def class_parent(etc: str = ETC) -> tuple[str, str]:
    """(parent, teachers' group) from the class's state, else the rootless engine's file."""
    try:
        state = load(etc)
    except PermissionError:
        # classroom.json is root's and the teachers' group's (0640)
        raise LabkitError(_("the class dashboard is for root and the teachers' group only")) \
            from None
    if state is not None:
        return state.parent, state.teacher_group
    try:
        with open(os.path.join(etc, PARENT_FILE)) as f:
            return f.read().strip(), "professores"
    except FileNotFoundError:
        raise LabkitError(_("no class is set up here (run `labkit classroom setup`)")) from None


def check_access(group: str) -> None:
    """Root or the teachers' group; anyone else gets a pt-BR refusal."""
    if os.geteuid() == 0:
        return
    gid = group_gid(group)
    if gid is None or (gid != os.getegid() and gid not in os.getgroups()):
        raise LabkitError(_("the class dashboard is for root and the group %(group)s only")
                          % {"group": group})


def slices(etc: str = ETC, per_container: bool = True,
           mountinfo: str | None = None) -> list[Slice]:
    """The students' slices (sorted by name), each followed by the cgroups below it."""
    parent, _group = class_parent(etc)
    tree = Tree(layout(mountinfo), parent)
    first = tree.dirs(parent)[0]
    out: list[Slice] = []
    try:
        users = sorted(e.name for e in os.scandir(first) if e.is_dir())
    except FileNotFoundError:
        return []
    for user in users:
        rel = tree.student(user)
        out.append(Slice(user, tuple(tree.dirs(rel))))
        if not per_container:
            continue
        top = os.path.join(first, user)
        for d, subdirs, _files in sorted(os.walk(top)):
            if d == top or subdirs:
                continue  # leaves only: the ones processes live in
            sub = os.path.relpath(d, top)
            out.append(Slice(f"{user}:{sub}", tuple(tree.dirs(f"{rel}/{sub}"))))
    return out


def dashboard(duration: float | None = None, rate: float = 1.0, etc: str = ETC,
              per_container: bool = False, **kwargs):
    """A live figure of the class (``labkit.live.Live``, not started): call ``.start()``.
    ``per_container=True`` draws each container too (busy with a large class)."""
    from ..live import Live

    parent, group = class_parent(etc)
    check_access(group)
    targets = slices(etc, per_container)
    if not targets:
        raise LabkitError(_("the class has no student slices under %(parent)s")
                          % {"parent": parent})
    return Live(targets, duration=duration, rate=rate,
                title=kwargs.pop("title", _("Class %(parent)s") % {"parent": parent}), **kwargs)


def table(entries: list[dict]) -> str:
    """One line per slice: CPU % (100 % = one core), memory / cap, pids / cap, OOM kills."""
    from ..monitor import human_bytes, percent

    heads = [_("SLICE"), _("CPU %"), _("MEM USAGE / LIMIT"), _("PIDS / LIMIT"), _("OOM")]
    rows = []
    for e in entries:
        lim = e.get("memory_limit")
        rows.append([
            e["name"], percent(e.get("cpu_percent")),
            f"{human_bytes(e.get('memory_bytes'))} / {human_bytes(lim) if lim else '--'}",
            f"{e.get('pids', '--')} / {e.get('pids_limit') or '--'}",
            str(e.get("oom_kills") or 0),
        ])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(heads)]
    fmt = "   ".join("{:<%d}" % w for w in widths)
    return "\n".join([fmt.format(*heads).rstrip()] + [fmt.format(*r).rstrip() for r in rows])


def readings(targets: list[Slice], interval: float = 0.5) -> list[dict]:
    """One reading of every slice: two samples ``interval`` s apart (as ``docker stats``)."""
    from ..monitor import CgroupReader, Gone, derive

    readers, before = {}, {}
    for t in targets:
        try:
            readers[t.name] = CgroupReader(t.paths(), slow_every=0)
            before[t.name] = (readers[t.name].stats(), time.monotonic_ns())
        except (Gone, OSError):
            readers.pop(t.name, None)
    time.sleep(interval)
    out = []
    for t in targets:
        r = readers.get(t.name)
        if r is None:
            continue
        try:
            after, wall = r.stats(), time.monotonic_ns()
        except (Gone, OSError):
            continue
        finally:
            r.close()
        e = derive(before[t.name][0], after, before[t.name][1], wall)
        e["name"] = t.name
        out.append(e)
    return out


def top(etc: str = ETC, interval: float = 1.0, once: bool = False, out=None) -> None:
    """``labkit classroom top``: the table, redrawn every ``interval`` s (``once``: one)."""
    import sys

    out = out or sys.stdout
    _parent, group = class_parent(etc)
    check_access(group)
    while True:
        text = table(readings(slices(etc), interval=min(interval, 0.5)))
        if not once and out.isatty():
            out.write("\x1b[H\x1b[2J")
        out.write(text + "\n")
        out.flush()
        if once:
            return
        time.sleep(max(0.0, interval - 0.5))
