"""``labkit restart`` and ``labkit start`` beside podman's, on the same busybox image.

Each subject has one container of ``sleep 1000`` (podman: ``--runtime runc``, private
--root/--runroot). Timed, in interleaved rounds so a shared machine's noise falls on both:

- ``restart -t 0 CTR``: SIGKILL of PID 1, then a new PID 1 in the same container
  (same writable layer), the command returning once it runs;
- ``stop -t 0`` (not timed) then ``start CTR``: an exited container started again.

Prints medians (ms), min-max and the labkit/podman ratios.

    .venv/bin/python bench/bench_restart.py [--runs 20]

Needs root. Leaves nothing behind: private LABKIT_HOME and engine, private podman state.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from common import (LABKIT_CLI, Scratch, have, machine, median_ms, report_cleanup, run_quiet,
                    spread)


def podman_base(s: Scratch) -> list[str]:
    return ["podman", "--root", str(s.path("podman", "root")), "--runroot", str(s.path("podman", "runroot")),
            "--tmpdir", str(s.path("podman", "tmp")), "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]


def timed(argv: list[str], before: list[str] | None = None) -> float:
    if before:
        run_quiet(before)
    t0 = time.perf_counter()
    run_quiet(argv)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_restart: needs root", file=sys.stderr)
        return 2
    s = Scratch("lkbench-rs")
    subjects: dict[str, tuple[list[str], list[str] | None]] = {}
    skipped: dict[str, str] = {}
    try:
        print(f"# bench_restart {machine()}")
        lk = [str(LABKIT_CLI)]
        run_quiet(lk + ["run", "-d", "--name", "lk", "busybox", "sleep", "1000"])
        subjects["labkit restart"] = (lk + ["restart", "-t", "0", "lk"], None)
        subjects["labkit start"] = (lk + ["start", "lk"], lk + ["stop", "-t", "0", "lk"])
        if have("podman"):
            base = podman_base(s)
            s.extra_cleanup.append(lambda: run_quiet(base + ["system", "reset", "--force"], check=False))
            s.extra_cleanup.append(lambda: run_quiet(base + ["rm", "-af", "-t", "0"], check=False))
            s.busybox_rootfs()  # the image in labkit's OCI layout, pulled by podman from there
            pulled = run_quiet(base + ["pull", "-q", f"oci:{s.home / 'images'}:localhost/busybox:latest"])
            image = pulled.stdout.strip().splitlines()[-1]
            run_quiet(base + ["run", "-d", "--name", "pm", "--network", "none",
                              "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
                              "--cgroup-parent", f"/{s.tag}-podman", image, "sleep", "1000"])
            subjects["podman restart"] = (base + ["restart", "-t", "0", "pm"], None)
            subjects["podman start"] = (base + ["start", "pm"], base + ["stop", "-t", "0", "pm"])
        else:
            skipped["podman"] = "podman not installed (apt-get install -y podman)"
        for argv, before in subjects.values():  # warm-up
            timed(argv, before)
        times: dict[str, list[float]] = {k: [] for k in subjects}
        keys = list(subjects)
        for r in range(a.rounds):
            for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                argv, before = subjects[key]
                times[key] += [timed(argv, before) for _ in range(max(1, a.runs // a.rounds))]
        run_quiet(lk + ["rm", "-f", "lk"])
    finally:
        problems = s.close()
    print(f"\n{'what':<16} {'runs':>4} {'median ms':>10} {'min-max ms':>16}")
    for key, t in times.items():
        print(f"{key:<16} {len(t):>4} {median_ms(t):>10.1f} {spread(t):>16}")
    for why in skipped.values():
        print("skipped:", why)
    for verb in ("restart", "start"):
        if f"podman {verb}" in times:
            ratio = median_ms(times[f"labkit {verb}"]) / median_ms(times[f"podman {verb}"])
            print(f"labkit {verb} / podman {verb}: {ratio:.2f}")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
