"""The engine's wire format: length-prefixed JSON over a Unix socket.

A message may carry file descriptors (``SCM_RIGHTS``): that is how a client
hands its own stdin/stdout/stderr to a container, so the container writes
straight into the caller's pipe or terminal and nothing copies the bytes.
"""
from __future__ import annotations

import json
import socket
import struct

MAX_FDS = 8
_HEADER = struct.Struct("!I")


def send(sock: socket.socket, message: dict, fds: list[int] | tuple[int, ...] = ()) -> None:
    if "op" in message and "lang" not in message:  # a request: the engine answers in our language
        from ..i18n import language

        message = {**message, "lang": language()}
    body = json.dumps(message, separators=(",", ":")).encode()
    data = _HEADER.pack(len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int, fds: list[int]) -> bytes:
    chunks = []
    while n:
        if fds is not None and not fds and not chunks:
            data, got, _flags, _addr = socket.recv_fds(sock, n, MAX_FDS)
            fds.extend(got)
        else:
            data = sock.recv(n)
        if not data:
            raise ConnectionError("engine connection closed")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def recv(sock: socket.socket) -> tuple[dict, list[int]]:
    """Read one message; returns it with the descriptors that came along."""
    fds: list[int] = []
    header = _recv_exact(sock, _HEADER.size, fds)
    (length,) = _HEADER.unpack(header)
    body = _recv_exact(sock, length, None) if length else b""
    return json.loads(body), fds
