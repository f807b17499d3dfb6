"""Reading the counters: a cgroup's files (v1 or v2) and the host's ``/proc``.

Files are kept open and read with ``os.pread`` at offset 0 (the kernel
regenerates them at each read); only the files needed are read.
"""
from __future__ import annotations

import errno
import os
import time
from typing import Any, Iterable

from .rows import HOST

# v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX rounded to pages).
_V1_UNLIMITED = 1 << 62


class Gone(Exception):
    """The cgroup (or container) being read does not exist any more."""


_GONE_ERRNOS = {errno.ENOENT, errno.ENODEV, errno.ESRCH, errno.EBADF}


def _open(path: str) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


class _FileSet:
    """File descriptors kept open; ``read(key)`` → bytes (pread at 0)."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def add(self, key: str, path: str) -> bool:
        if key in self.fds:
            return True
        fd = _open(path)
        if fd is None:
            return False
        self.fds[key] = fd
        return True

    def read(self, key: str, size: int = 256) -> bytes | None:
        fd = self.fds.get(key)
        if fd is None:
            return None
        try:
            return os.pread(fd, size, 0)
        except OSError as exc:
            if exc.errno in _GONE_ERRNOS:
                raise Gone(key) from exc
            raise

    def close(self) -> None:
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


def _field(text: bytes, name: bytes) -> int | None:
    """Value of ``name value`` in a flat-keyed file (memory.stat, cpu.stat)."""
    i = text.find(b"\n" + name + b" ")
    if i < 0:
        if text.startswith(name + b" "):
            i = -1
        else:
            return None
    start = i + 1 + len(name) + 1
    end = text.find(b"\n", start)
    return int(text[start:end] if end >= 0 else text[start:])


class CgroupReader:
    """Reads the contract's ``stats()`` keys for one cgroup, cheaply.

    Built from the cgroup directories (``Cgroup.paths()``); works for v1
    (controllers in separate or joined mounts) and v2. Each pread of a cgroup
    file costs a few µs of kernel time (``memory.stat`` ~15 µs), so the files
    that change slowly -- the limits (they change only on ``update``) and
    ``memory.stat`` (for the inactive file cache) -- are re-read at most
    every ``slow_every`` seconds (0 = at every call); CPU usage, throttling,
    memory usage, OOM kills and pids are read at every call.
    """

    def __init__(self, paths: Iterable[str], slow_every: float = 0.5) -> None:
        self.files = _FileSet()
        self.v2 = False
        self.slow_every = slow_every
        self._slow_at = -1e18
        self._slow: dict[str, Any] = {}
        paths = [str(p) for p in paths]
        for p in paths:
            if os.path.exists(os.path.join(p, "cgroup.controllers")):
                self.v2 = True
                for key, name in (("cpu.stat", "cpu.stat"), ("cpu.max", "cpu.max"),
                                  ("mem", "memory.current"), ("memory.stat", "memory.stat"),
                                  ("memory.max", "memory.max"),
                                  ("oom", "memory.events"),
                                  ("pids", "pids.current"), ("pids.max", "pids.max")):
                    self.files.add(key, os.path.join(p, name))
                continue
            names = set(os.listdir(p)) if os.path.isdir(p) else set()
            for key, name in (("cpuacct", "cpuacct.usage"), ("cpu.stat", "cpu.stat"),
                              ("quota", "cpu.cfs_quota_us"), ("period", "cpu.cfs_period_us"),
                              ("mem", "memory.usage_in_bytes"),
                              ("memory.stat", "memory.stat"),
                              ("memory.max", "memory.limit_in_bytes"),
                              ("oom", "memory.oom_control"),
                              ("pids", "pids.current"), ("pids.max", "pids.max")):
                if name in names:
                    self.files.add(key, os.path.join(p, name))
        if not self.files.fds:
            raise Gone(",".join(paths))
        fds = self.files.fds
        # the fast path: (key, fd, bufsize) read at every call
        self._fast = [(k, fds[k], 512 if k in ("cpu.stat", "oom") else 64)
                      for k in ("cpuacct", "cpu.stat", "mem", "oom", "pids") if k in fds]

    def close(self) -> None:
        self.files.close()

    def _read_slow(self) -> dict[str, Any]:
        f = self.files
        out: dict[str, Any] = {"memory_limit": None, "pids_limit": None,
                               "cpu_quota_cores": None}
        raw = f.read("memory.max", 64)
        if raw is not None:
            raw = raw.strip()
            if raw != b"max":
                val = int(raw)
                out["memory_limit"] = None if val >= _V1_UNLIMITED else val
        raw = f.read("pids.max", 64)
        if raw is not None and raw.strip() != b"max":
            out["pids_limit"] = int(raw)
        if self.v2:
            raw = f.read("cpu.max", 64)
            if raw is not None:
                quota, _sp, period = raw.strip().partition(b" ")
                if quota != b"max":
                    out["cpu_quota_cores"] = int(quota) / int(period or b"100000")
        else:
            raw = f.read("quota", 64)
            if raw is not None:
                quota = int(raw)
                if quota > 0:
                    period = int(f.read("period", 64) or b"100000")
                    out["cpu_quota_cores"] = quota / period
        # v1: total_inactive_file (hierarchical) sits near the end of ~1.5 KB
        ms = f.read("memory.stat", 8192) or b""
        out["memory_inactive_file"] = _field(
            ms, b"inactive_file" if self.v2 else b"total_inactive_file") or 0
        return out

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._slow_at >= self.slow_every:
            self._slow = self._read_slow()
            self._slow_at = now
        out = dict(self._slow)
        raw: dict[str, bytes] = {}
        try:
            for key, fd, size in self._fast:
                raw[key] = os.pread(fd, size, 0)
        except OSError as exc:
            if exc.errno in _GONE_ERRNOS:
                raise Gone(key) from exc
            raise
        cs = raw.get("cpu.stat", b"")
        out["nr_periods"] = _field(cs, b"nr_periods") or 0
        out["nr_throttled"] = _field(cs, b"nr_throttled") or 0
        oc = raw.get("oom")
        out["oom_kills"] = (_field(oc, b"oom_kill") or 0) if oc else 0
        if self.v2:
            out["cpu_usage_ns"] = (_field(cs, b"usage_usec") or 0) * 1000
            out["throttled_ns"] = (_field(cs, b"throttled_usec") or 0) * 1000
        else:
            out["cpu_usage_ns"] = int(raw["cpuacct"]) if "cpuacct" in raw else 0
            out["throttled_ns"] = _field(cs, b"throttled_time") or 0
        out["memory_usage"] = int(raw["mem"]) if "mem" in raw else 0
        out["pids_current"] = int(raw["pids"]) if "pids" in raw else None
        return out


def _kb(text: bytes, name: bytes) -> int | None:
    """``MemAvailable:   24172600 kB`` → 24172600."""
    i = text.find(name)
    if i < 0:
        return None
    end = text.find(b"\n", i)
    return int(text[i + len(name):end if end >= 0 else None].split()[0])


class Host:
    """The host: CPU summed over cores (like psutil's per-core cpu_percent
    summed, so 100 % = one core), memory used (total − available) / total.

    Reads ``/proc/stat`` and ``/proc/meminfo`` through kept-open files (one
    pread each, ~10x cheaper than psutil's parsing); psutil elsewhere.
    """

    label = HOST

    def __init__(self) -> None:
        self.ncpu = os.cpu_count() or 1
        self.hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.files = _FileSet()
        self.proc = (self.files.add("stat", "/proc/stat")
                     and self.files.add("meminfo", "/proc/meminfo"))
        self._prev = self._times()

    def close(self) -> None:
        self.files.close()

    def _times(self) -> tuple[float, float]:
        now = time.monotonic()
        if self.proc:
            line = self.files.read("stat", 256).split(b"\n", 1)[0].split()
            v = [int(x) for x in line[1:9]]  # user nice system idle iowait irq softirq steal
            busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / self.hz
        else:
            import psutil
            t = psutil.cpu_times()
            busy = t.user + t.nice + t.system + getattr(t, "irq", 0) \
                + getattr(t, "softirq", 0) + getattr(t, "steal", 0)
        return busy, now

    def memory(self) -> tuple[int, int]:
        if self.proc:
            text = self.files.read("meminfo", 512)
            total = _kb(text, b"MemTotal:")
            avail = _kb(text, b"MemAvailable:")
            if total and avail is not None:
                return (total - avail) * 1024, total * 1024
        import psutil
        vm = psutil.virtual_memory()
        return vm.total - vm.available, vm.total

    def row(self, t: float) -> tuple:
        busy, now = self._times()
        pbusy, pnow = self._prev
        self._prev = (busy, now)
        cpu = max(0.0, (busy - pbusy) * 100.0 / (now - pnow)) if now > pnow else 0.0
        cpu = min(cpu, self.ncpu * 100.0)
        used, total = self.memory()
        return (t, HOST, cpu, self.ncpu * 100.0, used, total, None, None, 0.0, 0)
