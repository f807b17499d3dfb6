"""Live figures: the slices drawn while the containers run.

    import labkit
    lv = labkit.live(["web", "db"], duration=10).start()   # the figure appears and moves
    ...                                                    # other cells may run meanwhile
    lv.wait()                                              # final figure + one-line summary

A :class:`~labkit.monitor.Monitor` samples the containers; a background
thread renders :func:`labkit.plots.dashboard` to PNG with Agg (no pyplot) a
few times per second and pushes each frame into an IPython display handle
(``display(Image, display_id=True)`` then ``handle.update``). Those are
kernel→browser pushes, so the figure keeps moving while another cell keeps
the kernel busy (ipympl's canvas would freeze: it needs an idle kernel to
answer the browser).

``controls=True`` puts the figure in an ``ipywidgets.Image`` next to sliders
for ``--cpus`` and ``--memory`` of each container and a stop button; moving a
slider calls ``container.update(...)`` and the next frames show the effect.
(Widget callbacks run only while the kernel is idle: do not block the kernel
with ``wait()`` while you play with the sliders; give ``duration`` instead.)

Executed headless (nbval, nbconvert, nbclient) the output ends as the final
PNG plus one line of text (mean CPU, memory peak, OOMs), so stored notebook
outputs stay meaningful. Outside IPython it still samples and prints the
summary; nothing is displayed.
"""
from __future__ import annotations

import sys
import threading
import time
import types
from typing import Any

from .i18n import _
from .monitor import Monitor, summary as rows_summary


def _kernel_shell():
    """The IPython shell when running inside a Jupyter kernel, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None or not hasattr(ip, "kernel"):
        return None
    return ip


class Live:
    """A live dashboard of ``targets``; see the module's documentation.

    ``duration``: seconds (None: until ``stop()`` or every container is gone);
    ``rate``: samples per second; ``fps``: frames per second at most, slowed
    down so that rendering (~0.15 s of CPU per frame here) takes at most
    ``max_duty`` of one core; ``window``: seconds shown (the last ones);
    ``display``: force (True) or prevent (False) showing, default: inside a
    Jupyter kernel only.
    """

    def __init__(self, targets: Any, duration: float | None = None, rate: float = 4.0,
                 controls: bool = False, fps: float = 2.0, window: float | None = 60.0,
                 max_duty: float = 0.3,
                 title: str | None = None, monitor: Monitor | None = None,
                 display: bool | None = None) -> None:
        if isinstance(targets, (str, bytes)) or not hasattr(targets, "__iter__"):
            targets = [targets]
        self.targets = list(targets)
        self.duration = duration
        self.controls = controls
        self.fps = fps
        self.max_duty = max_duty
        self.window = window
        self.title = title
        self.monitor = monitor or Monitor(self.targets, rate=rate)
        self._own_monitor = monitor is None
        self.show = _kernel_shell() is not None if display is None else display
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle = None
        self._widget = None
        self._status = None
        self._box = None
        self.frames = 0
        self.render_seconds = 0.0  # CPU time of the render thread
        self.last_png: bytes | None = None
        self._finished = False
        self._final_done = False
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self._controls_widgets: list = []

    # -- life cycle -----------------------------------------------------------
    def start(self) -> "Live":
        if self._thread is not None:
            return self
        self.monitor.start()
        self._t0 = time.monotonic()
        if self.show:
            png = self._render()
            if self.controls:
                self._show_controls(png)
            else:
                from IPython.display import Image, display
                self._handle = display(Image(data=png, format="png"), display_id=True)
        self._thread = threading.Thread(target=self._run, name="labkit-live", daemon=True)
        self._thread.start()
        return self

    def _deadline_passed(self) -> bool:
        return self.duration is not None and time.monotonic() - self._t0 >= self.duration

    def _run(self) -> None:
        """Render and push frames every 1/fps s; a frame costs ~0.15 s of CPU
        (matplotlib), so the pace slows down when rendering would take more
        than ``max_duty`` of one core (the kernel's CPU is part of the host's
        total being plotted)."""
        base = 1.0 / self.fps
        cpu0 = time.thread_time()
        next_at = self._t0 + base
        end_at = None if self.duration is None else self._t0 + self.duration
        try:
            while not self._stop.is_set():
                if end_at is not None:
                    next_at = min(next_at, end_at)
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                if self._deadline_passed() or self.monitor.all_ended():
                    break
                started, c = time.monotonic(), time.thread_time()
                if self.show:
                    self._push(self._render())
                cost = time.thread_time() - c
                next_at = started + max(base, cost / self.max_duty)
        except BaseException as exc:  # a broken frame must not kill the kernel
            self.error = exc
        finally:
            self.render_seconds = time.thread_time() - cpu0
            self._finish()

    def _finish(self) -> None:
        """Stop sampling, push the final frame (once)."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        if self._own_monitor:
            self.monitor.stop()
        if self.show:
            try:
                self._push(self._render())
            except Exception as exc:  # pragma: no cover
                self.error = exc
        if self._status is not None:
            self._status.value = self.summary()
            for w in self._controls_widgets:
                w.disabled = True

    def wait(self, timeout: float | None = None) -> None:
        """Block until ``duration`` has passed (or every container has gone),
        then show the final figure and print the one-line summary."""
        if self._thread is None:
            self.start()
        try:
            if self.duration is None and timeout is None:
                while self._thread.is_alive():
                    self._thread.join(0.2)
            else:
                self._thread.join(timeout)
        except KeyboardInterrupt:
            pass
        self.stop()

    def stop(self, quiet: bool = False) -> None:
        """Stop now; show the final figure and print the summary (once)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._finish()
        with self._lock:
            if self._final_done:
                return
            self._final_done = True
        if quiet:
            return
        if self.show and self.controls and self.last_png:
            # widget state is not a stored output: leave a real PNG in the cell
            from IPython.display import Image, display
            display(Image(data=self.last_png, format="png"))
        print(self.summary())

    def __enter__(self) -> "Live":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- results --------------------------------------------------------------
    def rows(self) -> list[dict]:
        return self.monitor.rows()

    def summary(self) -> str:
        return rows_summary(self.monitor.rows())

    def figure(self):
        from .plots import dashboard
        return dashboard(self.monitor.rows(), window=self.window, title=self.title, fast=True)

    # -- frames ---------------------------------------------------------------
    def _render(self) -> bytes:
        from .plots import to_png
        png = to_png(self.figure())
        self.last_png = png
        self.frames += 1
        return png

    def _push(self, png: bytes) -> None:
        if self._widget is not None:
            self._widget.value = png
        elif self._handle is not None:
            from IPython.display import Image
            self._handle.update(Image(data=png, format="png"))

    # -- controls -------------------------------------------------------------
    def _show_controls(self, png: bytes) -> None:
        import ipywidgets as w
        from IPython.display import display

        self._widget = w.Image(value=png, format="png", layout=w.Layout(width="100%"))
        self._status = w.Label(value="")
        rows = []
        self._controls_widgets = []
        for target in self._containers():
            rows.append(self._sliders(w, target))
        button = w.Button(description=_("stop"), icon="stop", button_style="danger")
        button.on_click(lambda _b: self.stop(quiet=True))
        self._controls_widgets.append(button)
        self._box = w.VBox([self._widget, *rows, w.HBox([button, self._status])])
        display(self._box)

    def _containers(self) -> list:
        out = []
        for t in self.targets:
            if isinstance(t, str):
                try:
                    import labkit
                    t = labkit.get(t)
                except Exception:
                    continue
            if hasattr(t, "update"):
                out.append(t)
        return out

    def _sliders(self, w, container):
        import os
        name = getattr(container, "name", "?")
        try:
            st = container.cgroup.stats()
        except Exception:
            st = {}
        ncpu = os.cpu_count() or 1
        cpus = st.get("cpu_quota_cores") or float(ncpu)
        mem = st.get("memory_limit")
        mem_mib = int(mem / 1048576) if mem else 512
        cpu_s = w.FloatSlider(value=min(cpus, ncpu), min=0.05, max=float(ncpu), step=0.05,
                              description="--cpus", continuous_update=False,
                              readout_format=".2f")
        mem_s = w.IntSlider(value=min(mem_mib, 2048), min=8, max=max(2048, mem_mib), step=8,
                            description="--memory", continuous_update=False)
        mem_s.layout.width = cpu_s.layout.width = "40%"

        def on_cpus(change):
            self._update(container, cpus=change["new"])

        def on_mem(change):
            self._update(container, memory=f"{int(change['new'])}m")

        cpu_s.observe(on_cpus, names="value")
        mem_s.observe(on_mem, names="value")
        self._controls_widgets += [cpu_s, mem_s]
        return w.HBox([w.Label(value=name, layout=w.Layout(width="12%")), cpu_s,
                       mem_s, w.Label("MiB")])

    def _update(self, container, **limits) -> None:
        try:
            container.update(**limits)
            text = _("%(name)s updated: %(what)s") % {
                "name": getattr(container, "name", "?"),
                "what": ", ".join(f"--{k} {v}" for k, v in limits.items())}
        except Exception as exc:  # the message is for the student
            text = str(exc)
        if self._status is not None:
            self._status.value = text


def live(targets: Any, duration: float | None = None, rate: float = 4.0,
         controls: bool = False, **kwargs: Any) -> Live:
    """A live dashboard of ``targets`` (containers, names, cgroups); call
    ``.start()``, then ``.wait()`` or ``.stop()``. See :mod:`labkit.live`."""
    return Live(targets, duration=duration, rate=rate, controls=controls, **kwargs)


class _CallableModule(types.ModuleType):
    """``labkit.live`` is both this module and the function: importing the
    module (``from labkit.live import Live``) makes the package attribute
    ``labkit.live`` the module, so the module itself must be callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> Live:
        return live(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
