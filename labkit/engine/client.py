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
    return sock


def start_engine(home: str | Path) -> None:
    """Start the engine for ``home`` in the background and wait until it serves."""
    if os.geteuid() != 0:
        raise LabkitError(_("labkit needs root to create namespaces, mounts and cgroups "
                            "(run with sudo, or see labkit doctor)"))
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
    except PermissionError:  # the socket is root-only
        raise LabkitError(_("labkit needs root to create namespaces, mounts and cgroups "
                            "(run with sudo, or see labkit doctor)")) from None
    except (FileNotFoundError, ConnectionRefusedError):
        if not autostart:
            raise
    start_engine(home)
    deadline = time.monotonic() + 10
    while True:
        try:
            return _connect(sock_path)
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise LabkitError(_("the labkit engine did not start; see %(log)s")
                                  % {"log": os.path.join(home, "engine.log")}) from None
            time.sleep(0.01)


def check(reply: dict) -> dict:
    if not reply.get("ok"):
        cls = _ERRORS.get(reply.get("kind", ""), LabkitError)
        raise cls(reply.get("error", "?"), exit_code=reply.get("exit_code", 125))
    return reply


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
