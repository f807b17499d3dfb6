"""labkit.monitor on real cgroups with real busy processes, and on real
containers. Every test prints the figures it checks.

The machine may be busy (2 cores shared with other work): a process under a
quota can get less than its quota, never more; the bounds below say so.
"""
from __future__ import annotations

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_monitor_helpers import BUSY, ONE_CORE, cleanup, make_cgroup, spawn_in  # noqa: E402

from labkit import monitor as m  # noqa: E402

MiB = 1024 * 1024
SHOTS = os.environ.get("LABKIT_TEST_SHOTS")  # a dir to keep the PNGs in (to look at them)


def _mean(rows, target, key="cpu_percent", since=0.0):
    vals = [r[key] for r in rows if r["target"] == target and r["t"] >= since]
    return sum(vals) / len(vals), len(vals)


@pytest.fixture
def cgroups():
    made = []

    def make(code=BUSY, **limits):
        cg = make_cgroup(**limits)
        proc = spawn_in(cg, code)
        made.append((cg, proc))
        return cg, proc

    yield make
    for cg, proc in made:
        cleanup(cg, [proc])


def _proc_cpu(pid: int) -> float:
    import psutil
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def test_busy_loop_under_half_a_core(cgroups):
    """The monitor's CPU % agrees with the process's own CPU time (an independent
    measure, /proc/PID/stat) and never exceeds the quota. On an idle machine the
    loop gets its 0.5 core; on a loaded one it may get less (printed)."""
    cg, proc = cgroups(cpus=0.5)
    label = cg.name.rsplit("/", 1)[-1]
    c0, w0 = _proc_cpu(proc.pid), time.monotonic()
    with m.Monitor([cg], rate=10) as mon:
        time.sleep(3.2)
    c1, w1 = _proc_cpu(proc.pid), time.monotonic()
    rows = mon.rows()
    mean, n = _mean(rows, label)
    thr, _n = _mean(rows, label, "throttled")
    host, _n = _mean(rows, "host")
    own = (c1 - c0) / (w1 - w0) * 100
    print(f"busy loop under --cpus 0.5: monitor {mean:.1f} % of one core over {n} samples; "
          f"the process's own CPU time says {own:.1f} %; throttled in {thr:.0f} % of the "
          f"periods; host {host:.0f} % of 200 %")
    assert mon.error is None
    assert abs(mean - own) <= 5
    assert mean <= 55
    assert mean >= 45 or host >= 150  # less than the quota only on a saturated host
    assert thr > 30 or host >= 150  # not throttled when it cannot even reach its quota
    assert all(r["cpu_quota_percent"] == pytest.approx(50) for r in rows if r["target"] == label)


def test_two_containers_and_the_host(cgroups):
    a, _ = cgroups(cpus=0.3)
    b, _ = cgroups(code="import time\nx = bytearray(40 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\n"
                        "time.sleep(3600)", memory=128 * MiB, pids_limit=30)
    la, lb = (c.name.rsplit("/", 1)[-1] for c in (a, b))
    deadline = time.monotonic() + 60  # b has touched its 40 MiB and sleeps (slow under TCG)
    while m.memory_bytes(b.stats()) < 40 * MiB and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    with m.Monitor([a, b], rate=8) as mon:
        time.sleep(2.5)
    rows = mon.rows()
    cpu_a, _ = _mean(rows, la, since=0.5)
    cpu_b, _ = _mean(rows, lb, since=0.5)
    mem_b = max(r["memory_bytes"] for r in rows if r["target"] == lb)
    last_b = [r for r in rows if r["target"] == lb][-1]
    host, _n = _mean(rows, "host")
    print(f"a (--cpus 0.3, busy): {cpu_a:.1f} % (host {host:.0f} %); b (sleeping): {cpu_b:.1f} %, "
          f"memory {mem_b / MiB:.1f} MiB of {last_b['memory_limit'] / MiB:.0f} MiB, "
          f"pids {last_b['pids']}/{last_b['pids_limit']}")
    assert cpu_a <= 34 and (cpu_a >= 25 or host >= 150)
    assert cpu_b < 5
    assert 38 * MiB <= mem_b <= 60 * MiB
    assert last_b["memory_limit"] == 128 * MiB and last_b["pids_limit"] == 30
    assert last_b["pids"] == 1
    host = [r for r in rows if r["target"] == "host"]
    assert len(host) >= 15 and all(0 <= r["cpu_percent"] <= 200.5 for r in host)


def test_oom_kill_is_counted_and_drawn(cgroups, tmp_path):
    cg, proc = cgroups(code="import time\ntime.sleep(0.8)\nx = []\n"
                            "while True: x.append(bytearray(1 << 20)); time.sleep(0.02)",
                       memory=32 * MiB)
    label = cg.name.rsplit("/", 1)[-1]
    with m.Monitor([cg], rate=10) as mon:
        proc.wait(timeout=20)
        time.sleep(0.5)
    rows = [r for r in mon.rows() if r["target"] == label]
    peak = max(r["memory_bytes"] for r in rows)
    kills = rows[-1]["oom_kills"]
    print(f"process allocating without end under --memory 32m: exit {proc.returncode}, "
          f"peak {peak / MiB:.1f} MiB, oom_kills {kills}")
    assert proc.returncode == -9
    assert kills >= 1
    assert 20 * MiB <= peak <= 32 * MiB
    from labkit import plots
    fig = plots.dashboard(mon.rows())
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert f"OOM: {label}" in texts
    plots.save(fig, os.path.join(SHOTS or str(tmp_path), "real_oom_dashboard.png"))


def test_cgroup_removed_mid_run_ends_its_series(cgroups):
    keep, _ = cgroups(cpus=0.2)
    gone = make_cgroup(cpus=0.2)
    proc = spawn_in(gone)
    lk, lg = (c.name.rsplit("/", 1)[-1] for c in (keep, gone))
    mon = m.Monitor([keep, gone], rate=10).start()
    time.sleep(0.8)
    cleanup(gone, [proc])  # kill + rmdir while the monitor reads it
    time.sleep(0.8)
    assert mon.running and mon.error is None
    mon.stop()
    rows = mon.rows()
    t_gone = max(r["t"] for r in rows if r["target"] == lg)
    t_keep = max(r["t"] for r in rows if r["target"] == lk)
    print(f"series of the removed cgroup ends at t={t_gone:.1f} s; the other goes on to "
          f"t={t_keep:.1f} s; thread error: {mon.error}")
    assert t_keep >= t_gone + 0.5
    assert mon.targets[1].ended and not mon.targets[0].ended


def test_snapshot_of_a_real_cgroup(cgroups):
    cg, _ = cgroups(cpus=0.5, memory=64 * MiB)
    d = m.snapshot(cg, interval=0.5)
    print(f"snapshot: cpu {d['cpu_percent']:.1f} %, throttled {d['throttled']:.0f} %, "
          f"memory {d['memory_bytes'] / MiB:.1f} MiB / {d['memory_limit'] / MiB:.0f} MiB")
    assert 0 < d["cpu_percent"] <= ONE_CORE  # a short window: see ONE_CORE
    assert d["memory_limit"] == 64 * MiB and d["cpu_quota_percent"] == pytest.approx(50)


def test_monitor_of_real_containers_by_name(tmp_path):
    """Names resolved lazily: the monitor starts before the container exists;
    the container is removed mid-run and its series ends cleanly."""
    import labkit

    name = "mon-web-%d" % os.getpid()
    mon = m.Monitor([name], rate=8).start()
    time.sleep(0.3)
    c = labkit.run("busybox", ["sh", "-c", "while :; do :; done"], name=name, cpus=0.4,
                   memory="48m", detach=True)
    try:
        time.sleep(2.5)
    finally:
        c.remove(force=True)
    time.sleep(0.6)
    assert mon.running and mon.error is None
    mon.stop()
    rows = [r for r in mon.rows() if r["target"] == name]
    mean, n = _mean(rows, name, since=rows[0]["t"] + 0.5)
    print(f"container {name} under --cpus 0.4: {mean:.1f} % over {n} samples; "
          f"limit {rows[-1]['memory_limit'] / MiB:.0f} MiB; series ended: {mon.targets[0].ended}")
    assert 10 <= mean <= 45
    assert rows[-1]["memory_limit"] == 48 * MiB
    assert mon.targets[0].ended
    if SHOTS:
        from labkit import plots
        plots.save(plots.dashboard(mon.rows()), os.path.join(SHOTS, "real_container_dashboard.png"))


def test_oom_killed_container_ends_with_an_oom_mark():
    """The engine reaps an OOM-killed container and removes its cgroup within
    milliseconds; the monitor still closes the series with the OOM kill."""
    import labkit
    from labkit import plots

    name = "mon-oom-%d" % os.getpid()
    c = labkit.run("busybox", ["sh", "-c", "sleep 1; x=$(head -c 60000000 /dev/zero | tr '\\0' a)"],
                   name=name, memory="32m", detach=True)
    try:
        with m.Monitor([c], rate=4) as mon:
            c.wait(timeout=30)
            time.sleep(0.6)
        oom = c.oom_killed
    finally:
        c.remove(force=True)
    rows = [r for r in mon.rows() if r["target"] == name]
    peak = max(r["memory_bytes"] for r in rows)
    print(f"container under --memory 32m: OOMKilled={oom}, last oom_kills {rows[-1]['oom_kills']}, "
          f"peak seen {peak / MiB:.1f} MiB in {len(rows)} samples; {m.summary(mon.rows())}")
    assert oom and rows[-1]["oom_kills"] >= 1
    assert f"OOM: {name}" in m.summary(mon.rows())
    fig = plots.memory_figure(mon.rows())
    assert f"OOM: {name}" in [t.get_text() for t in fig.axes[0].texts]
    if SHOTS:
        plots.save(plots.dashboard(mon.rows()), os.path.join(SHOTS, "real_container_oom.png"))
