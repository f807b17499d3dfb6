"""Bridge networks: start-to-exit on a bridge, and TCP throughput, labkit beside podman (one run).

- start: ``labkit run --rm --network bridge busybox /bin/true`` (and ``--network none``
  for reference) against ``podman run --rm --network podman --runtime runc`` (CNI bridge).
- throughput: a container sends ``dd if=/dev/zero`` through busybox ``nc`` to another
  container on the same bridge (labkit user network vs podman's bridge, both by IP, the
  same busybox binaries on both sides), and the host's loopback as the ceiling. Timed
  inside the sender (``/proc/uptime``, 10 ms), ``--tput-runs`` times interleaved
  (median). busybox ``nc`` moves the data in small reads and writes, so the transfer
  is CPU-bound: on a shared machine the wall time measures the neighbours as much as
  the path. The CPU the sender's ``dd`` and ``nc`` used per GB (the shell's ``times``)
  is printed beside it: that one does not depend on how busy the machine is.

Traffic stays between this machine's containers and its loopback.

    .venv/bin/python bench/bench_network.py [--runs 20] [--mb 512] [--skip podman]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from common import (LABKIT_CLI, Scratch, have, machine, median_ms, report_cleanup, run_quiet, spread,
                    time_command)

SEND = ("a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null | nc {dst} 5001 || echo NC-FAILED;"
        " b=$(cut -d' ' -f1 /proc/uptime); echo $a $b; times")
# busybox's small nc leaves when its own stdin ends: a pipe from sleep keeps it reading the socket;
# it also leaves when the sender is done, so a loop serves the next run (all on that one pipe).
SERVE = "sleep 3600 | while true; do nc -l -p 5001 > /dev/null; done"
LISTENING = ["grep", "-q", ":1389 00000000:0000 0A", "/proc/net/tcp"]  # port 5001, state LISTEN


def mb_per_s(out: str, mb: int) -> tuple[float, float]:
    """(MB/s, CPU seconds per GB of the sender's children) from SEND's output."""
    if "NC-FAILED" in out:
        raise RuntimeError(f"the transfer failed: {out.strip()}")
    lines = out.strip().splitlines()
    a, b = map(float, lines[-3].split()[-2:])
    cpu = sum(_seconds(t) for t in lines[-1].split())  # children: user, sys ("0m1.230000s")
    return mb / max(b - a, 0.01), cpu / mb * 1024


def _seconds(text: str) -> float:
    m, _sep, sec = text.rstrip("s").partition("m")
    return int(m) * 60 + float(sec)


def wait_port(argv_probe: list[str]) -> None:
    for _ in range(100):
        if subprocess.run(argv_probe, capture_output=True).returncode == 0:
            return
        time.sleep(0.1)


def podman_base(s: Scratch) -> list[str]:
    return ["podman", "--root", str(s.path("podman", "root")), "--runroot", str(s.path("podman", "runroot")),
            "--tmpdir", str(s.path("podman", "tmp")), "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mb", type=int, default=512)
    ap.add_argument("--tput-runs", type=int, default=3)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_network: needs root", file=sys.stderr)
        return 2
    skip = set(filter(None, a.skip.split(",")))
    s = Scratch("lkbench-net")
    lk = str(LABKIT_CLI)
    blocks = a.mb * 16
    start: dict[str, list[float]] = {}
    tput: dict[str, list[tuple[float, float]]] = {}
    use_podman = "podman" not in skip and have("podman")
    from labkit.kernel.net import bridge

    cni_before = bridge.exists("cni-podman0")  # podman's CNI bridge stays after `system reset`
    ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
    try:
        print(f"# bench_network {machine()}")
        run_quiet([lk, "run", "--rm", "busybox", "true"])  # engine up, image built
        run_quiet([lk, "run", "--rm", "--network", "bridge", "busybox", "true"])  # bridge made
        subjects = [("labkit run --network none", [lk, "run", "--rm", "--network", "none", "busybox", "/bin/true"]),
                    ("labkit run --network bridge", [lk, "run", "--rm", "--network", "bridge", "busybox",
                                                     "/bin/true"])]
        if use_podman:
            base = podman_base(s)
            pulled = run_quiet(base + ["pull", "-q", f"oci:{s.home / 'images'}:localhost/busybox:latest"])
            image = pulled.stdout.strip().splitlines()[-1]
            subjects.append(("podman run --network podman (runc)",
                             base + ["run", "--rm", *ulimits, "--cgroup-parent", f"/{s.tag}-podman", image,
                                     "/bin/true"]))
        for key, argv in subjects:
            t, _cpu = time_command(argv, 2, 0)
        for r in range(4):  # interleaved rounds: the machine's noise falls on every subject
            for key, argv in subjects[r % len(subjects):] + subjects[:r % len(subjects)]:
                t, _cpu = time_command(argv, max(1, a.runs // 4), 0)
                start.setdefault(key, []).extend(t)

        # throughput: each subject's server up, then the senders in interleaved rounds
        senders = {}
        run_quiet([lk, "network", "create", "lkbench"])
        run_quiet([lk, "run", "-d", "--name", "lkb-srv", "--network", "lkbench", "busybox", "sh", "-c", SERVE])
        wait_port([lk, "exec", "lkb-srv", *LISTENING])
        ip = json.loads(run_quiet([lk, "inspect", "lkb-srv"]).stdout)[0]["NetworkSettings"]["Networks"][
            "lkbench"]["IPAddress"]
        ready = {"labkit container -> container": [lk, "exec", "lkb-srv", *LISTENING]}
        senders["labkit container -> container"] = [lk, "run", "--rm", "--network", "lkbench", "busybox", "sh",
                                                    "-c", SEND.format(blocks=blocks, dst=ip.strip())]
        if use_podman:
            run_quiet(base + ["run", "-d", "--name", "pb-srv", *ulimits, "--cgroup-parent", f"/{s.tag}-podman",
                              image, "sh", "-c", SERVE])
            ip = run_quiet(base + ["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "pb-srv"]).stdout.strip()
            wait_port(base + ["exec", "pb-srv", *LISTENING])
            ready["podman container -> container"] = base + ["exec", "pb-srv", *LISTENING]
            senders["podman container -> container"] = base + [
                "run", "--rm", *ulimits, "--cgroup-parent", f"/{s.tag}-podman", image, "sh", "-c",
                SEND.format(blocks=blocks, dst=ip)]
        order = list(senders.items())
        for r in range(a.tput_runs):
            for key, argv in order[r % len(order):] + order[:r % len(order)]:
                wait_port(ready[key])  # the server's loop listens again
                tput.setdefault(key, []).append(mb_per_s(run_quiet(argv).stdout, a.mb))
        if have("busybox"):
            srv = subprocess.Popen(["busybox", "sh", "-c", SERVE.replace("5001", "5002")], start_new_session=True)
            try:
                wait_port(["grep", "-q", ":138A 00000000:0000 0A", "/proc/net/tcp"])
                out = run_quiet(["busybox", "sh", "-c", SEND.format(blocks=blocks, dst="127.0.0.1").replace(
                    "5001", "5002")]).stdout
                tput["host loopback"] = [mb_per_s(out, a.mb)]
            finally:
                os.killpg(srv.pid, 15)  # its own session: the shell and its nc
                srv.wait()
    finally:
        run_quiet([lk, "rm", "-f", "lkb-srv"], check=False)
        run_quiet([lk, "network", "rm", "lkbench"], check=False)
        if use_podman:
            run_quiet(podman_base(s) + ["rm", "-af"], check=False)
            run_quiet(podman_base(s) + ["system", "reset", "--force"], check=False)
            if not cni_before and bridge.exists("cni-podman0"):
                run_quiet(["ip", "link", "del", "cni-podman0"], check=False)
        problems = s.close()

    print()
    w = max(len(k) for k in start)
    print(f"{'start-to-exit':<{w}}  {'runs':>4}  {'median ms':>9}  {'min–max ms':>13}")
    for k, t in start.items():
        print(f"{k:<{w}}  {len(t):>4}  {median_ms(t):>9.1f}  {spread(t):>13}")
    lb = next((median_ms(t) for k, t in start.items() if "bridge" in k), None)
    pm = next((median_ms(t) for k, t in start.items() if k.startswith("podman")), None)
    if lb and pm:
        r = lb / pm
        print(f"labkit bridge / podman bridge: {r:.2f}  (target <= 0.33: {'met' if r <= 0.33 else 'MISSED'})")
    print()
    print(f"{'throughput':<32} {'MB/s':>9}  {'runs':>4}  {'min–max':>9}  {'sender CPU s/GB':>15}")
    med = {}
    for k, v in tput.items():
        rates = sorted(x[0] for x in v)
        cpus = sorted(x[1] for x in v)
        med[k] = (rates[len(rates) // 2], cpus[len(cpus) // 2])
        print(f"{k:<32} {med[k][0]:>9.0f}  {len(v):>4}  {rates[0]:>4.0f}–{rates[-1]:<4.0f}  {med[k][1]:>15.2f}"
              f"  ({a.mb} MB)")
    if "podman container -> container" in med:
        r = med["labkit container -> container"][0] / med["podman container -> container"][0]
        c = med["labkit container -> container"][1] / max(med["podman container -> container"][1], 1e-9)
        print(f"labkit / podman throughput: {r:.2f}  (target >= 0.9: {'met' if r >= 0.9 else 'MISSED'}); "
              f"CPU per GB: {c:.2f}")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
