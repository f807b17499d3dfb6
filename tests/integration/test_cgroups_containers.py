"""The slice, measured on real containers (issue 3, item 7).

Named ``test_cgroups_*`` so that ``make test-cgroup2`` also runs it inside
the pure cgroup-v2 VM: the same assertions hold on v1 and v2. Each test
prints the figure it checks.
"""
from __future__ import annotations

import os
import time

import labkit

BUSY = "while :; do :; done"


def cpu_share(container, seconds: float = 3.0, expect: float | None = None) -> float:
    """Cores used over ``seconds``: Δ cpu usage / Δ wall time.

    With ``expect``, a reading far below it while the quota was rarely hit
    means other work starved the container (a busy host), not that the limit
    is wrong: measure again, up to three times, and say so.
    """
    cg = container.cgroup
    for attempt in range(3):
        s0, t0 = cg.stats(), time.monotonic()
        time.sleep(seconds)
        s1, t1 = cg.stats(), time.monotonic()
        share = (s1["cpu_usage_ns"] - s0["cpu_usage_ns"]) / 1e9 / (t1 - t0)
        periods = max(1, s1["nr_periods"] - s0["nr_periods"])
        throttled = (s1["nr_throttled"] - s0["nr_throttled"]) / periods
        if expect is None or share >= expect - 0.05 or throttled > 0.5:
            return share
        print(f"  host busy: {share:.3f} core, throttled in {throttled:.0%} of periods; measuring again")
    return share


def test_half_a_core(detached):
    c = detached(BUSY, cpus=0.5)
    share = cpu_share(c, expect=0.5)
    print(f"--cpus 0.5 → {share:.3f} core")
    assert 0.45 <= share <= 0.55


def test_shares_split_two_to_one(detached):
    a = detached(BUSY, cpu_shares=1024, cpuset_cpus="0")
    b = detached(BUSY, cpu_shares=512, cpuset_cpus="0")
    time.sleep(0.5)
    ua, ub = a.cgroup.stats()["cpu_usage_ns"], b.cgroup.stats()["cpu_usage_ns"]
    time.sleep(3)
    da = a.cgroup.stats()["cpu_usage_ns"] - ua
    db = b.cgroup.stats()["cpu_usage_ns"] - ub
    print(f"shares 1024:512 on CPU 0 → {da / 1e9:.2f} s : {db / 1e9:.2f} s = {da / db:.2f}")
    assert da > db  # more shares, more CPU: an order, true on any machine
    if not os.environ.get("CG2VM"):
        # The ratio itself only on a real machine: in a TCG guest (tools/cg2vm.py) the host
        # preempts the vCPU's thread and the guest charges that time to whichever task ran.
        assert 1.6 <= da / db <= 2.5


def test_update_changes_the_measured_share(detached):
    c = detached(BUSY, cpus=0.8)
    before = cpu_share(c, 2, expect=0.8)
    c.update(cpus=0.2)
    after = cpu_share(c, 2, expect=0.2)
    print(f"update 0.8 → 0.2: {before:.3f} → {after:.3f} core")
    # `before` may sit well under 0.8 on a busy host (the quota is a ceiling, other work takes
    # the rest): how far under is the machine's business, so only the order is asserted
    # there; `after` must obey 0.2
    assert 0.15 <= after <= 0.25 and before > after
    assert c.inspect()["HostConfig"]["Limits"]["cpus"] == 0.2


def test_oom_kill_is_reported():
    r = labkit.run("busybox", ["sh", "-c", 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo ${#x}'],
                   memory="32m", remove=False)
    try:
        doc = labkit.get(r.id).inspect()
        print(f"exit {r.exit_code}, OOMKilled={doc['State']['OOMKilled']}")
        assert r.exit_code == 137
        assert r.oom_killed and doc["State"]["OOMKilled"] is True
    finally:
        labkit.get(r.id).remove()


def test_pids_limit_stops_a_fork_loop(detached):
    # a subshell forks `sleep` until the kernel refuses; busybox sh then gives up,
    # which frees one slot for the outer shell's own `sleep`
    c = detached("(while :; do sleep 30 & done) 2>/dev/null; sleep 30", pids_limit=20)
    def refused() -> int:
        for d in c.cgroup.paths():
            try:
                with open(f"{d}/pids.events") as f:
                    return int(f.read().split()[1])  # "max N": forks refused at the limit
            except FileNotFoundError:
                continue
        return 0

    # until the kernel has refused a fork (the loop reached the limit): an event, however
    # slowly the machine forks; the count of polls only keeps a missing event from hanging
    peak = 0
    for _ in range(2400):
        peak = max(peak, c.cgroup.stats()["pids_current"])
        if refused():
            break
        time.sleep(0.05)
    peak = max(peak, c.cgroup.stats()["pids_current"])
    final = c.cgroup.stats()["pids_current"]
    print(f"--pids-limit 20 → at most {peak} processes seen (now {final}), {refused()} forks refused")
    assert refused() >= 1 and peak <= 20 and final <= 20
    assert labkit.run("busybox", "true").exit_code == 0  # the host (and others) still fork


def test_memory_limit_and_update_are_visible_in_the_cgroup(detached):
    c = detached("sleep 60", memory="64m", pids_limit=50)
    st = c.cgroup.stats()
    print(f"memory_limit={st['memory_limit']} pids_limit={st['pids_limit']}")
    assert st["memory_limit"] == 64 * 1024 * 1024 and st["pids_limit"] == 50
    c.update(memory="128m", pids_limit=100)
    st = c.cgroup.stats()
    assert st["memory_limit"] == 128 * 1024 * 1024 and st["pids_limit"] == 100
