"""What one sample is: the columns of :meth:`~labkit.monitor.Monitor.rows`, and the host's label.

The sampler writes rows of these columns; the plots and the summary read them.
"""
from __future__ import annotations

HOST = "host"

#: Columns of :meth:`Monitor.rows` and of the CSV, in order.
COLUMNS = (
    "t", "target", "cpu_percent", "cpu_quota_percent", "memory_bytes",
    "memory_limit", "pids", "pids_limit", "throttled", "oom_kills",
)
