"""A class on one server (issue 16): ``labkit classroom setup`` / ``teardown`` as root, and
the teacher's dashboard.

One module per concept: ``names`` (who, checked as Debian checks user names), ``accounts``
(useradd, 0700 homes, the teachers' group), ``subids`` (/etc/subuid and /etc/subgid ranges),
``delegation`` (the class's cgroup tree, v1 and v2), ``procfs`` (/proc hidepid), ``hub`` (the
jupyterhub_config.py), ``placement`` and ``spawner`` (each student's server in their leaf
cgroup), ``state`` (what setup made), ``setup`` (the two commands), ``dashboard``.
"""
from __future__ import annotations

from .dashboard import Slice, dashboard, slices, top  # noqa: F401
from .delegation import Caps, Tree  # noqa: F401
from .names import Student, check_name, parse_students, read_students  # noqa: F401
from .setup import Options, setup, teardown  # noqa: F401
