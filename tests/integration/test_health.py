"""Healthchecks (issue 12, item 4): the engine runs the check in the container on its timer.

Checks run every 100 ms here; the assertions are on the states reached and the
history kept, never on how long they took.
"""
from __future__ import annotations

import time

import pytest

import labkit
from labkit.images.store import Store
from labkit_cli import cli  # tests/integration/labkit_cli.py
from polling import wait_until  # tests/integration/polling.py

pytestmark = pytest.mark.root


def health(ctr) -> dict:
    return ctr.inspect()["State"].get("Health") or {}


def test_healthy_then_unhealthy_then_healthy_again_with_the_history():
    ctr = labkit.run("busybox", ["sleep", "1000"], detach=True, name="saude",
                     healthcheck={"test": ["CMD-SHELL", "cat /pronto"], "interval": 0.1, "retries": 2})
    try:
        assert ctr.health == "starting"  # from the start, before any check ran
        cfg = ctr.inspect()["Config"]["Healthcheck"]
        assert cfg == {"Test": ["CMD-SHELL", "cat /pronto"], "Interval": 100_000_000, "Retries": 2}
        assert wait_until(lambda: ctr.health == "unhealthy")
        h = health(ctr)
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
        assert "No such file" in h["Log"][-1]["Output"]  # the check's own output, kept
        ps = cli("ps")
        assert "(não saudável)" in ps.stdout, ps.stdout
        assert ctr.status == "running" and ctr.restart_count == 0  # unhealthy is not restarted
        ctr.exec(["sh", "-c", "echo sim > /pronto"])
        assert wait_until(lambda: ctr.health == "healthy")
        h = health(ctr)
        assert h["FailingStreak"] == 0 and h["Log"][-1] == {**h["Log"][-1], "ExitCode": 0, "Output": "sim\n"}
        assert wait_until(lambda: len(health(ctr)["Log"]) == 5)
        time.sleep(0.5)
        assert len(health(ctr)["Log"]) == 5  # the last five results only
        ps = cli("ps")
        assert "(saudável)" in ps.stdout, ps.stdout
        assert "(healthy)" in cli("ps", lang="en").stdout
    finally:
        ctr.remove(force=True)


def test_cli_flags_and_a_check_that_times_out():
    r = cli("run", "-d", "--name", "lento", "--health-cmd", "sleep 5", "--health-interval", "100ms",
            "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    ctr = labkit.get("lento")
    try:
        assert "(saúde: iniciando)" in cli("ps").stdout
        assert wait_until(lambda: ctr.health == "unhealthy")
        last = health(ctr)["Log"][-1]
        assert last["ExitCode"] == -1 and "exceeded timeout" in last["Output"]
        # the killed check left no process behind in the container: only its PID 1
        assert wait_until(lambda: len(ctr.cgroup.pids()) == 1)
    finally:
        ctr.remove(force=True)


def test_healthcheck_from_the_image_and_none_turns_it_off(tmp_path):
    ref = "restart-health-img:1"
    labkit.build(str(tmp_path), ref, quiet=True, dockerfile=(
        "FROM busybox\n"
        "HEALTHCHECK --interval=100ms --retries=1 CMD test -f /tmp/ok || exit 1\n"))
    ctrs = []
    try:
        image_hc = Store().resolve(ref).config["config"]["Healthcheck"]
        assert image_hc["Test"] == ["CMD-SHELL", "test -f /tmp/ok || exit 1"]
        from_image = labkit.run(ref, ["sleep", "1000"], detach=True, name="da-imagem")
        ctrs.append(from_image)
        assert from_image.inspect()["Config"]["Healthcheck"] == image_hc
        assert wait_until(lambda: from_image.health == "unhealthy")
        from_image.exec(["touch", "/tmp/ok"])
        assert wait_until(lambda: from_image.health == "healthy")
        # the run's options over the image's: a test of its own, the image's interval
        mine = labkit.run(ref, ["sleep", "1000"], detach=True, name="mistura",
                          healthcheck={"test": ["CMD", "true"]})
        ctrs.append(mine)
        assert mine.inspect()["Config"]["Healthcheck"] == {**image_hc, "Test": ["CMD", "true"]}
        assert wait_until(lambda: mine.health == "healthy")
        off = labkit.run(ref, ["sleep", "1000"], detach=True, name="sem-saude",
                         healthcheck={"test": ["NONE"]})
        ctrs.append(off)
        r = cli("run", "-d", "--name", "sem-saude-cli", "--no-healthcheck", ref, "sleep", "1000")
        assert r.returncode == 0, r.stderr
        ctrs.append(labkit.get("sem-saude-cli"))
        time.sleep(0.5)  # five intervals of the image's check
        for c in ctrs[2:]:
            assert c.health is None and "Health" not in c.inspect()["State"]
            assert c.inspect()["Config"]["Healthcheck"] == {"Test": ["NONE"]}
        assert "saúde" not in [line for line in cli("ps").stdout.splitlines() if "sem-saude" in line][0]
    finally:
        for c in ctrs:
            c.remove(force=True)
        Store().remove(ref)


def test_health_starts_again_with_a_restart():
    ctr = labkit.run("busybox", ["sh", "-c", "exec sleep 1000"], detach=True, name="saude-reinicio",
                     healthcheck={"test": "test -f /ok", "interval": 0.1, "retries": 1})
    try:
        ctr.exec(["touch", "/ok"])
        assert wait_until(lambda: ctr.health == "healthy")
        log = len(health(ctr)["Log"])
        ctr.restart(timeout=0)
        assert ctr.status == "running"
        # the file is still there (the same writable layer): healthy again, after "starting"
        assert wait_until(lambda: ctr.health == "healthy")
        assert len(health(ctr)["Log"]) >= min(log + 1, 5)
    finally:
        ctr.remove(force=True)
