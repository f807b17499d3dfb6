"""labkit.plots and labkit.live without root: figures from synthetic rows,
the live object outside IPython, and a headless notebook run (nbclient)."""
from __future__ import annotations

import random
import time
from pathlib import Path

from labkit import plots
from labkit.live import Live, live
from requirements import require_module

MiB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]
PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_rows() -> list[dict]:
    """web: busy under a quota cut from 0.5 to 0.3 core at t=8; db: grows
    to its 32 MiB limit and is OOM-killed at t=15; the host around them."""
    rows = []
    rng = random.Random(1)
    for k in range(81):
        t = k * 0.25
        web = 50 * (1 if t < 8 else 0.6) * rng.uniform(0.93, 1.0) if t > 1 else 0.0
        db = min(100.0, 20 + 6 * t) * rng.uniform(0.9, 1.0)
        rows.append(dict(t=t, target="host", cpu_percent=web + db + rng.uniform(5, 15),
                         cpu_quota_percent=200.0, memory_bytes=900 * MiB,
                         memory_limit=24000 * MiB, pids=None, pids_limit=None,
                         throttled=0.0, oom_kills=0))
        rows.append(dict(t=t, target="web", cpu_percent=web,
                         cpu_quota_percent=50.0 if t < 8 else 30.0,
                         memory_bytes=int((20 + t) * MiB), memory_limit=64 * MiB,
                         pids=3 if t > 2 else 1, pids_limit=50, throttled=40.0, oom_kills=0))
        if t <= 15:
            rows.append(dict(t=t, target="db", cpu_percent=db, cpu_quota_percent=None,
                             memory_bytes=int(min(5 + 3 * t, 32) * MiB),
                             memory_limit=32 * MiB, pids=min(20, int(t * 2)), pids_limit=20,
                             throttled=0.0, oom_kills=1 if t >= 14.9 else 0))
    return rows


def _texts(fig) -> list[str]:
    out = []
    for ax in fig.axes:
        out += [ax.get_ylabel(), ax.get_xlabel()] + [t.get_text() for t in ax.texts]
        leg = ax.get_legend()
        if leg:
            out += [t.get_text() for t in leg.get_texts()]
    if fig._suptitle is not None:
        out.append(fig._suptitle.get_text())
    return out


def test_dashboard_from_synthetic_rows(tmp_path):
    fig = plots.dashboard(synthetic_rows())
    texts = _texts(fig)
    print(texts)
    assert len(fig.axes) == 3
    assert "CPU (%; 100 % = 1 núcleo)" in texts
    assert "memória (MiB)" in texts and "processos" in texts and "tempo (s)" in texts
    assert "cota de web: 0,3 núcleo" in texts          # the quota after the update
    assert "limite de db: 32 MiB" in texts
    assert "OOM: db" in texts                          # the ✕ where oom_kills went up
    assert "capacidade do hospedeiro: 2 núcleos" in texts or any(
        t.startswith("capacidade do hospedeiro") for t in texts)
    png = plots.to_png(fig)
    assert png.startswith(PNG) and len(png) > 20_000
    plots.save(fig, tmp_path / "dash.png")
    assert (tmp_path / "dash.png").read_bytes().startswith(PNG)


def test_each_figure_alone():
    rows = synthetic_rows()
    for make in (plots.cpu_figure, plots.memory_figure, plots.pids_figure):
        fig = make(rows)
        assert len(fig.axes) == 1
        assert plots.to_png(fig).startswith(PNG)
    # the stacked CPU areas are one polygon collection per container
    cpu = plots.cpu_figure(rows)
    assert len(cpu.axes[0].collections) == 2


def test_window_keeps_the_last_seconds():
    fig = plots.dashboard(synthetic_rows(), window=5)
    lo, hi = fig.axes[0].get_xlim()
    assert (lo, hi) == (15.0, 20.0)


def test_no_rows_is_a_readable_empty_figure():
    fig = plots.dashboard([])
    assert "ainda sem amostras" in _texts(fig)
    assert plots.to_png(fig).startswith(PNG)


def test_pids_limit_far_above_the_data_is_left_out():
    rows = [dict(t=t / 4, target="c", cpu_percent=1.0, cpu_quota_percent=None,
                 memory_bytes=MiB, memory_limit=None, pids=1, pids_limit=2048,
                 throttled=0.0, oom_kills=0) for t in range(8)]
    fig = plots.pids_figure(rows)
    assert fig.axes[0].get_ylim()[1] < 10


def test_no_pyplot_state():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    plots.dashboard(synthetic_rows())
    assert plt.get_fignums() == before


# -- live ---------------------------------------------------------------------------

class FakeCgroup:
    def __init__(self, name, share):
        self.name, self.share, self.t0 = name, share, time.monotonic_ns()

    def stats(self):
        return {"cpu_usage_ns": int((time.monotonic_ns() - self.t0) * self.share),
                "memory_usage": 12 * MiB, "memory_inactive_file": 0, "memory_limit": 64 * MiB,
                "pids_current": 1, "pids_limit": 50, "nr_periods": 0, "nr_throttled": 0,
                "oom_kills": 0, "cpu_quota_cores": 0.5}


def test_live_outside_ipython_samples_and_prints_the_summary(capsys):
    lv = live([FakeCgroup("web", 0.5)], duration=0.8, rate=10)
    assert isinstance(lv, Live) and not lv.show
    lv.start().wait()
    out = capsys.readouterr().out
    print(out)
    assert out.startswith("cpu média: web 5") or out.startswith("cpu média: web 4")
    assert lv.last_png is None  # nothing displayed, nothing rendered
    assert not lv.monitor.running


def test_live_renders_frames_when_asked_to_display(capsys):
    # No duration: frames are counted as they come, however slow a loaded host makes them
    # (the property is "frames keep coming", not how many fit in a second).
    lv = Live([FakeCgroup("web", 0.5)], duration=None, rate=10, fps=4, display=True)
    lv.start()
    give_up = time.monotonic() + 120
    while lv.frames < 3 and lv.error is None and time.monotonic() < give_up:
        time.sleep(0.05)
    live_frames = lv.frames
    lv.stop()
    print(f"frames: {lv.frames}, render thread CPU {lv.render_seconds:.2f} s")
    assert lv.error is None
    assert live_frames >= 3 and lv.frames > live_frames  # the final frame comes on stop()
    assert lv.last_png.startswith(PNG)


NOTEBOOK_CELLS = [
    """import time
from labkit.live import live
MiB = 1 << 20
class FakeCgroup:
    def __init__(self, name, share):
        self.name, self.share, self.t0 = name, share, time.monotonic_ns()
    def stats(self):
        return {"cpu_usage_ns": int((time.monotonic_ns() - self.t0) * self.share),
                "memory_usage": 12 * MiB, "memory_inactive_file": 0,
                "memory_limit": 64 * MiB, "pids_current": 1, "pids_limit": 50,
                "nr_periods": 0, "nr_throttled": 0, "oom_kills": 0, "cpu_quota_cores": 0.5}""",
    "lv = live([FakeCgroup('web', 0.5), FakeCgroup('db', 0.12)], duration=2, rate=8).start()",
    "x = sum(i * i for i in range(3_000_000))  # the kernel is busy; the figure moves on",
    "lv.wait()",
]


def run_notebook(cells: list[str], timeout: int = 60):
    nbformat = require_module("nbformat")
    nbclient = require_module("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    return nb


def test_live_in_a_headless_notebook_ends_with_png_and_summary():
    nb = run_notebook(NOTEBOOK_CELLS)
    start_outputs = nb.cells[1].outputs
    print([o.get("output_type") for o in start_outputs])
    pngs = [o for o in start_outputs if "image/png" in o.get("data", {})]
    assert pngs, start_outputs  # the display handle, updated to the final frame
    text = "".join(o.get("text", "") for o in nb.cells[3].outputs if o["output_type"] == "stream")
    print(text)
    assert text.startswith("cpu média: web ") and ", db " in text
    assert "pico de memória: web 12MiB" in text
    assert text.count("\n") == 1


def test_labkit_live_is_callable_even_after_importing_the_module(capsys):
    import labkit
    import labkit.live  # noqa: F401 - makes the package attribute the module

    lv = labkit.live([FakeCgroup("web", 0.25)], duration=0.3, rate=10)
    assert isinstance(lv, Live)
    lv.start().wait()
    assert "web" in capsys.readouterr().out


def test_monitor_plot_shortcut():
    from labkit.monitor import Monitor

    with Monitor([FakeCgroup("web", 0.5)], rate=20) as mon:
        time.sleep(0.3)
    fig = mon.plot()
    assert len(fig.axes) == 3


def test_frames_keep_coming_while_the_kernel_is_busy():
    """The point of the display-handle path: while another cell keeps the kernel
    busy, the background thread still pushes frames (update_display_data)."""
    jupyter_client = require_module("jupyter_client")
    km, kc = jupyter_client.manager.start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    try:
        def execute(code, timeout=60):
            msg_id = kc.execute(code)
            updates, busy_from = [], None
            while True:
                msg = kc.get_iopub_msg(timeout=timeout)
                kind = msg["msg_type"]
                if kind == "update_display_data":
                    updates.append(time.monotonic())
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if kind == "status" and msg["content"]["execution_state"] == "busy":
                    busy_from = time.monotonic()
                if kind == "error":
                    raise AssertionError("\n".join(msg["content"]["traceback"]))
                if kind == "status" and msg["content"]["execution_state"] == "idle":
                    return busy_from, time.monotonic(), updates

        execute(NOTEBOOK_CELLS[0])
        execute("lv = live([FakeCgroup('web', 0.5)], duration=10, rate=8, display=True).start()")
        # a cell waiting (a container, a subprocess, sleep): the GIL is free
        t0, t1, updates = execute("time.sleep(3)")
        waiting = [u for u in updates if t0 <= u <= t1]
        # a cell computing in Python: the render thread shares the GIL with it
        t0, t1, updates = execute("t = time.time()\nwhile time.time() - t < 3: pass")
        computing = [u for u in updates if t0 <= u <= t1]
        print(f"frames pushed during 3 s busy cells: {len(waiting)} while it waits, "
              f"{len(computing)} while it computes in Python")
        assert len(waiting) >= 2  # several frames, however busy the machine
        # While a cell computes in pure Python the render thread competes for the GIL:
        # frames usually still come (1-4 here), but none is guaranteed on a loaded host.
        execute("lv.stop(quiet=True)")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
