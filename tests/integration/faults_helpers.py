"""Helpers of the fault tests (test_faults*.py): another home, a stalling proxy, kill -9."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import threading
from pathlib import Path

import psutil

from labkit import paths
from labkit.engine import client
from labkit_cli import cli
from polling import wait_until  # tests/integration/polling.py


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_engine(home: Path | str | None = None) -> int:
    """SIGKILL the engine of ``home`` (the session's by default); return its pid."""
    pid = client.request({"op": "ping"}, home=Path(home) if home else None)["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(pid)), "the engine survived SIGKILL?"
    return pid


def temporaries(home: Path | str | None = None) -> list[str]:
    """What a writer at work (or a killed one) leaves in the store: blobs half written or
    half downloaded, layers half unpacked, builds' scratch directories."""
    home = Path(home) if home else paths.home()
    found = []
    for place in (home / "images" / "blobs" / "sha256", home / "layers"):
        if place.is_dir():
            found += [str(place / n) for n in os.listdir(place)
                      if n.startswith((".tmp-", ".new-")) or n.endswith(".part")]
    if (home / "tmp").is_dir():
        found += [str(home / "tmp" / n) for n in os.listdir(home / "tmp") if n.startswith("build-")]
    return sorted(found)


class OtherHome:
    """A ``LABKIT_HOME`` of its own (a store a test may break), its engine stopped at the end."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(f"/tmp/lkf-{secrets.token_hex(4)}")
        self.path.mkdir(mode=0o700, exist_ok=True)
        self.env = {"LABKIT_HOME": str(self.path)}

    def cli(self, *args: str, **kw):
        return cli(*args, env=self.env, **kw)

    def close(self, remove: bool = True) -> None:
        import labkit

        if client.is_running(self.path):
            for c in labkit.containers(all=True, home=self.path):
                c.remove(force=True)
            ping = client.request({"op": "ping"}, home=self.path)
            pids = [ping["pid"], (ping.get("spare") or {}).get("pid")]
            labkit.engine_stop(home=self.path)
            # the socket goes first; the engine and its spare still hold files of the home
            for pid in filter(None, pids):
                assert wait_until(lambda: not alive(pid)), f"engine process {pid} of {self.path} stays"
        if remove:
            shutil.rmtree(self.path, ignore_errors=True)


class StallingProxy:
    """A TCP proxy on 127.0.0.1 to ``upstream`` that stops passing a response on after
    ``limit`` bytes of it, until :meth:`release`: a download half done, for as long as a
    test needs to kill the process doing it."""

    def __init__(self, upstream: str, limit: int) -> None:
        self.upstream = upstream.rsplit(":", 1)
        self.limit = limit
        self.released = threading.Event()
        self.stalled = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.host = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.socks: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self) -> None:
        while not self.released.is_set():
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection((self.upstream[0], int(self.upstream[1])))
            self.socks += [conn, up]
            self._spawn(self._pipe, conn, up, False)
            self._spawn(self._pipe, up, conn, True)

    def _pipe(self, src: socket.socket, dst: socket.socket, limited: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if limited and sent + len(data) > self.limit and not self.released.is_set():
                    dst.sendall(data[: max(0, self.limit - sent)])
                    self.stalled.set()
                    self.released.wait()
                    return
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def release(self) -> None:
        self.released.set()
        self.listener.close()
        for s in self.socks:
            s.close()
        for t in self.threads:
            t.join(5)
