"""The ``labkit`` command: Docker's verbs on real containers, through a subprocess.

Exit codes, stdout/stderr, the flags of ``run`` and the lifecycle verbs
(``ps logs exec inspect stop wait kill rm prune engine``), in pt-BR by default
and in English with ``LANG=en_US.UTF-8``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import labkit
from labkit.errors import NotFound
from labkit_cli import LABKIT, cli  # tests/integration/labkit_cli.py
from requirements import needs_tool

pytestmark = pytest.mark.root


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names
    for n in names:
        try:
            labkit.get(n).remove(force=True)
        except NotFound:
            pass


def test_run_exit_code_and_separate_streams():
    r = cli("run", "--rm", "busybox", "sh", "-c", "echo olá; echo erro >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "olá\n", "erro\n")
    assert cli("run", "--rm", "busybox", "true").returncode == 0
    assert cli("run", "--rm", "busybox", "false").returncode == 1


def test_run_flags_env_workdir_hostname_volumes(tmp_path: Path):
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "in.txt").write_text("só leitura\n")
    script = ('echo "$A|$B|$(pwd)|$(hostname)"; cat /ro/in.txt; echo escrito > /rw/out.txt; '
              'touch /ro/x 2>/dev/null || echo ro-recusado')
    r = cli("run", "--rm", "-e", "A=1", "-e", "B", "-w", "/tmp", "--hostname", "lab-cli",
            "-v", f"{rw}:/rw", "-v", f"{ro}:/ro:ro", "busybox", "sh", "-c", script, env={"B": "do-cliente"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1|do-cliente|/tmp|lab-cli", "só leitura", "ro-recusado"]
    assert (rw / "out.txt").read_text() == "escrito\n"
    assert sorted(os.listdir(ro)) == ["in.txt"]


def test_env_name_alone_comes_from_the_caller_not_the_engine():
    assert cli("engine", "status").returncode == 0  # the engine already runs, with its own environment
    r = cli("run", "--rm", "-e", "SO_NO_CLIENTE", "-e", "NAO_DEFINIDA", "busybox", "sh", "-c",
            'echo "[$SO_NO_CLIENTE]"; env | grep -c NAO_DEFINIDA', env={"SO_NO_CLIENTE": "valor"})
    assert r.stdout.splitlines() == ["[valor]", "0"]


def test_run_interactive_stdin():
    r = cli("run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z; echo fim", input="olá mundo\n")
    assert (r.returncode, r.stdout) == (0, "OLá MUNDO\nfim\n")
    # without -i the container's stdin is empty
    r = cli("run", "--rm", "busybox", "sh", "-c", "cat; echo vazio", input="nao chega\n")
    assert r.stdout == "vazio\n"


def test_detached_lifecycle_ps_logs_exec_inspect_stop_wait_rm(labkit_home, cleanup):
    cleanup.append("ciclo-cli")
    r = cli("run", "-d", "--name", "ciclo-cli", "busybox", "sh", "-c", "echo oi; echo aviso >&2; sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", cid)

    ps = cli("ps")
    assert ps.returncode == 0
    header, *rows = ps.stdout.splitlines()
    assert header.startswith("ID DO CONTÊINER")
    row = next(r for r in rows if r.endswith("ciclo-cli"))
    assert row.startswith(cid[:12]) and "busybox" in row
    assert cid[:12] in cli("ps", "-q").stdout.split()
    assert cli("ps", lang="en").stdout.startswith("CONTAINER ID")

    deadline = time.monotonic() + 10
    while "oi" not in cli("logs", "ciclo-cli").stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    logs = cli("logs", "ciclo-cli")
    assert logs.returncode == 0 and "oi\n" in logs.stdout and "aviso\n" in logs.stdout

    ex = cli("exec", "ciclo-cli", "sh", "-c", "hostname; exit 3")
    assert (ex.returncode, ex.stdout) == (3, cid[:12] + "\n")

    doc = json.loads(cli("inspect", "ciclo-cli").stdout)
    assert isinstance(doc, list) and doc[0]["Id"] == cid
    assert doc[0]["State"]["Running"] is True and doc[0]["State"]["Pid"] > 0
    assert doc[0]["Name"] == "ciclo-cli"

    t0 = time.monotonic()
    stop = cli("stop", "-t", "1", "ciclo-cli")
    print(f"labkit stop -t 1 took {time.monotonic() - t0:.2f} s")
    assert (stop.returncode, stop.stdout) == (0, "ciclo-cli\n")
    assert cli("wait", "ciclo-cli").stdout.strip() in ("137", "143")
    assert cid[:12] not in cli("ps", "-q").stdout.split()
    psa = cli("ps", "-a").stdout
    assert re.search(r"(Exited|Encerrado|Saiu)\D*\((137|143)\)", psa) or "137" in psa, psa
    assert "oi" in cli("logs", "ciclo-cli").stdout  # logs survive the exit

    rm = cli("rm", "ciclo-cli")
    assert (rm.returncode, rm.stdout) == (0, "ciclo-cli\n")
    assert not (Path(labkit_home) / "containers" / cid).exists()
    assert cid[:12] not in cli("ps", "-a", "-q").stdout.split()


def test_kill_with_a_signal_name(cleanup):
    cleanup.append("para-matar")
    assert cli("run", "-d", "--name", "para-matar", "busybox", "sh", "-c",
               "trap 'exit 42' USR1; while :; do sleep 0.1; done").returncode == 0
    time.sleep(0.3)
    r = cli("kill", "-s", "USR1", "para-matar")
    assert r.returncode == 0, r.stderr
    assert cli("wait", "para-matar").stdout.strip() == "42"
    assert cli("kill", "para-matar").returncode == 125  # not running any more
    assert cli("rm", "para-matar").returncode == 0


def test_run_rm_removes_and_detached_rm_removes_after_exit(labkit_home, container_dirs):
    before = container_dirs()
    assert cli("run", "--rm", "busybox", "true").returncode == 0
    assert container_dirs() == before
    r = cli("run", "-d", "--rm", "busybox", "true")
    cid = r.stdout.strip()
    deadline = time.monotonic() + 10
    while (Path(labkit_home) / "containers" / cid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (Path(labkit_home) / "containers" / cid).exists()


def test_prune_removes_stopped_containers_only(cleanup):
    cleanup.extend(["podado", "vivo"])
    assert cli("run", "-d", "--name", "podado", "busybox", "true").returncode == 0
    assert cli("run", "-d", "--name", "vivo", "busybox", "sleep", "300").returncode == 0
    assert labkit.get("podado").wait(timeout=20) == 0
    r = cli("prune", "-f")
    assert r.returncode == 0, r.stderr
    assert labkit.get("vivo").status == "running"
    with pytest.raises(NotFound):
        labkit.get("podado")
    assert "1 " in r.stdout.splitlines()[-1]  # "1 contêiner removido"


def test_limits_through_the_cli():
    r = cli("run", "--rm", "--memory", "32m", "busybox", "sh", "-c",
            'x=$(head -c 100m /dev/zero | tr "\\0" a); echo $x | wc -c')
    print(f"--memory 32m, 100 MB string: exit {r.returncode}")
    assert r.returncode == 137
    r = cli("run", "--rm", "--pids-limit", "20", "busybox", "sh", "-c",
            "sh -c 'for i in $(seq 40); do sleep 5 & done' 2>&1; echo fim")
    assert "can't fork" in r.stdout
    r = cli("run", "--rm", "--memory", "64m", "--cpus", "0.5", "--pids-limit", "100", "busybox", "true")
    assert r.returncode == 0, r.stderr


def test_engine_status():
    r = cli("engine", "status")
    assert r.returncode == 0
    pid = labkit.engine.client.request({"op": "ping"})["pid"]
    assert str(pid) in r.stdout
    r = cli("engine", "status", lang="en")
    assert "running" in r.stdout and str(pid) in r.stdout
    spare = labkit.engine.client.request({"op": "ping"})["spare"]
    if spare:  # the extra process `ps` shows is named, with its cgroup
        assert f"pid {spare['pid']}, cgroup labkit/{spare['id']}" in r.stdout


def test_help_is_in_portuguese_and_english():
    pt = cli("run", "--help")
    assert pt.returncode == 0 and "uso:" in pt.stdout
    en = cli("run", "--help", lang="en")
    assert en.returncode == 0 and "usage:" in en.stdout


@needs_tool("script", package="bsdutils")
def test_run_with_a_terminal():
    e = dict(os.environ, LABKIT_LANG="pt_BR")
    r = subprocess.run(["script", "-qec", f"{LABKIT} run -t --rm busybox sh -c 'tty; ls /dev/pts; exit 4'",
                        "/dev/null"], capture_output=True, text=True, env=e, timeout=60,
                       stdin=subprocess.DEVNULL)
    out = r.stdout.replace("\r", "").split()
    print(r.returncode, out)
    assert r.returncode == 4
    assert out[0] == "/dev/pts/0"  # the container's own devpts instance: numbering starts again
    assert set(out[1:]) == {"0", "ptmx"}


def test_logs_follow_streams_until_the_container_exits(cleanup):
    cleanup.append("seguindo")
    r = cli("run", "-d", "--name", "seguindo", "busybox", "sh", "-c",
            "for i in 1 2 3; do echo linha-$i; sleep 0.3; done; exit 2")
    assert r.returncode == 0, r.stderr
    f = cli("logs", "-f", "seguindo", timeout=60)
    assert f.returncode == 0
    assert f.stdout == "linha-1\nlinha-2\nlinha-3\n"
    assert labkit.get("seguindo").exit_code == 2
    assert cli("rm", "seguindo").returncode == 0
