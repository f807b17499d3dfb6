"""A whole class at once: N students log in through the hub, then all run notebook 01 together.

`labkit classroom setup --create` makes N throwaway students (1 CPU, 1 GiB, 512 pids each), a
real JupyterHub runs on 127.0.0.1 with the configuration setup writes, and every student, at
the same moment (one thread each): logs in through the hub's REST API (a token from their
password), starts their server and waits until the hub says it is ready, opens a kernel in it
and runs every code cell of notebook 01 over the kernel's websocket, as JupyterLab does. The
notebook's containers are each student's rootless labkit, in the student's delegated slice.

Printed: how many finished without an error, wall time, per-student times (median/max) for
"server ready" and "notebook run", and the peak memory: the sum of the RSS of the students'
processes (sampled each second) and the class cgroup's own peak (v1 max_usage_in_bytes, or
v2 memory.peak; it also counts page cache). Everything is torn down at the end.

Run as root: .venv/bin/python bench/bench_classroom.py [--students 20]
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from classroom_helpers import Class, Kernel, notebook_cells  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "01_o_que_e_um_conteiner.ipynb"


class Gate:
    """The notebooks start together: once every student's server is ready (or has failed)."""

    def __init__(self, n: int) -> None:
        self.left, self.lock, self.open = n, threading.Lock(), threading.Event()
        self.opened_at = 0.0

    def arrive(self) -> None:
        with self.lock:
            self.left -= 1
            if self.left == 0:
                self.opened_at = time.perf_counter()
                self.open.set()


def student(c: Class, user: str, go: threading.Event, gate: Gate, out: dict) -> None:
    rec = out[user] = {"ok": False}
    go.wait()
    t0 = time.perf_counter()
    kernel = None
    arrived = False
    try:
        token = c.login(user)
        server = c.start_server(user, token, rec)
        kernel = Kernel(c.url, server, token)
        rec["ready"] = time.perf_counter() - t0
        gate.arrive()
        arrived = True
        gate.open.wait()
        t1 = time.perf_counter()
        for i, code in enumerate(notebook_cells(NOTEBOOK)):
            r = kernel.execute(code, timeout=900)
            if r["status"] != "ok":
                rec["error"] = f"cell {i}: {r['error']}"
                return
        rec["notebook"] = time.perf_counter() - t1
        rec["ok"] = True
    except BaseException as e:  # noqa: BLE001 - the student failed; the table says how
        rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        traceback.print_exc()
    finally:
        if not arrived:
            gate.arrive()
        rec["done_at"] = time.perf_counter()
        if kernel is not None:
            try:
                kernel.close()
            except Exception:  # noqa: BLE001
                pass


def rss_of(uids: set[int]) -> int:
    import psutil

    total = 0
    for p in psutil.process_iter(["uids", "memory_info"]):
        try:
            if p.info["uids"] and p.info["uids"].real in uids and p.info["memory_info"]:
                total += p.info["memory_info"].rss
        except (psutil.Error, TypeError):
            pass
    return total


def class_peak(parent: str) -> int | None:
    for path in (Path("/sys/fs/cgroup/memory") / parent / "memory.max_usage_in_bytes",
                 Path("/sys/fs/cgroup") / parent / "memory.peak"):
        try:
            return int(path.read_text())
        except (OSError, ValueError):
            continue
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=20)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_classroom: needs root (the hub becomes each student)", file=sys.stderr)
        return 2
    for d in [ROOT, *ROOT.parents]:  # the students run this checkout's .venv
        need = 0o005 if d == ROOT else 0o001
        if d.stat().st_mode & need != need:
            print(f"bench_classroom: {d} is closed to other users (chmod o+x)", file=sys.stderr)
            return 2
    def unwind(_sig, _frame):  # a killed job still tears the class down (finally below)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, unwind)
    signal.signal(signal.SIGHUP, unwind)
    c = Class(a.students)
    out: dict[str, dict] = {}
    peak_rss = 0
    try:
        c.start()
        uids = {c.uid(u) for u in c.students}
        go = threading.Event()
        gate = Gate(len(c.students))
        threads = [threading.Thread(target=student, args=(c, u, go, gate, out))
                   for u in c.students]
        for t in threads:
            t.start()
        start = time.perf_counter()
        go.set()
        while any(t.is_alive() for t in threads):
            peak_rss = max(peak_rss, rss_of(uids))
            time.sleep(1)
        wall = time.perf_counter() - start
        cg_peak = class_peak(c.parent)
    finally:
        c.close()
    ok = [r for r in out.values() if r["ok"]]
    print(f"# bench_classroom: {a.students} students, {os.cpu_count()} cores, "
          f"{os.uname().release}")
    nb_wall = max((r["done_at"] for r in out.values()), default=0) - gate.opened_at \
        if gate.opened_at else 0.0
    print(f"finished: {len(ok)}/{a.students}; wall {wall:.1f} s (logins and servers "
          f"{gate.opened_at - start:.1f} s, then every notebook at once {nb_wall:.1f} s)")
    for name in ("ready", "notebook"):
        xs = [r[name] for r in ok]
        if xs:
            print(f"  {name:9} median {statistics.median(xs):6.1f} s   max {max(xs):6.1f} s")
    print(f"hub answers 429 (spawn limit {2 * (os.cpu_count() or 1)} reached, asked again): "
          f"{sum(r.get('429', 0) for r in out.values())}")
    print(f"peak RSS of the students' processes: {peak_rss / 2**30:.2f} GiB")
    if cg_peak is not None:
        print(f"peak of the class cgroup (with page cache): {cg_peak / 2**30:.2f} GiB")
    for user, r in sorted(out.items()):
        if not r["ok"]:
            print(f"  FAILED {user}: {r.get('error')}")
    return 0 if len(ok) == a.students else 1


if __name__ == "__main__":
    sys.exit(main())
