"""Start-to-exit time of ``/bin/true`` in a container: labkit beside runc, crun and podman.

All in one run, on the same busybox rootfs (labkit's own image: its unpacked
layer is copied for the runc/crun bundles and podman pulls the OCI layout):

- labkit API: ``labkit.run("busybox", ["/bin/true"], network=N)`` in a loop in this process
  (the engine is already up; each run creates, starts, reaps and removes a container)
- labkit CLI: ``labkit run --rm --network N busybox /bin/true`` (a new Python process per run)
- ``runc run`` and ``crun run`` (foreground; both delete the container on exit) on a
  bundle from ``runc spec``: absolute read-only root, no terminal, cgroupsPath set.
  crun 1.8.1 refuses hybrid hosts, so it runs as
  ``unshare -m sh -c 'umount /sys/fs/cgroup/unified && crun run ...'`` (skipped with the
  reason when it still refuses)
- ``podman run --rm --network N`` with ``--runtime runc`` (private --root/--runroot)

``--network`` (N) is ``none`` (default) or ``bridge`` (labkit's default network and
podman's; runc and crun get no network either way, as their bundles have none).

Commands are timed with ``hyperfine -N`` when installed (else a subprocess loop).
Prints medians (ms), min–max, and the ratios the targets are about:
labkit API / crun (target ≤ 1) and labkit CLI / podman (target < 1/3).
Needs root. Leaves no container, mount or cgroup behind (checked at the end).

    .venv/bin/python bench/bench_runtime.py [--runs 50] [--warmup 3] [--skip podman,crun] [--network bridge]
"""
from __future__ import annotations

import argparse
import os
import sys

from common import (LABKIT_CLI, Scratch, cgroup_leftovers, have, machine, median_ms,
                    proc_cpu, report_cleanup, run_quiet, spread, time_call, time_command)


def podman_base(s: Scratch) -> list[str]:
    return ["podman", "--root", str(s.path("podman", "root")), "--runroot", str(s.path("podman", "runroot")),
            "--tmpdir", str(s.path("podman", "tmp")), "--storage-driver", "overlay",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none", "--runtime", "runc"]


def podman_cleanup(s: Scratch) -> None:
    base = podman_base(s)
    run_quiet(base + ["rm", "-af"], check=False)
    run_quiet(base + ["system", "reset", "--force"], check=False)


def ORDER_KEYS(results: dict, subjects: list) -> list[str]:
    order = ["labkit API", "labkit CLI", "runc", "crun", "podman"]
    return sorted(results, key=lambda k: next(i for i, p in enumerate(order) if k.startswith(p)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5,
                    help="interleaved rounds (each subject runs runs/rounds times per round)")
    ap.add_argument("--skip", default="", help="comma list of: api,cli,runc,crun,podman")
    ap.add_argument("--network", default="none", choices=["none", "bridge"],
                    help="network of the labkit and podman containers (runc/crun: none)")
    ap.add_argument("--no-hyperfine", action="store_true", help="time commands with our own loop")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_runtime: needs root", file=sys.stderr)
        return 2
    skip = set(filter(None, a.skip.split(",")))
    hf = not a.no_hyperfine
    s = Scratch("lkbench-rt")
    results: dict[str, tuple[list[float] | None, str]] = {}
    labkit_ids: list[str] = []
    cpu_ms: dict[str, float] = {}
    epid = 0
    try:
        import labkit

        print(f"# bench_runtime {machine()}")
        print(f"# scratch {s.dir} (LABKIT_HOME={s.home}), tag {s.tag}, runs {a.runs}, warmup {a.warmup}, "
              f"timer {'hyperfine -N' if hf and have('hyperfine') else 'subprocess loop'}")
        rootfs = s.busybox_rootfs()

        # Set up and probe every subject first; then time them in interleaved rounds so
        # that the noise of a shared machine falls on all of them alike.
        subjects: list[tuple[str, object]] = []
        if "api" not in skip:
            def one() -> None:
                r = labkit.run("busybox", ["/bin/true"], network=a.network)
                if r.exit_code != 0:
                    raise RuntimeError(f"labkit.run exited {r.exit_code}: {r.stderr}")
                labkit_ids.append(r.id)

            one()  # starts the engine and builds the image if needed
            epid = s.engine_pid()

            def api(k: int, w: int):
                c0 = proc_cpu(epid) + sum(os.times()[:2])
                t = time_call(one, k, w)
                return t, proc_cpu(epid) + sum(os.times()[:2]) - c0

            subjects.append((f"labkit API  labkit.run('busybox', ['/bin/true'], network='{a.network}')", api))

        def command(key: str, argv: list[str]) -> None:
            probe = run_quiet(argv, check=False)
            if probe.returncode != 0:
                results[key] = (None, f"{key.split()[0]} refused: " + (probe.stderr.strip().splitlines() or ["?"])[-1])
                return
            def timed(k: int, w: int):
                pid = s.engine_pid() if key.startswith("labkit") else 0
                e0 = proc_cpu(pid) if pid else 0.0  # the engine's share (and its containers')
                t, cpu = time_command(argv, k, w, hyperfine=hf)
                e1 = proc_cpu(pid) if pid else 0.0
                return t, cpu * k + (e1 - e0)

            subjects.append((key, timed))

        if "cli" not in skip:
            command(f"labkit CLI  labkit run --rm --network {a.network} busybox /bin/true",
                    [str(LABKIT_CLI), "run", "--rm", "--network", a.network, "busybox", "/bin/true"])

        if "runc" not in skip:
            if have("runc"):
                b = s.bundle("runc", ["/bin/true"], f"/{s.tag}-runc")
                state = s.path("state", "runc")
                command("runc run", ["runc", "--root", str(state), "run", "--bundle", str(b), f"{s.tag}-runc"])
            else:
                results["runc run"] = (None, "runc not installed (apt-get install -y runc)")

        if "crun" not in skip:
            key = "crun run (unshare -m, unified unmounted)"
            if have("crun"):
                b = s.bundle("crun", ["/bin/true"], f"/{s.tag}-crun")
                state = s.path("state", "crun")
                inner = (f"umount /sys/fs/cgroup/unified 2>/dev/null; "
                         f"exec crun --root {state} run --bundle {b} {s.tag}-crun")
                command(key, ["unshare", "-m", "sh", "-c", inner])
            else:
                results[key] = (None, "crun not installed (apt-get install -y crun)")

        if "podman" not in skip:
            key = f"podman run --rm --network {a.network} (--runtime runc)"
            if have("podman"):
                s.extra_cleanup.append(lambda: podman_cleanup(s))
                base = podman_base(s)
                pulled = run_quiet(base + ["pull", "-q", f"oci:{s.home / 'images'}:localhost/busybox:latest"])
                image_id = pulled.stdout.strip().splitlines()[-1]  # named after the path; use the ID
                command(key, base + ["run", "--rm", "--network", a.network,
                                     "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
                                     "--cgroup-parent", f"/{s.tag}-podman", image_id, "/bin/true"])
            else:
                results[key] = (None, "podman not installed (apt-get install -y podman)")

        times: dict[str, list[float]] = {k: [] for k, _ in subjects}
        cpu: dict[str, float] = {k: 0.0 for k, _ in subjects}
        for key, fn in subjects:
            if a.warmup:
                fn(a.warmup, 0) if not key.startswith("labkit API") else fn(0, a.warmup)
        rounds = max(1, min(a.rounds, a.runs // 2))
        for r in range(rounds):
            k = a.runs // rounds + (1 if r < a.runs % rounds else 0)
            order = subjects[r % len(subjects):] + subjects[:r % len(subjects)]
            for key, fn in order:
                t, c = fn(k, 0)
                times[key] += t
                cpu[key] += c
        for key, _fn in subjects:
            results[key] = (times[key], "")
            cpu_ms[key] = cpu[key] / len(times[key]) * 1000
        results = {k: results[k] for k in ORDER_KEYS(results, subjects)}
    finally:
        problems = s.close()
        for cid in labkit_ids:
            problems += [f"cgroup {p}" for p in cgroup_leftovers(cid)]

    print()
    w = max(len(k) for k in results)
    print(f"{'what':<{w}}  {'runs':>4}  {'median ms':>9}  {'min–max ms':>13}  {'CPU ms/run':>10}")
    print(f"{'-' * w}  {'-' * 4}  {'-' * 9}  {'-' * 13}  {'-' * 10}")
    med: dict[str, float] = {}
    for k, (times, why) in results.items():
        if times is None:
            print(f"{k:<{w}}  {'-':>4}  {'skipped':>9}  {why}")
            continue
        med[k.split()[0] + (" " + k.split()[1] if k.startswith("labkit") else "")] = median_ms(times)
        print(f"{k:<{w}}  {len(times):>4}  {median_ms(times):>9.1f}  {spread(times):>13}  "
              f"{cpu_ms.get(k, 0):>10.1f}")
    print()

    def ratio(num: str, den: str, target: str, ok) -> None:
        if num in med and den in med:
            r = med[num] / med[den]
            print(f"{num} / {den}: {r:.2f}  (target {target}: {'met' if ok(r) else 'MISSED'})")
        else:
            print(f"{num} / {den}: n/a")

    ratio("labkit API", "crun", "<= 1", lambda r: r <= 1)
    if "crun" not in med and "runc" in med:
        ratio("labkit API", "runc", "<= 1 (runc; crun skipped)", lambda r: r <= 1)
    ratio("labkit CLI", "podman", "< 1/3", lambda r: r < 1 / 3)
    print("CPU ms/run: user+sys of the command and the children it waits for (hyperfine), plus, for\n"
          "labkit, the engine's and its containers'; podman's conmon/runc are not waited for: undercounted.")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
