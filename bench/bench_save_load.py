"""``save`` and ``load`` of the busybox image: labkit (API and CLI) beside podman.

Measured in one run, on the same image (labkit's reproducible busybox, which
podman pulls from labkit's OCI layout):

- labkit API: ``archive.save(["busybox"], path, format)`` and ``archive.load(path)``
  into a fresh store each time (layers are stored, not unpacked: same as podman);
- labkit CLI: ``labkit save -o FILE --format F busybox`` / ``labkit load -i FILE``;
- podman (``--runtime runc``, private ``--root/--runroot``, vfs storage):
  ``podman save --format F -o FILE`` and ``podman load -i FILE`` (the image is
  removed before each load; the output file before each save, since podman
  refuses to overwrite a docker-archive);
- labkit's cold busybox build (first ``resolve("busybox")`` in an empty store).

Prints medians (ms), min-max and labkit/podman ratios. Needs root for podman;
without podman only labkit is timed. Leaves nothing behind.

    .venv/bin/python bench/bench_save_load.py [--runs 10]
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


def timed(fn, runs: int, before=None) -> list[float]:
    out = []
    for _ in range(runs):
        if before:
            before()
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def fmt(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    return f"{statistics.median(ms):8.1f}   ({ms[0]:.1f}-{ms[-1]:.1f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    n = args.runs

    scratch = scratch_dir("lkbench")
    home = scratch / "home"
    os.environ["LABKIT_HOME"] = str(home)
    from labkit.images import archive
    from labkit.images.store import Store

    results: dict[str, list[float]] = {}
    podman = None
    try:
        counter = iter(range(10**6))
        results["labkit busybox build (cold)"] = timed(
            lambda: Store(scratch / f"cold{next(counter)}").resolve("busybox"), n)
        store = Store(home)
        img = store.resolve("busybox")
        header = (f"busybox image {img.digest}, {img.size / 1e6:.2f} MB uncompressed; {n} runs; "
                  f"{os.cpu_count()} CPUs, kernel {os.uname().release}")
        for f in ("oci-archive", "docker-archive"):
            path = scratch / f"lk-{f}.tar"
            results[f"labkit API save {f}"] = timed(lambda: archive.save(["busybox"], path, format=f, store=store), n)
            results[f"labkit API load {f}"] = timed(
                lambda: archive.load(path, store=Store(scratch / f"load{next(counter)}")), n)
            env = dict(os.environ)
            results[f"labkit CLI save {f}"] = timed(lambda: subprocess.run(
                [PY, "-m", "labkit", "save", "-o", str(path), "--format", f, "busybox"], env=env, check=True), n)
            results[f"labkit CLI load {f}"] = timed(lambda: subprocess.run(
                [PY, "-m", "labkit", "load", "-q", "-i", str(path)],
                env=dict(env, LABKIT_HOME=str(scratch / f"cli{next(counter)}")), check=True), n)

        if shutil.which("podman") and shutil.which("runc") and os.geteuid() == 0:
            pdir = scratch / "podman"
            pdir.mkdir()
            conf = pdir / "containers.conf"
            conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n')
            penv = dict(os.environ, CONTAINERS_CONF=str(conf), TMPDIR=str(pdir))
            podman = ["podman", "--root", str(pdir / "root"), "--runroot", str(pdir / "run"), "--tmpdir",
                      str(pdir / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                      "--events-backend", "none", "--storage-driver", "vfs"]

            def pm(*a: str) -> None:
                subprocess.run(podman + list(a), env=penv, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            pm("pull", f"oci:{store.layout.root}:localhost/busybox:latest")
            pm("tag", img.id[7:], "localhost/busybox:latest")
            for f in ("oci-archive", "docker-archive"):
                path = scratch / f"pm-{f}.tar"
                results[f"podman save {f}"] = timed(
                    lambda: pm("save", "--format", f, "-o", str(path), "localhost/busybox:latest"), n,
                    before=lambda: path.unlink(missing_ok=True))
                results[f"podman load {f}"] = timed(
                    lambda: pm("load", "-i", str(path)), n,
                    before=lambda: pm("rmi", "-af"))
                pm("load", "-i", str(path))
    finally:
        if podman:
            subprocess.run(podman + ["system", "reset", "-f"], env=penv, capture_output=True)
        shutil.rmtree(scratch, ignore_errors=True)

    print(header)
    print(f"{'what':38} {'median ms':>10}   (min-max)")
    for k, v in results.items():
        print(f"{k:38} {fmt(v)}")
    print()
    for op in ("save", "load"):
        for f in ("oci-archive", "docker-archive"):
            p = results.get(f"podman {op} {f}")
            if p:
                api = statistics.median(results[f"labkit API {op} {f}"]) / statistics.median(p)
                cli = statistics.median(results[f"labkit CLI {op} {f}"]) / statistics.median(p)
                print(f"ratio labkit/podman {op} {f:15}: API {api:.2f}, CLI {cli:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
