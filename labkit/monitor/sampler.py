"""The sampler: a thread that reads every target (and the host) at a fixed rate.

Targets resolve lazily (a container that does not exist yet is looked for
again at every tick); a container that disappears ends its series; the thread
never raises. Rows go to a bounded buffer, and to CSV.
"""
from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections import deque
from typing import Any, Iterable

from .figures import cpu_percent, memory_bytes, throttled_percent
from .readers import CgroupReader, Gone, Host
from .rows import COLUMNS
from .text import summary

_NCPU = os.cpu_count() or 1


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
        self.host = Host() if host else None
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
        from ..plots import dashboard
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
