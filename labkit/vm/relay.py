"""One guest connection to one host address: what QEMU's ``guestfwd=...-cmd:`` runs.

QEMU's user network (libslirp) starts this program for each TCP connection the
guest opens to a forwarded address, with that connection as its stdin and stdout.
It connects to ``HOST PORT`` (a loopback address, :mod:`.machine` checks it) and
copies bytes both ways until either side closes: then it exits, so no relay
outlives its connection, and it dies with QEMU (``PR_SET_PDEATHSIG``).

Standard library only, and run with ``python -I``: it starts once per connection.

usage: python -I relay.py HOST PORT
"""
from __future__ import annotations

import ctypes
import os
import selectors
import signal
import socket
import sys


def relay(fd_in: int, fd_out: int, sock: socket.socket) -> None:
    """Copy ``fd_in`` to ``sock`` and ``sock`` to ``fd_out`` until one side ends."""
    sel = selectors.DefaultSelector()
    sel.register(fd_in, selectors.EVENT_READ)
    sel.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ev in sel.select():
            try:
                if key.fileobj == fd_in:
                    data = os.read(fd_in, 65536)
                    if not data:
                        return
                    sock.sendall(data)
                else:
                    data = sock.recv(65536)
                    if not data:
                        return
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd_out, view):]
            except OSError:
                return


def main(argv: list[str]) -> int:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: gone with QEMU
    host, port = argv[1], int(argv[2])
    try:
        sock = socket.create_connection((host, port), timeout=10)
    except OSError:
        return 1  # the guest sees its connection closed, as with a server that is down
    sock.settimeout(None)
    with sock:
        relay(0, 1, sock)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
