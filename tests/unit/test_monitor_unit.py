"""labkit.monitor without root: the math, the reader on fake cgroupfs trees,
the sampler with fake targets, CSV, the stats table and the summary."""
from __future__ import annotations

import io
import threading
import time

import pytest

from labkit import monitor as m
from labkit.errors import NotFound

MiB = 1024 * 1024


# -- the math -------------------------------------------------------------------

def test_cpu_percent_is_delta_usage_over_delta_wall():
    # half a second of CPU in one second of wall time: half a core
    assert m.cpu_percent(0, 500_000_000, 0, 1_000_000_000) == pytest.approx(50.0)
    # two cores busy: 200 % (100 % = one core, as docker stats)
    assert m.cpu_percent(10**9, 3 * 10**9, 0, 10**9) == pytest.approx(200.0)
    assert m.cpu_percent(0, 0, 0, 10**9) == 0.0


def test_cpu_percent_degenerate_intervals():
    assert m.cpu_percent(0, 10, 5, 5) == 0.0          # no wall time
    assert m.cpu_percent(0, 10, 5, 4) == 0.0          # clock went back
    assert m.cpu_percent(10**9, 0, 0, 10**9) == 0.0   # counter reset


def test_throttled_percent():
    assert m.throttled_percent(10, 20, 2, 7) == pytest.approx(50.0)
    assert m.throttled_percent(10, 10, 2, 7) == 0.0


def test_memory_is_usage_minus_inactive_file():
    assert m.memory_bytes({"memory_usage": 100 * MiB, "memory_inactive_file": 30 * MiB}) == 70 * MiB
    assert m.memory_bytes({"memory_usage": 10, "memory_inactive_file": 20}) == 10
    assert m.memory_bytes({}) == 0


def test_derive_gives_docker_stats_figures():
    before = {"cpu_usage_ns": 0, "nr_periods": 0, "nr_throttled": 0}
    after = {"cpu_usage_ns": 250_000_000, "nr_periods": 10, "nr_throttled": 4,
             "memory_usage": 40 * MiB, "memory_inactive_file": 8 * MiB,
             "memory_limit": 64 * MiB, "pids_current": 3, "cpu_quota_cores": 0.5}
    d = m.derive(before, after, 0, 500_000_000)
    print("derived:", {k: d[k] for k in ("cpu_percent", "memory_percent", "throttled")})
    assert d["cpu_percent"] == pytest.approx(50.0)
    assert d["cpu_quota_percent"] == pytest.approx(50.0)
    assert d["memory_bytes"] == 32 * MiB
    assert d["memory_percent"] == pytest.approx(50.0)
    assert d["throttled"] == pytest.approx(40.0)
    assert d["pids"] == 3


# -- the reader on fake cgroupfs trees ---------------------------------------------

V1_MEMSTAT = ("cache 0\nrss 0\ninactive_file 1\ntotal_cache 0\ntotal_rss 5\n"
              "total_inactive_file 4096\ntotal_active_file 8192\n")


def _v1_tree(tmp_path):
    cpu, acct, mem, pids = (tmp_path / d for d in ("cpu", "cpuacct", "memory", "pids"))
    for d in (cpu, acct, mem, pids):
        d.mkdir()
    (cpu / "cpu.stat").write_text("nr_periods 20\nnr_throttled 5\nthrottled_time 123\n")
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (acct / "cpuacct.usage").write_text("1234567\n")
    (mem / "memory.usage_in_bytes").write_text("1048576\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.stat").write_text(V1_MEMSTAT)
    (mem / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (pids / "pids.current").write_text("3\n")
    (pids / "pids.max").write_text("max\n")
    return [str(d) for d in (cpu, acct, mem, pids)]


def test_reader_v1(tmp_path):
    r = m.CgroupReader(_v1_tree(tmp_path))
    s = r.stats()
    r.close()
    assert s["cpu_usage_ns"] == 1234567
    assert s["nr_periods"] == 20 and s["nr_throttled"] == 5 and s["throttled_ns"] == 123
    assert s["cpu_quota_cores"] == pytest.approx(0.5)
    assert s["memory_usage"] == MiB
    assert s["memory_inactive_file"] == 4096  # total_, not the local inactive_file
    assert s["memory_limit"] is None          # v1's huge number = no limit
    assert s["oom_kills"] == 2
    assert s["pids_current"] == 3 and s["pids_limit"] is None


def test_reader_v2(tmp_path):
    d = tmp_path / "cg"
    d.mkdir()
    (d / "cgroup.controllers").write_text("cpu memory pids\n")
    (d / "cpu.stat").write_text("usage_usec 2000\nuser_usec 1500\nsystem_usec 500\n"
                                "nr_periods 10\nnr_throttled 1\nthrottled_usec 7\n")
    (d / "cpu.max").write_text("max 100000\n")
    (d / "memory.current").write_text("2097152\n")
    (d / "memory.stat").write_text("anon 1\nfile 2\nactive_anon 0\ninactive_file 1024\n")
    (d / "memory.max").write_text("33554432\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (d / "pids.current").write_text("1\n")
    (d / "pids.max").write_text("20\n")
    r = m.CgroupReader([str(d)])
    s = r.stats()
    assert s["cpu_usage_ns"] == 2_000_000 and s["throttled_ns"] == 7000
    assert s["cpu_quota_cores"] is None
    assert s["memory_usage"] == 2 * MiB and s["memory_inactive_file"] == 1024
    assert s["memory_limit"] == 32 * MiB and s["oom_kills"] == 1
    assert s["pids_current"] == 1 and s["pids_limit"] == 20
    # counters are re-read at every call, through the same open files
    (d / "cpu.stat").write_text("usage_usec 9000\nnr_periods 10\nnr_throttled 1\n"
                                "throttled_usec 7\n")
    assert r.stats()["cpu_usage_ns"] == 9_000_000
    r.close()


def test_reader_of_nothing_is_gone(tmp_path):
    with pytest.raises(m.Gone):
        m.CgroupReader([str(tmp_path / "missing")])


# -- the sampler with fake targets ----------------------------------------------

class FakeCgroup:
    """Burns ``share`` of a core in wall time; ``dies_after`` reads → NotFound."""

    def __init__(self, name, share=0.5, memory=10 * MiB, limit=64 * MiB, dies_after=None):
        self.name = name
        self.share = share
        self.memory = memory
        self.limit = limit
        self.dies_after = dies_after
        self.reads = 0
        self.t0 = time.monotonic_ns()

    def stats(self):
        self.reads += 1
        if self.dies_after is not None and self.reads > self.dies_after:
            raise NotFound("gone")
        return {"cpu_usage_ns": int((time.monotonic_ns() - self.t0) * self.share),
                "memory_usage": self.memory, "memory_inactive_file": 0,
                "memory_limit": self.limit, "pids_current": 2, "pids_limit": 50,
                "nr_periods": 0, "nr_throttled": 0, "throttled_ns": 0, "oom_kills": 0,
                "cpu_quota_cores": 0.5}


def test_monitor_rows_and_fixed_rate():
    a, b = FakeCgroup("labkit/aaaa", 0.5), FakeCgroup("labkit/bbbb", 1.5)
    with m.Monitor([a, b], rate=20) as mon:
        time.sleep(0.6)
    rows = mon.rows()
    assert mon.error is None
    assert set(rows[0]) == set(m.COLUMNS)
    targets = {r["target"] for r in rows}
    assert targets == {"host", "aaaa", "bbbb"}
    # t is on the fixed grid k / rate
    for r in rows:
        assert r["t"] * 20 == pytest.approx(round(r["t"] * 20), abs=1e-6)
    cpu_a = [r["cpu_percent"] for r in rows if r["target"] == "aaaa"]
    cpu_b = [r["cpu_percent"] for r in rows if r["target"] == "bbbb"]
    print(f"fake 0.5 core: mean {sum(cpu_a) / len(cpu_a):.1f} %, "
          f"fake 1.5 cores: mean {sum(cpu_b) / len(cpu_b):.1f} % over {len(cpu_a)} samples")
    assert sum(cpu_a) / len(cpu_a) == pytest.approx(50, abs=3)
    assert sum(cpu_b) / len(cpu_b) == pytest.approx(150, abs=6)
    assert all(r["cpu_quota_percent"] == pytest.approx(50) for r in rows if r["target"] == "aaaa")
    host = [r for r in rows if r["target"] == "host"]
    assert host and all(r["memory_limit"] > r["memory_bytes"] > 0 for r in host)


def test_target_that_disappears_ends_its_series():
    keep, dies = FakeCgroup("keep"), FakeCgroup("dies", dies_after=4)
    mon = m.Monitor([keep, dies], rate=25, host=False).start()
    time.sleep(0.5)
    assert mon.running
    mon.stop()
    assert mon.error is None
    n_dies = sum(r["target"] == "dies" for r in mon.rows())
    n_keep = sum(r["target"] == "keep" for r in mon.rows())
    print(f"series: keep {n_keep} samples, dies {n_dies} samples")
    assert n_dies == 3  # 4 reads, the first one primes the interval
    assert n_keep > n_dies + 3
    assert mon.targets[1].ended and not mon.all_ended()


def test_names_are_resolved_lazily(monkeypatch):
    import labkit

    class FakeContainer:
        name = "web"

        def __init__(self):
            self.cgroup = FakeCgroup("labkit/x")

    state = {"calls": 0}

    def fake_get(ref):
        state["calls"] += 1
        if state["calls"] < 3:
            raise NotFound("no such container")
        return FakeContainer()

    monkeypatch.setattr(labkit, "get", fake_get, raising=False)
    with m.Monitor(["web"], rate=25, host=False) as mon:
        time.sleep(0.4)
    assert state["calls"] == 3
    assert {r["target"] for r in mon.rows()} == {"web"}


def test_capacity_bounds_the_buffer():
    mon = m.Monitor([FakeCgroup("a")], rate=50, capacity=10, host=False).start()
    time.sleep(0.5)
    mon.stop()
    assert len(mon.rows()) == 10
    assert mon.ticks > 10


def test_stop_is_idempotent_and_ends_the_thread():
    mon = m.Monitor([], rate=4).start()
    mon.stop()
    mon.stop()
    assert not mon.running
    assert not [th for th in threading.enumerate() if th.name == "labkit-monitor" and th.is_alive()]


# -- CSV -------------------------------------------------------------------------

def _rows():
    return [
        {"t": 0.25, "target": "host", "cpu_percent": 12.5, "cpu_quota_percent": 200.0,
         "memory_bytes": 900 * MiB, "memory_limit": 2000 * MiB, "pids": None,
         "pids_limit": None, "throttled": 0.0, "oom_kills": 0},
        {"t": 0.25, "target": "web", "cpu_percent": 49.75, "cpu_quota_percent": 50.0,
         "memory_bytes": 20 * MiB, "memory_limit": 64 * MiB, "pids": 3, "pids_limit": 50,
         "throttled": 40.0, "oom_kills": 0},
        {"t": 0.5, "target": "web", "cpu_percent": 50.25, "cpu_quota_percent": None,
         "memory_bytes": 21 * MiB, "memory_limit": None, "pids": 3, "pids_limit": 50,
         "throttled": 38.0, "oom_kills": 1},
    ]


def test_csv_roundtrip_file_and_path(tmp_path):
    buf = io.StringIO()
    m.write_csv(_rows(), buf)
    text = buf.getvalue()
    print(text)
    assert text.splitlines()[0] == ",".join(m.COLUMNS)
    assert m.read_csv(io.StringIO(text)) == _rows()
    mon = m.Monitor([], host=False)
    mon.buffer.extend(tuple(r[c] for c in m.COLUMNS) for r in _rows())
    path = tmp_path / "slices.csv"
    mon.to_csv(path)
    assert m.read_csv(path) == _rows()
    mon.to_csv(str(path))
    assert path.read_text() == text


# -- text ----------------------------------------------------------------------------

def test_stats_table_like_docker_stats():
    entries = [
        {"id": "69d66a0d00d743f3", "name": "web", "cpu_percent": 51.48, "memory_bytes": 552 * 1024,
         "memory_limit": 64 * MiB, "memory_percent": 0.84, "pids": 1, "throttled": 80.0,
         "cpu_quota_cores": 0.5},
        {"id": "185d8f2cdbdd", "name": "db", "cpu_percent": 0.0, "memory_bytes": 30 * MiB,
         "memory_limit": None, "memory_percent": 0.1, "pids": 2, "throttled": 0.0,
         "cpu_quota_cores": None},
    ]
    out = m.stats_table(entries)
    print(m.stats_header())
    print(out)
    lines = out.splitlines()
    assert lines[0].split("   ")[0].strip() in ("ID DO CONTÊINER", "CONTAINER ID")
    assert "69d66a0d00d7 " in lines[1] and "51,48%" in lines[1] and "552KiB / 64MiB" in lines[1]
    assert "80%" in lines[1]
    assert lines[2].rstrip().endswith("--")  # no quota: nothing to throttle
    assert "GiB" in lines[2] or "MiB" in lines[2]  # no limit: host's memory
    assert "100 % = um núcleo" in m.stats_header()


def test_human_bytes():
    assert m.human_bytes(512) == "512B"
    assert m.human_bytes(64 * MiB) == "64MiB"
    assert m.human_bytes(int(1.5 * MiB)) == "1,5MiB"
    assert m.human_bytes(None) == "--"


def test_summary_one_line():
    s = m.summary(_rows())
    print(s)
    assert "\n" not in s
    assert s.startswith("cpu média: web 50 %")
    assert "pico de memória: web 21MiB" in s
    assert "OOM: web" in s


def test_snapshot_of_a_cgroup_without_paths():
    d = m.snapshot(FakeCgroup("x", share=0.25), interval=0.2)
    print(f"snapshot of a fake 0.25-core cgroup: {d['cpu_percent']:.1f} %")
    assert d["cpu_percent"] == pytest.approx(25, abs=3)
    assert d["memory_percent"] == pytest.approx(10 / 64 * 100)
