"""The engine: one supervisor process per ``$LABKIT_HOME`` that owns the containers.

Docker's shape, small. It listens on a root-only Unix socket, forks every
container (see :mod:`.spawn`), is their parent (a child *subreaper*), reaps
them, records exit codes and OOM kills, and keeps the inventory used for
cleanup. It is single-threaded on purpose: ``fork()`` from a process with
threads is unsafe, and one loop around ``select`` is enough for a classroom.

This module is the loop: connections, requests dispatched to ``op_<name>``,
reaping, timers, shutdown. The operations live one group per module and are
mixed into :class:`Engine`: :mod:`.lifecycle` (run, wait, kill, stop, rm,
list, inspect), :mod:`.exec`, :mod:`.update`, :mod:`.spare` (the next PID 1
made ahead), :mod:`.inventory` (recovery, prune, cleanup of cgroups);
:mod:`.daemon` starts it.
"""
from __future__ import annotations

import heapq
import os
import selectors
import signal
import socket
import time
import traceback
from pathlib import Path

from .. import i18n, paths
from ..errors import LabkitError, NotFound
from ..i18n import _
from . import protocol, spawn
from .dns import Dns
from .exec import Exec
from .health import Health
from .inventory import Inventory
from .lifecycle import Lifecycle
from .names import Names
from .networking import Networking
from .restarts import Restarts
from .spare import SparePool
from .state import Record
from .update import Update
from .volumes import Volumes


class Engine(Restarts, Health, Lifecycle, Exec, Update, SparePool, Inventory, Networking, Names, Dns, Volumes):
    """The supervisor of one home; each ``op_<name>`` answers the request ``{"op": name}``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.cdir = paths.containers_dir(home)
        self.records: dict[str, Record] = {}
        self.by_pid: dict[int, tuple[str, str]] = {}  # pid -> ("init", cid) | ("exec", cid)
        self.waiters: dict[str, list[tuple[socket.socket, str]]] = {}
        self.exec_conns: dict[int, socket.socket] = {}
        self.attached: dict[socket.socket, str] = {}
        self.pidfds: dict[int, str] = {}
        self.timers: list[tuple[float, int, object]] = []
        self.sel = selectors.DefaultSelector()
        self.running = True
        self._store = None
        self._cgroups = None
        self.spare: spawn.Spare | None = None  # the next container's PID 1, made ahead
        self.next_lowers: list[str] | None = None  # the last image run: its spare builds the root
        self.dropping: list[spawn.Spare] = []  # spares of another image, removed after the reply
        self.dns_socks: dict[str, socket.socket] = {}  # network id -> its DNS server's socket
        self.port_socks: dict[str, list[socket.socket]] = {}  # container id -> published host ports

    # -- helpers -------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from ..images.store import Store

            self._store = Store(self.home)
        return self._store

    @property
    def cgroups(self):
        if self._cgroups is None:
            from ..kernel import cgroups

            self._cgroups = cgroups.backend()
        return self._cgroups

    def find(self, ref: str) -> Record:
        if ref in self.records:
            return self.records[ref]
        for rec in self.records.values():
            if rec.name == ref:
                return rec
        matches = [r for cid, r in self.records.items() if cid.startswith(ref)] if len(ref) >= 3 else []
        if len(matches) == 1:
            return matches[0]
        raise NotFound(_("no such container: %(ref)s") % {"ref": ref})

    def later(self, delay: float, callback) -> None:
        heapq.heappush(self.timers, (time.monotonic() + delay, id(callback), callback))

    # -- the loop ---------------------------------------------------------------
    def serve(self, listener: socket.socket) -> None:
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "running", False))
        self.sel.register(rfd, selectors.EVENT_READ, ("signal", None))
        self.sel.register(listener, selectors.EVENT_READ, ("listen", None))
        self.reap()
        while self.running:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for key, _mask in self.sel.select(timeout):
                kind, data = key.data
                try:
                    if kind == "signal":
                        try:
                            os.read(rfd, 4096)
                        except BlockingIOError:
                            pass
                        self.reap()
                    elif kind == "listen":
                        conn, _addr = listener.accept()
                        conn.settimeout(10)
                        self.sel.register(conn, selectors.EVENT_READ, ("conn", None))
                    elif kind == "conn":
                        self.on_conn(key.fileobj)
                    elif kind == "pidfd":
                        self.on_orphan_exit(key.fd, data)
                    elif kind == "dns":
                        self.on_dns(key.fileobj, data)
                    elif kind == "dnsup":
                        self.on_dns_upstream(key.fileobj, data)
                except Exception:  # noqa: BLE001 - the engine must survive a bad request
                    traceback.print_exc()
            while self.timers and self.timers[0][0] <= time.monotonic():
                _t, _i, callback = heapq.heappop(self.timers)
                try:
                    callback()
                except Exception:  # noqa: BLE001
                    traceback.print_exc()
            self.reap()
        self.shutdown()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            what = self.by_pid.pop(pid, None)
            if what is None:
                if self.spare is not None and pid == self.spare.pid:  # it failed (e.g. the image's
                    spare, self.spare = self.spare, None               # root): remove what it made
                    self._discard_spare(spare)
                continue
            kind, cid = what
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            if kind == "init" and cid in self.records:
                self._finish(self.records[cid], code, None)
            elif kind == "exec":
                conn = self.exec_conns.pop(pid, None)
                if conn is not None:
                    self._reply_and_close(conn, {"ok": True, "exit_code": code})
            elif kind == "health":
                self._health_done(pid, code)

    def on_orphan_exit(self, fd: int, cid: str) -> None:
        self.sel.unregister(fd)
        os.close(fd)
        self.pidfds.pop(fd, None)
        if cid in self.records and self.records[cid].running:
            self._finish(self.records[cid], None, _("the engine was restarted; the exit status was lost"))

    # -- connections --------------------------------------------------------------
    def on_conn(self, conn: socket.socket) -> None:
        if conn in self.attached or self._is_waiting(conn):
            # A waiting client only ever speaks again by hanging up.
            self._client_gone(conn)
            return
        try:
            msg, fds = protocol.recv(conn)
        except (ConnectionError, OSError, ValueError):
            self._drop(conn)
            return
        if isinstance(msg, dict) and msg.get("lang") in ("en", "pt_BR") and msg["lang"] != i18n.language():
            os.environ["LABKIT_LANG"] = msg["lang"]  # messages in the client's language
            i18n.reset()
        try:
            handler = getattr(self, "op_" + str(msg.get("op")), None)
            if handler is None:
                raise LabkitError(_("unknown request: %(op)s") % {"op": msg.get("op")})
            reply = handler(msg, fds, conn)
        except LabkitError as exc:
            reply = {"ok": False, "error": exc.message, "exit_code": exc.exit_code,
                     "kind": type(exc).__name__}
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 125}
        finally:
            for fd in fds:
                os.close(fd)
        if reply is not None:
            self._reply_and_close(conn, reply)

    def _is_waiting(self, conn: socket.socket) -> bool:
        if conn in self.exec_conns.values():
            return True
        return any(c is conn for lst in self.waiters.values() for c, _ in lst)

    def _client_gone(self, conn: socket.socket) -> None:
        cid = self.attached.pop(conn, None)
        if cid and cid in self.records and self.records[cid].running:
            self._signal(self.records[cid], signal.SIGKILL)  # attached client left: as Ctrl-C
        for pid, c in list(self.exec_conns.items()):
            if c is conn:
                del self.exec_conns[pid]
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for lst in self.waiters.values():
            lst[:] = [(c, k) for c, k in lst if c is not conn]
        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        try:
            self.sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()

    def _reply_and_close(self, conn: socket.socket, reply: dict) -> None:
        try:
            protocol.send(conn, reply)
        except OSError:
            pass
        self.attached.pop(conn, None)
        self._drop(conn)

    def _send(self, conn: socket.socket, reply: dict) -> None:
        try:
            protocol.send(conn, reply)
        except OSError:
            pass

    # -- small requests -----------------------------------------------------------------
    def op_ping(self, msg, fds, conn):
        spare = {"id": self.spare.cid, "pid": self.spare.pid} if self.spare else None
        return {"ok": True, "pid": os.getpid(), "home": str(self.home), "spare": spare}

    def op_shutdown(self, msg, fds, conn):
        self.running = False
        return {"ok": True}

    # -- shutdown ---------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every container (as dockerd does without live-restore), then leave."""
        if self.spare is not None:
            spare, self.spare = self.spare, None
            self._discard_spare(spare)
        self._drop_pending()
        for rec in list(self.records.values()):
            if rec.running:
                self._signal(rec, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(kind == "init" for kind, _ in self.by_pid.values()) and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)
        for fd, cid in list(self.pidfds.items()):
            if cid in self.records and self.records[cid].running:
                self._finish(self.records[cid], None, _("the engine was stopped"))
        # Bridges, rules and DNS exist while an engine runs; the next one makes them again
        # from the state (a home under /tmp removed after its engine leaves nothing on the host).
        for net in self._networks().values():
            self._net_down(net)
        self._remove_parent_cgroups()
