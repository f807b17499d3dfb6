"""The engine: one supervisor process per ``$LABKIT_HOME`` that owns the containers.

Docker's shape, small. It listens on a root-only Unix socket, forks every
container (see :mod:`.spawn`), is their parent (a child *subreaper*), reaps
them, records exit codes and OOM kills, and keeps the inventory used for
cleanup. It is single-threaded on purpose: ``fork()`` from a process with
threads is unsafe, and one loop around ``select`` is enough for a classroom.
"""
from __future__ import annotations

import errno
import fcntl
import heapq
import os
import re
import secrets
import selectors
import signal
import socket
import sys
import time
import traceback
from pathlib import Path

from .. import i18n, paths
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from . import protocol, spawn
from .state import Record, now, process_start_time, random_name

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Engine:
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

    # -- start-up and recovery --------------------------------------------------
    def recover(self) -> None:
        """Read back what a previous engine left; adopt or clean it."""
        self.cdir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.cdir.iterdir()):
            rec = Record.load(entry)
            if rec is None:
                if entry.is_dir() and not (entry / "container.json").exists():
                    import shutil

                    shutil.rmtree(entry, ignore_errors=True)  # half-made by a killed engine
                continue
            self.records[rec.id] = rec
            st = rec.state
            if st["Status"] == "running" and rec.pid and process_start_time(rec.pid) == st.get("StartTime"):
                try:
                    fd = os.pidfd_open(rec.pid)
                except OSError:
                    fd = -1
                if fd >= 0:
                    self.pidfds[fd] = rec.id
                    self.sel.register(fd, selectors.EVENT_READ, ("pidfd", rec.id))
                    continue
            if st["Status"] in ("running", "created"):
                self._finish(rec, None, _("the engine stopped; the exit status was lost"))
        # cgroups of this home that no container owns: a killed engine's spare, a half-made start
        self._remove_parent_cgroups(self._inventory_ids())

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

    # -- container lifecycle ------------------------------------------------------------
    def _finish(self, rec: Record, code: int | None, error: str | None) -> None:
        st = rec.state
        oom = False
        try:
            cg = self.cgroups.open(rec.cgroup_name)
            oom = cg.oom_killed()  # read before the cgroup goes away
            cg.remove()  # kills whatever is left first
        except Exception:  # noqa: BLE001 - cleanup goes on
            traceback.print_exc()
        st.update(Status="exited", Running=False, Pid=0, FinishedAt=now(),
                  ExitCode=255 if code is None else code, OOMKilled=bool(oom))
        if error:
            st["Error"] = error
        if rec.data["HostConfig"].get("AutoRemove"):
            self._delete(rec)  # before replying: `run --rm` / `rm -f` return once it is gone
        else:
            rec.save()
        reply = {"ok": True, "exit_code": st["ExitCode"], "oom_killed": st["OOMKilled"]}
        for conn, kind in self.waiters.pop(rec.id, []):
            self._reply_and_close(conn, reply)
        for conn, cid in list(self.attached.items()):
            if cid == rec.id:
                self._reply_and_close(conn, reply)
        self.later(0, self._ensure_spare)

    def _delete(self, rec: Record) -> None:
        self.records.pop(rec.id, None)
        rec.delete()

    def _signal(self, rec: Record, sig: int) -> None:
        if not rec.running:
            return
        if sig == signal.SIGKILL:
            try:
                self.cgroups.open(rec.cgroup_name).kill()
                return
            except Exception:  # noqa: BLE001 - fall back to the pid
                pass
        try:
            os.kill(rec.pid, sig)
        except ProcessLookupError:
            pass

    def op_ping(self, msg, fds, conn):
        spare = {"id": self.spare.cid, "pid": self.spare.pid} if self.spare else None
        return {"ok": True, "pid": os.getpid(), "home": str(self.home), "spare": spare}

    # -- the spare: the next container's PID 1, made while the engine is idle ---------------
    def _ensure_spare(self) -> None:
        if self.spare is not None or not self.running or os.environ.get("LABKIT_SPAWN") == "fork":
            return
        from ..kernel.cgroups import Limits

        cid = secrets.token_hex(32)
        name = f"labkit/{cid}"
        self._inventory_add(cid, name)  # listed first: a killed engine's spare is pruned
        cgroup = self.cgroups.open(name, must_exist=False)
        root = None
        if self.next_lowers:
            cdir = self.cdir / cid
            root = {"lowerdirs": self.next_lowers, "upperdir": str(cdir / "upper"), "workdir": str(cdir / "work"),
                    "rootfs": str(cdir / "rootfs"), "volumes": []}
        try:  # the spare makes its cgroup itself; the run's limits come later
            self.spare = spawn.make_spare(cid, cgroup, lambda: self.cgroups.create(name, Limits.partial()), root)
            self.spare.layers = _identity(root["lowerdirs"]) if root else None
        except Exception:  # noqa: BLE001 - without a spare, containers start the usual way
            traceback.print_exc()

    def _take_spare(self, cfg: dict, lowers: list[str]) -> spawn.Spare | None:
        """The spare, if it fits this request: its own network, no volumes, and the
        image it built the root of (if it did).

        A spare's mount namespace is a copy of the host's from when it was
        made; a volume's source may be a mount made since then.
        """
        spare = self.spare
        if spare is None or cfg.get("volumes") or (cfg.get("network") or "none") != "none":
            return None
        self.spare = None
        if spare.root is not None and (spare.root["lowerdirs"] != lowers or _identity(lowers) != spare.layers):
            # another image, or its layers were removed and unpacked again: dropped after the reply
            spare.used = True
            self.dropping.append(spare)
            self.later(0, self._drop_pending)
            return None
        return spare

    def _drop_pending(self) -> None:
        while self.dropping:
            self._discard_spare(self.dropping.pop())

    def _discard_spare(self, spare: spawn.Spare, keep_dir: bool = False, tries: int = 0) -> None:
        """Stop a spare that will not run (engine stopping, another image, a failed start):
        leave nothing. It is killed through its cgroup, which also waits until it is gone;
        its mounts go with its mount namespace.
        """
        spare.used = True
        spare.sock.close()  # a spare that is still waiting sees EOF and leaves
        if not self._remove_spare_cgroup(spare.cgroup) and self.running and tries < 120:
            # still dying (on a loaded machine the kill can outlast remove()'s wait): try again
            # soon rather than leave it to the next engine's start; the directory goes after it
            self.later(0.5, lambda: self._discard_spare(spare, keep_dir, tries + 1))
            return
        if spare.root is not None and not keep_dir:
            import shutil

            shutil.rmtree(self.cdir / spare.cid, ignore_errors=True)
        try:
            os.waitpid(spare.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            pass

    def _remove_spare_cgroup(self, cgroup) -> bool:
        try:
            cgroup.remove()  # kills what is in it first, and waits until it is empty
            return True
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            return False

    def op_run(self, msg, fds, conn):
        cfg = msg["config"]
        name = cfg.get("name")
        taken = {r.name for r in self.records.values()}
        if name:
            if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name):  # Docker's rule
                raise LabkitError(_("invalid container name (%(name)s): only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                    "are allowed") % {"name": name})
            if name in taken:
                other = next(r for r in self.records.values() if r.name == name)
                raise Conflict(_('the container name "%(name)s" is already in use by container %(id)s; '
                                 'remove it (labkit rm) or choose another name') % {"name": name, "id": other.id[:12]})
        else:
            name = random_name(taken)
        for source, target, _ro in cfg.get("volumes", ()):
            if not os.path.exists(source):
                raise NotFound(_("volume source does not exist: %(path)s") % {"path": source})
            if not target.startswith("/"):
                raise LabkitError(_("volume target must be an absolute path: %(path)s") % {"path": target})
            if os.path.normpath(target) in ("/", "//"):  # it would replace the container's root
                raise LabkitError(_("invalid volume specification: %(spec)s (use SOURCE:TARGET[:ro])")
                                  % {"spec": f"{source}:{target}"})
        if not cfg.get("detach") and not cfg.get("tty") and len(fds) != 3:
            raise LabkitError("run: expected 3 file descriptors")
        network = cfg.get("network") or "none"
        if network not in ("none", "host"):  # checked before anything is made: nothing left behind
            raise LabkitError(_("unknown network: %(net)s (use none or host)") % {"net": network})
        image = self.store.resolve(cfg["image"])
        lowers = [str(p) for p in image.layer_dirs()]
        icfg = (image.config or {}).get("config") or {}
        entrypoint = list(cfg.get("entrypoint") or icfg.get("Entrypoint") or [])
        cmd = list(cfg.get("cmd") or ([] if cfg.get("entrypoint") else icfg.get("Cmd") or []))
        argv = entrypoint + cmd
        if not argv:
            raise LabkitError(_("no command specified"))
        env = dict(e.split("=", 1) for e in icfg.get("Env") or [] if "=" in e)
        env.setdefault("PATH", DEFAULT_PATH)
        spare = self._take_spare(cfg, lowers)
        try:
            reply = self._run(cfg, fds, conn, name, image, lowers, icfg, argv, env, network, spare)
            if lowers and not cfg.get("volumes") and network == "none":
                self.next_lowers = lowers  # it started: the next spare builds the root of this image
            return reply
        except BaseException:
            if spare is not None and not spare.used:
                self._discard_spare(spare)
            raise
        finally:
            self.later(0 if cfg.get("detach") else 0.05, self._ensure_spare)

    def _run(self, cfg, fds, conn, name, image, lowers, icfg, argv, env, network, spare):
        if spare is not None:
            try:
                spare.wait_ready()  # in its cgroup, which exists from then on, and its root if any
            except OSError:  # it died: start the usual way
                self._discard_spare(spare)
                spare = None
        cid = spare.cid if spare is not None else secrets.token_hex(32)
        hostname = cfg.get("hostname") or cid[:12]
        env["HOSTNAME"] = hostname
        env.setdefault("HOME", "/root")
        if cfg.get("tty"):
            env.setdefault("TERM", "xterm")
        env.update(dict(e.split("=", 1) if "=" in e else (e, os.environ.get(e, "")) for e in cfg.get("env") or []))
        workdir = cfg.get("workdir") or icfg.get("WorkingDir") or "/"
        user = cfg.get("user") or icfg.get("User") or ""
        from ..kernel.cgroups import Limits

        limits = Limits.from_dict(cfg.get("limits") or {})
        cdir = self.cdir / cid
        prebuilt = spare is not None and spare.root is not None  # it made these and mounted them
        for sub in ("upper", "work", "rootfs"):
            (cdir / sub).mkdir(parents=True, exist_ok=prebuilt)
        if not lowers:
            empty = cdir / "empty"
            empty.mkdir()
            lowers = [str(empty)]
        detach = bool(cfg.get("detach"))
        rec = Record(cdir, {
            "Id": cid, "Name": name, "Created": now(), "Path": argv[0], "Args": argv[1:],
            "Image": image.id, "ImageRef": cfg["image"],
            "State": {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0,
                      "OOMKilled": False, "StartedAt": None, "FinishedAt": None},
            "Config": {"Hostname": hostname, "Env": [f"{k}={v}" for k, v in env.items()],
                       "Cmd": argv, "WorkingDir": workdir, "User": user, "Tty": bool(cfg.get("tty")),
                       "OpenStdin": bool(cfg.get("interactive")), "Image": cfg["image"]},
            "HostConfig": {"AutoRemove": bool(cfg.get("remove")), "NetworkMode": cfg.get("network") or "none",
                           "Binds": [
                f"{s}:{t}{':ro' if ro else ''}" for s, t, ro in cfg.get("volumes", ())],
                "Limits": limits.as_dict()},
            "GraphDriver": {"Name": "overlay", "Data": {
                "LowerDir": ":".join(reversed(lowers)), "UpperDir": str(cdir / "upper"),
                "WorkDir": str(cdir / "work"), "MergedDir": str(cdir / "rootfs")}},
            "Cgroup": f"labkit/{cid}",
            "LogPath": str(cdir / "container.log") if detach else None,
        })
        rec.save()
        self.records[cid] = rec
        try:
            if spare is not None:  # listed in the inventory since it was made
                cgroup = spare.cgroup
                cgroup.set_limits(limits, creating=True)
            else:
                self._inventory_add(cid, rec.cgroup_name)
                cgroup = self.cgroups.create(rec.cgroup_name, limits)
        except BaseException:
            self._delete(rec)
            raise
        opened = []
        console = None
        if cfg.get("tty") and not detach:
            console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            stdio = []
        elif detach:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            log = os.open(rec.data["LogPath"], os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            opened = [null, log]
            stdio = [null, log, log]
        else:
            if len(fds) != 3:
                raise LabkitError("run: expected 3 file descriptors")
            stdio = list(fds)
        spec = {
            "share": ["net"] if network == "host" else [],
            "rootfs": {"lowerdirs": lowers, "upperdir": str(cdir / "upper"),
                       "workdir": str(cdir / "work"), "rootfs": str(cdir / "rootfs"),
                       "volumes": cfg.get("volumes", [])},
            "hostname": hostname,
            "process": {"argv": argv, "env": env, "workdir": workdir, "user": user,
                        "tty": bool(cfg.get("tty")), "stdio": stdio,
                        "console": console[1].fileno() if console else None,
                        "winsize": cfg.get("winsize")},
        }
        try:
            pid = 0
            if spare is not None:
                spare.used = True
                try:
                    pid, error = spawn.start_spare(spare, {**spec, "rootfs": None} if prebuilt else spec,
                                                   i18n.language())
                except OSError:  # the spare died before its start: the usual way, in a new cgroup
                    self._discard_spare(spare, keep_dir=True)
                    cgroup = self.cgroups.create(rec.cgroup_name, limits)
            if not pid:
                pid, error = spawn.start(spec, cgroup)
            master = self._console_master(console, error)
        finally:
            for fd in opened:
                os.close(fd)
        if error is not None:
            self._fail_start(rec, cgroup, pid)
            raise LabkitError(self._translate_start_error(error), exit_code=error.get("code", 125))
        rec.state.update(Status="running", Running=True, Pid=pid, StartedAt=now(),
                         StartTime=process_start_time(pid))
        rec.save()
        self.by_pid[pid] = ("init", cid)
        if detach:
            return {"ok": True, "id": cid, "name": name}
        self.attached[conn] = cid
        self._send_with(conn, {"ok": True, "id": cid, "name": name, "pid": pid}, master)
        return None

    @staticmethod
    def _console_master(console, error) -> int | None:
        """The pty master the container's B process sent back (see spawn._open_console)."""
        if console is None:
            return None
        parent, child = console
        child.close()
        try:
            if error is not None:
                return None
            parent.settimeout(5)
            _data, fds, _flags, _addr = socket.recv_fds(parent, 1, 1)
            return fds[0] if fds else None
        finally:
            parent.close()

    def _send_with(self, conn: socket.socket, reply: dict, fd: int | None) -> None:
        try:
            protocol.send(conn, reply, [fd] if fd is not None else [])
        except OSError:
            pass
        finally:
            if fd is not None:
                os.close(fd)

    def _translate_start_error(self, error: dict) -> str:
        kind, message = error.get("kind"), error.get("message", "")
        if kind == "notfound":
            return _("executable file not found in $PATH: %(cmd)s") % {"cmd": message.split(":")[0]}
        if kind == "permission":
            return _("permission denied: %(cmd)s") % {"cmd": message.split(":")[0]}
        return _("the container could not start: %(msg)s") % {"msg": message}

    def _fail_start(self, rec: Record, cgroup, pid: int) -> None:
        """B failed before exec: wait for it, then remove everything it had.

        Bad input leaves nothing behind, not even a "created" container.
        """
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self.by_pid.pop(pid, None)
        try:
            cgroup.kill()
            cgroup.remove()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        self._delete(rec)

    def op_list(self, msg, fds, conn):
        items = [r.data for r in self.records.values() if msg.get("all") or r.running]
        items.sort(key=lambda d: d["Created"], reverse=True)
        return {"ok": True, "containers": items}

    def op_inspect(self, msg, fds, conn):
        return {"ok": True, "container": self.find(msg["ref"]).data}

    def op_wait(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            return {"ok": True, "exit_code": rec.state["ExitCode"], "oom_killed": rec.state["OOMKilled"]}
        self.waiters.setdefault(rec.id, []).append((conn, "wait"))
        return None

    def op_kill(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        self._signal(rec, int(msg.get("signal", signal.SIGKILL)))
        return {"ok": True, "id": rec.id}

    def op_stop(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            return {"ok": True, "id": rec.id}
        timeout = float(msg.get("timeout", 10))
        pid = rec.pid
        self._signal(rec, signal.SIGTERM)

        def escalate() -> None:
            if rec.running and rec.pid == pid:
                self._signal(rec, signal.SIGKILL)

        if timeout <= 0:
            escalate()
        else:
            self.later(timeout, escalate)
        self.waiters.setdefault(rec.id, []).append((conn, "stop"))
        return None

    def op_rm(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if rec.running:
            if not msg.get("force"):
                raise Conflict(_("cannot remove container %(name)s: it is running; stop it first "
                                 "or use rm -f") % {"name": rec.name})
            self._signal(rec, signal.SIGKILL)
            rec.data["HostConfig"]["AutoRemove"] = True  # removed when reaped
            self.waiters.setdefault(rec.id, []).append((conn, "rm"))
            return None
        self._delete(rec)
        return {"ok": True, "id": rec.id}

    def op_prune(self, msg, fds, conn):
        removed = []
        known = {entry.name for entry in self.cdir.iterdir()} | self._inventory_ids()
        inventory = self.home / "inventory"
        for rec in list(self.records.values()):
            if not rec.running:
                removed.append(rec.id)
                self._delete(rec)
        # leftovers a killed engine may have left: directories without a record
        spare = self.spare.cid if self.spare else None
        for entry in self.cdir.iterdir():
            if entry.name not in self.records and entry.name != spare:
                import shutil

                shutil.rmtree(entry, ignore_errors=True)
        self._remove_parent_cgroups(known)
        with open(inventory.with_suffix(".tmp"), "w") as f:  # forget what is fully gone
            f.writelines(f"{r.id} {r.cgroup_name}\n" for r in self.records.values())
            if self.spare is not None:
                f.write(f"{self.spare.cid} {self.spare.cgroup.name}\n")
        os.replace(inventory.with_suffix(".tmp"), inventory)
        return {"ok": True, "removed": removed}

    def op_update(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        from ..kernel.cgroups import Limits

        merged = dict(rec.data["HostConfig"]["Limits"])
        merged.update({k: v for k, v in msg["limits"].items() if v is not None})
        limits = Limits.from_dict(merged)
        self.cgroups.open(rec.cgroup_name).set_limits(limits)
        rec.data["HostConfig"]["Limits"] = limits.as_dict()
        rec.save()
        return {"ok": True, "id": rec.id, "limits": limits.as_dict()}

    def op_exec(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        tty = bool(msg.get("tty"))
        if len(fds) != 3 and not tty:
            raise LabkitError("exec: expected 3 file descriptors")
        env = dict(e.split("=", 1) for e in rec.data["Config"]["Env"] if "=" in e)
        env.update(dict(e.split("=", 1) if "=" in e else (e, "") for e in msg.get("env") or []))
        proc = {"argv": msg["cmd"], "env": env,
                "workdir": msg.get("workdir") or rec.data["Config"]["WorkingDir"],
                "user": msg.get("user") or rec.data["Config"]["User"], "tty": tty,
                "stdio": list(fds), "winsize": msg.get("winsize")}
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

    def op_shutdown(self, msg, fds, conn):
        self.running = False
        return {"ok": True}

    def _inventory_add(self, cid: str, cgroup_name: str) -> None:
        """Every container (and spare) ever made here, for audits and for pruning after a crash."""
        with open(self.home / "inventory", "a") as inv:
            inv.write(f"{cid} {cgroup_name}\n")

    def _inventory_ids(self) -> set[str]:
        """Every container id (and spare) this home ever made, from ``$LABKIT_HOME/inventory``."""
        try:
            with open(self.home / "inventory") as f:
                return {line.split()[0] for line in f if line.strip()}
        except FileNotFoundError:
            return set()

    # -- shutdown ---------------------------------------------------------------------
    def _remove_parent_cgroups(self, known: set[str] = frozenset()) -> None:
        """Remove cgroups left by this home's containers that no longer run.

        Several engines (one per ``$LABKIT_HOME``) share ``labkit/``: only
        cgroups named after containers of *this* home are touched.
        """
        owned = {r.cgroup_name for r in self.records.values() if r.running}
        if self.spare is not None:
            owned.add(self.spare.cgroup.name)
        mine = {f"labkit/{cid}" for cid in known | set(self.records)}
        try:
            for name in self.cgroups.list("labkit"):
                if name in mine and name not in owned:
                    try:
                        self.cgroups.open(name).remove()
                    except NotFound:
                        pass
        except Exception:  # noqa: BLE001 - cleanup is best effort, reported in the log
            traceback.print_exc()

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
        self._remove_parent_cgroups()


def _identity(dirs: list[str]) -> list[tuple[int, int]] | None:
    """(device, inode) of each directory: a layer removed and unpacked again is not the same."""
    try:
        return [(st.st_dev, st.st_ino) for st in map(os.stat, dirs)]
    except OSError:
        return None


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
    home.mkdir(parents=True, exist_ok=True, mode=0o711)
    lock = _lock(home)
    if lock is None:  # another engine serves this home
        if ready_fd is not None:
            os.write(ready_fd, b"busy")
            os.close(ready_fd)
        return 0
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
    status = os.read(r, 16)
    os.close(r)
    return 0 if status in (b"ok", b"busy") else 1
