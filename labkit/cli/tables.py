"""How the CLI's listings read: Docker's columns, durations and sizes.

One place for what ``ps``, ``images``, ``history``, ``network ls``, ``system df`` and
``compose ps`` share, so "2 minutes ago" and the column padding read the same in each,
as they do in Docker (go-units' ``HumanDuration`` and ``HumanSizeWithPrecision``,
tabwriter's three spaces).
"""
from __future__ import annotations

import time

from ..i18n import _, ngettext
from ..units import human_size  # noqa: F401 - the listings' sizes, with the durations


def table(header: list[str], rows: list[list[str]]) -> str:
    """Columns padded like Docker's tabwriter (three spaces between columns)."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    return "\n".join("   ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [header] + rows)


def human_duration(seconds: float) -> str:
    """Docker's ``HumanDuration``: "Less than a second", "About a minute", "3 hours", translated."""
    if seconds < 1:
        return _("Less than a second")
    if seconds < 60:
        n = int(seconds)
        return ngettext("%(n)d second", "%(n)d seconds", n) % {"n": n}
    if seconds / 60 < 60:
        n = int(seconds / 60)
        return _("About a minute") if n == 1 else ngettext("%(n)d minute", "%(n)d minutes", n) % {"n": n}
    hours = round(seconds / 3600)
    if hours == 1:
        return _("About an hour")
    if hours < 48:
        return ngettext("%(n)d hour", "%(n)d hours", hours) % {"n": hours}
    if hours < 24 * 7 * 2:
        n = int(hours / 24)
        return ngettext("%(n)d day", "%(n)d days", n) % {"n": n}
    if hours < 24 * 30 * 2:
        n = int(hours / 24 / 7)
        return ngettext("%(n)d week", "%(n)d weeks", n) % {"n": n}
    if hours < 24 * 365 * 2:
        n = int(hours / 24 / 30)
        return ngettext("%(n)d month", "%(n)d months", n) % {"n": n}
    n = int(seconds / 3600 / 24 / 365)
    return ngettext("%(n)d year", "%(n)d years", n) % {"n": n}


def since(when: object, now: float | None = None) -> str | None:
    """``human_duration`` from ``when`` (a datetime, an ISO 8601 UTC string or epoch
    seconds) until ``now``; None when there is no time."""
    if when is None or when == "":
        return None
    if hasattr(when, "timestamp"):
        then = when.timestamp()
    elif isinstance(when, str):
        import calendar  # lazily: the labkit command starts without it

        then = calendar.timegm(time.strptime(when[:19], "%Y-%m-%dT%H:%M:%S"))
    else:
        then = float(when)
    return human_duration(max(0.0, (time.time() if now is None else now) - then))


def ago(when: object, now: float | None = None) -> str:
    """"2 minutes ago", translated; "N/A" without a time."""
    text = since(when, now)
    return _("N/A") if text is None else _("%(time)s ago") % {"time": text}


def status_text(state: dict) -> str:
    """``ps``'s STATUS column: "Up 2 minutes (healthy)", "Exited (0) 3 seconds ago"..."""
    if state["Status"] == "restarting":
        return _("Restarting (%(code)d) %(time)s ago") % {"code": state["ExitCode"],
                                                          "time": since(state.get("FinishedAt")) or ""}
    if state["Status"] == "running":
        from .restart_flags import health_suffix

        return _("Up %(time)s") % {"time": since(state.get("StartedAt")) or ""} + health_suffix(state)
    if state["Status"] == "created":
        return _("Created")
    return _("Exited (%(code)d) %(time)s ago") % {"code": state["ExitCode"],
                                                  "time": since(state.get("FinishedAt")) or ""}
