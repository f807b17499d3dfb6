"""cgroups without root: a subtree the administrator delegated to the user, or none.

Root gives a user a directory of their own (``labkit classroom setup`` does it):
on cgroup v1 one per controller (``cpu``, ``memory``, ``pids``; ``cpuacct``, ``cpuset``,
``freezer`` are used too when delegated), the
directory and its ``cgroup.procs``/``tasks`` owned by the user; on v2 one
directory with ``cgroup.procs``, ``cgroup.subtree_control`` and ``cgroup.threads``
owned by the user (the kernel's delegation rules). The user may then make child
cgroups there and set their limits, never above the parent's. Where that directory
is:

- ``$LABKIT_CGROUP_PARENT``: the user's directory itself, relative to each
  hierarchy's mount point (``lkclass/ana``);
- else ``/etc/labkit/cgroup-parent``: the class's directory (``lkclass``); the
  user's is ``<that>/<login name>``.

Containers' cgroups go under it (``<parent>/labkit/<id>``, the same names as
root's engine uses, below another root). Without such a directory containers
run without a cgroup of their own: :class:`NoCgroups` makes nothing, and the
engine refuses ``--memory``, ``--cpus``, ``--pids-limit`` (never ignored
silently). The device cgroup is never used rootless: the user namespace already
forbids ``mknod`` of a device, and opening the host's nodes is decided by their
owners and modes, as for the user.
"""
from __future__ import annotations

import os
import pwd

from ...errors import LabkitError, NotFound
from ...i18n import _
from .limits import Limits

PARENT_FILE = "/etc/labkit/cgroup-parent"
V1_CONTROLLERS = ("cpu", "memory", "pids")  # what --cpus, --memory, --pids-limit write
# also used when the administrator delegated them: cpuacct (CPU time in stats), cpuset
# (--cpuset-cpus; root fills the directory's cpuset.cpus/mems), freezer (pause)
V1_OPTIONAL = ("cpuacct", "cpuset", "freezer")


def parent(uid: int | None = None) -> str | None:
    """The user's delegated directory, relative to the hierarchies' mount points."""
    env = os.environ.get("LABKIT_CGROUP_PARENT", "").strip().strip("/")
    if env:
        return env
    try:
        with open(PARENT_FILE) as f:
            base = f.read().strip().strip("/")
    except OSError:
        return None
    if not base:
        return None
    uid = os.getuid() if uid is None else uid
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
    return f"{base}/{name}"


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK) and os.access(
        os.path.join(path, "cgroup.procs"), os.W_OK)


def backend_for(layout, sub: str | None):
    """A v1 or v2 backend rooted at the delegated directory ``sub``, or :class:`NoCgroups`."""
    if sub:
        if layout.version == "v1":
            from .v1 import V1Backend

            roots = {c: os.path.join(m, sub) for c, m in layout.v1.items() if c in V1_CONTROLLERS}
            if roots and all(_writable(r) for r in roots.values()):
                # cpuset (--cpuset-cpus) and freezer (pause) when the administrator delegated them too
                roots.update({c: os.path.join(m, sub) for c, m in layout.v1.items()
                              if c in V1_OPTIONAL and _writable(os.path.join(m, sub))})
                b = V1Backend(roots)
                b.delegated, b.mounts = sub, dict(layout.v1)
                return b
        elif layout.version == "v2" and layout.v2:
            from .v2 import V2Backend

            root = os.path.join(layout.v2, sub)
            if _writable(root):
                b = V2Backend(root)
                b.delegated = sub
                return b
        # configured but unusable: say so wherever a limit is refused (and at engine start)
        return NoCgroups(unusable=sub)
    return NoCgroups()


FLAGS = {"memory": "--memory", "memory_swap": "--memory-swap", "cpus": "--cpus",
         "cpu_shares": "--cpu-shares", "cpuset_cpus": "--cpuset-cpus", "pids_limit": "--pids-limit"}


def no_cgroup_message(flags: str, unusable: str | None = None) -> str:
    if unusable:
        return _("%(flags)s cannot be applied: the delegated cgroup %(dir)s (LABKIT_CGROUP_PARENT or "
                 "/etc/labkit/cgroup-parent) is missing or not writable by you, so containers run "
                 "without a cgroup; ask the administrator (labkit classroom setup) or fix "
                 "LABKIT_CGROUP_PARENT") % {"flags": flags, "dir": unusable}
    return _("%(flags)s cannot be applied: without root, labkit needs a cgroup delegated to you "
             "(set LABKIT_CGROUP_PARENT, or ask the administrator for labkit classroom setup, which "
             "writes /etc/labkit/cgroup-parent)") % {"flags": flags}


def no_counters_message() -> str:
    return _("this container has no cgroup (labkit without root and no delegated cgroup), so it has no counters")


class NoCgroup:
    """A container without a cgroup of its own: nothing to join, limit or count."""

    version = "none"

    def __init__(self, name: str, unusable: str | None = None) -> None:
        self.name = name
        self.unusable = unusable  # the configured parent that could not be used, if any

    def __repr__(self) -> str:
        return f"<Cgroup none {self.name}>"

    def attach(self, pid: int) -> None:
        pass

    def set_limits(self, limits: Limits, *, creating: bool = False) -> None:
        from ...units import DEFAULT_PIDS_LIMIT

        asked = [FLAGS[k] for k, v in limits.as_dict().items()
                 if v not in (None, 0, -1, "") and not (k == "pids_limit" and v == DEFAULT_PIDS_LIMIT)]
        if asked:  # never ignored silently
            raise LabkitError(no_cgroup_message(", ".join(asked), self.unusable))

    def set_devices(self, extra=()) -> None:
        pass

    def stats(self) -> dict:
        raise LabkitError(no_counters_message())

    def oom_kills(self) -> int:
        return 0

    def oom_killed(self) -> bool:
        return False

    def pids(self) -> list[int]:
        return []

    def exists(self) -> bool:
        return False

    def kill(self) -> None:
        # no cgroup to kill through: the caller signals PID 1 (its PID namespace goes with it)
        raise NotFound(_("no such cgroup: %(name)s") % {"name": self.name})

    def freeze(self, on: bool = True, timeout: float = 2.0) -> bool:
        return False

    def remove(self) -> None:
        pass

    def close(self) -> None:
        pass

    def paths(self) -> list[str]:
        return []


class NoCgroups:
    """The backend of a rootless engine without a delegated cgroup."""

    version = "none"
    delegated = False
    roots: dict[str, str] = {}

    def __init__(self, unusable: str | None = None) -> None:
        # a parent was configured (LABKIT_CGROUP_PARENT or the class's file) but is not usable
        self.unusable = unusable

    def warning(self) -> str | None:
        """What the engine says once at start when a configured parent cannot be used."""
        if not self.unusable:
            return None
        return _("warning: the delegated cgroup %(dir)s (LABKIT_CGROUP_PARENT or /etc/labkit/cgroup-parent) "
                 "is missing or not writable by you: containers run without a cgroup, and --memory, "
                 "--cpus, --pids-limit are refused") % {"dir": self.unusable}

    def handle(self, name: str) -> NoCgroup:
        return NoCgroup(name, self.unusable)

    def open(self, name: str, must_exist: bool = True) -> NoCgroup:
        return NoCgroup(name, self.unusable)

    def create(self, name: str, limits: Limits | None = None, devices=()) -> NoCgroup:
        cg = NoCgroup(name, self.unusable)
        cg.set_limits(limits or Limits())
        return cg

    def list(self, parent: str = "labkit") -> list[str]:
        return []
