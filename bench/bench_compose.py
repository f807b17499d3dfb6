"""``compose up -d`` and ``down`` of five services: labkit compose beside podman-compose.

The same application for both: five busybox services on the project's default
bridge network, a chain of ``depends_on`` (so the order is honoured), each a
shell that sleeps and exits on SIGTERM. Timed: ``up -d`` from nothing (network
and five containers made and started) and ``down`` (all stopped and removed,
the network too), in interleaved rounds.

podman-compose is not a dependency of labkit: install it into the venv for the
bench only (``.venv/bin/pip install podman-compose``); without it, or without
podman, its rows are skipped. podman runs with runc, cgroupfs and explicit
ulimits, in private --root/--runroot/--tmpdir (see bench/common.py).

    .venv/bin/python bench/bench_compose.py [--runs 10] [--skip podman]
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from common import LABKIT_CLI, VENV_BIN, Scratch, have, machine, median_ms, report_cleanup, run_quiet, spread

SERVICES = 5
COMMAND = "trap 'exit 0' TERM; sleep 600 & wait"


def compose_text(image: str, podman: bool) -> str:
    lines = ["services:"]
    for i in range(1, SERVICES + 1):
        lines += [f"  s{i}:", f"    image: {image}", f"    command: [\"sh\", \"-c\", \"{COMMAND}\"]"]
        if i > 1:
            lines.append(f"    depends_on: [s{i - 1}]")
        if podman:  # root here has no CAP_SYS_RESOURCE: podman's default nofile is above the hard limit
            lines += ["    ulimits:", "      nofile: {soft: 1024, hard: 1024}", "      nproc: 1024"]
    return "\n".join(lines) + "\n"


def podman_args(s: Scratch) -> list[str]:
    return ["--root", str(s.path("podman", "root")), "--runroot", str(s.path("podman", "runroot")),
            "--tmpdir", str(s.path("podman", "tmp")), "--storage-driver", "overlay",
            # its own CNI configs: /etc/cni/net.d is shared with every other podman on the machine
            "--network-config-dir", str(s.path("podman", "net", "x").parent),
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]


def timed(argv: list[str], cwd: str) -> float:
    t0 = time.perf_counter()
    run_quiet(argv, cwd=cwd)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--skip", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_compose: needs root", file=sys.stderr)
        return 2
    s = Scratch("lkbc")  # short: podman refuses a runroot path over 50 characters
    lk = str(LABKIT_CLI)
    pc = str(VENV_BIN / "podman-compose")
    use_podman = "podman" not in a.skip.split(",") and have("podman") and os.path.exists(pc)
    if not use_podman:
        print("# podman-compose or podman missing (or --skip podman): labkit rows only")
    times: dict[str, list[float]] = {}
    from labkit.kernel.net import bridge

    subjects = []
    cni_bridge = ""  # the bridge of podman-compose's network: removed at the end (CNI leaves it)
    try:
        print(f"# bench_compose {machine()}")
        run_quiet([lk, "run", "--rm", "busybox", "true"])  # engine up, busybox built
        d = s.path("labkit", "compose.yaml").parent
        (d / "compose.yaml").write_text(compose_text("busybox", podman=False))
        subjects.append(("labkit compose", [lk, "compose", "-p", "lkb", "up", "-d"],
                         [lk, "compose", "-p", "lkb", "down"], str(d)))
        if use_podman:
            base = ["podman", *podman_args(s)]
            pulled = run_quiet(base + ["pull", "-q", f"oci:{s.home / 'images'}:localhost/busybox:latest"])
            image = pulled.stdout.strip().splitlines()[-1]
            run_quiet(base + ["tag", image, "localhost/lkbench-busybox:latest"])
            pd = s.path("podman-project", "compose.yaml").parent
            (pd / "compose.yaml").write_text(compose_text("localhost/lkbench-busybox:latest", podman=True))
            # no pod: labkit has none, and a pod kept a reference to a removed network between runs
            extra = ["--podman-args", shlex.join(podman_args(s)), "--in-pod", "false"]
            subjects.append(("podman-compose (runc)", [pc, *extra, "-p", "pkb", "up", "-d"],
                             [pc, *extra, "-p", "pkb", "down"], str(pd)))
        for key, up, down, cwd in subjects:  # once each: images, networks, caches warm
            timed(up, cwd)
            if key.startswith("podman"):
                import json

                net = json.loads(run_quiet(base + ["network", "inspect", "pkb_default"]).stdout)[0]
                cni_bridge = next((p.get("bridge", "") for p in net.get("plugins", []) if p.get("bridge")), "") \
                    or net.get("network_interface", "")
            timed(down, cwd)
        for r in range(a.runs):  # interleaved: the machine's noise falls on both
            for key, up, down, cwd in subjects[r % len(subjects):] + subjects[:r % len(subjects)]:
                times.setdefault(f"{key}: up -d", []).append(timed(up, cwd))
                times.setdefault(f"{key}: down", []).append(timed(down, cwd))
    finally:
        for key, _up, down, cwd in subjects:
            run_quiet(down, cwd=cwd, check=False)
        if use_podman:
            run_quiet(["podman", *podman_args(s), "rm", "-af"], check=False)
            run_quiet(["podman", *podman_args(s), "system", "reset", "--force"], check=False)
            if cni_bridge and bridge.exists(cni_bridge):
                run_quiet(["ip", "link", "del", cni_bridge], check=False)
        problems = s.close()

    print()
    w = max((len(k) for k in times), default=10)
    print(f"{SERVICES} services   {'':<{w - 13}}  {'runs':>4}  {'median ms':>9}  {'min–max ms':>15}")
    for k, t in times.items():
        print(f"{k:<{w}}  {len(t):>4}  {median_ms(t):>9.0f}  {spread(t):>15}")
    for verb in ("up -d", "down"):
        lk_t, pm_t = times.get(f"labkit compose: {verb}"), times.get(f"podman-compose (runc): {verb}")
        if lk_t and pm_t:
            print(f"labkit / podman-compose, {verb}: {median_ms(lk_t) / median_ms(pm_t):.2f}")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
