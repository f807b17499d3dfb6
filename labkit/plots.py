"""Figures of the slices: CPU, memory and pids of containers over time.

Every function takes the rows of :meth:`labkit.monitor.Monitor.rows` (or of
:func:`labkit.monitor.read_csv`) and returns a :class:`matplotlib.figure.Figure`
made without pyplot (no global state, safe from a background thread; Agg
renders it). In a notebook a returned figure shows itself::

    from labkit.plots import dashboard
    dashboard(mon.rows())

- :func:`cpu_figure` -- the CPU slices stacked, against the host's total,
  each container's quota dashed; 100 % = one core.
- :func:`memory_figure` -- memory (usage − inactive file cache) with each
  limit dashed and an ✕ where the OOM killer struck.
- :func:`pids_figure` -- processes per container, with the limit.
- :func:`dashboard` -- the three, one above the other, sharing the time axis.
"""
from __future__ import annotations

import io
import math
from typing import Any

from .i18n import _, decimal
from .monitor.rows import HOST

MiB = 1024 * 1024
# colour-blind friendly (Okabe-Ito), host in grey
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
           "#F0E442", "#000000")
HOST_COLOR = "#555555"
OOM_COLOR = "#C00000"
WIDTH = 9.0  # inches; at 100 dpi 900 px, a notebook's width
LAYOUT = "constrained"


def _num(value: float, digits: int = 1) -> str:
    text = decimal(value, digits)
    if "," in text or "." in text:
        text = text.rstrip("0").rstrip(",.")
    return text


class _Data:
    """Rows regrouped: a common time grid and one series per target."""

    def __init__(self, rows: list[dict], window: float | None = None) -> None:
        rows = list(rows)
        if window is not None and rows:
            tmax = max(r["t"] for r in rows)
            rows = [r for r in rows if r["t"] >= tmax - window]
        self.rows = rows
        self.times = sorted({r["t"] for r in rows})
        self.index = {t: i for i, t in enumerate(self.times)}
        self.by: dict[str, dict[float, dict]] = {}
        for r in rows:
            self.by.setdefault(r["target"], {})[r["t"]] = r
        self.containers = [n for n in self.by if n != HOST]
        self.host = self.by.get(HOST)

    def color(self, name: str) -> str:
        if name == HOST:
            return HOST_COLOR
        return PALETTE[self.containers.index(name) % len(PALETTE)]

    def column(self, name: str, key: str, fill: float = math.nan,
               scale: float = 1.0) -> list[float]:
        series = self.by.get(name, {})
        out = []
        for t in self.times:
            r = series.get(t)
            v = None if r is None else r.get(key)
            out.append(fill if v is None else v / scale)
        return out

    def span(self, name: str) -> tuple[list[float], dict[float, dict]]:
        series = self.by.get(name, {})
        return sorted(series), series


def _new_figure(height: float, nrows: int = 1, ratios: list[float] | None = None,
                fast: bool = False):
    """A pyplot-free figure. ``fast``: fixed margins instead of the
    constrained layout (a third cheaper to draw: the live path)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH, height), dpi=100, layout=None if fast else LAYOUT)
    FigureCanvasAgg(fig)
    gridspec = {"height_ratios": ratios} if ratios else {}
    if fast:
        gridspec.update(left=0.075, right=0.985, bottom=0.42 / height,
                        top=1 - 0.38 / height, hspace=0.12)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False, gridspec_kw=gridspec)[:, 0]
    return fig, list(axes)


def _style(ax) -> None:
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _legend(ax, ncol: int = 3) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", fontsize=8, ncol=ncol, frameon=True,
                  framealpha=0.85, borderaxespad=0.3, handlelength=1.8, columnspacing=1.2)


def _empty(ax, text: str | None = None) -> None:
    ax.text(0.5, 0.5, text or _("no samples yet"), transform=ax.transAxes,
            ha="center", va="center", color="#888888")


# -- the panels ---------------------------------------------------------------

def plot_cpu(ax, data: _Data) -> None:
    _style(ax)
    ax.set_ylabel(_("CPU (%; 100 % = 1 core)"), fontsize=9)
    if not data.times:
        _empty(ax)
        return
    t = data.times
    names = data.containers
    if names:
        ys = [data.column(n, "cpu_percent", fill=0.0) for n in names]
        ax.stackplot(t, ys, labels=names, colors=[data.color(n) for n in names],
                     alpha=0.75, linewidth=0.4, edgecolor="white", step=None)
    top = 100.0
    if data.host:
        host = data.column(HOST, "cpu_percent")
        ax.plot(t, host, color=HOST_COLOR, linewidth=1.4,
                label=_("host (total, every process)"))
        cap = max((r.get("cpu_quota_percent") or 0) for r in data.host.values())
        if cap:
            ax.axhline(cap, color=HOST_COLOR, linestyle=":", linewidth=1.0)
            ax.annotate(_("host capacity: %(n)s cores") % {"n": _num(cap / 100, 0)},
                        (t[-1], cap), xytext=(-2, 2), textcoords="offset points",
                        fontsize=8, color=HOST_COLOR, va="bottom", ha="right")
            top = cap
    for n in names:
        quota = data.column(n, "cpu_quota_percent")
        if any(not math.isnan(q) for q in quota):
            last = next(q for q in reversed(quota) if not math.isnan(q))
            ax.plot(t, quota, color=data.color(n), linestyle=(0, (5, 3)), linewidth=1.6,
                    drawstyle="steps-post",
                    label=_("quota of %(name)s: %(cores)s core") %
                    {"name": n, "cores": _num(last / 100, 2)})
    peak = max([top] + [r["cpu_percent"] for r in data.rows])
    ax.set_ylim(0, peak * 1.18)
    _legend(ax)


def plot_memory(ax, data: _Data) -> None:
    _style(ax)
    ax.set_ylabel(_("memory (MiB)"), fontsize=9)
    names = data.containers
    if not names:
        _empty(ax, _("no containers") if data.times else None)
        return
    top = 1.0
    for n in names:
        ts, series = data.span(n)
        mem = [series[x]["memory_bytes"] / MiB for x in ts]
        color = data.color(n)
        ax.plot(ts, mem, color=color, linewidth=1.8, label=n)
        if mem:
            top = max(top, max(mem))
        lim = [None if series[x].get("memory_limit") is None else series[x]["memory_limit"] / MiB
               for x in ts]
        known = [v for v in lim if v is not None]
        if known:
            ax.plot(ts, [math.nan if v is None else v for v in lim], color=color,
                    linestyle=(0, (5, 3)), linewidth=1.4, drawstyle="steps-post",
                    label=_("limit of %(name)s: %(mib)s MiB") % {"name": n,
                                                                 "mib": _num(known[-1], 0)})
            top = max(top, max(known))
        # OOM: the oom_kill counter went up between two samples
        prev = None
        for x in ts:
            k = series[x].get("oom_kills") or 0
            if prev is not None and k > prev:
                y = series[x]["memory_bytes"] / MiB
                ref = next((v for v in reversed(lim[:ts.index(x) + 1]) if v is not None), y)
                ax.plot([x], [max(y, ref)], marker="X", markersize=11, color=OOM_COLOR,
                        markeredgecolor="white", linestyle="none", zorder=5, clip_on=False)
                t0, t1 = data.times[0], data.times[-1]
                right = t1 > t0 and (x - t0) / (t1 - t0) > 0.75  # keep the label inside
                ax.annotate(_("OOM: %(name)s") % {"name": n}, (x, max(y, ref)),
                            xytext=(-7 if right else 7, 7), textcoords="offset points",
                            ha="right" if right else "left", color=OOM_COLOR,
                            fontsize=9, fontweight="bold", zorder=6,
                            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": OOM_COLOR,
                                  "lw": 0.8, "alpha": 0.9})
            prev = k
    ax.set_ylim(0, top * 1.25)
    _legend(ax, ncol=2)


def plot_pids(ax, data: _Data) -> None:
    _style(ax)
    ax.set_ylabel(_("processes"), fontsize=9)
    names = data.containers
    if not names:
        _empty(ax, _("no containers") if data.times else None)
        return
    top = 1.0
    for n in names:
        ts, series = data.span(n)
        pids = [series[x].get("pids") or 0 for x in ts]
        color = data.color(n)
        ax.plot(ts, pids, color=color, linewidth=1.6, drawstyle="steps-post", label=n)
        top = max([top] + pids)
    for n in names:
        ts, series = data.span(n)
        lims = [series[x].get("pids_limit") for x in ts]
        known = [v for v in lims if v is not None]
        if not known:
            continue
        if known[-1] <= 4 * top:  # a limit far above the data would squash it
            ax.plot(ts, [math.nan if v is None else v for v in lims], color=data.color(n),
                    linestyle=(0, (5, 3)), linewidth=1.4, drawstyle="steps-post",
                    label=_("limit of %(name)s: %(n)d") % {"name": n, "n": known[-1]})
            top = max(top, known[-1])
    ax.set_ylim(0, top * 1.3 + 1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    _legend(ax)


def _finish(fig, axes, data: _Data, title: str | None) -> None:
    axes[-1].set_xlabel(_("time (s)"), fontsize=9)
    if data.times:
        lo, hi = data.times[0], data.times[-1]
        axes[-1].set_xlim(lo, hi if hi > lo else lo + 1)
    if title:
        fig.suptitle(title, fontsize=11, x=0.01, ha="left",
                     y=0.995 if fig.get_layout_engine() is None else None)


# -- the figures --------------------------------------------------------------

def cpu_figure(rows: list[dict], window: float | None = None, title: str | None = None):
    """CPU slices stacked against the host's total; quotas dashed."""
    data = _Data(rows, window)
    fig, axes = _new_figure(3.6)
    plot_cpu(axes[0], data)
    _finish(fig, axes, data, title if title is not None else
            _("CPU slices of the containers (stacked) and of the whole host"))
    return fig


def memory_figure(rows: list[dict], window: float | None = None, title: str | None = None):
    """Memory (usage − inactive file cache) per container, limits dashed, OOM ✕."""
    data = _Data(rows, window)
    fig, axes = _new_figure(3.2)
    plot_memory(axes[0], data)
    _finish(fig, axes, data, title if title is not None else
            _("Memory of each container (without the file cache) and its limit"))
    return fig


def pids_figure(rows: list[dict], window: float | None = None, title: str | None = None):
    """Processes per container, with the pids limit."""
    data = _Data(rows, window)
    fig, axes = _new_figure(2.6)
    plot_pids(axes[0], data)
    _finish(fig, axes, data, title if title is not None else
            _("Processes in each container"))
    return fig


def dashboard(rows: list[dict], window: float | None = None, title: str | None = None,
              fast: bool = False):
    """CPU, memory and pids, one above the other, sharing the time axis
    (``fast``: fixed margins, cheaper to draw, for live frames)."""
    data = _Data(rows, window)
    fig, axes = _new_figure(7.6, 3, [2.1, 1.5, 1.0], fast=fast)
    plot_cpu(axes[0], data)
    plot_memory(axes[1], data)
    plot_pids(axes[2], data)
    _finish(fig, axes, data, title if title is not None else
            _("The slices: CPU, memory and processes of each container"))
    return fig


def to_png(fig, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes with Agg (any thread)."""
    buf = io.BytesIO()
    # zlib level 1: a few % bigger, encoding 3-4x faster (live frames)
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def save(fig, path: Any, dpi: int = 100) -> None:
    fig.savefig(path, dpi=dpi)
