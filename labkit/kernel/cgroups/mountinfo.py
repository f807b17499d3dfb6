"""Where the cgroup hierarchies are mounted, read from ``/proc/self/mountinfo``.

A line of mountinfo (see ``man 5 proc``)::

    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
    ^id ^parent  ^root ^mount point   ^mount opts  ^fstype  ^super options

A v1 hierarchy is a ``cgroup`` mount whose super options name its controllers
(``cpu``, ``memory``, or joined: ``cpu,cpuacct``). The unified (v2) hierarchy is
a ``cgroup2`` mount. Never guess the paths: distributions mount them differently.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# Controllers a v1 ``cgroup`` mount may carry (its other options are rw, name=..., etc.).
V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices",
    "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc",
}
# The ones labkit limits with; a hierarchy with any of them mounted means "v1".
USED_V1 = ("cpu", "cpuacct", "memory", "pids", "cpuset")


@dataclass
class Mount:
    mount_id: int
    root: str
    mountpoint: str
    fstype: str
    source: str
    super_options: list[str]


@dataclass
class Layout:
    """``v1``: controller -> mount point; ``v2``: the cgroup2 mount point or None."""

    v1: dict[str, str] = field(default_factory=dict)
    v2: str | None = None

    @property
    def version(self) -> str | None:
        """``"v1"`` when a v1 hierarchy holds a controller we use (hybrid included),
        ``"v2"`` for a pure unified host, None when no cgroup fs is mounted."""
        if any(c in self.v1 for c in USED_V1):
            return "v1"
        return "v2" if self.v2 else None


def _unescape(text: str) -> str:
    # The kernel writes space, tab, newline and backslash as \040 \011 \012 \134.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if "-" not in parts[6:]:
            continue
        sep = parts.index("-", 6)
        if len(parts) < sep + 3:
            continue
        mounts.append(Mount(
            mount_id=int(parts[0]), root=_unescape(parts[3]), mountpoint=_unescape(parts[4]),
            fstype=parts[sep + 1], source=parts[sep + 2],
            super_options=parts[sep + 3].split(",") if len(parts) > sep + 3 else [],
        ))
    return mounts


def _better(new: Mount, old: Mount | None) -> bool:
    """Prefer a mount of the hierarchy's root, then one under /sys/fs/cgroup."""
    if old is None:
        return True
    key = lambda m: (m.root == "/", m.mountpoint.startswith("/sys/fs/cgroup"))  # noqa: E731
    return key(new) > key(old)


def layout(text: str | None = None) -> Layout:
    """The cgroup layout of this process (or of the given mountinfo ``text``)."""
    if text is None:
        with open("/proc/self/mountinfo") as f:
            text = f.read()
    chosen: dict[str, Mount] = {}
    v2: Mount | None = None
    for m in parse(text):
        if m.fstype == "cgroup":
            for ctrl in m.super_options:
                if ctrl in V1_CONTROLLERS and _better(m, chosen.get(ctrl)):
                    chosen[ctrl] = m
        elif m.fstype == "cgroup2" and _better(m, v2):
            v2 = m
    return Layout(v1={c: m.mountpoint for c, m in chosen.items()},
                  v2=v2.mountpoint if v2 else None)
