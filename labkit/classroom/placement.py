"""Where a student's JupyterLab runs: the hub (root) writes the server's pid into the
student's leaf cgroup between fork and exec, before dropping to the student. On v2 only root
can place that first pid (the delegatee may move processes only inside its own subtree)."""
from __future__ import annotations

import os

from ..kernel.cgroups.mountinfo import layout
from .delegation import Tree
from .state import ETC, load


def leaf_procs(user: str, etc: str = ETC, mountinfo: str | None = None) -> list[str]:
    """The ``cgroup.procs`` files of ``user``'s leaf; [] for someone not in the class."""
    state = load(etc)
    if state is None or user not in state.students:
        return []
    return Tree(layout(mountinfo), state.parent).leaf_procs(user)


def place(procs: list[str]) -> None:
    """Move this process into each file's cgroup. Runs in the forked child: plain writes only
    (no imports, no locks); an error aborts the spawn rather than run a server uncapped."""
    pid = str(os.getpid()).encode()
    for p in procs:
        fd = os.open(p, os.O_WRONLY)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
