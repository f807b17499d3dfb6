"""``labkit build`` beside ``podman build --runtime runc --network none``, same Dockerfile and content.

The Dockerfile (runtime-anchors §5)::

    FROM busybox            # labkit's reproducible busybox; podman pulls the same image from labkit's layout
    RUN echo hi > /f
    COPY a.txt /a.txt

Measured in one run, rounds interleaved so machine noise falls on every tool alike:

- cached rebuild (every step from the cache): labkit CLI, labkit API (in-process), podman;
- cold build (``--no-cache``: RUN runs a container, both layers are written): labkit CLI, API, podman.

Prints medians (ms), min-max and the labkit/podman ratios against the issue's targets
(cached rebuild under half of podman's, cold build at or under podman's). save/load is
timed by ``bench/bench_save_load.py`` (the store's benchmark); ``--save-load`` runs it
after this one so the figures come from the same sitting.

    .venv/bin/python bench/bench_build.py [--runs 10] [--save-load]

Needs root (containers; podman). Leaves nothing behind: private LABKIT_HOME and engine,
private podman --root/--runroot (overlay), removed at the end.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from common import scratch_dir
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python")
DOCKERFILE_LABKIT = "FROM busybox\nRUN echo hi > /f\nCOPY a.txt /a.txt\n"
DOCKERFILE_PODMAN = "FROM localhost/busybox-lab:latest\nRUN echo hi > /f\nCOPY a.txt /a.txt\n"


def fmt(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"{statistics.median(ms):8.1f}   ({ms[0]:.1f}-{ms[-1]:.1f})"


def med(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--save-load", action="store_true", help="also run bench/bench_save_load.py")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_build needs root (build containers, podman)")
        return 2

    scratch = scratch_dir("lkbb")  # short: podman's runroot <= 50 chars
    home = scratch / "home"
    os.environ["LABKIT_HOME"] = str(home)
    ctx_l = scratch / "ctx-labkit"
    ctx_p = scratch / "ctx-podman"
    for ctx, text in ((ctx_l, DOCKERFILE_LABKIT), (ctx_p, DOCKERFILE_PODMAN)):
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(text)
        (ctx / "a.txt").write_text("conteúdo de a.txt\n")
    env = {**os.environ, "LABKIT_HOME": str(home), "LABKIT_LANG": "en"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's CLI runs from cached .pyc files
    penv = {**os.environ}
    podman = None
    results: dict[str, list[float]] = {}
    try:
        import labkit
        from labkit.images.build import build_result
        from labkit.images.store import Store

        store = Store(home)
        bb = store.resolve("busybox")
        cli = [PY, "-m", "labkit", "build", "-q", "-t", "bench/lab:1"]

        def labkit_cli(no_cache: bool) -> None:
            subprocess.run(cli + (["--no-cache"] if no_cache else []) + [str(ctx_l)], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def labkit_api(no_cache: bool) -> None:
            build_result(ctx_l, "bench/lab:1", no_cache=no_cache, quiet=True)

        tools = {"labkit CLI": labkit_cli, "labkit API": labkit_api}
        if shutil.which("podman") and shutil.which("runc"):
            pdir = scratch / "pm"
            podman = ["podman", "--root", str(pdir / "root"), "--runroot", str(pdir / "run"), "--tmpdir",
                      str(pdir / "tmp"), "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
            subprocess.run(podman + ["pull", "-q", f"oci:{store.layout.root}:{bb.ref}"], env=penv, check=True,
                           capture_output=True, cwd=scratch)
            ids = subprocess.run(podman + ["images", "-q"], env=penv, check=True, capture_output=True,
                                 text=True).stdout.split()
            subprocess.run(podman + ["tag", ids[0], "localhost/busybox-lab:latest"], env=penv, check=True,
                           capture_output=True)

            def podman_build(no_cache: bool) -> None:
                subprocess.run(podman + ["build", "-q", "--runtime", "runc", "--network", "none",
                                         "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
                                         "-t", "bench/lab:1"] + (["--no-cache"] if no_cache else [])
                               + [str(ctx_p)], env=penv, check=True, capture_output=True, cwd=scratch)

            tools["podman"] = podman_build
        else:
            print("podman/runc not found: timing labkit only")

        # warm-up: the engine starts, caches fill, podman's layers exist
        for _ in range(args.warmup):
            for fn in tools.values():
                fn(False)
                fn(True)
        for _ in range(args.runs):
            for mode, no_cache in (("cached", False), ("cold", True)):
                for name, fn in tools.items():
                    t = time.perf_counter()
                    fn(no_cache)
                    results.setdefault(f"{mode} {name}", []).append(time.perf_counter() - t)
                    if mode == "cold":
                        fn(False)  # leave the cache warm for the next cached round

        # reproducibility check on the side: the cached and cold images are the same
        a = build_result(ctx_l, "bench/lab:1", quiet=True).image.digest
        b = build_result(ctx_l, "bench/lab:1", quiet=True, no_cache=True).image.digest
        labkit.engine_stop()
    finally:
        if podman:
            subprocess.run(podman + ["system", "reset", "-f"], env=penv, capture_output=True, cwd=scratch)
        try:
            import labkit

            labkit.engine_stop()
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(scratch, ignore_errors=True)

    load = os.getloadavg()
    print(f"bench_build: {args.runs} runs each, interleaved; {os.cpu_count()} CPUs, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'what':28} {'median ms':>9}   (min-max)")
    for key, samples in results.items():
        print(f"{key:28} {fmt(samples)}")
    print(f"same image digest cached vs --no-cache: {a == b}")
    if "cached podman" in results:
        for mode, target, rule in (("cached", 0.5, "< 0.5"), ("cold", 1.0, "<= 1.0")):
            p = med(results[f"{mode} podman"])
            for name in ("labkit CLI", "labkit API"):
                r = med(results[f"{mode} {name}"]) / p
                ok = "ok" if r <= target else "MISSED"
                print(f"ratio {mode} {name}/podman: {r:.2f}  (target {rule}: {ok})")
    if args.save_load:
        print()
        subprocess.run([PY, str(ROOT / "bench" / "bench_save_load.py"), "--runs", str(args.runs)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
