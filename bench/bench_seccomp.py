"""What the seccomp filter costs at start: ``labkit.run("busybox", ["/bin/true"])`` with the
default filter against ``--security-opt seccomp=unconfined`` (no filter), interleaved, plus the
two pieces on their own: compiling a profile with libseccomp in the engine (once per
capability set, then cached) and loading the bytes with prctl in a forked child.

    .venv/bin/python bench/bench_seccomp.py [--runs 40] [--warmup 3]

Needs root; a private LABKIT_HOME and engine; removes everything afterwards.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from common import Scratch, machine, median_ms, report_cleanup, spread


def time_install(code: bytes, runs: int) -> list[float]:
    """Fork, set no_new_privs, load the filter, exit: minus the same without the load."""
    from labkit.kernel import capabilities, seccomp

    out = []
    for _ in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            capabilities.set_no_new_privs()
            t0 = time.perf_counter_ns()
            seccomp.install(code)
            os.write(w, str(time.perf_counter_ns() - t0).encode())
            os._exit(0)
        os.close(w)
        ns = int(os.read(r, 64))
        os.close(r)
        os.waitpid(pid, 0)
        out.append(ns / 1e9)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    s = Scratch("lkbench-sc")
    print(f"# bench_seccomp {machine()}")
    try:
        import labkit
        from labkit.kernel import capabilities, seccomp

        t0 = time.perf_counter()
        profile = seccomp.load()
        t1 = time.perf_counter()
        code = seccomp.compile_profile(profile, capabilities.DEFAULT)
        t2 = time.perf_counter()
        compiles = []
        for _ in range(20):
            t = time.perf_counter()
            seccomp.compile_profile(profile, capabilities.DEFAULT)
            compiles.append(time.perf_counter() - t)
        print(f"profile: read + check {(t1 - t0) * 1000:.1f} ms (first, incl. loading libseccomp); "
              f"compile {(t2 - t1) * 1000:.1f} ms first, median {median_ms(compiles):.2f} ms; "
              f"{len(code) // 8} BPF instructions")
        inst = time_install(code, 50)
        print(f"prctl(PR_SET_SECCOMP) in the child: median {median_ms(inst):.3f} ms {spread(inst)}")

        # both orders in turn: the run after another one may find the engine still making its spare
        variants = {"default filter": [], "unconfined": []}
        opts = {"default filter": [], "unconfined": ["seccomp=unconfined"]}
        for _ in range(a.warmup):
            for name in variants:
                labkit.run("busybox", ["/bin/true"], security_opt=opts[name])
        for i in range(a.runs):  # interleaved: the machine's noise falls on both alike
            for name in (list(variants) if i % 2 else list(variants)[::-1]):
                t = time.perf_counter()
                labkit.run("busybox", ["/bin/true"], security_opt=opts[name])
                variants[name].append(time.perf_counter() - t)
        print(f"\nlabkit.run busybox /bin/true, {a.runs} interleaved runs each (API, engine up):")
        for name, times in variants.items():
            print(f"  {name:<15} median {median_ms(times):7.2f} ms  {spread(times)}")
        ratio = statistics.median(variants["default filter"]) / statistics.median(variants["unconfined"])
        print(f"  ratio default/unconfined: {ratio:.3f}")
    finally:
        problems = s.close()
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
