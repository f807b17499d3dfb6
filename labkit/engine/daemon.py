"""Starting the engine: one per home (a lock), its socket, and the background process."""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import traceback
from pathlib import Path

from .. import paths
from . import spawn
from .server import Engine


def _lock(home: Path):
    fd = os.open(home / "engine.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def main(home: Path, ready_fd: int | None = None) -> int:
    rootless = os.geteuid() != 0
    if rootless:  # rootless: root of a user namespace of our own (see kernel/userns.py)
        from .rootless import enter

        if not enter(home, ready_fd):
            return 1
    home.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = _lock(home)
    if lock is None:  # another engine serves this home
        if ready_fd is not None:
            os.write(ready_fd, b"busy")
            os.close(ready_fd)
        return 0
    if rootless:
        from .rootless import cgroup_warning, join_delegated_cgroup

        join_delegated_cgroup()  # v1: into the user's slice, when started outside it
        warning = cgroup_warning()
        if warning:  # never silently without limits: engine.log and the starting client
            sys.stderr.write(warning + "\n")
            if ready_fd is not None:
                os.write(ready_fd, b"warn:" + warning.encode() + b"\n")
    spawn.become_subreaper()
    engine = Engine(home)
    engine.recover()
    sock_path = paths.engine_socket(home)
    try:
        sock_path.unlink()
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # root-only socket
    try:
        listener.bind(str(sock_path))
    finally:
        os.umask(old)
    listener.listen(64)
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)
    try:
        engine.serve(listener)
    finally:
        try:
            sock_path.unlink()
        except FileNotFoundError:
            pass
        listener.close()
    return 0


def daemonize(home: Path) -> int:
    """Start the engine in the background; return when its socket accepts."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.setsid()
        if os.fork():
            os._exit(0)
        devnull = os.open(os.devnull, os.O_RDWR)
        home.mkdir(parents=True, exist_ok=True, mode=0o711)
        log = os.open(home / "engine.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.dup2(log, 2)
        os.close(devnull)
        os.close(log)
        os.chdir("/")
        try:
            code = main(home, w)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    os.close(w)
    os.waitpid(pid, 0)
    status = os.read(r, 4096)
    while status.startswith(b"warn:"):  # a rootless engine's warning line, then its status
        if b"\n" not in status:
            more = os.read(r, 4096)
            if not more:
                break
            status += more
            continue
        line, _nl, status = status.partition(b"\n")
        sys.stderr.write(line[5:].decode() + "\n")
        if not status:
            status = os.read(r, 4096)
    os.close(r)
    if status.startswith(b"err:"):  # a rootless engine that cannot start says why
        sys.stderr.write(status[4:].decode() + "\n")
    return 0 if status in (b"ok", b"busy") else 1
