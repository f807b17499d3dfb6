"""Containers that come back: restart policies, and the verbs create, start, restart.

Docker's rules (``docker run --restart``, moby's ``restartmanager``):

- ``no`` (the default): never. ``on-failure[:N]``: after a non-zero exit, at
  most N times (0 = no limit). ``always``: after any exit. ``unless-stopped``:
  as ``always``, but a container the user stopped stays stopped even when the
  engine starts again.
- A ``stop`` or ``kill`` by the user is never followed by a restart (the
  "manually stopped" flag); a start by the user clears it.
- The delay before a restart starts at 100 ms and doubles each time, up to a
  minute; it goes back to 100 ms once the container has run 10 s.
- When the engine starts, ``always`` containers start again (even those the
  user stopped), ``unless-stopped`` ones unless the user stopped them, and a
  container that was waiting for its restart when the engine died comes back
  once.

A restart is the same container: the same id, name, writable layer (the
overlay ``upper/``) and volumes; a new PID 1 in a new cgroup of the same
name. The original request is kept in ``request.json`` next to
``container.json``, so that a restart goes through ``op_run`` again exactly
as the first start did; the policy and the waiting state are on disk, so an
engine killed with SIGKILL loses neither.
"""
from __future__ import annotations

import copy
import json
import os
import re
import signal
import time
import traceback

from ..errors import Conflict, LabkitError
from ..i18n import _
from .state import Record, now

FIRST_DELAY = 0.1  # seconds: moby's restartmanager defaultTimeout
MAX_DELAY = 60.0  # maxRestartTimeout
RESET_AFTER = 10.0  # a run this long resets the delay
POLICIES = ("no", "on-failure", "always", "unless-stopped")


def parse_policy(value: str | dict | None) -> dict:
    """``"on-failure:3"`` → Docker's ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""
    if isinstance(value, dict):
        value = f"{value.get('Name') or 'no'}:{value.get('MaximumRetryCount') or 0}"
    text = (value or "no").strip()
    name, sep, count = text.partition(":")
    if name not in POLICIES:
        raise LabkitError(_("invalid restart policy: unknown policy '%(name)s'; use one of 'no', "
                            "'always', 'on-failure' or 'unless-stopped'") % {"name": name})
    if not sep:
        return {"Name": name, "MaximumRetryCount": 0}
    if not re.fullmatch(r"-?\d+", count):
        raise LabkitError(_("invalid restart policy format: the maximum retry count must be an "
                            "integer: %(value)s") % {"value": text})
    retries = int(count)
    if name != "on-failure" and retries != 0:
        raise LabkitError(_("invalid restart policy: a maximum retry count can only be used with "
                            "'on-failure'"))
    if retries < 0:
        raise LabkitError(_("invalid restart policy: the maximum retry count cannot be negative"))
    return {"Name": name, "MaximumRetryCount": retries}


def next_delay(previous: float, ran_for: float) -> float:
    """The wait before the next restart, from the last one and how long the container ran."""
    if ran_for >= RESET_AFTER or previous <= 0:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


def should_restart(policy: dict, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """Whether a container that just exited starts again (while the engine runs)."""
    if manually_stopped:
        return False
    name = policy.get("Name") or "no"
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        limit = policy.get("MaximumRetryCount") or 0
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def start_on_engine_start(policy: dict, status: str, manually_stopped: bool) -> bool:
    """Whether the engine, starting, starts this container again (Docker's daemon start)."""
    if status == "restarting":  # it was waiting for its restart when the engine died
        return True
    if status != "exited":
        return False
    name = policy.get("Name") or "no"
    return name == "always" or (name == "unless-stopped" and not manually_stopped)


def _seconds_between(start: str | None, end: str | None) -> float:
    import calendar

    def parse(iso: str) -> float:
        return calendar.timegm(time.strptime(iso[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + iso[19:-1])

    try:
        return max(0.0, parse(end) - parse(start))
    except (TypeError, ValueError):
        return 0.0


class Restarts:
    """Restart policies and create/start/restart for :class:`~labkit.engine.server.Engine`."""

    # Engine.__init__ (server.py) stays as it is: this state is made on first use.
    @property
    def restart_pending(self) -> dict:
        """Container id -> the token of its one waiting restart (an older timer finds another)."""
        return self.__dict__.setdefault("_restart_pending", {})

    @property
    def previous(self) -> dict:
        """Container id -> its record while it is started again (see :meth:`_start_again`)."""
        return self.__dict__.setdefault("_previous", {})

    @property
    def restart_conns(self) -> dict:
        """Container id -> the client of ``labkit restart`` waiting for its stop and start."""
        return self.__dict__.setdefault("_restart_conns", {})

    # -- hooks in op_run / _run / _finish ----------------------------------------
    def _check_restart(self, cfg: dict) -> None:
        """Check the policy and the healthcheck before anything is made; keep the request."""
        policy = parse_policy(cfg.get("restart"))
        if policy["Name"] != "no" and cfg.get("remove"):
            raise LabkitError(_("conflicting options: --restart and --rm"))
        self._check_health(cfg)
        if "request" not in cfg and (not cfg.get("remove") or cfg.get("create_only")):
            # what the user asked for, before op_run changes cfg (a --rm container is gone
            # after its run: it never starts again, unless it was only created)
            cfg["request"] = copy.deepcopy({k: v for k, v in cfg.items() if k != "request"})
        cfg["restart_policy"] = policy

    def _restart_record(self, rec: Record, cfg: dict, icfg: dict | None = None) -> None:
        """The container's record, the first time or again: what a restart keeps."""
        before = self.previous.get(rec.id)
        rec.data["HostConfig"]["RestartPolicy"] = cfg.get("restart_policy") or parse_policy(None)
        rec.data["RestartCount"] = 0
        rec.data["labkitRestart"] = {"ManuallyStopped": False, "Created": bool(cfg.get("create_only")),
                                     "Delay": 0.0}
        if before is not None:
            rec.data["Created"] = before.data["Created"]
            rec.data["RestartCount"] = before.data.get("RestartCount", 0)
            rec.data["labkitRestart"]["Delay"] = (before.data.get("labkitRestart") or {}).get("Delay", 0.0)
            if "Health" in before.state:
                rec.state["Health"] = before.state["Health"]
        rec.state["Restarting"] = False
        self._health_record(rec, cfg, icfg)
        request = rec.dir / "request.json"
        if cfg.get("request") and (before is None or not request.exists()):
            tmp = rec.dir / "request.json.tmp"
            tmp.write_text(json.dumps(cfg.get("request") or {}))
            os.replace(tmp, request)

    def _created(self, rec: Record, ports_owner: str | None) -> dict:
        """``create``: the record is on disk; no cgroup, no process, no port held yet."""
        if ports_owner:
            self._ports_close(ports_owner)
        return {"ok": True, "id": rec.id, "name": rec.name}

    def _after_exit(self, rec: Record) -> None:
        """Called when PID 1 was reaped and the exit recorded: restart it, if its policy says so."""
        self._health_stop(rec)
        conn = self.restart_conns.pop(rec.id, None)
        if rec.id not in self.records:
            return
        if conn is not None:  # `labkit restart`: stopped, now started again
            self._user_start(rec, conn)
            return
        if not self.running:  # the engine is stopping: the next one decides
            return
        extra = rec.data.setdefault("labkitRestart", {})
        policy = rec.data["HostConfig"].get("RestartPolicy") or {}
        if not should_restart(policy, rec.state["ExitCode"], rec.data.get("RestartCount", 0),
                              bool(extra.get("ManuallyStopped"))):
            return
        ran = _seconds_between(rec.state.get("StartedAt"), rec.state.get("FinishedAt"))
        delay = next_delay(extra.get("Delay", 0.0), ran)
        extra["Delay"] = delay
        rec.data["RestartCount"] = rec.data.get("RestartCount", 0) + 1
        # Docker's State while it waits: Restarting and Running both true, no pid
        rec.state.update(Status="restarting", Restarting=True, Running=True)
        rec.save()
        self._schedule_restart(rec, delay)

    # -- the back-off -----------------------------------------------------------------
    def _schedule_restart(self, rec: Record, delay: float) -> None:
        pending = self.restart_pending
        token = object()
        pending[rec.id] = token

        def fire() -> None:
            if pending.get(rec.id) is token:
                self._restart_now(rec.id)
        self.later(delay, fire)

    def _cancel_restart(self, rec: Record) -> bool:
        """A waiting restart is dropped (stop, kill, rm): the container is simply exited."""
        self.restart_pending.pop(rec.id, None)
        if rec.state.get("Status") != "restarting":
            return False
        rec.state.update(Status="exited", Restarting=False, Running=False)
        rec.save()
        return True

    def _restart_now(self, cid: str) -> None:
        """The delay is over (or the engine started): start it again, once."""
        self.restart_pending.pop(cid, None)
        rec = self.records.get(cid)
        if rec is None or rec.state.get("Status") not in ("restarting", "exited"):
            return
        try:
            self._start_again(rec)
        except LabkitError as exc:  # e.g. its image was removed: it stays exited, with the reason
            rec = self.records.get(cid, rec)
            rec.state.update(Status="exited", Restarting=False, Running=False, Error=exc.message)
            rec.save()
        except Exception:  # noqa: BLE001 - the engine goes on
            traceback.print_exc()

    def _start_again(self, rec: Record) -> dict:
        """A new PID 1 for an existing container, through ``op_run`` with its first request."""
        try:
            cfg = json.loads((rec.dir / "request.json").read_text())
        except (OSError, ValueError):
            raise LabkitError(_("container %(name)s cannot be started: its configuration is missing")
                              % {"name": rec.name}) from None
        cfg.update(detach=True, tty=False, interactive=False, create_only=False, reuse=rec.id,
                   name=rec.name, request=copy.deepcopy(cfg))
        previous = self.previous
        previous[rec.id] = rec  # while it is here, a failed start does not delete the directory
        del self.records[rec.id]  # its name is free for op_run's check; the record comes back
        try:
            return self.op_run({"config": cfg}, [], None)
        finally:
            previous.pop(rec.id, None)
            if rec.id not in self.records:  # the start failed: the old record, as it was
                self.records[rec.id] = rec
                rec.save()

    def _user_start(self, rec: Record, conn=None) -> dict | None:
        """``start`` / the second half of ``restart``: a new run, counters reset (Docker's)."""
        rec.data["RestartCount"] = 0
        rec.data.setdefault("labkitRestart", {}).update(ManuallyStopped=False, Delay=0.0)
        try:
            reply = self._start_again(rec)
        except LabkitError as exc:
            if conn is None:
                raise
            self._reply_and_close(conn, {"ok": False, "error": exc.message, "exit_code": exc.exit_code,
                                         "kind": type(exc).__name__})
            return None
        if conn is not None:
            self._reply_and_close(conn, reply)
        return reply

    def _restart_on_engine_start(self) -> None:
        for rec in list(self.records.values()):
            if rec.running:  # adopted from the engine before: its healthcheck goes on here
                self._health_begin(rec)
                continue
            extra = rec.data.get("labkitRestart") or {}
            policy = rec.data["HostConfig"].get("RestartPolicy") or {}
            if start_on_engine_start(policy, rec.state.get("Status", ""), bool(extra.get("ManuallyStopped"))):
                self._restart_now(rec.id)

    def _is_created(self, rec: Record) -> bool:
        """Made by ``create`` and never started (kept as is by recovery)."""
        return rec.state.get("Status") == "created" and bool((rec.data.get("labkitRestart") or {}).get("Created"))

    # -- what the user does: in front of Lifecycle's ops (Restarts comes first in Engine) ----
    def op_stop(self, msg, fds, conn):
        self._manual_stop(self.find(msg["ref"]), msg)
        return super().op_stop(msg, fds, conn)

    def op_kill(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        # moby: only a signal that stops it (KILL, or its stop signal) counts as the user's stop;
        # `kill -s HUP` to reload a configuration does not turn its restart policy off
        if int(msg.get("signal", signal.SIGKILL)) in (signal.SIGKILL, signal.SIGTERM) \
                and self._manual_stop(rec, msg):  # it was waiting for a restart: no more, no error
            return {"ok": True, "id": rec.id}
        return super().op_kill(msg, fds, conn)

    def op_rm(self, msg, fds, conn):
        self._manual_stop(self.find(msg["ref"]), msg)
        return super().op_rm(msg, fds, conn)

    def _delete(self, rec: Record) -> None:
        if rec.id in self.previous:  # a failed start again keeps its container
            self.records.pop(rec.id, None)
            return
        super()._delete(rec)

    def _manual_stop(self, rec: Record, msg: dict) -> bool:
        """``stop``, ``kill``, ``rm``: no restart follows (a waiting one is dropped)."""
        if rec.state.get("Status") == "restarting" and msg.get("op") == "rm" and not msg.get("force"):
            raise Conflict(_("cannot remove container %(name)s: it is restarting; stop it first "
                             "or use rm -f") % {"name": rec.name})
        rec.data.setdefault("labkitRestart", {})["ManuallyStopped"] = True
        if self._cancel_restart(rec):  # saved
            return True
        rec.save()
        return False

    def op_start(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if rec.running:
            return {"ok": True, "id": rec.id, "name": rec.name}  # Docker: nothing to do
        self._cancel_restart(rec)
        return self._user_start(rec)

    def op_restart(self, msg, fds, conn):
        """``restart``: stop (SIGTERM, SIGKILL after ``timeout``), then start; one reply at the end."""
        rec = self.find(msg["ref"])
        if not rec.running:
            self._cancel_restart(rec)
            return self._user_start(rec)
        self.restart_conns[rec.id] = conn
        self.op_stop({**msg, "op": "stop"}, fds, None)
        # op_stop waits for the exit with a waiter; here _after_exit answers instead
        self.waiters[rec.id] = [(c, k) for c, k in self.waiters.get(rec.id, []) if c is not None]
        return None


def started_at_seconds(rec: Record) -> float:
    """How long ago this run started (seconds), from ``State.StartedAt``."""
    return _seconds_between(rec.state.get("StartedAt"), now())
