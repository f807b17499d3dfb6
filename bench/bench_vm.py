#!/usr/bin/env python3
"""The same image as a VM (labkit.vm, QEMU) and as a container (labkit.run): the cost of a kernel.

1. Boot-to-exit of ``/bin/true``: ``labkit.vm.run("busybox", ["/bin/true"])`` (TCG here,
   KVM where a smoke boot works) against ``labkit.run("busybox", ["/bin/true"])``, the
   engine already up, in interleaved rounds.
2. Memory per idle instance: N VMs running ``sleep`` (QEMU's RSS and PSS once the command
   has started) against N detached containers running ``sleep`` (their memory cgroup's
   usage; the engine, shared by all containers, is not counted).
3. ``labkit.vm.compare`` of the same image and command both ways (``--compare IMAGE``,
   default busybox, command ``md5sum /bin/busybox``): its table, as notebook 07 shows it.

Numbers, no assertions. One run; see bench/README.md.

usage: bench/bench_vm.py [--runs 3] [-n 3] [--memory 256m] [--compare IMAGE] [--cmd 'md5sum /bin/busybox'] [--only-compare]
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import statistics
import sys
import threading
import time

from common import Scratch, machine

import labkit
from labkit import vm


def boot_to_exit(runs: int, memory: str) -> tuple[list[float], list[float], str]:
    vms, ctrs = [], []
    accel = ""
    for _ in range(runs):  # interleaved: the machine's noise falls on both alike
        t0 = time.monotonic()
        res = vm.run("busybox", ["/bin/true"], memory=memory, timeout=300)
        vms.append(time.monotonic() - t0)
        accel = res.accel
        assert res.exit_code == 0, res.console
        for _ in range(3):
            t0 = time.monotonic()
            labkit.run("busybox", ["/bin/true"])
            ctrs.append(time.monotonic() - t0)
    return vms, ctrs, accel


def idle_vms(n: int, memory: str) -> list[tuple[int, int, int]]:
    """(rss, pss, guest MemTotal - MemAvailable) of each of n idle VMs, in bytes."""
    import psutil

    ready = threading.Barrier(n + 1)
    used: list[int] = []

    def one() -> None:
        said = [False]

        def out(line: bytes) -> None:
            if line.startswith(b"used ") and not said[0]:
                said[0] = True
                used.append(int(line.split()[1]) * 1024)
                ready.wait()
        script = ("t=$(awk '/MemTotal/{print $2}' /proc/meminfo);"
                  "a=$(awk '/MemAvailable/{print $2}' /proc/meminfo);"
                  "echo used $((t - a)); sleep 1000")
        vm.run("busybox", ["sh", "-c", script], memory=memory, timeout=900, stdout=out)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    ready.wait(timeout=600)
    time.sleep(2)  # let the last guest settle after its first line
    me = psutil.Process()
    qemus = [p for p in me.children(recursive=True) if p.name().startswith("qemu")]
    rows = []
    for p, u in zip(qemus, used):
        info = p.memory_full_info()
        rows.append((info.rss, info.pss, u))
    for p in qemus:
        os.kill(p.pid, signal.SIGKILL)  # vm.run returns: no exit status, the guest "died"
    for t in threads:
        t.join(timeout=60)
    return rows


def idle_containers(n: int) -> list[int]:
    ctrs = [labkit.run("busybox", ["sleep", "1000"], detach=True) for _ in range(n)]
    try:
        time.sleep(1)
        return [c.stats()["memory_usage"] for c in ctrs]
    finally:
        for c in ctrs:
            c.remove(force=True)


def compare(image: str, cmd: str, memory: str) -> None:
    if image.startswith("debian:"):  # made once with debootstrap from this machine's mirror
        from labkit.images import debian

        debian.ensure(image.split(":", 1)[1], progress=lambda line: None)
    c = vm.compare(image, shlex.split(cmd), memory=memory, timeout=600)
    print("\nlabkit.vm.compare (one run of each, after a probe run of each):")
    print(c.table())


def mib(b: float) -> str:
    return f"{b / 1048576:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="VM boots for boot-to-exit")
    ap.add_argument("-n", type=int, default=3, help="idle instances of each kind")
    ap.add_argument("--memory", default="256m", help="guest memory")
    ap.add_argument("--compare", metavar="IMAGE", default="busybox",
                    help="labkit.vm.compare of this image both ways")
    ap.add_argument("--cmd", default="md5sum /bin/busybox", help="its command (shell words)")
    ap.add_argument("--only-compare", action="store_true", help="skip 1 and 2")
    a = ap.parse_args()
    scratch = Scratch("lkbvm")
    try:
        print(f"machine: {machine()}")
        if not a.only_compare:
            labkit.run("busybox", ["/bin/true"])  # image built, engine up, VM disk made below
            vm.run("busybox", ["/bin/true"], memory=a.memory, timeout=300)
            vms, ctrs, accel = boot_to_exit(a.runs, a.memory)
            mv, mc = statistics.median(vms), statistics.median(ctrs)
            print("\nboot-to-exit of /bin/true (busybox), wall seconds, median (min-max):")
            print(f"  VM ({accel}, {a.memory})  {mv:.2f} ({min(vms):.2f}-{max(vms):.2f})  n={len(vms)}")
            print(f"  container        {mc:.3f} ({min(ctrs):.3f}-{max(ctrs):.3f})  n={len(ctrs)}")
            print(f"  ratio VM / container: {mv / mc:.0f}x")
            rows = idle_vms(a.n, a.memory)
            usage = idle_containers(a.n)
            rss = statistics.mean(r[0] for r in rows)
            pss = statistics.mean(r[1] for r in rows)
            guest = statistics.mean(r[2] for r in rows)
            cu = statistics.mean(usage)
            print(f"\nmemory per idle instance ({a.n} of each, MiB, mean):")
            print(f"  VM: QEMU RSS {mib(rss)}, PSS {mib(pss)}; guest's own used (MemTotal-MemAvailable)"
                  f" {mib(guest)}")
            print(f"  container: memory cgroup usage {mib(cu)}")
            print(f"  ratio VM RSS / container: {rss / cu:.0f}x;  VM PSS / container: {pss / cu:.0f}x")
        compare(a.compare, a.cmd, a.memory)
    finally:
        problems = scratch.close()
    if problems:
        print("LEFTOVERS:", *problems, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
