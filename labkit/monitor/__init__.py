"""The slice, measured: a sampler for containers' cgroups and the host.

:class:`Monitor` reads, at a fixed rate (default 4 per second), the cgroup
counters of a set of containers and the host's CPU and memory (psutil), into a
bounded buffer::

    with Monitor(["web", "db"], rate=4) as mon:
        time.sleep(5)
    mon.rows()          # [{"t": 0.0, "target": "host", "cpu_percent": ...}, ...]
    mon.to_csv("slices.csv")

The formulas are ``docker stats``'s:

- CPU % = Δ cpu usage / Δ wall time × 100, so **100 % = one core** (a busy
  container on 2 cores can show 200 %);
- memory = usage − inactive file cache (the page cache the kernel can drop
  without asking), against the limit (or the host's total without one);
- throttled = share of the CFS periods of the interval in which the cgroup
  ran out of quota (%).

Targets may be containers (objects with ``.cgroup``), ``Cgroup`` objects of
:mod:`labkit.kernel.cgroups` (anything with ``.stats()``), or names/ids
resolved lazily through :func:`labkit.get` (a container that does not exist
yet is looked for again at every tick). A container that disappears ends its
series; the sampling thread never raises.

Cost: the counters are read through file descriptors kept open (``os.pread``
at offset 0, which makes the kernel regenerate the file) and only the files
needed are read; see ``bench/bench_monitor.py``.

The package: :mod:`.readers` reads the counters (cgroup files, the host's
``/proc``), :mod:`.figures` turns two readings into ``docker stats``'s
figures, :mod:`.sampler` is the :class:`Monitor` thread and its CSV,
:mod:`.text` writes the ``labkit stats`` table and the one-line summary;
:mod:`.rows` names the columns every sample has.
"""
from __future__ import annotations

from .figures import cpu_percent, derive, host_memory_total, memory_bytes, snapshot, throttled_percent
from .readers import CgroupReader, Gone
from .rows import COLUMNS, HOST
from .sampler import Monitor, read_csv, write_csv
from .text import human_bytes, percent, stats_header, stats_table, summary

__all__ = ["COLUMNS", "CgroupReader", "Gone", "HOST", "Monitor", "cpu_percent", "derive",
           "host_memory_total", "human_bytes", "memory_bytes", "percent", "read_csv", "snapshot",
           "stats_header", "stats_table", "summary", "throttled_percent", "write_csv"]
