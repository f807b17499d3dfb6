"""Restart policies and the verbs create, start, restart (issue 12, item 2), on real containers.

Nothing here measures a duration: the back-off is seen as the ORDER of the gaps
between starts (each start appends the host's uptime to a file of a bind
mount), the policies as counts (``RestartCount``, lines written by each start).
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import labkit
from labkit import paths
from labkit.engine import client
from labkit_cli import cli  # tests/integration/labkit_cli.py
from polling import wait_until  # tests/integration/polling.py

pytestmark = pytest.mark.root


def state(ctr) -> dict:
    return ctr.inspect()["State"]


def on_disk(cid: str) -> dict:
    with open(paths.containers_dir() / cid / "container.json") as f:
        return json.load(f)


def test_on_failure_restarts_at_most_n_times_and_only_on_failure():
    failing = labkit.run("busybox", ["sh", "-c", "echo tentativa; exit 3"], detach=True,
                         restart="on-failure:2", name="falha-n")
    fine = labkit.run("busybox", ["sh", "-c", "echo ok; exit 0"], detach=True, restart="on-failure",
                      name="sucesso")
    try:
        assert wait_until(lambda: failing.restart_count == 2 and state(failing)["Status"] == "exited")
        assert failing.logs().count("tentativa") == 3  # the first run and 2 restarts
        assert state(failing)["ExitCode"] == 3 and state(failing)["Restarting"] is False
        policy = failing.inspect()["HostConfig"]["RestartPolicy"]
        assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert fine.wait(timeout=20) == 0
        assert fine.restart_count == 0 and fine.status == "exited"  # exit 0: no restart
    finally:
        failing.remove(force=True)
        fine.remove(force=True)


def test_always_backs_off_with_growing_gaps_and_ps_says_restarting(tmp_path: Path):
    starts = tmp_path / "starts"
    starts.touch()
    ctr = labkit.run("busybox", ["sh", "-c", "cut -d' ' -f1 /proc/uptime >> /d/starts; exit 1"],
                     detach=True, restart="always", volumes=[f"{tmp_path}:/d"], name="sempre")
    try:
        assert wait_until(lambda: len(starts.read_text().split()) >= 6)
        times = [float(t) for t in starts.read_text().split()][:6]
        gaps = [b - a for a, b in zip(times, times[1:])]
        print("gaps between starts (s):", gaps)
        # 100 ms, 200, 400, 800, 1600 plus the start itself: each later gap is longer
        assert gaps[1] < gaps[2] < gaps[3] < gaps[4], gaps
        assert ctr.restart_count >= 5
        assert wait_until(lambda: state(ctr)["Status"] == "restarting")
        st = state(ctr)
        assert st["Restarting"] is True and st["Running"] is True and st["Pid"] == 0
        pt = cli("ps")  # without -a: a restarting container is listed, as Docker's
        assert "Reiniciando (1) há" in pt.stdout, pt.stdout
        en = cli("ps", lang="en")
        assert "Restarting (1)" in en.stdout, en.stdout
        # the user's stop: the waiting restart is dropped, and none follows
        ctr.stop()
        count = ctr.restart_count
        assert state(ctr)["Status"] == "exited" and state(ctr)["Restarting"] is False
        lines = len(starts.read_text().split())
        time.sleep(0.5)
        assert len(starts.read_text().split()) == lines and ctr.restart_count == count
    finally:
        ctr.remove(force=True)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_no_restart_after_the_users_stop_or_kill(how):
    ctr = labkit.run("busybox", ["sleep", "1000"], detach=True, restart="always", name=f"parado-{how}")
    try:
        pid = ctr.pid
        ctr.stop(timeout=0) if how == "stop" else ctr.kill()
        assert wait_until(lambda: state(ctr)["Status"] == "exited")
        time.sleep(0.5)  # five times the first back-off delay
        assert state(ctr)["Status"] == "exited" and ctr.restart_count == 0
        assert on_disk(ctr.id)["labkitRestart"]["ManuallyStopped"] is True
        # the same container starts again by hand: a new PID 1
        ctr.start()
        assert state(ctr)["Status"] == "running" and ctr.pid != pid
        assert on_disk(ctr.id)["labkitRestart"]["ManuallyStopped"] is False
    finally:
        ctr.remove(force=True)


def test_a_restart_keeps_the_writable_layer_a_recreation_does_not():
    script = "echo x >> /vezes; [ $(wc -l < /vezes) -ge 3 ] && exec sleep 1000; exit 1"
    ctr = labkit.run("busybox", ["sh", "-c", script], detach=True, restart="on-failure", name="camada")
    try:
        assert wait_until(lambda: state(ctr)["Status"] == "running" and ctr.restart_count == 2)
        assert wait_until(lambda: (ctr.upper_dir / "vezes").read_text() == "x\nx\nx\n")  # 3 runs, 1 file
        assert ctr.exec(["cat", "/vezes"]).stdout == "x\nx\nx\n"
        assert labkit.get("camada").id == ctr.id
        first_created = ctr.inspect()["Created"]
        ctr.remove(force=True)
        again = labkit.run("busybox", ["sh", "-c", script], detach=True, restart="on-failure", name="camada")
        try:
            assert again.id != ctr.id and again.inspect()["Created"] != first_created
            assert wait_until(lambda: again.restart_count == 2 and state(again)["Status"] == "running")
            assert wait_until(lambda: (again.upper_dir / "vezes").read_text() == "x\nx\nx\n")
            assert again.exec(["cat", "/vezes"]).stdout == "x\nx\nx\n"  # started from the image again
        finally:
            again.remove(force=True)
    finally:
        ctr.remove(force=True) if ctr.id in {c.id for c in labkit.containers(all=True)} else None


def test_create_start_restart_and_rm_of_a_created_container(container_dirs):
    ctr = labkit.create("busybox", ["sh", "-c", "echo vez >> /log; cat /log; exec sleep 1000"], name="criado")
    try:
        st = state(ctr)
        assert st["Status"] == "created" and st["Pid"] == 0 and ctr.id in container_dirs()
        assert "Criado" in cli("ps", "-a").stdout
        assert ctr.id not in {c.id for c in labkit.containers()}
        ctr.start()
        assert state(ctr)["Status"] == "running"
        assert wait_until(lambda: ctr.logs() == "vez\n")
        pid = ctr.pid
        ctr.restart(timeout=0)
        assert state(ctr)["Status"] == "running" and ctr.pid != pid
        # the second run appends to the same /log and prints it: one log for both runs, as Docker's
        assert wait_until(lambda: ctr.logs() == "vez\n" + "vez\nvez\n")
        assert ctr.exec(["cat", "/log"]).stdout == "vez\nvez\n"
        assert ctr.restart_count == 0  # starts by the user are not counted
        r = cli("restart", "-t", "0", "criado")
        assert r.returncode == 0 and r.stdout == "criado\n", r.stderr
        assert wait_until(lambda: ctr.logs().count("vez") == 6)
        assert ctr.exec(["cat", "/log"]).stdout == "vez\nvez\nvez\n"
        ctr.stop(timeout=0)
        r = cli("start", "criado")
        assert r.returncode == 0 and state(ctr)["Status"] == "running", r.stderr
    finally:
        ctr.remove(force=True)
    other = cli("create", "--name", "so-criado", "busybox", "true")
    assert other.returncode == 0, other.stderr
    cid = other.stdout.strip()
    assert cid in container_dirs()
    assert cli("rm", "so-criado").returncode == 0
    assert cid not in container_dirs()


def test_engine_start_brings_back_always_and_unless_stopped():
    ctrs = {name: labkit.run("busybox", ["sleep", "1000"], detach=True, restart=policy, name=name)
            for name, policy in [("sempre-vivo", "always"), ("sempre-parado", "always"),
                                 ("salvo-vivo", "unless-stopped"), ("salvo-parado", "unless-stopped"),
                                 ("se-falhar", "on-failure"), ("nunca", "no")]}
    try:
        ctrs["sempre-parado"].stop(timeout=0)
        ctrs["salvo-parado"].stop(timeout=0)
        assert labkit.engine_stop()  # every container is killed with the engine
        assert all(on_disk(c.id)["State"]["Status"] == "exited" for c in ctrs.values())
        labkit.containers()  # a new engine
        expected = {"sempre-vivo": "running", "sempre-parado": "running", "salvo-vivo": "running",
                    "salvo-parado": "exited", "se-falhar": "exited", "nunca": "exited"}
        assert wait_until(lambda: {n: c.status for n, c in ctrs.items()} == expected), \
            {n: c.status for n, c in ctrs.items()}
    finally:
        for c in ctrs.values():
            c.remove(force=True)


def test_engine_killed_during_back_off_brings_the_container_back_once(tmp_path: Path):
    starts = tmp_path / "starts"
    starts.touch()
    script = "echo s >> /d/starts; [ -f /d/ficar ] && exec sleep 1000; exit 1"
    ctr = labkit.run("busybox", ["sh", "-c", script], detach=True, restart="always",
                     volumes=[f"{tmp_path}:/d"], name="volta-uma-vez")
    try:
        # six restarts: the next delay is 3.2 s, time enough to kill the engine while it waits
        assert wait_until(lambda: ctr.restart_count >= 6 and state(ctr)["Status"] == "restarting")
        (tmp_path / "ficar").touch()
        count, lines = ctr.restart_count, len(starts.read_text().split())
        engine = client.request({"op": "ping"})["pid"]
        os.kill(engine, signal.SIGKILL)
        assert wait_until(lambda: not os.path.exists(f"/proc/{engine}/stat")
                          or open(f"/proc/{engine}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
        saved = on_disk(ctr.id)
        assert saved["State"]["Status"] == "restarting" and saved["RestartCount"] == count  # on disk
        if len(starts.read_text().split()) != lines:
            pytest.fail("the back-off ended before the engine was killed: the case was not tested")
        assert client.request({"op": "ping"})["pid"] != engine  # a new engine reads it back
        assert wait_until(lambda: state(ctr)["Status"] == "running")
        time.sleep(1)  # a second start, if any, would be here by now
        assert len(starts.read_text().split()) == lines + 1  # once, not twice
        assert ctr.restart_count == count
        assert len(ctr.cgroup.pids()) == 1
    finally:
        ctr.remove(force=True)


@pytest.mark.parametrize("args, pt", [
    (["--restart", "sometimes"], "política de reinício inválida: 'sometimes' não existe"),
    (["--restart", "on-failure:x"], "o número máximo de tentativas deve ser um inteiro: on-failure:x"),
    (["--restart", "always", "--rm"], "opções conflitantes: --restart e --rm"),
    (["--health-cmd", "true", "--health-retries", "-1"], "--health-retries não pode ser negativo"),
    (["--health-interval", "dez"], "argumento inválido \"dez\" para --health-interval"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck não combina com as opções --health-*"),
])
@pytest.mark.parametrize("verb", ["run", "create"])
def test_bad_restart_and_health_flags(verb, args, pt, container_dirs):
    before = (cli("ps", "-a", "-q", "--no-trunc").stdout, container_dirs())
    extra = ["-d"] if verb == "run" else []
    r = cli(verb, *extra, *args, "busybox", "true")
    assert r.returncode == 125, r
    assert pt in r.stderr and r.stdout == ""
    assert (cli("ps", "-a", "-q", "--no-trunc").stdout, container_dirs()) == before


def test_attached_run_with_a_policy_is_kept_and_restarted_in_the_background():
    result = labkit.run("busybox", ["sh", "-c", "echo rodada; exit 4"], restart="on-failure:1", name="anexado")
    try:
        assert result.exit_code == 4 and result.stdout == "rodada\n"  # the first run, to the caller
        ctr = labkit.get("anexado")  # not removed: --rm is refused with a policy, so not implied
        assert wait_until(lambda: ctr.restart_count == 1 and state(ctr)["Status"] == "exited")
        assert ctr.logs() == "rodada\n"  # the restart runs detached: its output goes to the log
    finally:
        labkit.get("anexado").remove(force=True)


def test_created_with_rm_is_removed_after_its_start(container_dirs):
    ctr = labkit.create("busybox", ["echo", "uma vez"], name="criado-rm", remove=True)
    assert ctr.status == "created"
    ctr.start()
    assert wait_until(lambda: "criado-rm" not in {c.name for c in labkit.containers(all=True)})
    assert ctr.id not in container_dirs()


def test_a_signal_that_does_not_stop_it_keeps_the_policy():
    ctr = labkit.run("busybox", ["sh", "-c", "trap 'exit 3' HUP; while :; do sleep 0.1; done"],
                     detach=True, restart="always", name="recarrega")
    try:
        pid = ctr.pid
        ctr.kill("HUP")  # as a reload: not the user's stop
        assert wait_until(lambda: ctr.restart_count == 1 and state(ctr)["Status"] == "running")
        assert ctr.pid != pid and on_disk(ctr.id)["labkitRestart"]["ManuallyStopped"] is False
    finally:
        ctr.remove(force=True)


def test_restart_keeps_limits_and_bind_mounts(tmp_path: Path):
    (tmp_path / "dado").write_text("de fora\n")
    ctr = labkit.run("busybox", ["sleep", "1000"], detach=True, name="limites", memory="64m",
                     pids_limit=50, volumes=[f"{tmp_path}:/dados:ro"])
    try:
        cgroup_before = ctr.inspect()["Cgroup"]
        ctr.restart(timeout=0)
        assert ctr.inspect()["Cgroup"] == cgroup_before  # a new cgroup, of the same name
        stats = ctr.cgroup.stats()
        assert stats["memory_limit"] == 64 * 1024**2 and stats["pids_limit"] == 50
        assert ctr.exec(["cat", "/dados/dado"]).stdout == "de fora\n"
        assert ctr.exec(["touch", "/dados/novo"]).exit_code != 0  # still read-only
        assert ctr.inspect()["HostConfig"]["Binds"] == [f"{tmp_path}:/dados:ro"]
    finally:
        ctr.remove(force=True)


def test_a_restart_keeps_the_anonymous_volumes_and_rm_v_removes_them():
    # the same container, so the same anonymous volume (-v /dados): each start appends a line
    ctr = labkit.run("busybox", ["sh", "-c", "echo vez >> /dados/vezes; sleep 600"], detach=True,
                     restart="always", volumes=["/dados"], name="anonimo")
    try:
        names = [m["Name"] for m in ctr.inspect()["Mounts"] if m["Type"] == "volume"]
        assert len(names) == 1
        assert wait_until(lambda: ctr.exec(["cat", "/dados/vezes"]).stdout == "vez\n")
        os.kill(ctr.pid, signal.SIGKILL)
        assert wait_until(lambda: ctr.restart_count == 1 and ctr.status == "running")
        assert [m["Name"] for m in ctr.inspect()["Mounts"] if m["Type"] == "volume"] == names
        assert wait_until(lambda: ctr.exec(["cat", "/dados/vezes"]).stdout == "vez\nvez\n")
        ctr.restart(timeout=0)
        assert wait_until(lambda: ctr.exec(["cat", "/dados/vezes"]).stdout == "vez\nvez\nvez\n")
        assert [v.name for v in labkit.volumes()].count(names[0]) == 1
    finally:
        ctr.remove(force=True, volumes=True)
    assert names[0] not in [v.name for v in labkit.volumes()]
