"""Control groups: one backend per hierarchy (v1 in ``v1.py``, v2 in ``v2.py``).

CONTRACT (used by the engine; keep these names):

- :class:`Limits` — the container's slice: cpus, cpu_shares, cpuset_cpus,
  memory, memory_swap, pids_limit (``None`` = not set).
- :func:`parse_size` — ``"64m"`` → bytes, Docker's units; bad input raises
  :class:`~labkit.errors.LabkitError` with a pt-BR message.
- :func:`detect` → ``"v1"`` or ``"v2"`` (hybrid counts as v1).
- :func:`backend` → the backend for this machine, with
  ``create(name, limits) -> Cgroup`` and ``open(name) -> Cgroup``.
- ``Cgroup``: ``name``, ``attach(pid)``, ``set_limits(limits)``, ``stats()``,
  ``oom_killed()``, ``pids()``, ``kill()``, ``remove()``, ``paths()``.

``name`` is relative, e.g. ``"labkit/3f2a9c..."``.

Semantics worth knowing:

- ``set_limits`` applies the fields that are not None and leaves the others as
  they are (``Limits.partial(cpus=0.2)`` builds such an update); ``cpus <= 0``,
  ``memory <= 0``, ``memory_swap == -1`` and ``pids_limit <= 0`` mean "no limit".
  ``memory_swap`` is Docker's memory+swap total; unset at create time it is twice
  ``memory``, as in Docker. Lowering ``memory`` below what the container uses
  raises :class:`~labkit.errors.LabkitError` (pt-BR), it never OOM-kills.
- ``stats()`` keys: cpu_usage_ns, memory_usage, memory_inactive_file,
  memory_limit (None = no limit), pids_current, pids_limit, nr_periods,
  nr_throttled, throttled_ns, oom_kills, cpu_quota_cores (None = no quota), plus
  version, memory_swap_limit, memory_max_usage and cpu_shares (v1) / cpu_weight
  (v2). It keeps the counter files open (``close()`` releases them) and raises
  :class:`~labkit.errors.NotFound` once the cgroup is gone.
- ``remove()`` reads the OOM counter first (``oom_killed()`` still answers
  afterwards), kills what is left, rmdirs, and removes the empty parent.
- ``attach(pid)`` is plain writes to ``cgroup.procs``: safe between fork and exec.
- ``create(name, limits, devices=())`` also sets the device rules (:mod:`.devices`):
  Docker's default set plus ``devices`` (``--device``), before any process joins;
  ``Cgroup.set_devices(extra)`` sets them again.
- Beyond the contract: ``freeze(on=True) -> bool`` (``docker pause``/``unpause``;
  False without a freezer), ``exists()``, ``close()``, ``backend().list(parent)``.
"""
from __future__ import annotations

from ...errors import LabkitError
from ...i18n import _
from ...units import DEFAULT_PIDS_LIMIT, parse_cpus, parse_size  # noqa: F401 - part of the contract
from .limits import Limits  # noqa: F401 - part of the contract


_backend = None


def detect(mountinfo: str | None = None) -> str:
    """``"v1"`` or ``"v2"`` for this machine; a hybrid host (v1 controllers plus an
    empty cgroup2 mount) counts as v1."""
    from .mountinfo import layout

    version = layout(mountinfo).version
    if version is None:
        raise LabkitError(
            _("no cgroup filesystem is mounted (see /proc/self/mountinfo); "
              "mount cgroup2 at /sys/fs/cgroup")
        )
    return version


def backend(mountinfo: str | None = None):
    """The backend for this machine (cached): ``create(name, limits)``, ``open(name)``,
    ``list()``. Pass ``mountinfo`` text to build one for another layout (tests)."""
    global _backend
    if _backend is not None and mountinfo is None:
        return _backend
    from .mountinfo import layout

    lay = layout(mountinfo)
    from .. import userns

    if mountinfo is None and userns.rootless():  # an ordinary user: a delegated subtree, or none
        from .delegated import backend_for, parent

        _backend = backend_for(lay, parent(_host_uid()))
        return _backend
    if lay.version == "v1":
        from .v1 import V1Backend

        b = V1Backend(lay.v1)
    elif lay.version == "v2":
        from .v2 import V2Backend

        b = V2Backend(lay.v2)
    else:
        detect(mountinfo)  # raises the explanation
    if mountinfo is None:
        _backend = b
    return b


def _host_uid() -> int:
    """The user's uid on the host, also inside the rootless engine's user namespace (where it is 0)."""
    import os

    try:
        with open("/proc/self/uid_map") as f:
            inside, outside, _count = f.readline().split()
        return int(outside) + os.getuid() - int(inside)
    except (OSError, ValueError):
        return os.getuid()
