"""Shared helpers for bench_runtime.py and bench_memory.py (not a benchmark itself).

Everything a benchmark creates lives under one private scratch directory
(``Scratch``): a private ``LABKIT_HOME`` and engine, runc/crun ``--root``
state, podman ``--root/--runroot/--tmpdir``, OCI bundles. ``Scratch.close()``
stops what was started and checks that no mount, cgroup or container named
after the run's tag is left behind.

Conventions measured on this host (see shared runtime-anchors notes):
- crun 1.8.1 refuses hybrid cgroups while ``/sys/fs/cgroup/unified`` has a
  controller; it is run inside ``unshare -m`` with that mount unmounted.
- podman uses ``--runtime runc --cgroup-manager cgroupfs --events-backend none``
  and explicit ulimits (root lacks CAP_SYS_RESOURCE: never above the hard limit).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python"
LABKIT_CLI = VENV_BIN / "labkit"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def report_cleanup(problems: list[str]) -> int:
    """The bench's exit status: 1, listing them, when containers, mounts or cgroups were left."""
    if problems:
        print("\nLEFTOVERS:", *problems, sep="\n  ")
        return 1
    print("\ncleanup: no leftover containers, mounts or cgroups")
    return 0


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000.0


def spread(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{ms[0]:.1f}–{ms[-1]:.1f}"


def machine() -> str:
    load = os.getloadavg()
    kernel = os.uname().release
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return (f"{os.cpu_count()} CPUs, {mem_kb / 1048576:.0f} GiB, kernel {kernel}, "
            f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def run_quiet(argv: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    cp = subprocess.run(argv, **kw)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({cp.returncode}): {cp.stderr.strip()[-600:]}")
    return cp


def time_command(argv: list[str], runs: int, warmup: int, env: dict | None = None,
                 hyperfine: bool = True) -> tuple[list[float], float]:
    """Wall times (s) of ``argv`` and its mean CPU time (user+sys, s, waited children included).

    hyperfine -N (JSON) when present, else our own loop (rusage of waited children).
    """
    if hyperfine and have("hyperfine"):
        import shlex

        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            run_quiet(["hyperfine", "-N", "--style", "none", "--runs", str(runs),
                       "--warmup", str(warmup), "--export-json", out.name,
                       shlex.join(argv)], env=env)
            data = json.load(open(out.name))
        res = data["results"][0]
        return list(res["times"]), res["user"] + res["system"]
    import resource

    times = []
    cpu = 0.0
    for i in range(warmup + runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        rc = subprocess.call(argv, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rc != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {rc}")
        if i >= warmup:
            times.append(dt)
            cpu += (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return times, cpu / max(1, runs)


def proc_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its reaped children (utime+stime+cutime+cstime)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def time_call(fn, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


# -- v1 cgroup helpers ------------------------------------------------------------------------
def v1_hierarchies() -> list[Path]:
    """Mounted v1 hierarchies (and the v2 one), from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype = right.split()[0]
            mnt = left.split()[4]
            if fstype in ("cgroup", "cgroup2") and mnt.startswith(str(CGROUP_ROOT)):
                out.append(Path(mnt))
    return out


def cgroup_leftovers(tag: str) -> list[str]:
    """Directories anywhere in the cgroup trees whose name contains ``tag``."""
    found = []
    for h in v1_hierarchies():
        for dirpath, dirnames, _files in os.walk(h):
            for d in list(dirnames):
                if tag in d:
                    top = os.path.join(dirpath, d)
                    found.append(top)  # and everything under it (podman's conmon, ...)
                    found += [os.path.join(dp, x) for dp, dn, _f in os.walk(top) for x in dn]
                    dirnames.remove(d)
    return found


def rmdir_cgroups(paths: list[str]) -> None:
    """Remove (deepest first) empty cgroup directories."""
    for p in sorted(paths, key=lambda s: -s.count("/")):
        try:
            os.rmdir(p)
        except FileNotFoundError:
            pass
        except OSError as exc:
            print(f"  ! cannot remove cgroup {p}: {exc}", file=sys.stderr)


def kill_cgroup_tasks(path: str) -> None:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(x) for x in f.read().split()]
    except OSError:
        return
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def mounts_under(prefix: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix.rstrip("/") + "/"):
                out.append(mnt)
    return out


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# -- the scratch area --------------------------------------------------------------------------
def scratch_dir(prefix: str) -> Path:
    """A new private directory under /tmp whose name is lowercase hex only.

    podman names an image pulled from ``oci:PATH`` after PATH, and a reference component may
    not end in '_' or hold '___': mkdtemp's random suffix sometimes produced both.
    """
    while True:
        d = Path("/tmp") / f"{prefix}-{secrets.token_hex(4)}"
        try:
            d.mkdir(mode=0o700)
            return d
        except FileExistsError:
            continue


class Scratch:
    """A private directory with its own LABKIT_HOME, runtime state and bundles."""

    def __init__(self, prefix: str = "lkbench") -> None:
        self.tag = f"{prefix}-{secrets.token_hex(3)}"
        self.dir = scratch_dir(self.tag)
        self.home = self.dir / "labkit-home"
        self.extra_cleanup: list = []
        os.environ["LABKIT_HOME"] = str(self.home)
        # SIGTERM/SIGHUP (a killed job) unwind like Ctrl-C, so close() still cleans up
        signal.signal(signal.SIGTERM, _raise_interrupt)
        signal.signal(signal.SIGHUP, _raise_interrupt)

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def busybox_rootfs(self) -> Path:
        """The unpacked busybox layer of labkit's store (built on first use)."""
        from labkit.images.store import Store

        dirs = Store(self.home).resolve("busybox").layer_dirs()
        return Path(dirs[0])

    def rootfs_copy(self) -> Path:
        """A private copy of the busybox rootfs (what runc/crun use as root.path)."""
        dst = self.dir / "rootfs"
        if not dst.exists():
            run_quiet(["cp", "-a", str(self.busybox_rootfs()), str(dst)])
        return dst

    def bundle(self, name: str, args: list[str], cgroups_path: str) -> Path:
        """An OCI bundle from ``runc spec``: absolute read-only root, no terminal."""
        b = self.dir / "bundles" / name
        b.mkdir(parents=True, exist_ok=True)
        if not (b / "config.json").exists():
            run_quiet(["runc", "spec"], cwd=b)
        cfg = json.loads((b / "config.json").read_text())
        cfg["root"] = {"path": str(self.rootfs_copy()), "readonly": True}
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = args
        cfg["linux"]["cgroupsPath"] = cgroups_path
        (b / "config.json").write_text(json.dumps(cfg, indent=1))
        return b

    def stop_engine(self) -> None:
        try:
            from labkit.engine import client

            if client.is_running(self.home):
                client.request({"op": "shutdown"}, home=self.home)
                deadline = time.monotonic() + 10
                while client.is_running(self.home) and time.monotonic() < deadline:
                    time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001
            print(f"  ! stopping the engine: {exc}", file=sys.stderr)

    def engine_pid(self) -> int:
        from labkit.engine import client

        return client.request({"op": "ping"}, home=self.home)["pid"]

    def close(self) -> list[str]:
        """Clean up everything; return the leftovers found (should be empty)."""
        for fn in reversed(self.extra_cleanup):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001
                print(f"  ! cleanup: {exc}", file=sys.stderr)
        self.stop_engine()
        problems = []
        for m in sorted(mounts_under(str(self.dir)), key=len, reverse=True):
            subprocess.call(["umount", "-l", m], stderr=subprocess.DEVNULL)
        left = mounts_under(str(self.dir))
        problems += [f"mount {m}" for m in left]
        cgs = cgroup_leftovers(self.tag)
        for p in cgs:
            kill_cgroup_tasks(p)
        if cgs:
            time.sleep(0.2)
            rmdir_cgroups(cgs)
        problems += [f"cgroup {p}" for p in cgroup_leftovers(self.tag)]
        if not left:
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems


if __name__ == "__main__":  # `make bench` runs every bench/*.py
    print("bench/common.py: helpers only (see bench_runtime.py, bench_memory.py)")
