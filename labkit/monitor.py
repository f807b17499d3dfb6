"""The slice, measured: a sampler for containers' cgroups and the host.

:class:`Monitor` reads, at a fixed rate (default 4 per second), the cgroup
counters of a set of containers and the host's CPU and memory (psutil), into a
bounded buffer::

    with Monitor(["web", "db"], rate=4) as mon:
        time.sleep(5)
    mon.rows()          # [{"t": 0.0, "target": "host", "cpu_percent": ...}, ...]
    mon.to_csv("slices.csv")

The formulas are ``docker stats``'s:

- CPU % = Δ cpu usage / Δ wall time × 100, so **100 % = one core** (a busy
  container on 2 cores can show 200 %);
- memory = usage − inactive file cache (the page cache the kernel can drop
  without asking), against the limit (or the host's total without one);
- throttled = share of the CFS periods of the interval in which the cgroup
  ran out of quota (%).

Targets may be containers (objects with ``.cgroup``), ``Cgroup`` objects of
:mod:`labkit.kernel.cgroups` (anything with ``.stats()``), or names/ids
resolved lazily through :func:`labkit.get` (a container that does not exist
yet is looked for again at every tick). A container that disappears ends its
series; the sampling thread never raises.

Cost: the counters are read through file descriptors kept open (``os.pread``
at offset 0, which makes the kernel regenerate the file) and only the files
needed are read; see ``bench/bench_monitor.py``.
"""
from __future__ import annotations

import csv
import errno
import io
import os
import threading
import time
from collections import deque
from typing import Any, Iterable

from .i18n import _

HOST = "host"

#: Columns of :meth:`Monitor.rows` and of the CSV, in order.
COLUMNS = (
    "t", "target", "cpu_percent", "cpu_quota_percent", "memory_bytes",
    "memory_limit", "pids", "pids_limit", "throttled", "oom_kills",
)

# v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX rounded to pages).
_V1_UNLIMITED = 1 << 62


# --------------------------------------------------------------------------
# The math (pure functions, unit-tested)

def cpu_percent(usage_ns_before: int, usage_ns_after: int,
                wall_ns_before: int, wall_ns_after: int) -> float:
    """CPU % of an interval: Δusage / Δwall × 100 (100 % = one core)."""
    dwall = wall_ns_after - wall_ns_before
    if dwall <= 0:
        return 0.0
    dusage = usage_ns_after - usage_ns_before
    if dusage < 0:  # counter reset (cgroup recreated)
        return 0.0
    return dusage * 100.0 / dwall


def throttled_percent(periods_before: int, periods_after: int,
                      throttled_before: int, throttled_after: int) -> float:
    """Share (%) of the interval's CFS periods in which the quota ran out."""
    dp = periods_after - periods_before
    if dp <= 0:
        return 0.0
    return max(0, throttled_after - throttled_before) * 100.0 / dp


def memory_bytes(stats: dict) -> int:
    """Memory as ``docker stats`` shows it: usage minus inactive file cache."""
    usage = stats.get("memory_usage") or 0
    inactive = stats.get("memory_inactive_file") or 0
    return max(0, usage - inactive) if inactive < usage else usage


# --------------------------------------------------------------------------
# Fast readers: open once, pread at offset 0 every tick

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


# --------------------------------------------------------------------------
# Targets

def _short(name: str) -> str:
    name = name.rsplit("/", 1)[-1]
    return name[:12] if len(name) == 64 and all(c in "0123456789abcdef" for c in name) else name


class _Target:
    """One thing being watched: resolves lazily, reads stats, ends cleanly."""

    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.container = None
        self.cgroup = None
        self.reader: CgroupReader | None = None
        self.ended = False
        self.seen = False
        self.prev: tuple | None = None  # (wall_ns, usage_ns, periods, throttled)
        self.last_row: tuple | None = None
        self.final_row: tuple | None = None  # one more row after the end (OOM)
        if isinstance(spec, str):
            self.label = spec
        elif hasattr(spec, "cgroup"):
            self.container = spec
            self.label = getattr(spec, "name", None) or _short(str(getattr(spec, "id", "?")))
        else:
            self.cgroup = spec
            self.label = _short(str(getattr(spec, "name", None) or spec))

    def resolve(self) -> bool:
        if self.cgroup is not None or self.reader is not None:
            return True
        if self.container is None:
            try:
                import labkit  # the runtime's facade
                self.container = labkit.get(self.spec)
            except Exception:  # not there yet (or no runtime): look again later
                if self.seen:
                    self.ended = True
                return False
        try:
            self.cgroup = self.container.cgroup
        except Exception:
            self.cgroup = None
        if self.cgroup is None:
            if self.seen or getattr(self.container, "status", "running") not in (
                    "created", "running"):
                self.ended = True
            return False
        return True

    def read(self) -> dict | None:
        """Stats dict, or None when not (yet) available; sets ``ended``."""
        if self.ended:
            return None
        if not self.resolve():
            return None
        try:
            if self.reader is None:
                paths = None
                try:
                    paths = list(self.cgroup.paths())
                except Exception:
                    paths = None
                if paths:
                    try:
                        self.reader = CgroupReader(paths)
                    except Gone:
                        self.reader = None
                        if not hasattr(self.cgroup, "stats"):
                            raise
            stats = self.reader.stats() if self.reader else self.cgroup.stats()
        except Exception:
            # Gone, NotFound, ENODEV, a half-removed directory: end the series
            self.end()
            self._last_words()
            return None
        self.seen = True
        return stats

    def _last_words(self) -> None:
        """A container killed by the OOM killer is reaped and its cgroup removed
        within milliseconds, often between two samples: ask the runtime (which
        read the cgroup's counter before removing it) and close the series
        with the OOM kill, so the plot shows it."""
        last = self.last_row
        if self.container is None or last is None:
            return
        try:
            oom = bool(self.container.inspect()["State"]["OOMKilled"])
        except Exception:
            return
        if oom and not last[9]:
            # at the next tick the container is dead: no CPU, memory or pids
            self.final_row = (None, last[1], 0.0, last[3], 0, last[5], 0, last[7], 0.0, 1)

    def end(self) -> None:
        self.ended = True
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def row(self, t: float, wall_ns: int, stats: dict) -> tuple | None:
        usage = stats.get("cpu_usage_ns") or 0
        periods = stats.get("nr_periods") or 0
        thr = stats.get("nr_throttled") or 0
        prev, self.prev = self.prev, (wall_ns, usage, periods, thr)
        if prev is None:
            return None  # first reading: no interval yet
        cpu = min(cpu_percent(prev[1], usage, prev[0], wall_ns), _NCPU * 100.0)  # never above the machine
        quota = stats.get("cpu_quota_cores")
        row = (t, self.label, cpu, None if quota is None else quota * 100.0,
               memory_bytes(stats), stats.get("memory_limit"), stats.get("pids_current"),
               stats.get("pids_limit"), throttled_percent(prev[2], periods, prev[3], thr),
               stats.get("oom_kills") or 0)
        self.last_row = row
        return row


_NCPU = os.cpu_count() or 1


def _kb(text: bytes, name: bytes) -> int | None:
    """``MemAvailable:   24172600 kB`` → 24172600."""
    i = text.find(name)
    if i < 0:
        return None
    end = text.find(b"\n", i)
    return int(text[i + len(name):end if end >= 0 else None].split()[0])


class _Host:
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


# --------------------------------------------------------------------------
# The sampler

class Monitor:
    """Sample ``targets`` (and the host) ``rate`` times per second.

    ``capacity``: rows kept (oldest dropped first); the default keeps 10
    minutes of every target. ``host=False`` leaves the host out.
    """

    def __init__(self, targets: Any = (), rate: float = 4.0, capacity: int | None = None,
                 host: bool = True) -> None:
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Iterable):
            targets = [targets]
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.period = 1.0 / self.rate
        self.targets = [_Target(t) for t in targets]
        self.host = _Host() if host else None
        if capacity is None:
            capacity = int(self.rate * 600) * (len(self.targets) + 1)
        self.buffer: deque = deque(maxlen=max(1, capacity))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0_wall = 0.0
        self.started_at: float | None = None  # time.time() of t = 0
        self.ticks = 0
        self.late_ticks = 0  # ticks skipped because a reading ran over a period
        self.cpu_time = 0.0  # thread CPU seconds spent sampling (time.thread_time)
        self.error: BaseException | None = None

    # -- life cycle
    def start(self) -> "Monitor":
        if self._thread is not None:
            return self
        self._stop.clear()
        self._t0_wall = time.monotonic()
        self.started_at = time.time()
        self._thread = threading.Thread(target=self._run, name="labkit-monitor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "Monitor":
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> "Monitor":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def add(self, target: Any) -> None:
        """Watch one more target from the next tick on."""
        self.targets = self.targets + [_Target(target)]

    def all_ended(self) -> bool:
        """True when every watched container/cgroup has gone (host excluded)."""
        return bool(self.targets) and all(t.ended for t in self.targets)

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            # prime: a first reading of every counter, so tick 0 has an interval
            self.sample(0.0, record=False)
            k = 1
            while True:
                deadline = self._t0_wall + k * self.period
                delay = deadline - time.monotonic()
                if delay > 0:
                    # time.sleep costs ~half of Event.wait per wake-up; stop()
                    # is seen within one period (Event.wait for slow rates)
                    if self.period <= 0.5:
                        time.sleep(delay)
                    else:
                        self._stop.wait(delay)
                if self._stop.is_set():
                    break
                now = time.monotonic()
                behind = int((now - deadline) / self.period)
                if behind > 0:  # ran late (suspended, overloaded): skip, keep the grid
                    self.late_ticks += behind
                    k += behind
                self.sample(round(k * self.period, 6))
                k += 1
                self.cpu_time = time.thread_time() - cpu0
        except BaseException as exc:  # never let the thread die loudly
            self.error = exc
        finally:
            self.cpu_time = time.thread_time() - cpu0
            for t in self.targets:
                if t.reader is not None:
                    t.reader.close()
                    t.reader = None

    def sample(self, t: float, record: bool = True) -> None:
        """Read every target once (the thread calls this; tests may too)."""
        append = self.buffer.append
        if self.host is not None:
            row = self.host.row(t)
            if record:
                append(row)
        for target in self.targets:
            if target.ended:
                continue
            w0 = time.monotonic_ns()
            stats = target.read()
            if stats is None:
                if target.final_row is not None:
                    if record:
                        append((t,) + target.final_row[1:])
                    target.final_row = None
                continue
            # the counters were read between w0 and now: stamp them in the middle, so a
            # thread preempted around the read cannot turn a short interval into a spike
            row = target.row(t, (w0 + time.monotonic_ns()) // 2, stats)
            if row is not None and record:
                append(row)
        self.ticks += 1

    # -- results
    def rows(self, since: float | None = None) -> list[dict]:
        """Samples as dicts (keys: :data:`COLUMNS`), oldest first."""
        data = list(self.buffer)
        if since is not None:
            data = [r for r in data if r[0] >= since]
        return [dict(zip(COLUMNS, r)) for r in data]

    def to_csv(self, path_or_file: Any) -> None:
        """Write the rows as CSV (header = :data:`COLUMNS`, empty = no value)."""
        write_csv(self.rows(), path_or_file)

    def summary(self) -> str:
        """One line: mean CPU and memory peak per container, OOMs."""
        return summary(self.rows())

    def plot(self, window: float | None = None):
        """The dashboard of the samples so far (see :mod:`labkit.plots`)."""
        from .plots import dashboard
        return dashboard(self.rows(), window=window)


def write_csv(rows: list[dict], path_or_file: Any) -> None:
    if hasattr(path_or_file, "write"):
        _write_csv(rows, path_or_file)
    else:
        with open(path_or_file, "w", newline="", encoding="utf-8") as fh:
            _write_csv(rows, fh)


def _write_csv(rows: list[dict], fh: io.TextIOBase) -> None:
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else
                    (f"{r[c]:.3f}" if isinstance(r.get(c), float) else r[c]) for c in COLUMNS])


def read_csv(path_or_file: Any) -> list[dict]:
    """Rows back from :meth:`Monitor.to_csv` (numbers as int/float, empty → None)."""
    fh = path_or_file if hasattr(path_or_file, "read") else open(path_or_file, encoding="utf-8")
    try:
        out = []
        for rec in csv.DictReader(fh):
            row: dict[str, Any] = {}
            for k, v in rec.items():
                if k == "target":
                    row[k] = v
                elif v == "":
                    row[k] = None
                elif k in ("t", "cpu_percent", "cpu_quota_percent", "throttled"):
                    row[k] = float(v)
                else:
                    row[k] = int(v)
            out.append(row)
        return out
    finally:
        if fh is not path_or_file:
            fh.close()


# --------------------------------------------------------------------------
# One reading, for `labkit stats` and Container.stats()

def _stats_of(cgroup: Any) -> tuple[dict, CgroupReader | None]:
    reader = None
    try:
        paths = list(cgroup.paths())
        reader = CgroupReader(paths, slow_every=0) if paths else None
    except Exception:
        reader = None
    return (reader.stats() if reader else cgroup.stats()), reader


def host_memory_total() -> int:
    import psutil
    return psutil.virtual_memory().total


def derive(before: dict, after: dict, wall_before: int, wall_after: int) -> dict:
    """The figures of ``docker stats`` from two raw ``stats()`` readings."""
    out = dict(after)
    out["cpu_percent"] = cpu_percent(before.get("cpu_usage_ns") or 0,
                                     after.get("cpu_usage_ns") or 0, wall_before, wall_after)
    quota = after.get("cpu_quota_cores")
    out["cpu_quota_percent"] = None if quota is None else quota * 100.0
    out["memory_bytes"] = memory_bytes(after)
    limit = after.get("memory_limit")
    out["memory_percent"] = memory_bytes(after) * 100.0 / (limit or host_memory_total())
    out["pids"] = after.get("pids_current")
    out["throttled"] = throttled_percent(before.get("nr_periods") or 0,
                                         after.get("nr_periods") or 0,
                                         before.get("nr_throttled") or 0,
                                         after.get("nr_throttled") or 0)
    out["interval"] = (wall_after - wall_before) / 1e9
    return out


def snapshot(cgroup: Any, interval: float = 0.25) -> dict:
    """Two readings ``interval`` s apart → the ``stats()`` dict plus
    ``cpu_percent`` (100 % = one core), ``cpu_quota_percent``,
    ``memory_bytes`` (usage − inactive file), ``memory_percent``, ``pids``,
    ``throttled`` (% of CFS periods throttled) and ``interval``.

    This is what ``Container.stats()`` returns; raises whatever ``stats()``
    raises when the cgroup is gone.
    """
    # each reading is stamped in the middle of its reads (as Monitor does): a stamp taken
    # after a reading that was preempted would shorten the interval and inflate the CPU %
    r0 = time.monotonic_ns()
    before, reader = _stats_of(cgroup)
    w0 = (r0 + time.monotonic_ns()) // 2
    try:
        time.sleep(interval)
        r1 = time.monotonic_ns()
        after = reader.stats() if reader else cgroup.stats()
        w1 = (r1 + time.monotonic_ns()) // 2
    except Gone as exc:
        from .errors import NotFound
        raise NotFound(_("the cgroup %(name)s is gone") % {"name": getattr(cgroup, "name", "?")}) \
            from exc
    finally:
        if reader:
            reader.close()
    return derive(before, after, w0, w1)


# --------------------------------------------------------------------------
# Text: the `labkit stats` table and the one-line summary

def _num(value: float, digits: int = 2) -> str:
    from .i18n import language
    s = f"{value:.{digits}f}"
    return s.replace(".", ",") if language() == "pt_BR" else s


def human_bytes(n: int | float | None) -> str:
    """``docker stats`` style sizes: 1.5MiB, 64MiB, 1.9GiB."""
    if n is None:
        return "--"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)}B"
            text = _num(n, 1 if n < 100 else 0)
            return (text[:-2] if text[-2:] in (".0", ",0") else text) + unit
        n /= 1024
    return f"{n}B"  # pragma: no cover


def percent(value: float | None, digits: int = 2) -> str:
    return "--" if value is None else _num(value, digits) + "%"


def stats_header() -> str:
    return _("CPU %%: 100 %% = one core (a busy container on %(n)d cores can reach %(max)d %%)") % {
        "n": os.cpu_count() or 1, "max": 100 * (os.cpu_count() or 1)}


def stats_table(entries: list[dict]) -> str:
    """Format ``docker stats`` columns. Each entry: ``id``, ``name`` and the
    keys of :func:`snapshot` (``cpu_percent``, ``memory_bytes``,
    ``memory_limit``, ``memory_percent``, ``pids``, ``throttled``,
    ``cpu_quota_cores``)."""
    heads = [_("CONTAINER ID"), _("NAME"), _("CPU %"), _("MEM USAGE / LIMIT"), _("MEM %"),
             _("PIDS"), _("THROTTLED")]
    lines = []
    total = None
    for e in entries:
        limit = e.get("memory_limit")
        if limit is None:
            total = total or host_memory_total()
            limit = total
        thr = "--" if e.get("cpu_quota_cores") is None else percent(e.get("throttled"), 0)
        lines.append([
            str(e.get("id", ""))[:12], str(e.get("name", "")), percent(e.get("cpu_percent")),
            f"{human_bytes(e.get('memory_bytes'))} / {human_bytes(limit)}",
            percent(e.get("memory_percent")),
            "--" if e.get("pids") is None else str(e.get("pids")), thr,
        ])
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h)
              for i, h in enumerate(heads)]
    fmt = "   ".join("{:<%d}" % w for w in widths)
    out = [fmt.format(*heads).rstrip()] + [fmt.format(*r).rstrip() for r in lines]
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    """One line: mean CPU and memory peak per container (host if alone), OOMs."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["target"], []).append(r)
    names = [n for n in by if n != HOST] or [n for n in by]
    if not names:
        return _("no samples")
    cpu = ", ".join(
        f"{n} {_num(sum(r['cpu_percent'] for r in by[n]) / len(by[n]), 0)} %" for n in names)
    mem = ", ".join(f"{n} {human_bytes(max(r['memory_bytes'] or 0 for r in by[n]))}"
                    for n in names)
    text = _("mean cpu: %(cpu)s; memory peak: %(mem)s") % {"cpu": cpu, "mem": mem}
    ooms = [n for n in names if by[n][-1]["oom_kills"] and
            by[n][-1]["oom_kills"] > (by[n][0]["oom_kills"] or 0)]
    ooms += [n for n in names if n not in ooms and by[n][0]["oom_kills"]]
    if ooms:
        text += "; " + _("OOM: %(names)s") % {"names": ", ".join(ooms)}
    dur = max(r["t"] for r in rows) - min(r["t"] for r in rows)
    ticks = len({r["t"] for r in rows})  # one reading of everything per tick
    text += " " + _("(%(n)d samples in %(s)s s)") % {"n": ticks, "s": _num(dur, 1)}
    return text
