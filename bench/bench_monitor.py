"""What the monitor itself costs: CPU time of the sampling thread.

Target (issue 3): under 1 % of one core at 10 samples/s with 10 containers.
Creates N real cgroups each holding a sleeping process, runs
``Monitor(cgs, rate=R)`` for S seconds and reports the sampling thread's CPU
time (``time.thread_time`` inside the thread: user + system, i.e. including
the kernel's work generating the cgroup files) per second of wall time, and
the timing of the ticks (fixed-rate schedule). Needs root.

    .venv/bin/python bench/bench_monitor.py [--containers 10] [--rate 10] [--seconds 10]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from labkit.monitor import Monitor  # noqa: E402
from test_monitor_helpers import cleanup, make_cgroup, spawn_sh_in  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--no-host", action="store_true", help="leave psutil's host reading out")
    ap.add_argument("--via-stats", action="store_true",
                    help="read through Cgroup.stats() (no kept-open files) for comparison")
    a = ap.parse_args()

    cgs, procs = [], []
    try:
        for _ in range(a.containers):
            cg = make_cgroup(memory=256 * 1024 * 1024, cpus=0.5)
            cgs.append(cg)
            procs.append(spawn_sh_in(cg, "exec sleep 3600"))
        targets = cgs
        if a.via_stats:
            class ViaStats:  # hides paths(): the monitor falls back to stats()
                def __init__(self, cg):
                    self.cg, self.name = cg, cg.name

                def stats(self):
                    return self.cg.stats()
            targets = [ViaStats(c) for c in cgs]
        mon = Monitor(targets, rate=a.rate, host=not a.no_host)
        wall0 = time.monotonic()
        mon.start()
        time.sleep(a.seconds)
        mon.stop()
        wall = time.monotonic() - wall0
        rows = mon.rows()
        ts = sorted({r["t"] for r in rows})
        gaps = [b - c for b, c in zip(ts[1:], ts)]
        per_tick_us = mon.cpu_time / max(1, mon.ticks) * 1e6
        pct = mon.cpu_time / wall * 100
        print(f"monitor: {a.containers} cgroups + {'no host' if a.no_host else 'host'}, "
              f"rate {a.rate:g}/s, {wall:.1f} s wall, {mon.ticks} ticks "
              f"({mon.late_ticks} late), {len(rows)} rows")
        print(f"sampling thread CPU: {mon.cpu_time * 1000:.1f} ms = {pct:.2f} % of one core "
              f"({per_tick_us:.0f} µs per tick, "
              f"{per_tick_us / max(1, a.containers):.0f} µs per container)")
        if gaps:
            print(f"tick spacing: median {statistics.median(gaps) * 1000:.1f} ms "
                  f"(target {1000 / a.rate:.1f} ms)")
        ok = pct < 1.0
        print(("OK" if ok else "OVER BUDGET") + ": target < 1 % of one core")
        return 0 if ok else 1
    finally:
        for cg, p in zip(cgs, procs):
            cleanup(cg, [p])


if __name__ == "__main__":
    sys.exit(main())
