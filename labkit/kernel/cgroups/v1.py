"""cgroup v1: one directory per hierarchy (cpu, cpuacct, memory, pids, cpuset, freezer).

A hierarchy may carry one controller (``/sys/fs/cgroup/cpu``) or several joined
(``/sys/fs/cgroup/cpu,cpuacct``); :mod:`.mountinfo` says which. A container's
cgroup is ``<mount point>/labkit/<id>`` in each of them. The files:

==========================  ===================================================
``cpu.cfs_quota_us``        ``--cpus 0.5`` -> 50000 µs per ``cpu.cfs_period_us`` 100000
``cpu.shares``              ``--cpu-shares`` (relative weight, default 1024)
``cpuset.cpus``             ``--cpuset-cpus`` (must be filled before a task can join)
``memory.limit_in_bytes``   ``--memory``; ``memory.memsw.limit_in_bytes`` = memory+swap
``pids.max``                ``--pids-limit``
``cpuacct.usage``           CPU time used, ns;  ``memory.oom_control``: ``oom_kill N``
``devices.deny``/``.allow`` ``a`` then one line per allowed device (:mod:`.devices`)
==========================  ===================================================
"""
from __future__ import annotations

import errno
import os
import time

from ...errors import LabkitError
from ...i18n import _
from . import devices as dev
from .limits import Limits
from .base import (Backend, Cgroup, bad_cpuset, check_cpus, check_swap, human, limited, mkdirs,
                   read, read_int, write)

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "cpuset", "freezer", "devices")
PERIOD_US = 100_000


def init_cpuset(path: str) -> None:
    """A new v1 cpuset is empty and nobody can join it: copy the parent's cpus/mems."""
    for f in ("cpuset.cpus", "cpuset.mems"):
        if not read(os.path.join(path, f)):
            write(os.path.join(path, f), read(os.path.join(os.path.dirname(path), f)))


class V1Cgroup(Cgroup):
    version = "v1"

    def __init__(self, name: str, ctrl_roots: dict[str, str]) -> None:
        roots = list(dict.fromkeys(ctrl_roots.values()))  # joined controllers share one
        super().__init__(name, roots)
        self._ctrl = {c: os.path.join(r, self.name) for c, r in ctrl_roots.items()}

    def _f(self, ctrl: str, name: str) -> str | None:
        d = self._ctrl.get(ctrl)
        return os.path.join(d, name) if d else None

    def _need(self, ctrl: str) -> str:
        if ctrl not in self._ctrl:
            raise LabkitError(
                _("the cgroup controller %(ctrl)s is not available on this machine")
                % {"ctrl": ctrl}
            )
        return self._ctrl[ctrl]

    # -- limits -------------------------------------------------------------
    def set_limits(self, limits: Limits, *, creating: bool = False) -> None:
        """Apply every field that is not None (None = leave as it is)."""
        self._require()
        lim = limits
        if lim.cpus is not None:
            check_cpus(lim.cpus)
            d = self._need("cpu")
            quota = -1 if lim.cpus <= 0 else max(1000, round(lim.cpus * PERIOD_US))
            write(os.path.join(d, "cpu.cfs_period_us"), PERIOD_US)
            write(os.path.join(d, "cpu.cfs_quota_us"), quota)
        if lim.cpu_shares is not None:
            write(os.path.join(self._need("cpu"), "cpu.shares"), max(2, lim.cpu_shares))
        if lim.cpuset_cpus is not None:
            try:
                write(os.path.join(self._need("cpuset"), "cpuset.cpus"), lim.cpuset_cpus)
            except OSError as e:
                raise bad_cpuset(lim.cpuset_cpus) from e
        if lim.memory is not None or lim.memory_swap is not None:
            self._set_memory(lim.memory, lim.memory_swap, creating)
        if lim.pids_limit is not None:
            value = "max" if lim.pids_limit <= 0 else lim.pids_limit
            write(os.path.join(self._need("pids"), "pids.max"), value)

    def _set_memory(self, mem: int | None, swap: int | None, creating: bool) -> None:
        d = self._need("memory")
        mem_file = os.path.join(d, "memory.limit_in_bytes")
        sw_file = os.path.join(d, "memory.memsw.limit_in_bytes")
        has_sw = os.path.exists(sw_file)  # absent when the kernel has no swap accounting
        if mem is not None and mem <= 0:
            mem = -1
        cur_mem = limited(read_int(mem_file))
        eff_mem = (None if mem == -1 else mem) if mem is not None else cur_mem
        check_swap(swap, eff_mem)
        cur_sw = limited(read_int(sw_file)) if has_sw else None
        if swap is None and mem is not None and has_sw:
            # Docker: an unset --memory-swap means as much swap as memory (2x in total).
            if mem == -1:
                swap = -1  # no memory limit: no memory+swap limit either
            elif creating or (cur_sw is not None and mem > cur_sw):
                swap = 2 * mem
        writes = [(mem_file, mem)]
        if has_sw and swap is not None:
            # memsw must stay >= memory at every moment: raise it first when growing.
            grow = mem is not None and (mem == -1 or (cur_sw is not None and mem > cur_sw))
            writes = [(sw_file, swap)] + writes if grow else writes + [(sw_file, swap)]
        for path, value in writes:
            if value is None:
                continue
            try:
                write(path, value)
            except OSError as e:
                if e.errno == errno.EBUSY and path == mem_file:
                    usage = read_int(os.path.join(d, "memory.usage_in_bytes")) or 0
                    raise LabkitError(
                        _("cannot lower the memory limit to %(limit)s: the container is "
                          "using %(usage)s that the kernel cannot reclaim")
                        % {"limit": human(value), "usage": human(usage)}
                    ) from e
                raise LabkitError(
                    _("invalid memory limit %(value)s: %(error)s")
                    % {"value": value, "error": e.strerror}
                ) from e

    def set_devices(self, extra: list[dev.Rule] | tuple = ()) -> None:
        """Deny every device but Docker's default set and ``extra`` (``--device``)."""
        d = self._ctrl.get("devices")
        if d is not None:  # a host without the devices hierarchy has no device control at all
            dev.write_v1(d, list(dev.DEFAULT_RULES) + list(extra))

    # -- counters -----------------------------------------------------------
    def _read_oom_kills(self) -> int:
        return self._kv(self._f("memory", "memory.oom_control")).get("oom_kill", 0)

    def stats(self) -> dict:
        if not self._fds:
            self._require()
        f, num = self._f, lambda c, n: self._int(self._f(c, n))  # noqa: E731
        cpu = self._kv(f("cpu", "cpu.stat"))
        quota, period = num("cpu", "cpu.cfs_quota_us"), num("cpu", "cpu.cfs_period_us")
        return {
            "version": "v1",
            "cpu_usage_ns": num("cpuacct", "cpuacct.usage") or 0,
            "memory_usage": num("memory", "memory.usage_in_bytes") or 0,
            "memory_inactive_file": self._kv(f("memory", "memory.stat")).get(
                "total_inactive_file", 0),
            "memory_limit": limited(num("memory", "memory.limit_in_bytes")),
            "memory_swap_limit": limited(num("memory", "memory.memsw.limit_in_bytes")),
            "memory_max_usage": num("memory", "memory.max_usage_in_bytes"),
            "pids_current": num("pids", "pids.current") or 0,
            "pids_limit": limited(num("pids", "pids.max")),
            "nr_periods": cpu.get("nr_periods", 0),
            "nr_throttled": cpu.get("nr_throttled", 0),
            "throttled_ns": cpu.get("throttled_time", 0),
            "oom_kills": self._read_oom_kills(),
            "cpu_quota_cores": quota / period if quota and quota > 0 and period else None,
            "cpu_shares": num("cpu", "cpu.shares"),
        }

    # -- processes ----------------------------------------------------------
    def freeze(self, on: bool = True, timeout: float = 2.0) -> bool:
        """``docker pause``/``unpause``: ``freezer.state`` FROZEN/THAWED. False when
        this machine has no freezer hierarchy."""
        state = self._f("freezer", "freezer.state")
        if not state or not os.path.exists(state):
            return False
        want = "FROZEN" if on else "THAWED"
        write(state, want)
        deadline = time.monotonic() + timeout
        while read(state) != want and time.monotonic() < deadline:  # FREEZING meanwhile
            time.sleep(0.002)
        return True

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL everything; with the freezer, nobody can fork while we look."""
        deadline = time.monotonic() + timeout
        while self.pids() and time.monotonic() < deadline:
            frozen = self.freeze(True, timeout=1.0)
            self._signal_all()
            if frozen:
                self.freeze(False)  # frozen tasks only die once thawed
            self._wait_empty(0.2)


class V1Backend(Backend):
    version = "v1"

    def __init__(self, mounts: dict[str, str]) -> None:
        self.roots = {c: mounts[c] for c in CONTROLLERS if c in mounts}

    def handle(self, name: str) -> V1Cgroup:
        return V1Cgroup(name, self.roots)

    def create(self, name: str, limits: Limits | None = None,
               devices: list[dev.Rule] | tuple = ()) -> V1Cgroup:
        cg = self.handle(name)
        cpuset_root = self.roots.get("cpuset")
        try:
            for root in cg._roots:
                mkdirs(root, cg.name, init_cpuset if root == cpuset_root else None)
            cg.set_devices(devices)  # before any process joins
            cg.set_limits(limits or Limits(), creating=True)
        except BaseException:
            cg.remove()
            raise
        return cg

    def list(self, parent: str = "labkit") -> list[str]:
        names: set[str] = set()
        for root in set(self.roots.values()):
            try:
                names.update(e.name for e in os.scandir(os.path.join(root, parent)) if e.is_dir())
            except FileNotFoundError:
                pass
        return sorted(f"{parent}/{n}" for n in names)
