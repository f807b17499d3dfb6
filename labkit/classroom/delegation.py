"""The class's cgroup tree: a parent (``lkclass``) with the class-wide caps, and one
directory per student (``lkclass/<user>``) with the student's caps, *delegated*: owned by
the student where the kernel lets an owner manage a subtree, never where an owner could raise
its own caps.

cgroup v1 (one hierarchy per controller: cpu, cpuacct, memory, pids): the student's
directory is made in each, its limits written by root, then the directory, ``cgroup.procs``
and ``tasks`` are chowned. The student can then ``mkdir`` children (their files inherit the
owner) and set their limits: the kernel refuses a child's cpu quota above the parent's and
charges a child's memory and pids to the parent, so ``<user>``'s caps hold. The limit files of
``<user>`` stay root's: chowning them would let the student raise its own caps.

cgroup v2 (docs.kernel.org/admin-guide/cgroup-v2.html, "Delegation"): the controllers are
enabled down to ``<user>`` in each ``cgroup.subtree_control``; the delegatee gets the directory,
``cgroup.procs``, ``cgroup.subtree_control`` and ``cgroup.threads``. A process can only move
between cgroups whose common ancestor's ``cgroup.procs`` its owner may write, so the student
cannot pull its own processes in: root (the hub, before dropping privileges) places the first
one, in the leaf ``<user>/jupyter`` (processes live only in leaves once controllers are on).

The leaf ``jupyter`` is where the student's JupyterLab runs; labkit's containers go in
sibling leaves the rootless engine makes under ``<user>``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..errors import LabkitError
from ..i18n import _
from ..kernel.cgroups import base
from ..kernel.cgroups.mountinfo import Layout

V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
# also delegated when mounted, as the rootless engine uses them (kernel/cgroups/delegated.py):
# cpuset (--cpuset-cpus; a new v1 cpuset needs its cpus/mems filled first) and freezer (pause)
V1_OPTIONAL = ("cpuset", "freezer")
V2_CONTROLLERS = ("cpu", "memory", "pids")
LEAF = "jupyter"
PERIOD_US = 100000
# The files a delegatee needs (kernel docs for v2; measured here for v1).
V1_DELEGATED = ("cgroup.procs", "tasks")
V2_DELEGATED = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


@dataclass(frozen=True)
class Caps:
    """Limits of one slice; None = no limit."""
    cpus: float | None = None
    memory: int | None = None
    pids: int | None = None


def write(path: str, value: str | int) -> None:
    base.write(path, value)


class Tree:
    """The class parent and the students' directories, on this machine's hierarchy.

    ``chown``, ``rmdir`` and ``on_mkdir`` are the filesystem calls; tests pass their own to
    run against a fake tree of plain files (``on_mkdir`` creates the kernel's files there).
    """

    def __init__(self, layout: Layout, parent: str = "lkclass", *,
                 chown: Callable[[str, int, int], None] = os.chown,
                 rmdir: Callable[[str], None] = base.rmdir,
                 on_mkdir: Callable[[str, str], None] | None = None) -> None:
        self.version = layout.version
        self.parent = base.check_name(parent)
        self.chown = chown
        self.rmdir = rmdir
        self.on_mkdir = on_mkdir
        if self.version == "v1":
            missing = [c for c in V1_CONTROLLERS if c not in layout.v1]
            if missing:
                raise LabkitError(_("cgroup v1 controllers not mounted: %(names)s")
                                  % {"names": ", ".join(missing)})
            self.mounts = {c: layout.v1[c] for c in V1_CONTROLLERS + V1_OPTIONAL if c in layout.v1}
        elif self.version == "v2":
            self.mounts = {c: layout.v2 for c in V2_CONTROLLERS}  # type: ignore[misc]
        else:
            raise LabkitError(_("no cgroup filesystem is mounted"))
        # joined hierarchies (cpu,cpuacct) are one directory, made once
        self.roots = list(dict.fromkeys(self.mounts.values()))

    # -- paths ------------------------------------------------------------------------
    def dirs(self, rel: str) -> list[str]:
        return [os.path.join(r, rel) for r in self.roots]

    def student(self, user: str) -> str:
        return f"{self.parent}/{user}"

    def leaf(self, user: str) -> str:
        return f"{self.parent}/{user}/{LEAF}"

    def leaf_procs(self, user: str) -> list[str]:
        """The ``cgroup.procs`` files root writes a student's server pid into."""
        return [os.path.join(d, "cgroup.procs") for d in self.dirs(self.leaf(user))]

    def _in(self, controller: str, rel: str, name: str) -> str:
        return os.path.join(self.mounts[controller], rel, name)

    # -- making -----------------------------------------------------------------------
    def _mkdir(self, rel: str) -> list[str]:
        made = []
        for d in self.dirs(rel):
            try:
                os.mkdir(d, 0o755)
            except FileExistsError:
                continue
            made.append(d)
            if self.on_mkdir is not None:
                self.on_mkdir(d, self.version)
            if self.version == "v1" and "cpuset" in self.mounts and d.startswith(self.mounts["cpuset"] + "/"):
                from ..kernel.cgroups.v1 import init_cpuset

                init_cpuset(d)  # empty, no process (the student's server) could join it
        return made

    def write_caps(self, rel: str, caps: Caps) -> None:
        """The limit files (root's); a value the kernel refuses is a pt-BR error."""
        try:
            if self.version == "v1":
                quota = -1 if caps.cpus is None else int(caps.cpus * PERIOD_US)
                write(self._in("cpu", rel, "cpu.cfs_period_us"), PERIOD_US)
                write(self._in("cpu", rel, "cpu.cfs_quota_us"), quota)
                write(self._in("memory", rel, "memory.limit_in_bytes"),
                      -1 if caps.memory is None else caps.memory)
                write(self._in("pids", rel, "pids.max"),
                      "max" if caps.pids is None else caps.pids)
            else:
                cpu = "max" if caps.cpus is None else str(int(caps.cpus * PERIOD_US))
                write(self._in("cpu", rel, "cpu.max"), f"{cpu} {PERIOD_US}")
                write(self._in("memory", rel, "memory.max"),
                      "max" if caps.memory is None else caps.memory)
                write(self._in("pids", rel, "pids.max"),
                      "max" if caps.pids is None else caps.pids)
        except OSError as exc:
            raise LabkitError(_("cannot set the limits of cgroup %(name)s: %(error)s")
                              % {"name": rel, "error": exc.strerror or exc}) from exc

    def enable_controllers(self, rel: str) -> None:
        """v2: turn the controllers on for ``rel``'s children (those not on yet)."""
        path = os.path.join(self.roots[0], rel, "cgroup.subtree_control")
        try:
            on = set(base.read(path).split())
        except FileNotFoundError:
            on = set()
        want = [c for c in V2_CONTROLLERS if c not in on]
        if want:
            try:
                write(path, " ".join("+" + c for c in want))
            except OSError as exc:
                raise LabkitError(
                    _("cannot enable the cgroup controllers %(names)s in %(path)s: %(error)s")
                    % {"names": ", ".join(want), "path": path, "error": exc.strerror}) from exc

    def delegate(self, rel: str, uid: int, gid: int) -> None:
        names = V1_DELEGATED if self.version == "v1" else V2_DELEGATED
        for d in self.dirs(rel):
            self.chown(d, uid, gid)
            for name in names:
                self.chown(os.path.join(d, name), uid, gid)

    def make_parent(self, caps: Caps) -> list[str]:
        """The class parent with its caps; returns the directories this call made."""
        if self.version == "v2":
            self.enable_controllers("")
        made = self._mkdir(self.parent)
        self.write_caps(self.parent, caps)
        if self.version == "v2":
            self.enable_controllers(self.parent)
        return made

    def make_student(self, user: str, uid: int, gid: int, caps: Caps) -> list[str]:
        """``<parent>/<user>`` with the caps (root's files) and ``jupyter`` inside, delegated."""
        rel = self.student(user)
        made = self._mkdir(rel)
        self.write_caps(rel, caps)
        if self.version == "v2":
            self.enable_controllers(rel)
        self.delegate(rel, uid, gid)
        made += self._mkdir(self.leaf(user))
        self.delegate(self.leaf(user), uid, gid)
        return made

    # -- removing ---------------------------------------------------------------------
    def remove(self, rel: str) -> None:
        """``rel`` and everything under it (the student's own children too), processes
        killed first; bottom-up, since cgroupfs removes only empty directories."""
        for top in self.dirs(rel):
            if not os.path.isdir(top):
                continue
            self._kill_all(top)
            for d, subdirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                self.rmdir(d)

    def _kill_all(self, top: str) -> None:
        import signal
        for d, _subdirs, _files in os.walk(top):
            try:
                pids = [int(p) for p in base.read(os.path.join(d, "cgroup.procs")).split()]
            except (OSError, ValueError):
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
