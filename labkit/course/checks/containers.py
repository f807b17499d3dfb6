"""Checks on containers: exist, run, exited, started in order, OOM-killed, their process,
the limits of their cgroup."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from labkit.i18n import _

from ..verdict import Verdict, fail, number, ok, size
from .access import container_stats, container_status, find_container, parse_size

PAGE = 4096


def container_exists(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return ok(_('The container "%(name)s" exists.') % {"name": name})


def container_absent(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return ok(_('There is no container named "%(name)s" any more.') % {"name": name})
    return fail(_('The container "%(name)s" still exists (status: %(status)s). '
                  'Remove it.') % {"name": name, "status": status_word(container_status(c))})


def container_running(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return status_is(name, container_status(c), "running")


def container_exited(name: str, exit_code: int | None = None) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    verdict = status_is(name, container_status(c), "exited")
    if not verdict or exit_code is None:
        return verdict
    return exit_code_is(name, getattr(c, "exit_code", None), exit_code)


def status_word(status: str) -> str:
    """A container status ("running", "exited"...) in the learner's language."""
    words = {"running": _("running"), "exited": _("exited"),
             "created": _("created"), "stopped": _("exited")}
    return words.get(status, status or "?")


def status_is(name: str, actual: str, expected: str) -> Verdict:
    """Pure comparison of a container status ("running", "exited", ...)."""
    if actual == expected or (expected == "exited" and actual == "stopped"):
        return ok(_('The container "%(name)s" is %(status)s.')
                  % {"name": name, "status": status_word(expected)})
    return fail(_('The container "%(name)s" should be %(expected)s, but it is '
                  '%(actual)s.') % {"name": name, "expected": status_word(expected),
                                    "actual": status_word(actual)})


def exit_code_is(name: str, actual: int | None, expected: int) -> Verdict:
    if actual == expected:
        return ok(_('Its main process ended with exit code %(code)s.') % {"code": actual})
    return fail(_('The container "%(name)s" ended with exit code %(actual)s; '
                  'expected %(expected)s.')
                % {"name": name, "actual": actual, "expected": expected})


def _started(container: Any) -> str:
    """When the container's process started (ISO 8601, UTC, sortable as text)."""
    state = container.inspect()["State"]
    return str(state.get("StartedAt") or "")


def container_started_after(name: str, other: str) -> Verdict:
    """``name`` started after ``other``: it was made again while ``other`` kept running."""
    c, missing = find_container(name)
    if missing is not None:
        return missing
    o, missing = find_container(other)
    if missing is not None:
        return missing
    return started_after(name, _started(c), other, _started(o))


def started_after(name: str, started: str, other: str, other_started: str) -> Verdict:
    """Pure comparison of two ``StartedAt`` times (same format, so text order is time order)."""
    if started and other_started and started > other_started:
        return ok(_('"%(name)s" started after "%(other)s": it is a new container.')
                  % {"name": name, "other": other})
    return fail(_('"%(name)s" started before "%(other)s": it is still the first one. '
                  'Remove it and create it again.') % {"name": name, "other": other})


def container_started_first(first: str, second: str) -> Verdict:
    """``first`` started before ``second``: the order an exercise asks for."""
    c, missing = find_container(first)
    if missing is not None:
        return missing
    o, missing = find_container(second)
    if missing is not None:
        return missing
    return started_first(first, _started(c), second, _started(o))


def started_first(first: str, started: str, second: str, second_started: str) -> Verdict:
    if started and second_started and started < second_started:
        return ok(_('"%(first)s" started before "%(second)s", in the order asked.')
                  % {"first": first, "second": second})
    return fail(_('"%(second)s" started before "%(first)s": start "%(first)s" first '
                  '(remove both and start them again).') % {"first": first, "second": second})


def container_oom_killed(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    if getattr(c, "oom_killed", False):
        return ok(_('The kernel killed "%(name)s" for going over its memory limit '
                    '(OOM kill).') % {"name": name})
    return fail(_('"%(name)s" was not killed by the OOM killer (status: %(status)s). '
                  'Did it use more memory than its limit?')
                % {"name": name, "status": status_word(container_status(c))})


def container_process_is(name: str, command: str, proc: Path = Path("/proc")) -> Verdict:
    """The container's PID 1, seen from the host, runs ``command`` (its comm)."""
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return process_is(int(c.pid), command, proc)


def process_is(pid: int, command: str, proc: Path = Path("/proc")) -> Verdict:
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return fail(_("No process with PID %(pid)s is running on the host.") % {"pid": pid})
    if comm == command:
        return ok(_('On the host, PID %(pid)s is the process "%(command)s": the '
                    'container is an ordinary process.') % {"pid": pid, "command": comm})
    return fail(_('On the host, PID %(pid)s runs "%(actual)s", not "%(command)s".')
                % {"pid": pid, "actual": comm, "command": command})


def memory_limit_is(name: str, expected: int | str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return compare_memory(name, container_stats(c).get("memory_limit"), parse_size(expected))


def compare_memory(name: str, actual: int | None, expected: int) -> Verdict:
    """The kernel rounds the limit down to whole pages: allow one page."""
    if actual is not None and abs(actual - expected) < PAGE:
        return ok(_('The memory limit of "%(name)s" is %(size)s.')
                  % {"name": name, "size": size(actual)})
    return fail(_('The memory limit of "%(name)s" is %(actual)s; expected %(expected)s.')
                % {"name": name, "actual": size(actual), "expected": size(expected)})


def cpu_quota_is(name: str, cores: float) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return compare_cpus(name, container_stats(c).get("cpu_quota_cores"), float(cores))


def compare_cpus(name: str, actual: float | None, expected: float) -> Verdict:
    if actual is not None and abs(actual - expected) < 0.005:
        return ok(_('The CPU quota of "%(name)s" is %(cores)s core(s).')
                  % {"name": name, "cores": number(actual)})
    shown = _("no quota") if actual is None else number(actual)
    return fail(_('The CPU quota of "%(name)s" is %(actual)s; expected %(expected)s '
                  'core(s).') % {"name": name, "actual": shown,
                                 "expected": number(expected)})


def pids_limit_is(name: str, expected: int) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    actual = container_stats(c).get("pids_limit")
    if actual == expected:
        return ok(_('"%(name)s" may have at most %(n)s processes.')
                  % {"name": name, "n": actual})
    return fail(_('The process limit of "%(name)s" is %(actual)s; expected %(expected)s.')
                % {"name": name, "actual": actual if actual is not None else _("no limit"),
                   "expected": expected})


def container_failed(name: str) -> Verdict:
    """``name`` exited with a code other than 0."""
    c, missing = find_container(name)
    if missing is not None:
        return missing
    verdict = status_is(name, container_status(c), "exited")
    if not verdict:
        return verdict
    code = getattr(c, "exit_code", None)
    if not code:
        return fail(_('The container "%(name)s" ended with code 0: the write did not fail.') % {"name": name})
    return ok(_('The container "%(name)s" ended with code %(code)s.') % {"name": name, "code": code})
