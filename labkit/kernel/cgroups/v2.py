"""cgroup v2: one unified tree; a container is ``/sys/fs/cgroup/labkit/<id>``.

A controller works in a child only when the parent lists it in
``cgroup.subtree_control``, so the root and ``labkit`` enable
``+cpu +memory +pids +cpuset +io``. The files:

=====================  ========================================================
``cpu.max``            ``--cpus 0.5`` -> ``"50000 100000"`` (quota and period, µs)
``cpu.weight``         ``--cpu-shares`` converted as runc does (1024 -> 39)
``cpuset.cpus``        ``--cpuset-cpus``
``memory.max``         ``--memory``; ``memory.swap.max`` = memory_swap - memory
``pids.max``           ``--pids-limit``
``cpu.stat``           usage_usec, nr_periods, nr_throttled, throttled_usec
``memory.events``      ``oom_kill N``: read it before the cgroup is removed
``cgroup.kill``        writing 1 SIGKILLs every process inside (Linux 5.14+)
(no file)              devices: an eBPF program attached to the cgroup (:mod:`.devices`)
=====================  ========================================================
"""
from __future__ import annotations

import os
import time

from ...errors import LabkitError
from ...i18n import _
from . import devices as dev
from .limits import Limits
from .base import (Backend, Cgroup, bad_cpuset, check_cpus, check_swap, human, limited, mkdirs,
                   read, read_int, read_kv, write)

WANTED = ("cpu", "memory", "pids", "cpuset", "io")
PERIOD_US = 100_000


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], runc's formula."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def _enable_controllers(path: str) -> None:
    """Let the children of ``path`` use every controller we want that it has."""
    have = read(os.path.join(path, "cgroup.controllers")).split()
    on = read(os.path.join(path, "cgroup.subtree_control")).split()
    for c in WANTED:
        if c in have and c not in on:
            try:
                write(os.path.join(path, "cgroup.subtree_control"), "+" + c)
            except OSError:
                pass  # e.g. io without a block device; the limit using it will say so


def _swap_available() -> bool:
    try:
        with open("/proc/meminfo") as f:
            return any(line.startswith("SwapTotal:") and line.split()[1] != "0" for line in f)
    except OSError:
        return False


class V2Cgroup(Cgroup):
    version = "v2"

    def __init__(self, name: str, root: str) -> None:
        super().__init__(name, [root])
        self.dir = self._dirs[0]

    def _f(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _write(self, name: str, value) -> None:
        try:
            write(self._f(name), value)
        except FileNotFoundError as e:
            raise LabkitError(
                _("the cgroup controller %(ctrl)s is not available on this machine")
                % {"ctrl": name.split(".")[0]}
            ) from e

    # -- limits -------------------------------------------------------------
    def set_limits(self, limits: Limits, *, creating: bool = False) -> None:
        """Apply every field that is not None (None = leave as it is)."""
        self._require()
        lim = limits
        if lim.cpus is not None:
            check_cpus(lim.cpus)
            quota = "max" if lim.cpus <= 0 else max(1000, round(lim.cpus * PERIOD_US))
            self._write("cpu.max", f"{quota} {PERIOD_US}")
        if lim.cpu_shares is not None:
            self._write("cpu.weight", shares_to_weight(lim.cpu_shares))
        if lim.cpuset_cpus is not None:
            try:
                self._write("cpuset.cpus", lim.cpuset_cpus)
            except OSError as e:
                if isinstance(e, LabkitError):
                    raise
                raise bad_cpuset(lim.cpuset_cpus) from e
        if lim.memory is not None or lim.memory_swap is not None:
            self._set_memory(lim.memory, lim.memory_swap, creating)
        if lim.pids_limit is not None:
            self._write("pids.max", "max" if lim.pids_limit <= 0 else lim.pids_limit)

    def _set_memory(self, mem: int | None, swap: int | None, creating: bool) -> None:
        if mem is not None and mem <= 0:
            mem = -1
        cur_mem = limited(read_int(self._f("memory.max")))
        eff_mem = (None if mem == -1 else mem) if mem is not None else cur_mem
        check_swap(swap, eff_mem)
        if mem is not None and mem != -1:
            # v2 never refuses a lower memory.max: it reclaims, then OOM-kills. Refuse
            # ourselves when what cannot be reclaimed (no swap) is already above it.
            usage = read_int(self._f("memory.current")) or 0
            file_cache = read_kv(self._f("memory.stat")).get("file", 0)
            if mem < usage - file_cache and not _swap_available():
                raise LabkitError(
                    _("cannot lower the memory limit to %(limit)s: the container is "
                      "using %(usage)s that the kernel cannot reclaim")
                    % {"limit": human(mem), "usage": human(usage - file_cache)}
                )
            self._write("memory.max", mem)
        elif mem == -1:
            self._write("memory.max", "max")
        if swap is None and mem is not None and creating:
            swap = -1 if mem == -1 else 2 * mem  # Docker: unset = as much swap as memory
        if swap is not None and os.path.exists(self._f("memory.swap.max")):
            value = "max" if swap == -1 or eff_mem is None else swap - eff_mem
            self._write("memory.swap.max", value)

    def set_devices(self, extra: list[dev.Rule] | tuple = ()) -> None:
        """Deny every device but Docker's default set and ``extra`` (``--device``): the
        eBPF program replaces the one attached before, if any."""
        try:
            dev.write_v2(self.dir, list(dev.DEFAULT_RULES) + list(extra))
        except OSError as e:
            raise LabkitError(_("cannot set the device rules of cgroup %(name)s: %(error)s")
                              % {"name": self.name, "error": e.strerror}) from e

    # -- counters -----------------------------------------------------------
    def _read_oom_kills(self) -> int:
        return self._kv(self._f("memory.events")).get("oom_kill", 0)

    def stats(self) -> dict:
        if not self._fds:
            self._require()
        cpu = self._kv(self._f("cpu.stat"))
        quota = None
        cpu_max = (self._text(self._f("cpu.max")) or "max").split()
        if cpu_max[0] != "max" and len(cpu_max) == 2:
            quota = int(cpu_max[0]) / int(cpu_max[1])
        num = lambda name: self._int(self._f(name))  # noqa: E731
        mem_max, swap_max = limited(num("memory.max")), num("memory.swap.max")
        return {
            "version": "v2",
            "cpu_usage_ns": cpu.get("usage_usec", 0) * 1000,
            "memory_usage": num("memory.current") or 0,
            "memory_inactive_file": self._kv(self._f("memory.stat")).get("inactive_file", 0),
            "memory_limit": mem_max,
            "memory_swap_limit": mem_max + swap_max if mem_max is not None
            and swap_max is not None else None,
            "memory_max_usage": num("memory.peak"),
            "pids_current": num("pids.current") or 0,
            "pids_limit": limited(num("pids.max")),
            "nr_periods": cpu.get("nr_periods", 0),
            "nr_throttled": cpu.get("nr_throttled", 0),
            "throttled_ns": cpu.get("throttled_usec", 0) * 1000,
            "oom_kills": self._read_oom_kills(),
            "cpu_quota_cores": quota,
            "cpu_weight": num("cpu.weight"),
        }

    # -- processes ----------------------------------------------------------
    def freeze(self, on: bool = True, timeout: float = 2.0) -> bool:
        """``docker pause``/``unpause``: ``cgroup.freeze``, then wait for
        ``cgroup.events`` to say ``frozen 1`` (or 0). False without a freezer."""
        path = self._f("cgroup.freeze")
        if not os.path.exists(path):
            return False
        write(path, 1 if on else 0)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if read_kv(self._f("cgroup.events")).get("frozen", int(on)) == int(on):
                break
            time.sleep(0.002)
        return True

    def kill(self, timeout: float = 5.0) -> None:
        """SIGKILL everything: ``cgroup.kill`` when the kernel has it, else freeze+kill."""
        deadline = time.monotonic() + timeout
        kill_file = self._f("cgroup.kill")
        while self.pids() and time.monotonic() < deadline:
            if os.path.exists(kill_file):
                write(kill_file, 1)
            else:
                frozen = self.freeze(True, timeout=1.0)
                self._signal_all()  # v2 lets SIGKILL through to frozen tasks
                if frozen:
                    self.freeze(False)
            self._wait_empty(0.2)


class V2Backend(Backend):
    version = "v2"

    def __init__(self, root: str = "/sys/fs/cgroup") -> None:
        self.root = root

    def handle(self, name: str) -> V2Cgroup:
        return V2Cgroup(name, self.root)

    def create(self, name: str, limits: Limits | None = None,
               devices: list[dev.Rule] | tuple = ()) -> V2Cgroup:
        cg = self.handle(name)
        leaf = cg.dir

        def init(path: str) -> None:
            if path != leaf:
                _enable_controllers(path)

        try:
            _enable_controllers(self.root)
            mkdirs(self.root, cg.name, init)
            cg.set_devices(devices)  # before any process joins
            cg.set_limits(limits or Limits(), creating=True)
        except BaseException:
            cg.remove()
            raise
        return cg

    def list(self, parent: str = "labkit") -> list[str]:
        try:
            entries = os.scandir(os.path.join(self.root, parent))
        except FileNotFoundError:
            return []
        return sorted(f"{parent}/{e.name}" for e in entries if e.is_dir())
