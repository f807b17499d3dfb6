"""What a container's cgroup costs: create (mkdir + limits), attach, stats(), remove.

Anchor (shared runtime notes, cgroup v1, 3 hierarchies): 0.38 ms for
3 mkdir + 4 limit writes + 3 attach + 3 rmdir. labkit's v1 backend touches 6
hierarchies (cpu, cpuacct, memory, pids, cpuset, freezer). Needs root.

    .venv/bin/python bench/bench_cgroups.py [-n 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from labkit.kernel import cgroups  # noqa: E402
from labkit.kernel.cgroups import Limits  # noqa: E402


def med(xs: list[float]) -> str:
    xs = sorted(x * 1000 for x in xs)
    return f"median {statistics.median(xs):.3f} ms (min {xs[0]:.3f}, max {xs[-1]:.3f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    a = ap.parse_args()
    b = cgroups.backend()
    limits = Limits(cpus=0.5, cpu_shares=512, memory=64 << 20, pids_limit=100)
    sleeper = subprocess.Popen(["sleep", "600"])
    create, attach, stats, remove = [], [], [], []
    try:
        for i in range(a.n):
            t0 = time.perf_counter()
            cg = b.create(f"labkit-bench/{os.getpid()}-{i}", limits)
            t1 = time.perf_counter()
            cg.attach(sleeper.pid)
            t2 = time.perf_counter()
            cg.stats()  # first call opens the counter files
            t3 = time.perf_counter()
            for _ in range(10):
                cg.stats()
            t4 = time.perf_counter()
            # give the sleeper back to the root before removing
            for root in cg._roots:
                with open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(str(sleeper.pid))
            t5 = time.perf_counter()
            cg.remove()
            t6 = time.perf_counter()
            create.append(t1 - t0)
            attach.append(t2 - t1)
            stats.append((t4 - t3) / 10)
            remove.append(t6 - t5)
    finally:
        sleeper.kill()
        sleeper.wait()
    print(f"cgroup {cgroups.detect()}, {len(cg.paths())} directories per container, n={a.n}, "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"create (mkdir + limits)  {med(create)}")
    print(f"attach (1 pid)           {med(attach)}")
    print(f"stats() (files kept open) {med(stats)}")
    print(f"remove (rmdir + parent)  {med(remove)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
