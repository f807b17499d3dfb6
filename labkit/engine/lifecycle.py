"""Run, wait, kill, stop, rm: a container from its request to its exit code.

``op_run`` checks the request before anything is made (bad input leaves
nothing behind), takes the spare if it fits (see :mod:`.spare`) or forks a
new PID 1 (see :mod:`.spawn`), and replies once the process runs. When the
loop reaps PID 1, ``_finish`` records the exit code and the OOM kill and
answers everyone waiting for it.
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import traceback

from .. import i18n
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from . import protocol, spawn
from .privileges import check_user, container_caps, container_ulimits, device_rules, host_devices
from .privileges import ALL_DEVICES, privileged_devices, process_ulimits, security_options
from .initlayer import init_layer
from .rootless import SLIRP, check_run, slirp_down, slirp_ports, slirp_settings, slirp_up
from .state import Record, now, process_start_time, random_name

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Lifecycle:
    """The container operations of :class:`~labkit.engine.server.Engine`."""

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
        try:
            self._net_release(rec)  # its address, veth, rules and names go now, as Docker's
            slirp_down(rec.id, rec.dir)
        except Exception:  # noqa: BLE001 - cleanup goes on
            traceback.print_exc()
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
        self._after_exit(rec)  # its restart policy (.restarts)

    def _delete(self, rec: Record) -> None:
        self.records.pop(rec.id, None)
        self._volumes_release(rec)  # anonymous volumes of a --rm or `rm -v` container
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

    def op_run(self, msg, fds, conn):
        cfg = msg["config"]
        self._check_restart(cfg)  # --restart, --health-*: checked first, the request kept (.restarts)
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
        if not cfg.get("detach") and not cfg.get("tty") and len(fds) != 3:
            raise LabkitError("run: expected 3 file descriptors")
        network = cfg.get("network") or "bridge"  # Docker's default
        network = check_run(cfg, network, self.cgroups)  # rootless: slirp4netns, ports >= 1024, limits
        net = None
        if network not in ("none", "host", SLIRP):  # checked before anything is made: nothing left behind
            net = self._net_find(network)
            if net["Name"] == "bridge" and (cfg.get("ip") or cfg.get("aliases")):
                raise LabkitError(_("--ip and --network-alias need a user-defined network (labkit network create)"))
        if cfg.get("user"):
            check_user(cfg["user"])
        cfg["ulimits"] = container_ulimits(cfg.get("ulimits") or [])
        cfg["devices"] = host_devices(cfg.get("devices") or [])
        privileged = bool(cfg.get("privileged"))
        # --privileged (Docker's rule): every capability the engine has, whatever --cap-add/drop say
        cfg["caps"] = container_caps(["ALL"], []) if privileged else \
            container_caps(cfg.get("cap_add") or [], cfg.get("cap_drop") or [])
        cfg["security_opt"], cfg["seccomp_bpf"] = security_options(cfg.get("security_opt") or [],
                                                                   cfg["caps"])
        if privileged:  # no seccomp filter, and the host's device nodes, all of them allowed
            cfg["seccomp_bpf"] = ""
            cfg["node_devices"] = cfg["devices"] + [
                d for d in privileged_devices() if d["path"] not in {u["path"] for u in cfg["devices"]}]
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
        ports = list(cfg.get("ports") or []) if net is not None or network == SLIRP else []
        if cfg.get("publish_all") and net is not None:
            published = {(p["port"], p["proto"]) for p in ports}
            for key in sorted(icfg.get("ExposedPorts") or {}):
                port, _sep, proto = key.partition("/")
                if (int(port), proto or "tcp") not in published:
                    ports.append({"proto": proto or "tcp", "host_ip": "", "host_port": 0, "port": int(port)})
        cfg["ports"] = ports
        ports_owner = secrets.token_hex(8)
        if network == SLIRP:
            slirp_ports(ports)  # slirp4netns listens on them itself (rootless)
        else:
            self._ports_open(ports_owner, ports)  # a port taken on the host: refused, nothing made
        try:  # binds checked, volumes made (see volumes.py): removed again if the start fails
            cfg["volumes"] = self._volumes_for(cfg, icfg)
        except BaseException:
            self._ports_close(ports_owner)
            self._volumes_undo(cfg)
            raise
        spare = self._take_spare(cfg, lowers)
        try:
            reply = self._run(cfg, fds, conn, name, image, lowers, icfg, argv, env, network, spare,
                              net, ports_owner)
            if lowers and not cfg.get("volumes") and network != "host":
                self.next_lowers = lowers  # it started: the next spare builds the root of this image
                self.next_names = network != "none"  # ... with the name files mounted in /etc
            return reply
        except BaseException:
            self._ports_close(ports_owner)
            self._volumes_undo(cfg)
            if spare is not None and not spare.used:
                self._discard_spare(spare)
            raise
        finally:
            self.later(0 if cfg.get("detach") else 0.05, self._ensure_spare)

    def _run(self, cfg, fds, conn, name, image, lowers, icfg, argv, env, network, spare, net=None,
             ports_owner=None):
        if spare is not None:
            try:
                spare.wait_ready()  # in its cgroup, which exists from then on, and its root if any
            except OSError:  # it died: start the usual way
                self._discard_spare(spare)
                spare = None
        cid = spare.cid if spare is not None else cfg.get("reuse") or secrets.token_hex(32)
        hostname = cfg.get("hostname") or cid[:12]
        env["HOSTNAME"] = hostname
        # HOME: the child sets it from the image's passwd entry of the user (Docker's rule)
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
            (cdir / sub).mkdir(parents=True, exist_ok=prebuilt or bool(cfg.get("reuse")))
        if not lowers:
            empty = cdir / "empty"
            empty.mkdir(exist_ok=True)
            lowers = [str(empty)]
        detach = bool(cfg.get("detach"))
        rec = Record(cdir, {
            "Id": cid, "Name": name, "Created": now(), "Path": argv[0], "Args": argv[1:],
            "Image": image.id, "ImageRef": cfg["image"],
            "State": {"Status": "created", "Running": False, "Pid": 0, "ExitCode": 0,
                      "OOMKilled": False, "StartedAt": None, "FinishedAt": None},
            "Config": {"Hostname": hostname, "Env": [f"{k}={v}" for k, v in env.items()],
                       "Cmd": argv, "WorkingDir": workdir, "User": user, "Tty": bool(cfg.get("tty")),
                       "OpenStdin": bool(cfg.get("interactive")), "Image": cfg["image"],
                       "Labels": {**(icfg.get("Labels") or {}), **_labels(cfg.get("labels"))}},
            "HostConfig": {"AutoRemove": bool(cfg.get("remove")),
                           "NetworkMode": net["Name"] if net else network,
                           "PortBindings": _port_bindings(cfg.get("ports") or []),
                           "labkitPorts": cfg.get("ports") or [],
                           "ExtraHosts": list(cfg.get("add_hosts") or []) or None,
                           "Dns": list(cfg.get("dns") or []),
                "Limits": limits.as_dict(),
                "Devices": [{"PathOnHost": d["host"], "PathInContainer": d["path"],
                             "CgroupPermissions": d["access"]} for d in cfg["devices"]],
                "CapAdd": list(cfg.get("cap_add") or []), "CapDrop": list(cfg.get("cap_drop") or []),
                "ReadonlyRootfs": bool(cfg.get("read_only")),
                "SecurityOpt": cfg["security_opt"], "Ulimits": cfg["ulimits"],
                "Privileged": bool(cfg.get("privileged"))},
            "GraphDriver": {"Name": "overlay", "Data": {
                "LowerDir": ":".join(reversed(lowers)), "UpperDir": str(cdir / "upper"),
                "WorkDir": str(cdir / "work"), "MergedDir": str(cdir / "rootfs")}},
            "NetworkSettings": {"Networks": {}, "Ports": _port_bindings(cfg.get("ports") or [], True),
                                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""},
            "Cgroup": f"labkit/{cid}",
            "LogPath": str(cdir / "container.log") if detach else None,
        })
        (cdir / "seccomp.bpf").write_text(cfg["seccomp_bpf"])  # exec loads the same filter
        self._volumes_into(rec, cfg)  # Mounts, HostConfig.Binds/Mounts/Tmpfs, as Docker's
        self._restart_record(rec, cfg, icfg)  # policy, healthcheck, what a restart keeps
        rec.save()
        self.records[cid] = rec
        if cfg.get("create_only"):  # `labkit create`: no cgroup, no process yet
            return self._created(rec, ports_owner)
        try:
            if spare is not None:  # listed in the inventory since it was made
                cgroup = spare.cgroup
                cgroup.set_limits(limits, creating=True)
            else:
                self._inventory_add(cid, rec.cgroup_name)
                cgroup = self.cgroups.create(rec.cgroup_name, limits, devices=ALL_DEVICES if cfg.get(
                    "privileged") else device_rules(cfg["devices"]))
        except BaseException:
            self._delete(rec)
            raise
        try:
            if network == SLIRP:
                holder = slirp_up(rec.id, rec.dir, cfg)  # rootless: its namespace, eth0 configured
                rec.data["NetworkSettings"].update(slirp_settings())  # its address, as inspect shows it
                try:
                    names = self._name_files(rec, cfg, None)
                except BaseException:
                    from .networking import release_holder

                    release_holder(holder[0], holder[1])
                    raise
            else:
                names, holder = self._net_plug(rec, cfg, net, network, spare)
        except BaseException:
            self._fail_start(rec, cgroup, 0)
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
            "rootfs": {"lowerdirs": lowers, "initdir": init_layer(self.home), "upperdir": str(cdir / "upper"),
                       "workdir": str(cdir / "work"), "rootfs": str(cdir / "rootfs"),
                       "volumes": [*cfg.get("volumes", []), *names],
                       "devices": cfg.get("node_devices", cfg["devices"]),
                       "privileged": bool(cfg.get("privileged"))},
            "netns": holder[2] if holder else None,
            "hostname": hostname,
            "process": {"argv": argv, "env": env, "workdir": workdir, "user": user,
                        "tty": bool(cfg.get("tty")), "stdio": stdio,
                        "console": console[1].fileno() if console else None,
                        "winsize": cfg.get("winsize"), "caps": cfg["caps"],
                        "seccomp": cfg["seccomp_bpf"], "ulimits": process_ulimits(cfg["ulimits"])},
            "readonly": bool(cfg.get("read_only")),
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
                    holder = self._net_replug(rec, cfg, net, spec)
            if not pid:
                pid, error = spawn.start(spec, cgroup)
            master = self._console_master(console, error)
        finally:
            for fd in opened:
                os.close(fd)
            if holder is not None:  # PID 1 is in the namespace (or failed): the holder can go
                from .netns import release_holder

                release_holder(holder[0], holder[1])
        if error is not None:
            self._fail_start(rec, cgroup, pid)
            raise LabkitError(self._translate_start_error(error), exit_code=error.get("code", 125))
        rec.state.update(Status="running", Running=True, Pid=pid, StartedAt=now(),
                         StartTime=process_start_time(pid))
        rec.save()
        self.by_pid[pid] = ("init", cid)
        self._health_begin(rec)
        if ports_owner:
            self.port_socks[cid] = self.port_socks.pop(ports_owner, [])
        if net is not None:
            if cfg.get("ports"):  # the chains hold only published ports
                self._net_rules(net)
            self._names_changed(net)
        if detach:
            return {"ok": True, "id": cid, "name": name}
        self.attached[conn] = cid
        self._send_with(conn, {"ok": True, "id": cid, "name": name, "pid": pid}, master)
        return None

    @staticmethod
    def _console_master(console, error) -> int | None:
        """The pty master the container's B process sent back (see child.open_console)."""
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
            self._net_release(rec)
            slirp_down(rec.id, rec.dir)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        try:
            cgroup.kill()
            cgroup.remove()
        except Exception:  # noqa: BLE001
            traceback.print_exc()
        self._delete(rec)

    def op_list(self, msg, fds, conn):
        items = [r.data for r in self.records.values() if msg.get("all") or r.running or r.state.get("Restarting")]
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
            self._volumes_on_rm(rec, msg)  # before AutoRemove changes: rm -v, or a --rm container
            self._signal(rec, signal.SIGKILL)
            rec.data["HostConfig"]["AutoRemove"] = True  # removed when reaped
            self.waiters.setdefault(rec.id, []).append((conn, "rm"))
            return None
        self._volumes_on_rm(rec, msg)
        self._delete(rec)
        return {"ok": True, "id": rec.id}


def _labels(labels) -> dict:
    """The request's labels as Docker keeps them: a dict of strings (the client parsed them)."""
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        return {}
    return dict(labels)


def _port_bindings(ports: list[dict], view: bool = False) -> dict:
    """Docker's ``PortBindings`` (HostConfig) / ``Ports`` (NetworkSettings) from labkit's list."""
    out: dict = {}
    for p in ports:
        out.setdefault(f"{p['port']}/{p['proto']}", []).append(
            {"HostIp": p.get("host_ip") or ("0.0.0.0" if view else ""), "HostPort": str(p.get("host_port") or "")})
    return out
