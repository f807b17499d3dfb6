"""The engine's robustness: SIGKILL, restart, recovery from disk, cleanup, concurrency.

Killing the engine must lose no state: the next call starts a new engine
that reads ``$LABKIT_HOME/containers`` back, adopts containers still
running, marks the others exited, and ``rm -f`` / ``prune`` then remove
every leftover (cgroup, state dir, process).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

import labkit
from labkit import paths
from labkit.engine import client
from labkit.errors import LabkitError, NotFound
from polling import wait_until  # tests/integration/polling.py

pytestmark = pytest.mark.root

LABKIT = str(Path(sys.executable).parent / "labkit")


def engine_pids() -> list[int]:
    home = str(paths.home())
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
        except psutil.Error:
            continue
        if "labkit.engine" in cmd and home in cmd and proc.name() != "labkit-spare":
            found.append(proc.pid)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between open and read
        return False


def cgroup_dirs(cid: str) -> list[str]:
    found = []
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        if cid in dirs:
            found.append(os.path.join(root, cid))
        if root.count("/") >= 6:
            dirs[:] = []
    return found


def kill_engine() -> int:
    pid = client.request({"op": "ping"})["pid"]
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: not alive(pid)), "the engine survived SIGKILL?"
    return pid


def test_sigkill_engine_state_survives_and_cleanup_is_complete(labkit_home):
    running = labkit.run("busybox", ["sh", "-c", "echo vivo; sleep 300"], detach=True, name="sobrevivente")
    exited = labkit.run("busybox", ["sh", "-c", "echo fim; exit 3"], detach=True, name="terminado")
    assert exited.wait(timeout=20) == 3
    ctr_pid = running.pid
    old = kill_engine()

    # the container does not depend on the engine process
    assert alive(ctr_pid)
    # the next call starts a new engine, which reads the state back from disk
    listed = {c.name: c for c in labkit.containers(all=True)}
    new = client.request({"op": "ping"})["pid"]
    print(f"engine {old} killed; new engine {new}; containers: "
          f"{ {n: c.attrs['State']['Status'] for n, c in listed.items()} }")
    assert new != old
    assert engine_pids() == [new]
    assert {"sobrevivente", "terminado"} <= set(listed)
    assert listed["sobrevivente"].attrs["State"]["Status"] == "running"
    assert listed["sobrevivente"].attrs["State"]["Pid"] == ctr_pid
    assert listed["terminado"].attrs["State"]["Status"] == "exited"
    assert listed["terminado"].attrs["State"]["ExitCode"] == 3
    assert "vivo" in labkit.get("sobrevivente").logs()
    # the adopted container still works: exec, then rm -f
    assert labkit.get("sobrevivente").exec("echo dentro").stdout == "dentro\n"
    r = subprocess.run([LABKIT, "rm", "-f", "sobrevivente"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([LABKIT, "prune", "-f"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert exited.id in r.stdout

    for ctr in (running, exited):
        with pytest.raises(NotFound):
            labkit.get(ctr.id)
        assert not (Path(labkit_home) / "containers" / ctr.id).exists()
        assert cgroup_dirs(ctr.id) == []
    assert wait_until(lambda: not alive(ctr_pid)), f"container pid {ctr_pid} still alive"


def test_container_exiting_while_no_engine_runs(labkit_home):
    ctr = labkit.run("busybox", ["sh", "-c", "sleep 0.5; exit 7"], detach=True)
    pid = ctr.pid
    kill_engine()
    assert wait_until(lambda: not alive(pid), timeout=20)
    state = labkit.get(ctr.id).inspect()["State"]  # starts a new engine
    print(state)
    assert state["Status"] == "exited" and state["Running"] is False
    assert state["ExitCode"] == 255 and state.get("Error")  # nobody was there to read the code
    assert cgroup_dirs(ctr.id) == []
    removed = labkit.prune()
    assert ctr.id in removed
    assert not (Path(labkit_home) / "containers" / ctr.id).exists()


def test_adopted_container_exit_is_noticed(labkit_home):
    ctr = labkit.run("busybox", ["sh", "-c", "mkfifo /tmp/fifo; read x < /tmp/fifo; exit 5"], detach=True)
    try:
        assert wait_until(lambda: (ctr.upper_dir / "tmp" / "fifo").exists())
        kill_engine()
        labkit.containers()  # new engine, adopts it
        assert labkit.get(ctr.id).status == "running"
        labkit.get(ctr.id).exec(["sh", "-c", "echo x > /tmp/fifo"])
        assert wait_until(lambda: labkit.get(ctr.id).status == "exited")
        st = labkit.get(ctr.id).inspect()["State"]
        print(st)
        assert st["Running"] is False
        assert cgroup_dirs(ctr.id) == []
    finally:
        labkit.get(ctr.id).remove(force=True)


def test_attached_client_sees_a_clear_error_when_the_engine_dies(labkit_home):
    result: dict = {}

    def attached():
        try:
            result["value"] = labkit.run("busybox", ["sleep", "300"], name="orfao")
        except LabkitError as exc:
            result["error"] = exc

    t = threading.Thread(target=attached)
    t.start()
    assert wait_until(lambda: any(c.name == "orfao" for c in labkit.containers()))
    kill_engine()
    t.join(20)
    assert not t.is_alive()
    print(result)
    assert "error" in result and result["error"].exit_code == 125
    # the new engine knows the orphan; rm -f cleans it
    ctr = labkit.get("orfao")
    pid = ctr.inspect()["State"]["Pid"]
    ctr.remove(force=True)
    assert wait_until(lambda: not alive(pid))
    assert cgroup_dirs(ctr.id) == []
    assert not (Path(labkit_home) / "containers" / ctr.id).exists()


def test_engine_stop_stops_containers_and_restart_reports_them(labkit_home):
    ctr = labkit.run("busybox", ["sleep", "300"], detach=True)
    pid = ctr.pid
    assert labkit.engine_stop()
    assert wait_until(lambda: not alive(pid))
    assert engine_pids() == []
    state = labkit.get(ctr.id).inspect()["State"]  # a new engine
    assert state["Status"] == "exited"
    assert cgroup_dirs(ctr.id) == []
    labkit.get(ctr.id).remove()
    assert not (Path(labkit_home) / "containers" / ctr.id).exists()


def test_two_clients_run_containers_at_the_same_time(tmp_path: Path):
    """A and B wait for each other through a shared volume: a serializing engine would hang."""
    v = tmp_path / "v"
    v.mkdir()
    scripts = {
        "a": "touch /v/a-up; i=0; while [ ! -e /v/b-up ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; "
             "[ -e /v/b-up ] && echo a-viu-b",
        "b": "touch /v/b-up; i=0; while [ ! -e /v/a-up ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; "
             "[ -e /v/a-up ] && echo b-viu-a",
    }
    results: dict = {}

    def run(key):
        results[key] = labkit.run("busybox", ["sh", "-c", scripts[key]], volumes=[f"{v}:/v"], timeout=60)

    threads = [threading.Thread(target=run, args=(k,)) for k in scripts]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    print(f"both done in {time.monotonic() - t0:.2f} s")
    assert results["a"].exit_code == 0 and results["a"].stdout == "a-viu-b\n"
    assert results["b"].exit_code == 0 and results["b"].stdout == "b-viu-a\n"


def test_two_cli_processes_concurrently_and_engine_start_race():
    """With no engine, several clients at once start exactly one engine and all succeed."""
    labkit.engine_stop()
    assert engine_pids() == []
    procs = [subprocess.Popen([LABKIT, "run", "--rm", "busybox", "sh", "-c", f"sleep 0.3; echo cliente-{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    for i, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, err
        assert out == f"cliente-{i}\n"
    assert len(engine_pids()) == 1
    labkit.containers()  # leave an engine running for the fixture, as before the test


def test_engine_socket_is_root_only():
    sock = paths.engine_socket()
    labkit.containers()
    mode = os.stat(sock).st_mode & 0o777
    print(f"{sock}: {oct(mode)}")
    assert mode & 0o077 == 0


@pytest.mark.parametrize("payload", [
    b"",                                    # connect and hang up
    b"\x00\x00\x00\x05{bad}",                # not JSON
    b"\x00\x00\x00\x02[]",                   # JSON, not an object
    b"\x00\x00\x00\x0f{\"op\":\"nada\"}  ",  # unknown request
    b"\x00\x00\x00\x0c{\"op\":\"run\"}",     # a request without its fields
    b"\x7f\xff\xff\xff",                     # a huge length, then nothing
])
def test_engine_survives_garbage_on_its_socket(payload):
    import socket

    pid = client.request({"op": "ping"})["pid"]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(15)
    s.connect(str(paths.engine_socket()))
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    try:
        reply = s.recv(65536)
    except (ConnectionError, TimeoutError):
        reply = b""
    s.close()
    print(payload[:20], "->", reply[:200])
    assert client.request({"op": "ping"})["pid"] == pid  # the same engine still answers
    assert labkit.run("busybox", "true").exit_code == 0


def test_detached_oom_kill_is_recorded():
    ctr = labkit.run("busybox", ["sh", "-c", 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo ${#x}'],
                     detach=True, memory="32m")
    try:
        assert ctr.wait(timeout=60) == 137
        assert ctr.oom_killed is True
        assert ctr.inspect()["State"]["OOMKilled"] is True
    finally:
        ctr.remove(force=True)


def test_malformed_run_request_leaves_nothing_behind(labkit_home, container_dirs):
    """An attached run sent without its three stdio fds is refused before anything is made."""
    before = container_dirs()
    with pytest.raises(LabkitError) as info:
        client.request({"op": "run", "config": {"image": "busybox", "cmd": ["true"], "name": "sem-fds"}})
    print(info.value)
    assert info.value.exit_code == 125
    assert container_dirs() == before
    with pytest.raises(NotFound):
        labkit.get("sem-fds")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_attached_client_killed_means_container_killed_and_removed(labkit_home, sig):
    """Ctrl-C (or a kill -9) of `labkit run` must not leave the container running."""
    p = subprocess.Popen([LABKIT, "run", "--rm", "--name", "cliente-morto", "busybox", "sleep", "300"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(lambda: any(c.name == "cliente-morto" for c in labkit.containers()), 20)
        ctr = labkit.get("cliente-morto")
        pid = ctr.inspect()["State"]["Pid"]
        p.send_signal(sig)
        p.wait(20)
        print(f"client exit {p.returncode}")
        assert wait_until(lambda: not alive(pid)), "the container outlived its client"
        assert wait_until(lambda: not (Path(labkit_home) / "containers" / ctr.id).exists())
        assert cgroup_dirs(ctr.id) == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
