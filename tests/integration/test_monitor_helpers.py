"""Helpers for the monitor's integration tests and bench: real cgroups with
real processes in them, without the engine.

Uses ``labkit.kernel.cgroups.backend()`` when it has landed; otherwise a
minimal raw cgroup (v1 controllers cpu, cpuacct, memory, pids, or v2) that
implements the parts of the Cgroup contract the monitor uses: ``name``,
``paths()``, ``stats()``, ``attach()``, ``kill()``, ``remove()``.
(No tests here: pytest collects this module and finds none.)
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

V1_ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
# The most CPU % one busy process (BUSY: a single shell loop) can show: one core.
# Why not its quota: over a window of a few CFS periods (Container.stats() reads 0.25 s
# apart, `labkit stats` 0.5 s) a cgroup may run past its quota and repay the debt in the
# next periods, and in a VM whose timers fire late (QEMU/TCG on a loaded host) by much
# more than a tick. That the kernel keeps a quota is measured over long windows, in
# test_cgroups.py; these tests check what labkit reads and shows.
ONE_CORE = 100.0


def _v2_root() -> str | None:
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        return "/sys/fs/cgroup"
    return None


class RawCgroup:
    def __init__(self, name: str, cpus: float | None = None, memory: int | None = None,
                 pids_limit: int | None = None) -> None:
        self.name = name
        v2 = _v2_root()
        if v2:
            parent = os.path.join(v2, os.path.dirname(name))
            os.makedirs(parent, exist_ok=True)
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu +memory +pids")
            self._paths = [os.path.join(v2, name)]
            os.makedirs(self._paths[0], exist_ok=True)
        else:
            self._paths = []
            for c in CONTROLLERS:
                p = os.path.join(V1_ROOT, c, name)
                os.makedirs(p, exist_ok=True)
                self._paths.append(p)
        self.v2 = bool(v2)
        self.set(cpus=cpus, memory=memory, pids_limit=pids_limit)

    def _dir(self, controller: str) -> str:
        if self.v2:
            return self._paths[0]
        return os.path.join(V1_ROOT, controller, self.name)

    def _write(self, controller: str, fname: str, value: str) -> None:
        with open(os.path.join(self._dir(controller), fname), "w") as f:
            f.write(value)

    def set(self, cpus=None, memory=None, pids_limit=None) -> None:
        if cpus is not None:
            if self.v2:
                self._write("cpu", "cpu.max", f"{int(cpus * 100000)} 100000")
            else:
                self._write("cpu", "cpu.cfs_period_us", "100000")
                self._write("cpu", "cpu.cfs_quota_us", str(int(cpus * 100000)))
        if memory is not None:
            self._write("memory", "memory.max" if self.v2 else "memory.limit_in_bytes",
                        str(memory))
        if pids_limit is not None:
            self._write("pids", "pids.max", str(pids_limit))

    # -- the contract
    def paths(self) -> list[str]:
        return list(self._paths)

    def stats(self) -> dict:
        from labkit.monitor import CgroupReader
        r = CgroupReader(self._paths, slow_every=0)
        try:
            return r.stats()
        finally:
            r.close()

    def attach(self, pid: int) -> None:
        for p in self._paths:
            with open(os.path.join(p, "cgroup.procs"), "w") as f:
                f.write(str(pid))

    def pids(self) -> list[int]:
        with open(os.path.join(self._dir("pids"), "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        self.kill()
        deadline = time.monotonic() + 5
        for p in self._paths:
            while True:
                try:
                    os.rmdir(p)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
        for p in self._paths:  # the "labkit-montest" parent, when empty
            try:
                os.rmdir(os.path.dirname(p))
            except OSError:
                pass


def make_cgroup(cpus: float | None = None, memory: int | None = None,
                pids_limit: int | None = None, prefix: str = "labkit-montest"):
    """A real cgroup named ``<prefix>/<random>``."""
    name = f"{prefix}/{uuid.uuid4().hex[:12]}"
    try:
        from labkit.kernel.cgroups import Limits, backend  # type: ignore[attr-defined]
        cg = backend().create(name, Limits(cpus=cpus, memory=memory, pids_limit=pids_limit))
        return cg
    except ImportError:
        return RawCgroup(name, cpus=cpus, memory=memory, pids_limit=pids_limit)


BUSY = "while True: pass"
SLEEP = "import time; time.sleep(3600)"


def spawn_in(cg, code: str = BUSY) -> subprocess.Popen:
    """Start ``python -c code`` already inside ``cg`` (attached before exec)."""
    r, w = os.pipe()
    wrapper = ("import os,sys; os.read(%d, 1); os.close(%d); exec(sys.argv[1])" % (r, r))
    proc = subprocess.Popen([sys.executable, "-c", wrapper, code], pass_fds=(r,),
                            stdin=subprocess.DEVNULL)
    os.close(r)
    cg.attach(proc.pid)
    os.write(w, b"x")
    os.close(w)
    return proc


def spawn_sh_in(cg, script: str) -> subprocess.Popen:
    """``sh -c script`` inside ``cg`` (cheap sleepers: ``exec sleep 3600``)."""
    r, w = os.pipe()
    proc = subprocess.Popen(["sh", "-c", f"read _ <&{r}; exec {r}<&-; {script}"],
                            pass_fds=(r,), stdin=subprocess.DEVNULL)
    os.close(r)
    cg.attach(proc.pid)
    os.write(w, b"x\n")
    os.close(w)
    return proc


def cleanup(cg, procs=()) -> None:
    for p in procs:
        try:
            p.kill()
        except ProcessLookupError:
            pass
    try:
        cg.kill()
    except Exception:
        pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except Exception:
            pass
    cg.remove()
