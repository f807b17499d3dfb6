"""Memory overhead per idle container: 50 ``sleep 1000`` containers, labkit beside podman and crun.

Method (as in the shared runtime anchors): a dedicated v1 memory cgroup per runtime,
``/sys/fs/cgroup/memory/<tag>-<runtime>``, holds whatever *manages* the containers, so
the rest of the machine's noise stays out:

- labkit: the engine (a private ``LABKIT_HOME``) is started inside ``<tag>-labkit``. Its
  containers live in ``labkit/<id>`` (memory: ``/sys/fs/cgroup/memory/labkit/<id>``).
  Overhead = Δ usage of the engine's cgroup (engine heap, container.json page cache,
  dentries/inodes of the state dirs, ...) + Σ usage of the 50 container cgroups.
  The engine's RSS/PSS delta is shown too.
- podman (``--runtime runc``, cgroupfs, private --root): every ``podman run -d`` is
  launched inside ``<tag>-podman`` and ``--cgroup-parent /<tag>-podman``, so podman's page
  cache, conmon (one per container) and the containers are all charged there.
- crun (``crun run -d`` through the hybrid-cgroup workaround, cgroupsPath
  ``/<tag>-crun/<id>``): launched inside ``<tag>-crun``; no per-container monitor.

Per container = Δ memcg usage (everything charged: rss, kmem, page cache) / N, in KiB;
memory.usage_in_bytes in v1 includes kernel memory. Also shown: the container's own leaf
cgroup and its PID 1's RSS/PSS (busybox ``sleep``, mostly shared pages).
Target: labkit < 1 MiB per idle container. Needs root; removes everything afterwards.

    .venv/bin/python bench/bench_memory.py [--containers 50] [--skip podman,crun]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from common import (CGROUP_ROOT, PYTHON, ROOT, Scratch, cgroup_leftovers, have, kill_cgroup_tasks,
                    machine, report_cleanup, rmdir_cgroups, run_quiet)

MEMCG = CGROUP_ROOT / "memory"
KiB = 1024


def memcg_usage(path: Path) -> int:
    return int((path / "memory.usage_in_bytes").read_text())


def memcg_stat(path: Path) -> dict[str, int]:
    out = {}
    for line in (path / "memory.stat").read_text().splitlines():
        k, v = line.split()
        out[k] = int(v)
    try:
        out["kmem"] = int((path / "memory.kmem.usage_in_bytes").read_text())
    except OSError:
        out["kmem"] = 0
    return out


def proc_mem(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes."""
    rss = pss = 0
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * KiB
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * KiB
    except OSError:
        pass
    return rss, pss


def settle() -> None:
    time.sleep(1.0)


def in_memcg(path: Path):
    """preexec_fn: move the child into ``path`` before it execs."""
    procs = str(path / "cgroup.procs")

    def attach() -> None:
        with open(procs, "w") as f:
            f.write(str(os.getpid()))

    return attach


class Row:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[str, str] = {}
        self.skip = ""


def kib(x: float) -> str:
    return f"{x / KiB:.0f}"


STAT_KEYS = ("total_rss", "kmem", "total_cache")


def common_fields(n: int, running: int, total: int, total_stat: dict, leaves: list[int],
                  leaf_stats: list[dict]) -> dict[str, str]:
    """``total``: everything charged for the N containers; ``leaves``: their own cgroups."""
    def split(st: dict, div: int) -> str:
        return " / ".join(kib(st.get(k, 0) / div) for k in STAT_KEYS)

    leaf_sum = {k: sum(x.get(k, 0) for x in leaf_stats) for k in STAT_KEYS}
    return {
        "containers running": str(running),
        "per container, total": kib(total / n),
        "  ↳ rss / kmem / page cache": split(total_stat, n),
        "  manager's share (engine | podman+conmon | launcher)": kib((total - sum(leaves)) / n),
        "  container's own cgroup": kib(sum(leaves) / max(1, len(leaves))),
        "    ↳ rss / kmem / page cache": split(leaf_sum, max(1, len(leaf_stats))),
    }


# -- labkit ---------------------------------------------------------------------------------------
def bench_labkit(s: Scratch, n: int) -> Row:
    import labkit
    from labkit.engine import client

    row = Row("labkit (engine)")
    cg = MEMCG / f"{s.tag}-labkit"
    cg.mkdir()
    s.extra_cleanup.append(lambda: rmdir_cgroups([str(cg)]))
    # Start the engine inside our memcg (the client would otherwise start it on demand).
    run_quiet([str(PYTHON), "-m", "labkit.engine", "--home", str(s.home)], preexec_fn=in_memcg(cg),
              cwd=str(ROOT))
    epid = s.engine_pid()
    # warm up: image built, one container created and removed, lazy imports done
    r = labkit.run("busybox", ["/bin/true"])
    assert r.exit_code == 0, r
    c = labkit.run("busybox", "sleep 1000", detach=True)
    c.remove(force=True)
    settle()
    base_usage, base_stat = memcg_usage(cg), memcg_stat(cg)
    base_rss, base_pss = proc_mem(epid)
    containers = []
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            containers.append(labkit.run("busybox", "sleep 1000", detach=True))
        t_start = time.perf_counter() - t0
        settle()
        usage, stat = memcg_usage(cg), memcg_stat(cg)
        rss, pss = proc_mem(epid)
        leaves, leaf_stats, init_rss, init_pss = [], [], [], []
        for ctr in containers:
            leaf = MEMCG / "labkit" / ctr.id
            leaves.append(memcg_usage(leaf))
            leaf_stats.append(memcg_stat(leaf))
            r_, p_ = proc_mem(ctr.pid)
            init_rss.append(r_)
            init_pss.append(p_)
        running = sum(1 for ctr in labkit.containers())
    finally:
        t0 = time.perf_counter()
        for ctr in containers:
            try:
                ctr.remove(force=True)
            except Exception as exc:  # noqa: BLE001
                print(f"  ! remove {ctr.id[:12]}: {exc}", file=sys.stderr)
        t_remove = time.perf_counter() - t0
    d_engine = usage - base_usage
    total = d_engine + sum(leaves)
    total_stat = {k: stat[k] - base_stat[k] + sum(x[k] for x in leaf_stats) for k in STAT_KEYS}
    row.fields = common_fields(n, running, total, total_stat, leaves, leaf_stats)
    row.fields.update({
        "engine RSS / PSS Δ per container": f"{kib((rss - base_rss) / n)} / {kib((pss - base_pss) / n)}",
        "engine RSS before → after (MiB)": f"{base_rss / 2**20:.1f} → {rss / 2**20:.1f}",
        "monitor process per container": "none (the engine)",
        "container PID 1 RSS / PSS": f"{kib(sum(init_rss) / n)} / {kib(sum(init_pss) / n)}",
        "wall time: start N / remove N (s)": f"{t_start:.2f} / {t_remove:.2f}",
    })
    row.ids = [ctr.id for ctr in containers]  # type: ignore[attr-defined]
    client.request({"op": "shutdown"}, home=s.home)
    return row


# -- podman ---------------------------------------------------------------------------------------
def bench_podman(s: Scratch, n: int) -> Row:
    from bench_runtime import podman_base, podman_cleanup

    row = Row("podman run -d (runc)")
    if not have("podman"):
        row.skip = "podman not installed"
        return row
    cg = MEMCG / f"{s.tag}-podman"
    cg.mkdir()
    base = podman_base(s)
    s.extra_cleanup.append(lambda: podman_cleanup(s))  # runs before the cgroup sweep in close()
    pulled = run_quiet(base + ["pull", "-q", f"oci:{s.home / 'images'}:localhost/busybox:latest"])
    image = pulled.stdout.strip().splitlines()[-1]
    run_args = ["--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096",
                "--cgroup-parent", f"/{s.tag}-podman"]

    def podman(*args: str) -> subprocess.CompletedProcess:
        return run_quiet(base + list(args), preexec_fn=in_memcg(cg))

    podman("run", "--rm", *run_args, image, "/bin/true")  # warm-up: storage, runtime dirs
    settle()
    base_usage, base_stat = memcg_usage(cg), memcg_stat(cg)
    ids = []
    t0 = time.perf_counter()
    try:
        for i in range(n):
            ids.append(podman("run", "-d", "--name", f"{s.tag}-p{i}", *run_args, image,
                              "sleep", "1000").stdout.strip())
        t_start = time.perf_counter() - t0
        settle()
        usage, stat = memcg_usage(cg), memcg_stat(cg)
        leaves, leaf_stats, conmons = [], [], []
        for d in cg.iterdir():
            if d.is_dir() and d.name.startswith("libpod-"):
                leaves.append(memcg_usage(d))
                leaf_stats.append(memcg_stat(d))
        conmon_pids = [int(p) for p in run_quiet(["pgrep", "-f", f"conmon.*{s.tag}"], check=False).stdout.split()]
        for p in conmon_pids:
            conmons.append(proc_mem(p))
        running = len(run_quiet(base + ["ps", "-q"]).stdout.split())
    finally:
        t0 = time.perf_counter()
        if ids:
            run_quiet(base + ["rm", "-f", "-t", "0", *ids], check=False, preexec_fn=in_memcg(cg))
        t_remove = time.perf_counter() - t0
    d = usage - base_usage
    row.fields = common_fields(n, running, d, {k: stat[k] - base_stat[k] for k in STAT_KEYS}, leaves, leaf_stats)
    row.fields.update({
        "monitor process per container": (f"conmon ×{len(conmons)}, RSS / PSS "
                                          f"{kib(sum(c[0] for c in conmons) / max(1, len(conmons)))} / "
                                          f"{kib(sum(c[1] for c in conmons) / max(1, len(conmons)))}"),
        "wall time: start N / remove N (s)": f"{t_start:.2f} / {t_remove:.2f}",
    })
    return row


# -- crun -----------------------------------------------------------------------------------------
def bench_crun(s: Scratch, n: int) -> Row:
    row = Row("crun run -d")
    if not have("crun"):
        row.skip = "crun not installed"
        return row
    cg = MEMCG / f"{s.tag}-crun"
    cg.mkdir()
    state = s.path("state", "crun-mem")
    bundle = s.bundle("crun-sleep", ["sleep", "1000"], f"/{s.tag}-crun/PLACEHOLDER")

    def crun(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        # stdout/stderr to a file, not a pipe: a detached container keeps them open
        inner = "umount /sys/fs/cgroup/unified 2>/dev/null; exec crun --root \"$0\" \"$@\""
        with open(s.path("crun-mem.log"), "w+") as log:
            cp = subprocess.run(["unshare", "-m", "sh", "-c", inner, str(state), *args],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                preexec_fn=in_memcg(cg))
            log.seek(0)
            err = log.read()
        if check and cp.returncode != 0:
            raise RuntimeError(f"crun {' '.join(args)} failed ({cp.returncode}): {err.strip()[-300:]}")
        return cp

    import json

    cfgfile = bundle / "config.json"
    cfg = json.loads(cfgfile.read_text())

    def start(cid: str) -> None:
        cfg["linux"]["cgroupsPath"] = f"/{s.tag}-crun/{cid}"
        cfgfile.write_text(json.dumps(cfg))
        crun("run", "-d", "--bundle", str(bundle), cid)

    ids: list[str] = []

    def cleanup() -> None:
        for cid in ids:
            crun("kill", cid, "KILL", check=False)
        time.sleep(0.3)
        for cid in ids:
            crun("delete", "-f", cid, check=False)

    s.extra_cleanup.append(cleanup)
    probe = f"{s.tag}-cprobe"
    try:
        start(probe)
    except RuntimeError as exc:
        row.skip = f"crun refused: {str(exc)[-200:]}"
        return row
    ids.append(probe)
    crun("kill", probe, "KILL", check=False)
    time.sleep(0.2)
    crun("delete", "-f", probe, check=False)
    ids.remove(probe)
    settle()
    base_usage, base_stat = memcg_usage(cg), memcg_stat(cg)
    t0 = time.perf_counter()
    for i in range(n):
        cid = f"{s.tag}-c{i}"
        start(cid)
        ids.append(cid)
    t_start = time.perf_counter() - t0
    settle()
    usage, stat = memcg_usage(cg), memcg_stat(cg)
    leaves = [memcg_usage(cg / cid) for cid in ids if (cg / cid).exists()]
    leaf_stats = [memcg_stat(cg / cid) for cid in ids if (cg / cid).exists()]
    running = sum(1 for cid in ids if (cg / cid).exists() and (cg / cid / "cgroup.procs").read_text().strip())
    t0 = time.perf_counter()
    cleanup()
    ids.clear()
    t_remove = time.perf_counter() - t0
    d = usage - base_usage
    row.fields = common_fields(n, running, d, {k: stat[k] - base_stat[k] for k in STAT_KEYS}, leaves, leaf_stats)
    row.fields.update({
        "monitor process per container": "none",
        "wall time: start N / remove N (s)": f"{t_start:.2f} / {t_remove:.2f}",
    })
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--containers", "-n", type=int, default=50)
    ap.add_argument("--skip", default="", help="comma list of: labkit,podman,crun")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_memory: needs root", file=sys.stderr)
        return 2
    if not (MEMCG / "memory.usage_in_bytes").exists():
        print("bench_memory: needs a cgroup v1 memory hierarchy at /sys/fs/cgroup/memory", file=sys.stderr)
        return 2
    skip = set(filter(None, a.skip.split(",")))
    s = Scratch("lkbench-mem")
    rows: list[Row] = []
    labkit_ids: list[str] = []
    print(f"# bench_memory {machine()}")
    print(f"# scratch {s.dir}, tag {s.tag}, {a.containers} idle `sleep 1000` containers each; KiB")
    try:
        s.busybox_rootfs()  # builds the image in the private LABKIT_HOME
        for name, fn in (("labkit", bench_labkit), ("podman", bench_podman), ("crun", bench_crun)):
            if name in skip:
                continue
            try:
                row = fn(s, a.containers)
            except Exception as exc:  # noqa: BLE001 - report, clean up, go on
                row = Row(name)
                row.skip = f"failed: {type(exc).__name__}: {exc}"[:300]
            labkit_ids += getattr(row, "ids", [])
            rows.append(row)
    finally:
        problems = s.close()
        for cid in labkit_ids:
            left = cgroup_leftovers(cid)
            for p in left:
                kill_cgroup_tasks(p)
            problems += [f"cgroup {p}" for p in left]
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r.fields if k not in keys]
    w = max(len(k) for k in keys) if keys else 10
    cols = [max(len(r.name), 12) for r in rows]
    print()
    print(f"{'per idle container (KiB)':<{w}}  " + "  ".join(f"{r.name:>{c}}" for r, c in zip(rows, cols)))
    print(f"{'-' * w}  " + "  ".join("-" * c for c in cols))
    for k in keys:
        print(f"{k:<{w}}  " + "  ".join(f"{(r.fields.get(k) or ('skipped' if r.skip else '-')):>{c}}"
                                        for r, c in zip(rows, cols)))
    for r in rows:
        if r.skip:
            print(f"{r.name}: {r.skip}")
    lab = next((r for r in rows if r.name.startswith("labkit") and r.fields), None)
    if lab:
        per = float(lab.fields["per container, total"])
        print(f"\nlabkit per idle container: {per:.0f} KiB (target < 1024 KiB: {'met' if per < 1024 else 'MISSED'})")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
