"""``docker stats``'s figures from raw counters: CPU %, memory, throttling.

Pure functions (unit-tested) and :func:`snapshot`, one reading of a cgroup
for ``labkit stats`` and ``Container.stats()``.
"""
from __future__ import annotations

import time
from typing import Any

from ..i18n import _
from .readers import CgroupReader, Gone


def cpu_percent(usage_ns_before: int, usage_ns_after: int,
                wall_ns_before: int, wall_ns_after: int) -> float:
    """CPU % of an interval: Δusage / Δwall × 100 (100 % = one core)."""
    dwall = wall_ns_after - wall_ns_before
    if dwall <= 0:
        return 0.0
    dusage = usage_ns_after - usage_ns_before
    if dusage < 0:  # counter reset (cgroup recreated)
        return 0.0
    return dusage * 100.0 / dwall


def throttled_percent(periods_before: int, periods_after: int,
                      throttled_before: int, throttled_after: int) -> float:
    """Share (%) of the interval's CFS periods in which the quota ran out."""
    dp = periods_after - periods_before
    if dp <= 0:
        return 0.0
    return max(0, throttled_after - throttled_before) * 100.0 / dp


def memory_bytes(stats: dict) -> int:
    """Memory as ``docker stats`` shows it: usage minus inactive file cache."""
    usage = stats.get("memory_usage") or 0
    inactive = stats.get("memory_inactive_file") or 0
    return max(0, usage - inactive) if inactive < usage else usage


def _stats_of(cgroup: Any) -> tuple[dict, CgroupReader | None]:
    reader = None
    try:
        paths = list(cgroup.paths())
        reader = CgroupReader(paths, slow_every=0) if paths else None
    except Exception:
        reader = None
    return (reader.stats() if reader else cgroup.stats()), reader


def host_memory_total() -> int:
    import psutil
    return psutil.virtual_memory().total


def derive(before: dict, after: dict, wall_before: int, wall_after: int) -> dict:
    """The figures of ``docker stats`` from two raw ``stats()`` readings."""
    out = dict(after)
    out["cpu_percent"] = cpu_percent(before.get("cpu_usage_ns") or 0,
                                     after.get("cpu_usage_ns") or 0, wall_before, wall_after)
    quota = after.get("cpu_quota_cores")
    out["cpu_quota_percent"] = None if quota is None else quota * 100.0
    out["memory_bytes"] = memory_bytes(after)
    limit = after.get("memory_limit")
    out["memory_percent"] = memory_bytes(after) * 100.0 / (limit or host_memory_total())
    out["pids"] = after.get("pids_current")
    out["throttled"] = throttled_percent(before.get("nr_periods") or 0,
                                         after.get("nr_periods") or 0,
                                         before.get("nr_throttled") or 0,
                                         after.get("nr_throttled") or 0)
    out["interval"] = (wall_after - wall_before) / 1e9
    return out


def snapshot(cgroup: Any, interval: float = 0.25) -> dict:
    """Two readings ``interval`` s apart → the ``stats()`` dict plus
    ``cpu_percent`` (100 % = one core), ``cpu_quota_percent``,
    ``memory_bytes`` (usage − inactive file), ``memory_percent``, ``pids``,
    ``throttled`` (% of CFS periods throttled) and ``interval``.

    This is what ``Container.stats()`` returns; raises whatever ``stats()``
    raises when the cgroup is gone.
    """
    # each reading is stamped in the middle of its reads (as Monitor does): a stamp taken
    # after a reading that was preempted would shorten the interval and inflate the CPU %
    r0 = time.monotonic_ns()
    before, reader = _stats_of(cgroup)
    w0 = (r0 + time.monotonic_ns()) // 2
    try:
        time.sleep(interval)
        r1 = time.monotonic_ns()
        after = reader.stats() if reader else cgroup.stats()
        w1 = (r1 + time.monotonic_ns()) // 2
    except Gone as exc:
        from ..errors import NotFound
        raise NotFound(_("the cgroup %(name)s is gone") % {"name": getattr(cgroup, "name", "?")}) \
            from exc
    finally:
        if reader:
            reader.close()
    return derive(before, after, w0, w1)
