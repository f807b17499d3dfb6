"""Healthchecks: a command the engine runs in the container, on a timer, to tell if it works.

Docker's rules (``HEALTHCHECK``, ``docker run --health-*``, moby's ``health.go``):
the first probe runs ``interval`` after the start, then one every
``interval``; a probe is an exec in the container (``CMD-SHELL`` through
``/bin/sh -c``) killed after ``timeout``. Exit 0 makes the container
``healthy``; ``retries`` failures in a row make it ``unhealthy``; failures
during ``start_period`` do not count while it has never been healthy. The
last 5 results stay in ``State.Health.Log``. An unhealthy container is not
restarted (Docker does not either).

The loop never waits for a probe: it spawns the exec, and the reaper hands
its exit code to :meth:`Health._health_done`; its output is read from a pipe then.
"""
from __future__ import annotations

import os
import re
import signal
import traceback

from ..errors import LabkitError
from ..i18n import _
from .state import Record, now

NS = 10**9
DEFAULTS = {"Interval": 30 * NS, "Timeout": 30 * NS, "StartPeriod": 0, "Retries": 3}
MAX_LOG = 5  # moby's maxLogEntries
MAX_OUTPUT = 4096  # moby's maxOutputLen
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS, "h": 3600 * NS}
_FLAGS = {"interval": ("Interval", "--health-interval"), "timeout": ("Timeout", "--health-timeout"),
          "start_period": ("StartPeriod", "--health-start-period")}


def duration_ns(value: float | int | str, flag: str) -> int:
    """Seconds (API) or a Go duration (CLI: ``30s``, ``1m30s``, ``500ms``) → nanoseconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ns = int(round(value * NS))
    else:
        text = str(value).strip()
        parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
        if text in ("0", ""):
            parts, ns = [], 0
        elif not parts or "".join(n + u for n, u in parts) != text:
            raise LabkitError(_("invalid argument \"%(value)s\" for %(flag)s: use a duration such as "
                                "30s, 1m30s or 500ms") % {"value": text, "flag": flag})
        else:
            ns = int(sum(float(n) * _UNITS[u] for n, u in parts))
    if ns < 0:
        raise LabkitError(_("%(flag)s cannot be negative") % {"flag": flag})
    if 0 < ns < 1_000_000:
        raise LabkitError(_("%(flag)s cannot be less than 1ms") % {"flag": flag})
    return ns


def parse_healthcheck(spec: dict | None) -> dict | None:
    """The API's / CLI's ``healthcheck`` (seconds, or the CLI's strings) → Docker's
    ``Config.Healthcheck`` with what was given (nanoseconds); None when nothing was."""
    if not spec:
        return None
    known = {"test", "interval", "timeout", "retries", "start_period", "disable"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise LabkitError(_("unknown healthcheck option: %(key)s") % {"key": unknown[0]})
    given = [k for k in ("test", "interval", "timeout", "retries", "start_period") if spec.get(k) is not None]
    if spec.get("disable"):
        if given:
            raise LabkitError(_("--no-healthcheck conflicts with --health-* options"))
        return {"Test": ["NONE"]}
    out: dict = {}
    test = spec.get("test")
    if test is not None:
        if isinstance(test, str):
            test = ["CMD-SHELL", test]
        test = [str(t) for t in test]
        if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE") or (test[0] != "NONE" and len(test) < 2) \
                or (test[0] == "CMD-SHELL" and len(test) != 2):
            raise LabkitError(_("invalid healthcheck test: %(test)s (use [\"CMD-SHELL\", \"command\"], "
                                "[\"CMD\", \"program\", ...] or [\"NONE\"])") % {"test": test})
        out["Test"] = test
    for key, (field, flag) in _FLAGS.items():
        if spec.get(key) is not None:
            out[field] = duration_ns(spec[key], flag)
    if spec.get("retries") is not None:
        try:
            retries = int(spec["retries"])
        except (TypeError, ValueError):
            raise LabkitError(_("invalid argument \"%(value)s\" for --health-retries: not an integer")
                              % {"value": spec["retries"]}) from None
        if retries < 0:
            raise LabkitError(_("%(flag)s cannot be negative") % {"flag": "--health-retries"})
        out["Retries"] = retries
    return out


def effective(user: dict | None, image: dict | None) -> dict | None:
    """Docker's merge: the run's fields over the image's ``HEALTHCHECK``; None = no check."""
    if user is None and not image:
        return None
    merged = dict(image or {})
    if user is not None and user.get("Test") == ["NONE"]:
        merged = {}
    merged.update(user or {})
    return merged if merged.get("Test") else None


def active(check: dict | None) -> bool:
    return bool(check and check.get("Test") and check["Test"][0] in ("CMD", "CMD-SHELL"))


def record_result(health: dict, check: dict, exit_code: int, output: str, start: str, end: str,
                  in_start_period: bool) -> dict:
    """One probe's result into Docker's ``State.Health`` (Status, FailingStreak, Log)."""
    health.setdefault("Log", []).append({"Start": start, "End": end, "ExitCode": exit_code,
                                         "Output": output[:MAX_OUTPUT]})
    del health["Log"][:-MAX_LOG]
    if exit_code == 0:
        health.update(Status="healthy", FailingStreak=0)
    elif not (health.get("Status") == "starting" and in_start_period):
        health["FailingStreak"] = health.get("FailingStreak", 0) + 1
        if health["FailingStreak"] >= (check.get("Retries") or DEFAULTS["Retries"]):
            health["Status"] = "unhealthy"
    return health


class Health:
    """Healthchecks of :class:`~labkit.engine.server.Engine`."""

    @property
    def health_probes(self) -> dict:
        """Probe pid -> (record, its PID 1, the output pipe, start[, the timeout that killed it])."""
        return self.__dict__.setdefault("_health_probes", {})

    def _check_health(self, cfg: dict) -> None:
        """Checked before anything is made (bad input leaves nothing)."""
        cfg["health"] = parse_healthcheck(cfg.get("healthcheck"))

    def _health_record(self, rec: Record, cfg: dict, icfg: dict | None = None) -> None:
        check = effective(cfg.get("health"), (icfg or {}).get("Healthcheck"))
        if check:
            rec.data["Config"]["Healthcheck"] = check
        if active(check):  # Docker shows "starting" from the start; the log of earlier runs stays
            log = (rec.state.get("Health") or {}).get("Log", [])
            rec.state["Health"] = {"Status": "starting", "FailingStreak": 0, "Log": log}

    def _health_begin(self, rec: Record) -> None:
        """The container runs: its first probe after one interval."""
        check = rec.data["Config"].get("Healthcheck")
        if active(check):
            self._health_next(rec, rec.pid)

    def _health_next(self, rec: Record, pid: int) -> None:
        check = rec.data["Config"]["Healthcheck"]
        self.later((check.get("Interval") or DEFAULTS["Interval"]) / NS, lambda: self._health_probe(rec, pid))

    def _health_probe(self, rec: Record, pid: int) -> None:
        if self.records.get(rec.id) is not rec or not rec.running or rec.pid != pid:
            return  # it exited (or started again: that run has its own timer)
        from . import spawn
        from .exec import exec_process

        check = rec.data["Config"]["Healthcheck"]
        test = check["Test"]
        argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        read, write = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        start = now()
        try:
            proc = exec_process(rec, {"cmd": argv}, [null, write, write])
            proc["console"] = None
            probe, error = spawn.start_exec(rec.pid, proc, self.cgroups.open(rec.cgroup_name))
        except Exception:  # noqa: BLE001 - it may have exited meanwhile: try at the next interval
            traceback.print_exc()
            probe, error = 0, {"message": "exec failed"}
        finally:
            os.close(write)
            os.close(null)
        if error is not None:
            if probe:
                try:
                    os.waitpid(probe, 0)
                except ChildProcessError:
                    pass
            os.close(read)
            self._health_result(rec, pid, -1, error.get("message", ""), start)
            return
        os.set_blocking(read, False)
        probes = self.health_probes
        probes[probe] = (rec, pid, read, start)
        self.by_pid[probe] = ("health", rec.id)
        timeout = (check.get("Timeout") or DEFAULTS["Timeout"]) / NS

        def too_slow() -> None:
            if probe in probes:
                probes[probe] = (rec, pid, read, start, timeout)  # its result says why
                try:
                    os.kill(probe, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.later(timeout, too_slow)

    def _health_done(self, probe: int, code: int) -> None:
        """The reaper found a probe's exit."""
        entry = self.health_probes.pop(probe, None)
        if entry is None:
            return
        rec, pid, read, start = entry[:4]
        chunks = []
        try:
            while sum(map(len, chunks)) < MAX_OUTPUT:
                data = os.read(read, 65536)
                if not data:
                    break
                chunks.append(data)
        except BlockingIOError:
            pass
        finally:
            os.close(read)
        output = b"".join(chunks).decode(errors="replace")
        if len(entry) > 4:  # killed after its timeout (Docker's exit code -1 and words)
            code = -1
            output = "Health check exceeded timeout (%gs)" % entry[4]
        self._health_result(rec, pid, code, output, start)

    def _health_result(self, rec: Record, pid: int, code: int, output: str, start: str) -> None:
        if self.records.get(rec.id) is not rec or not rec.running or rec.pid != pid:
            return
        from .restarts import started_at_seconds

        check = rec.data["Config"]["Healthcheck"]
        period = (check.get("StartPeriod") or 0) / NS
        health = rec.state.setdefault("Health", {"Status": "starting", "FailingStreak": 0, "Log": []})
        record_result(health, check, code, output, start, now(), started_at_seconds(rec) < period)
        rec.save()
        self._health_next(rec, pid)

    def _health_stop(self, rec: Record) -> None:
        """PID 1 exited: a probe still running dies with the cgroup; forget it."""
        probes = self.health_probes
        for probe, entry in list(probes.items()):
            if entry[0] is rec:
                probes.pop(probe)
                os.close(entry[2])
