"""Attaching to a container: its stdio passed to the engine, or a pseudo-terminal.

``run`` and ``exec`` send their own file descriptors with the request (SCM_RIGHTS), so
the container writes straight to this terminal or pipe; with ``-t`` the engine sends
back the master side of a pty, and this process copies keys and screen.
"""
from __future__ import annotations

import os

from ..i18n import _


def stdio(args) -> tuple[list[int], list[int]]:
    """The three fds the container gets, and the ones to close after sending."""
    if args.interactive:
        return [0, 1, 2], []
    null = os.open(os.devnull, os.O_RDONLY)
    return [null, 1, 2], [null]


def attach(message: dict, args) -> int:
    from ..engine import client, protocol

    if args.tty:
        return attach_tty(message, args)
    fds, to_close = stdio(args)
    sock = client.connect()
    try:
        client.send(sock, message, fds)
        for fd in to_close:
            os.close(fd)
        try:
            first, _fds = protocol.recv(sock)
            client.check(first)
            if "exit_code" in first:
                return first["exit_code"]
            end, _fds = protocol.recv(sock)
        except ConnectionError:
            from ..errors import LabkitError

            raise LabkitError(_("lost the connection to the labkit engine")) from None
        return client.check(end)["exit_code"]
    finally:
        sock.close()


def attach_tty(message: dict, args) -> int:
    """A pseudo-terminal for the container; this process copies keys and screen."""
    import fcntl
    import selectors
    import struct
    import termios
    import tty

    from ..engine import client, protocol

    winsize = None
    if os.isatty(0):
        rows, cols = struct.unpack("HHHH", fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))[:2]
        winsize = [rows, cols]
    (message["config"] if "config" in message else message)["winsize"] = winsize
    sock = client.connect()
    saved = termios.tcgetattr(0) if os.isatty(0) and args.interactive else None
    master = -1
    try:
        client.send(sock, message)
        first, fds = protocol.recv(sock)
        client.check(first)
        if not fds:
            from ..errors import LabkitError

            raise LabkitError(_("the engine sent no terminal"))
        master = fds[0]
        if saved is not None:
            tty.setraw(0)
        sel = selectors.DefaultSelector()
        sel.register(master, selectors.EVENT_READ, "pty")
        sel.register(sock, selectors.EVENT_READ, "sock")
        if args.interactive:
            sel.register(0, selectors.EVENT_READ, "stdin")
        code = None
        pty_open = True
        while pty_open or code is None:
            for key, _mask in sel.select():
                if key.data == "pty":
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(master)
                        pty_open = False
                    else:
                        os.write(1, data)
                elif key.data == "stdin":
                    data = os.read(0, 65536)
                    if data:
                        os.write(master, data)
                    else:
                        sel.unregister(0)
                else:
                    end, _fds = protocol.recv(sock)
                    code = client.check(end)["exit_code"]
                    sel.unregister(sock)
        return code
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        if master >= 0:
            os.close(master)
        sock.close()


def need_a_terminal(args) -> None:
    """Docker's rule: ``-i`` with ``-t`` copies keys from a terminal, so stdin must be one
    (``</dev/null``, a pipe, CI). Checked before anything is made: nothing is left behind."""
    if args.tty and args.interactive and not getattr(args, "detach", False) and not os.isatty(0):
        from ..errors import LabkitError

        raise LabkitError(_("the input device is not a TTY"), exit_code=1)
