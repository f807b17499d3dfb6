"""Which data service for the course: sqlite3, redis-server or postgresql, each ``FROM debian:bookworm``.

For each: the build time (``apt-get install`` with ``--network host``: the
Debian mirror), the image size (uncompressed, as ``labkit images``) and the
time from ``labkit run --rm`` to the first row written and read back. The base
image is made once with debootstrap (its time is printed apart). Issue 12,
item 5: "measure and choose"; bench/README.md has the figures and the choice.

    .venv/bin/python bench/bench_dataservice.py
"""
from __future__ import annotations

import sys
import time

from common import LABKIT_CLI, Scratch, machine, report_cleanup, run_quiet

INSTALL = ("FROM debian:bookworm\nRUN apt-get update && apt-get install -y --no-install-recommends {pkg} "
           "&& apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin\n")
PG = "/usr/lib/postgresql/15/bin"
FIRST_WRITE = {
    "sqlite3": ["sh", "-c", "sqlite3 /tmp/x.db 'create table t(v); insert into t values(1); select count(*) from t;'"],
    "redis-server": ["sh", "-c", "redis-server --daemonize yes >/dev/null; "
                     "until redis-cli ping 2>/dev/null | grep -q PONG; do sleep 0.05; done; redis-cli rpush t 1"],
    "postgresql": ["sh", "-c", f"su postgres -s /bin/sh -c '{PG}/initdb -D /tmp/pg >/dev/null && "
                   f"{PG}/pg_ctl -D /tmp/pg -o \"-k /tmp -c listen_addresses=\" -w start >/dev/null && "
                   "psql -h /tmp -Atc \"create table t(v int); insert into t values(1); select count(*) from t\" postgres'"],
}


def main() -> int:
    s = Scratch("lkds")
    lk = str(LABKIT_CLI)
    rows = []
    try:
        print(f"# bench_dataservice {machine()}")
        t0 = time.perf_counter()
        run_quiet([lk, "pull", "debian:bookworm"])
        print(f"debootstrap of debian:bookworm: {time.perf_counter() - t0:.1f} s (once)")
        from labkit.images.store import Store

        base = Store(s.home).resolve("debian:bookworm").size
        for pkg, probe in FIRST_WRITE.items():
            ctx = s.path(pkg, "Dockerfile").parent
            (ctx / "Dockerfile").write_text(INSTALL.format(pkg=pkg))
            t0 = time.perf_counter()
            run_quiet([lk, "build", "--network", "host", "-q", "-t", f"lkds-{pkg}", str(ctx)])
            build_s = time.perf_counter() - t0
            size = Store(s.home).resolve(f"lkds-{pkg}").size
            t0 = time.perf_counter()
            out = run_quiet([lk, "run", "--rm", f"lkds-{pkg}", *probe], check=False)
            first = time.perf_counter() - t0
            ok = out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == ["1"]
            rows.append((pkg, build_s, size, first if ok else None, out.stderr.strip()[-120:]))
    finally:
        problems = s.close()
    print(f"\n{'package':<13} {'build s':>8} {'image MB':>9} {'+MB':>6} {'run to first row s':>19}")
    for pkg, build_s, size, first, err in rows:
        shown = f"{first:.2f}" if first is not None else f"failed: {err}"
        print(f"{pkg:<13} {build_s:>8.1f} {size / 1e6:>9.0f} {(size - base) / 1e6:>6.0f} {shown:>19}")
    return report_cleanup(problems)


if __name__ == "__main__":
    sys.exit(main())
