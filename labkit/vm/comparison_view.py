"""A :class:`~labkit.vm.comparison.Comparison` for a person: a table and a figure, in Portuguese.

Every number comes from the comparison's data; nothing here measures.
"""
from __future__ import annotations

import shlex

from ..i18n import _, decimal

MIB = 1 << 20


def _mib(n: int) -> str:
    return decimal(n / MIB, 1)


def _s(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else decimal(x, digits)


def _accel(c) -> str:
    return _("TCG (emulated)") if c.accel == "tcg" else _("KVM (hardware)")


def rows(c) -> list[tuple[str, str, str]]:
    """(measure, VM, container), one per line of :func:`table`."""
    v, k, h = c.vm, c.container, c.host
    peak_src = {"memory.peak": "memory.peak", "memory.max_usage_in_bytes": "memory.max_usage_in_bytes",
                "sampled": _("sampled")}.get(k.memory_peak_source, k.memory_peak_source)
    return [
        (_("how it runs"), _("VM, %(accel)s, %(mem)s of RAM") % {"accel": _accel(c), "mem": c.memory},
         _("container (the host's kernel)")),
        (_("exit code"), str(v.exit_code), str(k.exit_code)),
        (_("time to the first output (s)"), _s(v.first_output_s), _s(k.first_output_s, 3)),
        (_("time to exit (s)"), _s(v.exit_s), _s(k.exit_s, 3)),
        (_("peak memory (MiB)"), _("%(n)s (QEMU's RSS)") % {"n": _mib(v.memory_peak)},
         _("%(n)s (cgroup, %(src)s)") % {"n": _mib(k.memory_peak), "src": peak_src}),
        (_("MemTotal seen inside (MiB)"), _mib(v.mem_total), _mib(k.mem_total)),
        (_("used seen inside, MemTotal − MemAvailable (MiB)"), _mib(v.mem_used), _mib(k.mem_used)),
        (_("disk (MiB)"), _("%(n)s (its root disk file)") % {"n": _mib(v.disk)},
         _("%(n)s (the image's layers, shared)") % {"n": _mib(k.disk)}),
        (_("/proc/uptime inside (s)"), _s(v.uptime_s),
         _("%(n)s (host: %(h)s)") % {"n": _s(k.uptime_s), "h": _s(h.uptime_s)}),
        (_("CPU model inside"), v.cpu_model, k.cpu_model),
        (_("kernel log lines (dmesg)"), "—" if v.dmesg_lines is None else str(v.dmesg_lines),
         (_("not readable") if k.dmesg_lines is None else str(k.dmesg_lines))
         + " " + _("(host: %(n)s)") % {"n": "—" if h.dmesg_lines is None else h.dmesg_lines}),
        (_("uname -r"), v.kernel_release, k.kernel_release),
        (_("busybox awk loop (iterations/s)"), decimal(v.loop_rate, 0), decimal(k.loop_rate, 0)),
    ]


def table(c) -> str:
    head = (_("measure"), "VM", _("container"))
    body = rows(c)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(3)]
    line = lambda r: "  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip()  # noqa: E731
    title = _("%(image)s, command: %(cmd)s") % {"image": c.image, "cmd": " ".join(shlex.quote(a) for a in c.command)}
    return "\n".join([title, line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in body])


def figure(c):
    """Five panels of two bars (VM, container) and a panel of the kernels' facts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    v, k, h = c.vm, c.container, c.host
    fig = Figure(figsize=(11, 6.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 3)
    who = ["VM", _("container")]
    colors = ["#c0504d", "#4f81bd"]

    def bars(ax, title: str, unit: str, values: list[float], log: bool = False) -> None:
        ax.barh(who, values, color=colors)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(unit, fontsize=9)
        ax.margins(x=0.25)  # room for the value written after each bar
        if log and min(values) > 0:
            ax.set_xscale("log")
        for y, x in enumerate(values):
            ax.annotate(decimal(x, 3 if x < 1 else 1 if x < 100 else 0), (x, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=8)

    bars(axes[0][0], _("time to exit"), _("seconds (log scale)"), [v.exit_s, k.exit_s], log=True)
    bars(axes[0][1], _("peak memory: QEMU's RSS / the cgroup's"), _("MiB (log scale)"),
         [v.memory_peak / MIB, k.memory_peak / MIB], log=True)
    bars(axes[0][2], _("disk: the VM's file / the layers"), "MiB", [v.disk / MIB, k.disk / MIB])
    bars(axes[1][0], _("/proc/uptime inside"), _("seconds (log scale)"), [v.uptime_s, k.uptime_s], log=True)
    bars(axes[1][1], _("busybox awk loop (%(accel)s)") % {"accel": _accel(c)}, _("thousand iterations per second"),
         [v.loop_rate / 1000, k.loop_rate / 1000])
    ax = axes[1][2]
    ax.axis("off")
    dm = lambda n: "—" if n is None else str(n)  # noqa: E731
    text = "\n".join([
        _("CPU model inside"), f"  VM: {v.cpu_model}", f"  {_('container')}: {k.cpu_model}",
        _("kernel log lines (dmesg)"),
        f"  VM: {dm(v.dmesg_lines)}   {_('container')}: {dm(k.dmesg_lines)}   {_('host')}: {dm(h.dmesg_lines)}",
        "uname -r", f"  VM: {v.kernel_release}", f"  {_('container')}: {k.kernel_release}",
    ])
    ax.text(0, 1, text, va="top", fontsize=8, family="monospace", transform=ax.transAxes)
    fig.suptitle(_("The same image (%(image)s) as a VM and as a container") % {"image": c.image}, fontsize=11)
    return fig
