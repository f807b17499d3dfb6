"""Talking to the engine: connect (starting it on demand) and send requests."""
from __future__ import annotations

import os
import socket
import sys
import time

from .. import paths
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from . import protocol

_ERRORS = {"NotFound": NotFound, "Conflict": Conflict}


TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        raise
    if not _listener_alive(sock):
        sock.close()
        raise ConnectionRefusedError(path)
    return sock


def _listener_alive(sock: socket.socket) -> bool:
    """Is the engine that called listen() on this socket still running?

    A child the engine forks holds every descriptor of the engine until it closes them (a
    spare, a container's PID 1 before exec): for that moment, a killed engine's listening
    socket still accepts connections that nobody will ever answer. SO_PEERCRED names the
    process that called listen(); a dead one means: start a new engine.
    """
    import struct

    pid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
    if pid <= 0:  # in a PID namespace we cannot see into
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def start_engine(home: str | Path) -> None:
    """Start the engine for ``home`` in the background and wait until it serves."""
    # Without root the engine runs rootless, in a user namespace of its own (engine/rootless.py).
    import subprocess

    # The engine runs the same interpreter, in its own session.
    result = subprocess.run([sys.executable, "-m", "labkit.engine", "--home", str(home)],
                            stdin=subprocess.DEVNULL, close_fds=True)
    if result.returncode != 0:
        raise LabkitError(_("the labkit engine did not start; see %(log)s")
                          % {"log": os.path.join(home, "engine.log")})


def connect(home: Path | None = None, autostart: bool = True) -> socket.socket:
    # strings, not pathlib: `labkit run` never imports it (see paths.home_str)
    home = os.path.abspath(home) if home else paths.home_str()
    sock_path = os.path.join(home, paths.SOCKET_NAME)
    try:
        return _connect(sock_path)
    except PermissionError:  # the socket is its owner's only
        if os.geteuid() != 0:
            raise LabkitError(_("permission denied: the labkit engine at %(home)s belongs to another user "
                                "(each user has their own; unset LABKIT_HOME)") % {"home": home}) from None
        raise LabkitError(_("labkit needs root to create namespaces, mounts and cgroups "
                            "(run with sudo, or see labkit doctor)")) from None
    except (FileNotFoundError, ConnectionRefusedError):
        if not autostart:
            raise
    start_engine(home)
    deadline = time.monotonic() + 10
    again = time.monotonic() + 1
    while True:
        try:
            return _connect(sock_path)
        except (FileNotFoundError, ConnectionRefusedError):
            now = time.monotonic()
            if now > deadline:
                raise LabkitError(_("the labkit engine did not start; see %(log)s")
                                  % {"log": os.path.join(home, "engine.log")}) from None
            if now > again:
                # the start said "busy" because a dying engine's child still held its lock,
                # and no engine came: try once more (a second engine just says "busy" again)
                start_engine(home)
                again = time.monotonic() + 1
            time.sleep(0.01)


def check(reply: dict) -> dict:
    if not reply.get("ok"):
        cls = _ERRORS.get(reply.get("kind", ""), LabkitError)
        raise cls(reply.get("error", "?"), exit_code=reply.get("exit_code", 125))
    return reply


def send(sock: socket.socket, message: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    """Send on a connection the caller keeps (attach, exec). An engine that hangs up at once
    (another user's: SO_PEERCRED) breaks the pipe: say so, rather than let the CLI take it
    for `labkit logs x | head` (a BrokenPipeError there is exit 0)."""
    try:
        protocol.send(sock, message, fds)
    except ConnectionError:
        raise LabkitError(_("lost the connection to the labkit engine")) from None


def request(message: dict, fds: list[int] | tuple[int, ...] = (), home: Path | None = None) -> dict:
    """Send one request and return the engine's (checked) reply."""
    sock = connect(home)
    try:
        protocol.send(sock, message, fds)
        reply, _fds = protocol.recv(sock)
    except ConnectionError:
        raise LabkitError(_("lost the connection to the labkit engine")) from None
    finally:
        sock.close()
    return check(reply)


def is_running(home: Path | None = None) -> bool:
    try:
        sock = connect(home, autostart=False)
    except OSError:
        return False
    sock.close()
    return True
