"""What both backends share: file helpers and the part of ``Cgroup`` that is the
same on v1 and v2 (attach, list pids, kill loop, rmdir with retry).

Everything here is plain reads and writes of cgroupfs files: ``attach`` is
called in a freshly forked child, so no threads, no locks, no imports.
"""
from __future__ import annotations

import errno
import os
import signal
import time

from ...errors import LabkitError, NotFound
from ...i18n import _

# v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages, 2**63-1 ...).
UNLIMITED = 1 << 62


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def read_int(path: str) -> int | None:
    """The integer in ``path``; None when the file is missing or says ``max``."""
    try:
        text = read(path)
    except FileNotFoundError:
        return None
    if text == "max":
        return None
    return int(text)


def read_kv(path: str) -> dict[str, int]:
    """``key value`` lines (cpu.stat, memory.stat, memory.events, oom_control)."""
    try:
        text = read(path)
    except FileNotFoundError:
        return {}
    return parse_kv(text)


def parse_kv(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if not text:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def write(path: str, value: str | int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)  # TRUNC: harmless on cgroupfs, needed on fakes
    try:
        os.write(fd, str(value).encode())
    finally:
        os.close(fd)


def limited(value: int | None) -> int | None:
    """None for "unlimited" (missing, negative or one of v1's huge numbers)."""
    if value is None or value < 0 or value >= UNLIMITED:
        return None
    return value


def human(n: int) -> str:
    """``33554432`` -> ``"32.0 MiB"`` (``"32,0 MiB"`` for a pt-BR reader)."""
    from ...i18n import language

    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            text = f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            return text.replace(".", ",") if language() == "pt_BR" else text
        n /= 1024
    return str(n)


def online_cpus() -> str:
    try:
        return read("/sys/devices/system/cpu/online")
    except OSError:
        return "?"


def check_cpus(cpus: float) -> None:
    """Docker refuses more CPUs than the machine has (0 or less means "no limit")."""
    n = os.cpu_count() or 1
    if cpus > n:
        raise LabkitError(
            _("--cpus %(value)s is too high: this machine has only %(n)d CPUs")
            % {"value": cpus, "n": n}
        )


def check_name(name: str) -> str:
    parts = name.strip("/").split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise LabkitError(_("invalid cgroup name: %(name)s") % {"name": name})
    return "/".join(parts)


def mkdirs(root: str, name: str, init=None) -> str:
    """mkdir -p ``root/name``; ``init(dir)`` runs on each level (new or not).

    Retries when another process removes an empty parent (``labkit``) under us.
    """
    for attempt in range(20):
        cur = root
        try:
            for part in name.split("/"):
                cur = os.path.join(cur, part)
                try:
                    os.mkdir(cur)
                except FileExistsError:
                    pass
                if init:
                    init(cur)
            return cur
        except OSError as exc:  # ENOENT/ENODEV: the parent was removed while we looked
            if exc.errno not in (errno.ENOENT, errno.ENODEV):
                raise
            time.sleep(0.005 * (attempt + 1))
    raise LabkitError(_("cannot create cgroup %(path)s") % {"path": os.path.join(root, name)})


def rmdir(path: str, timeout: float = 2.0) -> None:
    """rmdir that waits out EBUSY (exiting tasks still charged) and ignores ENOENT."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise LabkitError(
                    _("cannot remove cgroup %(path)s: %(error)s")
                    % {"path": path, "error": e.strerror}
                ) from e
            time.sleep(0.01)


def rmdir_if_empty(path: str, timeout: float = 1.0) -> None:
    """rmdir a parent (``labkit``) once its last child is gone. Right after a child's
    rmdir the kernel still says EBUSY for a moment (the child goes offline
    asynchronously), so retry while no child directory is left."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as e:  # ENOENT: gone already
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return
            try:
                if any(entry.is_dir() for entry in os.scandir(path)):
                    return  # another container lives there
            except OSError:
                return
            time.sleep(0.005)


class Cgroup:
    """One container's cgroup (in one or several hierarchies)."""

    version = ""

    def __init__(self, name: str, roots: list[str]) -> None:
        self.name = check_name(name)
        self._roots = roots  # mount points of the hierarchies, in our order
        self._dirs = [os.path.join(r, self.name) for r in roots]
        self._oom_kills: int | None = None  # remembered by remove()
        self._fds: dict[str, int | None] = {}  # counter files kept open (see _text)

    def __repr__(self) -> str:
        return f"<Cgroup {self.version} {self.name}>"

    # -- fast counters: a monitor samples 10 containers 10 times a second ------------------
    def _text(self, path: str | None) -> str | None:
        """Re-read a counter file: its fd stays open and ``pread(fd, n, 0)`` makes the
        kernel generate it again (about 1 µs instead of 20-30 µs for open+read+close).
        None when the file does not exist (an older kernel, a missing controller)."""
        if path is None:
            return None
        fd = self._fds.get(path, -1)
        if fd is None:
            return None
        try:
            if fd == -1:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    if not self.exists():
                        raise
                    self._fds[path] = None
                    return None
                self._fds[path] = fd
            return os.pread(fd, 65536, 0).decode().strip()
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):  # the cgroup was removed
                self.close()
                raise NotFound(_("no such cgroup: %(name)s") % {"name": self.name}) from e
            raise

    def _int(self, path: str | None) -> int | None:
        text = self._text(path)
        return None if text is None or text == "max" else int(text)

    def _kv(self, path: str | None) -> dict[str, int]:
        return parse_kv(self._text(path))

    def close(self) -> None:
        """Close the counter files kept open by stats() (remove() does it too)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def paths(self) -> list[str]:
        return list(self._dirs)

    def exists(self) -> bool:
        return any(os.path.isdir(d) for d in self._dirs)

    def attach(self, pid: int) -> None:
        """Move ``pid`` (a whole process) into this cgroup: fork-safe file writes."""
        for d in self._dirs:
            write(os.path.join(d, "cgroup.procs"), pid)

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self._dirs:
            try:
                found.update(int(x) for x in read(os.path.join(d, "cgroup.procs")).split())
            except FileNotFoundError:
                pass
        return sorted(found)

    def _require(self) -> None:
        if not self.exists():
            raise NotFound(_("no such cgroup: %(name)s") % {"name": self.name})

    def _signal_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def oom_kills(self) -> int:
        """How many processes the memory limit's OOM killer has killed here (still
        known after remove(), which reads the counter before the rmdir)."""
        if self._oom_kills is not None and not self.exists():
            return self._oom_kills
        try:
            return self._read_oom_kills()
        except NotFound:
            return self._oom_kills or 0

    def oom_killed(self) -> bool:
        return self.oom_kills() > 0

    def remove(self) -> None:
        """Kill what is left, then rmdir (idempotent); drop empty parents (``labkit``)."""
        if self.exists():
            self._oom_kills = self._read_oom_kills()
            if self.pids():
                self.kill()
            self.close()
            for d in self._dirs:
                rmdir(d)
        self.close()
        for root in self._roots:  # also when the leaf was gone already
            parent = os.path.dirname(self.name)
            while parent:
                rmdir_if_empty(os.path.join(root, parent))
                parent = os.path.dirname(parent)

    # Backends implement: set_limits, stats, kill, _read_oom_kills.


def bad_cpuset(value: str) -> LabkitError:
    """The error for a ``--cpuset-cpus`` the kernel refused, naming the CPUs there are."""
    return LabkitError(_("invalid --cpuset-cpus %(value)s: this machine has CPUs %(cpus)s")
                       % {"value": value, "cpus": online_cpus()})


def check_swap(swap: int | None, memory: int | None) -> None:
    """Docker's rule for ``--memory-swap`` (memory + swap, -1 = unlimited): it needs a
    memory limit and is at least that limit."""
    if swap is None or swap == -1:
        return
    if memory is None:
        raise LabkitError(_("--memory-swap needs --memory too"))
    if swap < memory:
        raise LabkitError(
            _("--memory-swap (%(swap)s) must be at least --memory (%(memory)s)")
            % {"swap": human(swap), "memory": human(memory)}
        )


class Backend:
    """What the v1 and v2 backends share; ``handle(name)`` is the version's ``Cgroup``."""

    def handle(self, name: str) -> Cgroup:
        raise NotImplementedError

    def open(self, name: str, must_exist: bool = True) -> Cgroup:
        """A handle on cgroup ``name``; ``must_exist=False`` for one about to be created."""
        cg = self.handle(name)
        if must_exist and not cg.exists():
            raise NotFound(_("no such cgroup: %(name)s") % {"name": cg.name})
        return cg
