"""Text: the ``labkit stats`` table and the one-line summary of a run."""
from __future__ import annotations

import os

from ..i18n import _, decimal
from .figures import host_memory_total
from .rows import HOST


def human_bytes(n: int | float | None) -> str:
    """``docker stats`` style sizes: 1.5MiB, 64MiB, 1.9GiB."""
    if n is None:
        return "--"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)}B"
            text = decimal(n, 1 if n < 100 else 0)
            return (text[:-2] if text[-2:] in (".0", ",0") else text) + unit
        n /= 1024
    return f"{n}B"  # pragma: no cover


def percent(value: float | None, digits: int = 2) -> str:
    return "--" if value is None else decimal(value, digits) + "%"


def stats_header() -> str:
    return _("CPU %%: 100 %% = one core (a busy container on %(n)d cores can reach %(max)d %%)") % {
        "n": os.cpu_count() or 1, "max": 100 * (os.cpu_count() or 1)}


def stats_table(entries: list[dict]) -> str:
    """Format ``docker stats`` columns. Each entry: ``id``, ``name`` and the
    keys of :func:`snapshot` (``cpu_percent``, ``memory_bytes``,
    ``memory_limit``, ``memory_percent``, ``pids``, ``throttled``,
    ``cpu_quota_cores``)."""
    heads = [_("CONTAINER ID"), _("NAME"), _("CPU %"), _("MEM USAGE / LIMIT"), _("MEM %"),
             _("PIDS"), _("THROTTLED")]
    lines = []
    total = None
    for e in entries:
        limit = e.get("memory_limit")
        if limit is None:
            total = total or host_memory_total()
            limit = total
        thr = "--" if e.get("cpu_quota_cores") is None else percent(e.get("throttled"), 0)
        lines.append([
            str(e.get("id", ""))[:12], str(e.get("name", "")), percent(e.get("cpu_percent")),
            f"{human_bytes(e.get('memory_bytes'))} / {human_bytes(limit)}",
            percent(e.get("memory_percent")),
            "--" if e.get("pids") is None else str(e.get("pids")), thr,
        ])
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h)
              for i, h in enumerate(heads)]
    fmt = "   ".join("{:<%d}" % w for w in widths)
    out = [fmt.format(*heads).rstrip()] + [fmt.format(*r).rstrip() for r in lines]
    return "\n".join(out)


def summary(rows: list[dict]) -> str:
    """One line: mean CPU and memory peak per container (host if alone), OOMs."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["target"], []).append(r)
    names = [n for n in by if n != HOST] or [n for n in by]
    if not names:
        return _("no samples")
    cpu = ", ".join(
        f"{n} {decimal(sum(r['cpu_percent'] for r in by[n]) / len(by[n]), 0)} %" for n in names)
    mem = ", ".join(f"{n} {human_bytes(max(r['memory_bytes'] or 0 for r in by[n]))}"
                    for n in names)
    text = _("mean cpu: %(cpu)s; memory peak: %(mem)s") % {"cpu": cpu, "mem": mem}
    ooms = [n for n in names if by[n][-1]["oom_kills"] and
            by[n][-1]["oom_kills"] > (by[n][0]["oom_kills"] or 0)]
    ooms += [n for n in names if n not in ooms and by[n][0]["oom_kills"]]
    if ooms:
        text += "; " + _("OOM: %(names)s") % {"names": ", ".join(ooms)}
    dur = max(r["t"] for r in rows) - min(r["t"] for r in rows)
    ticks = len({r["t"] for r in rows})  # one reading of everything per tick
    text += " " + _("(%(n)d samples in %(s)s s)") % {"n": ticks, "s": decimal(dur, 1)}
    return text
