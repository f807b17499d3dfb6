"""exec: one more process inside a running container (its namespaces, cgroup, user).
"""
from __future__ import annotations

import os
import socket

from ..errors import Conflict, LabkitError
from ..i18n import _
from ..kernel import seccomp
from . import spawn
from .privileges import check_user, container_caps, process_ulimits


class Exec:
    """``labkit exec``, for :class:`~labkit.engine.server.Engine`."""

    def op_exec(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        tty = bool(msg.get("tty"))
        if len(fds) != 3 and not tty:
            raise LabkitError("exec: expected 3 file descriptors")
        if msg.get("user"):
            check_user(msg["user"])
        proc = exec_process(rec, msg, list(fds), tty)
        console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) if tty else None
        proc["console"] = console[1].fileno() if console else None
        cgroup = self.cgroups.open(rec.cgroup_name)
        pid, error = spawn.start_exec(rec.pid, proc, cgroup)
        master = self._console_master(console, error)
        if error is not None:
            if pid:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            raise LabkitError(self._translate_start_error(error), exit_code=error.get("code", 126))
        self.by_pid[pid] = ("exec", rec.id)
        self.exec_conns[pid] = conn
        self._send_with(conn, {"ok": True, "pid": pid}, master)
        return None


def exec_process(rec, msg: dict, stdio: list[int], tty: bool = False) -> dict:
    """The process an exec starts in ``rec``'s container: its env, user, capabilities,
    limits and seccomp filter (the healthcheck's probe is one too, see :mod:`.health`)."""
    env = dict(e.split("=", 1) for e in rec.data["Config"]["Env"] if "=" in e)
    env.update(dict(e.split("=", 1) if "=" in e else (e, "") for e in msg.get("env") or []))
    proc = {"argv": msg["cmd"], "env": env,
            "workdir": msg.get("workdir") or rec.data["Config"]["WorkingDir"],
            "user": msg.get("user") or rec.data["Config"]["User"], "tty": tty,
            "stdio": stdio, "winsize": msg.get("winsize"),
            "caps": container_caps(["ALL"], []) if rec.data["HostConfig"].get("Privileged") else
            container_caps(rec.data["HostConfig"].get("CapAdd") or [],
                           rec.data["HostConfig"].get("CapDrop") or []),
            "ulimits": process_ulimits(rec.data["HostConfig"].get("Ulimits") or [])}
    bpf = rec.dir / "seccomp.bpf"  # the filter its run got: the same for every exec
    proc["seccomp"] = bpf.read_text() if bpf.exists() else seccomp.program(None, proc["caps"]).hex()
    return proc
