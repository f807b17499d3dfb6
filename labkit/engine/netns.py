"""A network namespace held open for a container that has no spare to start from.

The *holder* is a forked process that only ``unshare()``s ``CLONE_NEWNET``
and waits: the engine plugs the veth into ``/proc/<holder>/ns/net``, the
container's PID 1 ``setns()``s into it, and then the holder can go (the
namespace lives on in PID 1).
"""
from __future__ import annotations

import os

from ..errors import LabkitError
from ..i18n import _


def holder() -> tuple[int, int, str]:
    """Fork a process that only makes a network namespace and waits: (pid, pipe to end it, ns path)."""
    from ..kernel import namespaces

    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(stop_w)
            namespaces.unshare(namespaces.CLONE_NEWNET)
            os.write(ready_w, b"r")
            os.read(stop_r, 1)  # EOF: the engine is done with it (or died)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(stop_r)
    try:
        if os.read(ready_r, 1) != b"r":
            raise LabkitError(_("could not make a network namespace"))
    finally:
        os.close(ready_r)
    return pid, stop_w, f"/proc/{pid}/ns/net"


def release_holder(pid: int, stop_w: int) -> None:
    os.close(stop_w)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
