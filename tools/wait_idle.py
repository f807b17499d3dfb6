#!/usr/bin/env python3
"""Wait until the machine is quiet enough to record notebook outputs (``make record``).

The rule: the CPU time every process of the machine used over a 2-second window
(from ``/proc/stat``), in percent of one core as the notebooks count it (a busy
2-core machine is at 200 %), must be at most ``--max`` (default 25). While it is
above, the window is measured again, for up to ``--wait`` seconds in all (default
300); then we give up with exit status 1. Notebook 03 measures CPU shares: recorded
on a busy machine, its stored figures contradict its own text.

usage: tools/wait_idle.py [--max PERCENT] [--wait SECONDS] [--window SECONDS]
Stdlib only; messages in pt-BR with the English in parentheses, as the Makefile's.
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def _times() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user/nice
    return total - idle, total


def machine_cpu_percent(window: float) -> float:
    """CPU used by the whole machine over ``window`` seconds, in % of one core."""
    b0, t0 = _times()
    time.sleep(window)
    b1, t1 = _times()
    ncpu = os.cpu_count() or 1
    return 100.0 * ncpu * (b1 - b0) / max(1, t1 - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max", type=float, default=25.0, help="percent of one core (default 25)")
    ap.add_argument("--wait", type=float, default=300.0, help="seconds to wait at most (default 300)")
    ap.add_argument("--window", type=float, default=2.0, help="seconds per measurement (default 2)")
    a = ap.parse_args()
    give_up = time.monotonic() + a.wait
    told = False
    while True:
        used = machine_cpu_percent(a.window)
        if used <= a.max:
            if told:
                print(f"make record: a máquina sossegou (the machine is quiet now): {used:.0f} %")
            return 0
        if time.monotonic() >= give_up:
            print(f"make record: RECUSADO (refused): a máquina ainda usa {used:.0f} % de CPU (de um núcleo; "
                  f"limite {a.max:.0f} %) depois de {a.wait:.0f} s de espera.\n"
                  f"  Figuras de CPU gravadas numa máquina ocupada contradizem o texto dos notebooks.\n"
                  f"  Feche o que estiver rodando (outro make test, um build) e tente de novo, ou grave assim\n"
                  f"  mesmo com FORCE=1. (The machine still uses {used:.0f} % CPU, limit {a.max:.0f} %; CPU\n"
                  f"  figures recorded on a busy machine contradict the notebooks' text. Stop what runs, or\n"
                  f"  use FORCE=1.)", file=sys.stderr)
            return 1
        if not told:
            print(f"make record: a máquina está ocupada, {used:.0f} % de CPU (de um núcleo) em {a.window:.0f} s; "
                  f"esperando até {a.max:.0f} % por no máximo {a.wait:.0f} s (FORCE=1 grava sem esperar)\n"
                  f"  (the machine is busy, {used:.0f} % CPU; waiting until it is at most {a.max:.0f} %, "
                  f"{a.wait:.0f} s at most; FORCE=1 records anyway)", file=sys.stderr)
            told = True


if __name__ == "__main__":
    sys.exit(main())
