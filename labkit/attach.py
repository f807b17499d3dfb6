"""A caller attached to a container: its stdio handed to the engine, the output read back.

The engine gets the write ends of two pipes (or the caller's own descriptors,
when it has real ones) over the socket with SCM_RIGHTS; the container writes
straight into them. This module feeds stdin, reads the pipes until both close,
echoes chunks to streams without a descriptor (Jupyter's ``sys.stdout``), and
returns the engine's start and exit replies.
"""
from __future__ import annotations

import os
import selectors
import time
from pathlib import Path
from typing import Any

from .engine import client, protocol
from .errors import LabkitError
from .i18n import _

def collect(sock, stdin: bytes | None, readers: dict, stdin_w: int | None,
             timeout: float | None, echo: dict) -> tuple[dict, dict, dict]:
    """Read the start reply, the output pipes and the exit reply, feeding stdin meanwhile.

    ``readers`` maps a name ("out", "err") to a pipe's read end; ``echo`` maps
    a name to a text stream that gets each chunk as it arrives (live output).
    """
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "sock")
    for what, fd in readers.items():
        sel.register(fd, selectors.EVENT_READ, what)
    pending = memoryview(stdin or b"")
    if stdin_w is not None:
        os.set_blocking(stdin_w, False)
        sel.register(stdin_w, selectors.EVENT_WRITE, "in")
    chunks: dict[str, list[bytes]] = {what: [] for what in readers}
    replies: list[dict] = []
    deadline = None if timeout is None else time.monotonic() + timeout
    open_pipes = len(readers)
    try:
        while open_pipes or len(replies) < 2:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = sel.select(wait)
            if not events and deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError
            for key, _mask in events:
                what = key.data
                if what == "sock":
                    try:
                        reply, _fds = protocol.recv(sock)
                    except ConnectionError:
                        raise LabkitError(_("lost the connection to the labkit engine")) from None
                    client.check(reply)
                    replies.append(reply)
                    if len(replies) == 2 or "exit_code" in reply:
                        if len(replies) == 1:
                            replies.insert(0, {})
                        sel.unregister(sock)
                elif what == "in":
                    try:
                        n = os.write(stdin_w, pending[:65536])
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(stdin_w)
                        os.close(stdin_w)
                        stdin_w = None
                else:
                    data = os.read(key.fd, 65536)
                    if data:
                        chunks[what].append(data)
                        if what in echo:
                            echo[what].write(data.decode(errors="replace"))
                    else:
                        sel.unregister(key.fd)
                        open_pipes -= 1
    finally:
        sel.close()
        if stdin_w is not None:
            os.close(stdin_w)
    return replies[0], replies[1], {what: b"".join(c) for what, c in chunks.items()}


def fileno(stream: Any) -> int | None:
    if isinstance(stream, int):
        return stream
    try:
        stream.flush()
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # e.g. Jupyter's sys.stdout has no descriptor: copy chunks to it instead


def attached(message: dict, stdin: bytes | str | None, timeout: float | None,
              home: Path | None, stdout: Any = None, stderr: Any = None) -> tuple[dict, dict, str, str]:
    """Run an attached request; ``stdout``/``stderr`` streams get the output live.

    A stream with a file descriptor (a terminal, a file) is handed to the
    container itself; one without (a notebook's ``sys.stdout``) gets each
    chunk written to it as it arrives. Without streams, output is captured.
    """
    if isinstance(stdin, str):
        stdin = stdin.encode()
    readers: dict[str, int] = {}
    echo: dict[str, Any] = {}
    send: list[int] = []
    owned: list[int] = []
    stdin_w = None
    if stdin is None:
        in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    else:
        in_r, stdin_w = os.pipe2(os.O_CLOEXEC)
    send.append(in_r)
    owned.append(in_r)
    for what, stream in (("out", stdout), ("err", stderr)):
        fd = None if stream is None else fileno(stream)
        if fd is not None:
            send.append(fd)
            continue
        r, w = os.pipe2(os.O_CLOEXEC)
        readers[what] = r
        send.append(w)
        owned.append(w)
        if stream is not None:
            echo[what] = stream
    try:
        sock = client.connect(home)
    except BaseException:
        for fd in owned + list(readers.values()):
            os.close(fd)
        raise
    try:
        try:
            protocol.send(sock, message, send)
        finally:
            for fd in owned:
                os.close(fd)
        try:
            start, end, out = collect(sock, stdin, readers, stdin_w, timeout, echo)
        except TimeoutError:
            raise LabkitError(_("timed out after %(s)s s; the container was killed") % {"s": timeout},
                              exit_code=124) from None
    finally:
        sock.close()  # if we leave early, the engine kills the attached container
        for fd in readers.values():
            os.close(fd)
    return (start, end, out.get("out", b"").decode(errors="replace"),
            out.get("err", b"").decode(errors="replace"))
