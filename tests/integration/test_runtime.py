"""The runtime, through the Python API: real containers on the real kernel.

Each test asserts one concrete property of ``labkit.run`` / ``Container``
(exit codes, stdio, env, volumes, namespaces, lifecycle, exec, limits) and
removes every container it makes (the ``no_leftovers`` fixture checks).
"""
from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

import pytest

import labkit
from labkit.errors import NotFound
from polling import wait_until as wait_for  # tests/integration/polling.py

pytestmark = pytest.mark.root

NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup")


def sh(script: str, **kw) -> labkit.Result:
    return labkit.run("busybox", ["sh", "-c", script], **kw)


# -- a first run -------------------------------------------------------------------------


def test_echo_ola_utf8():
    r = labkit.run("busybox", "echo olá")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "olá\n", "")


@pytest.mark.parametrize("code", [0, 1, 2, 3, 42, 126, 255])
def test_exit_code_passes_through(code):
    assert sh(f"exit {code}").exit_code == code


def test_exit_code_of_a_signalled_process_is_128_plus_signal():
    # PID 1 ignores signals it has no handler for, so kill a child and exit with its status
    r = sh("sh -c 'kill -KILL $$'; echo child=$?")
    assert r.stdout == "child=137\n"


def test_stdout_and_stderr_are_separate():
    r = sh("echo to-out; echo to-err >&2; echo more-out; echo more-err >&2; exit 4")
    assert r.exit_code == 4
    assert r.stdout == "to-out\nmore-out\n"
    assert r.stderr == "to-err\nmore-err\n"


def test_large_output_is_complete():
    r = sh("head -c 3000000 /dev/zero | tr '\\0' x")
    assert len(r.stdout) == 3_000_000 and set(r.stdout) == {"x"}


def test_stdin_reaches_the_container():
    r = labkit.run("busybox", ["sh", "-c", "tr a-z A-Z"], stdin="olá mundo\n")
    assert r.stdout == "OLá MUNDO\n"


def test_env_is_set_and_path_defaults():
    r = sh('echo "$FOO|$EMPTY|$PATH|$HOME"', env={"FOO": "bar baz", "EMPTY": ""})
    foo, empty, path, home = r.stdout.rstrip("\n").split("|")
    assert foo == "bar baz" and empty == ""
    assert "/bin" in path.split(":") and home == "/root"
    r = sh('echo "$A-$B"', env=["A=1", "B=dois"])
    assert r.stdout == "1-dois\n"


def test_host_environment_does_not_leak_in(monkeypatch):
    monkeypatch.setenv("LABKIT_TEST_SECRET", "host-only")
    r = sh("env")
    assert "LABKIT_TEST_SECRET" not in r.stdout
    assert "LABKIT_HOME" not in r.stdout


def test_workdir():
    assert sh("pwd", workdir="/tmp").stdout == "/tmp\n"
    assert sh("pwd").stdout == "/\n"


def test_hostname_given_and_default_differs_from_host():
    assert sh("hostname", hostname="lab-01").stdout == "lab-01\n"
    r = sh("hostname; echo $HOSTNAME", remove=False)
    try:
        name, env_name = r.stdout.split()
        print(f"default hostname {name!r}, host {socket.gethostname()!r}")
        assert name != socket.gethostname()
        assert name == env_name == r.id[:12]
    finally:
        labkit.get(r.id).remove()


def test_pid_1_is_the_command():
    r = sh("echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls -d /proc/[0-9]* | wc -l")
    pid, cmdline, nprocs = r.stdout.splitlines()
    assert pid == "1"
    assert cmdline.strip().startswith("sh -c echo $$")
    print(f"processes visible inside: {nprocs.strip()}")
    assert int(nprocs) <= 3  # sh, ls (and wc's sibling at most): none of the host's


def test_user_runs_with_that_uid():
    r = labkit.run("busybox", ["id"], user="1000:1000")
    assert r.stdout.startswith("uid=1000 gid=1000")
    r = labkit.run("busybox", ["sh", "-c", "id -u; grep CapEff /proc/self/status"], user="1000")
    uid, capeff = r.stdout.splitlines()
    assert uid == "1000" and capeff.split()[1] == "0000000000000000"


# -- volumes -------------------------------------------------------------------------------


def test_volume_read_write(tmp_path: Path):
    (tmp_path / "from-host.txt").write_text("host data\n")
    r = sh("cat /data/from-host.txt; echo 'container data' > /data/from-container.txt",
           volumes=[f"{tmp_path}:/data"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "host data\n"
    assert (tmp_path / "from-container.txt").read_text() == "container data\n"


def test_volume_read_only(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("original\n")
    r = sh("cat /data/keep.txt; echo changed > /data/keep.txt; echo rc=$?; touch /data/new; echo rc=$?",
           volumes=[f"{tmp_path}:/data:ro"])
    assert r.stdout.splitlines() == ["original", "rc=1", "rc=1"]
    assert "Read-only file system" in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "original\n"
    assert sorted(os.listdir(tmp_path)) == ["keep.txt"]
    # the read-only flag is on the bind mount inside, not on the host
    mountinfo = sh("cat /proc/self/mountinfo", volumes=[f"{tmp_path}:/data:ro"]).stdout
    line = next(ln for ln in mountinfo.splitlines() if ln.split()[4] == "/data")
    assert "ro" in line.split()[5].split(",")
    assert os.access(tmp_path, os.W_OK)


def test_volume_dict_form_and_file_volume(tmp_path: Path):
    f = tmp_path / "one.conf"
    f.write_text("x=1\n")
    r = sh("cat /etc/one.conf; ls /cfg", volumes={str(f): "/etc/one.conf",
                                                 str(tmp_path): {"bind": "/cfg", "mode": "ro"}})
    assert r.stdout == "x=1\none.conf\n"


def test_volume_target_created_in_container_not_in_image(tmp_path: Path):
    r = sh("ls -d /a/b/c", volumes=[f"{tmp_path}:/a/b/c"], remove=False)
    try:
        assert r.exit_code == 0
    finally:
        labkit.get(r.id).remove()


# -- namespaces -------------------------------------------------------------------------------


def test_namespaces_differ_from_the_host(detached):
    ctr = detached()
    pid = ctr.pid
    differ = {}
    for ns in NAMESPACES + ("user",):
        host, inside = os.readlink(f"/proc/self/ns/{ns}"), os.readlink(f"/proc/{pid}/ns/{ns}")
        differ[ns] = host != inside
        print(f"{ns:7} host {host:24} container {inside}")
    assert all(differ[ns] for ns in NAMESPACES), differ
    assert not differ["user"]  # no user namespace (rootful, as podman's default)


def test_two_containers_do_not_share_namespaces(detached):
    a, b = detached(), detached()
    pa, pb = a.pid, b.pid
    for ns in NAMESPACES:
        assert os.readlink(f"/proc/{pa}/ns/{ns}") != os.readlink(f"/proc/{pb}/ns/{ns}"), ns


def test_only_loopback_and_it_is_up():
    r = sh("ls /sys/class/net; ip -o link; ip -o addr show lo", network="none")
    lines = r.stdout.splitlines()
    assert lines[0] == "lo", r.stdout  # the only interface
    links = [ln for ln in lines if ": <" in ln and "link/" in ln]
    assert len(links) == 1 and "lo:" in links[0]
    assert "UP" in links[0].split("<")[1].split(">")[0].split(","), links[0]
    assert any("127.0.0.1/8" in ln for ln in lines), r.stdout
    host_ifaces = set(os.listdir("/sys/class/net"))
    print(f"host interfaces {sorted(host_ifaces)}; container: lo")


def test_loopback_works_inside():
    r = sh("nc -l -p 5555 > /tmp/got & "
           "for i in $(seq 50); do echo olá | nc -w1 127.0.0.1 5555 2>/dev/null && break; sleep 0.1; done; "
           "wait; cat /tmp/got")
    assert r.stdout.endswith("olá\n"), (r.stdout, r.stderr)


def test_ipc_namespace_is_private():
    assert sh("cat /proc/sysvipc/shm | wc -l").stdout.strip() == "1"  # only the header


# -- detached lifecycle -------------------------------------------------------------------------


def test_detached_ps_logs_stop_rm(labkit_home):
    ctr = labkit.run("busybox", ["sh", "-c", "echo started; echo warn >&2; sleep 300"],
                     detach=True, name="ciclo-de-vida")
    try:
        assert ctr.name == "ciclo-de-vida"
        assert ctr.status == "running" and ctr.pid > 0
        assert ctr.id in [c.id for c in labkit.containers()]
        assert wait_for(lambda: "started" in ctr.logs() and "warn" in ctr.logs()), ctr.logs()
        state_dir = Path(labkit_home) / "containers" / ctr.id
        assert state_dir.is_dir()
        t0 = time.monotonic()
        ctr.stop(timeout=1)
        took = time.monotonic() - t0
        print(f"stop(timeout=1) took {took:.2f} s, exit code {ctr.exit_code}")
        assert ctr.status == "exited"
        assert ctr.exit_code in (137, 143)
        assert ctr.id not in [c.id for c in labkit.containers()]
        assert ctr.id in [c.id for c in labkit.containers(all=True)]
        assert "started" in labkit.get("ciclo-de-vida").logs()  # logs survive the exit
        assert state_dir.is_dir()
    finally:
        ctr.remove(force=True)
    assert not state_dir.exists()
    with pytest.raises(NotFound):
        labkit.get(ctr.id)


def test_stop_of_a_process_handling_sigterm_gives_its_own_code(detached):
    ctr = detached("trap 'echo bye; exit 143' TERM; echo ready; while :; do sleep 0.1; done")
    assert wait_for(lambda: "ready" in ctr.logs(), timeout=20), (ctr.logs(), ctr.inspect()["State"])
    ctr.stop(timeout=5)
    assert ctr.exit_code == 143
    assert "bye" in ctr.logs()


def test_wait_returns_the_exit_code(detached):
    ctr = detached("sleep 0.2; exit 9")
    assert ctr.wait(timeout=20) == 9
    assert ctr.status == "exited" and ctr.exit_code == 9


def test_kill_with_a_signal(detached):
    ctr = detached()
    ctr.kill()
    assert ctr.wait(timeout=20) == 137


def test_attached_run_with_remove_false_keeps_the_container(labkit_home):
    r = sh("echo kept > /kept.txt", remove=False)
    ctr = labkit.get(r.id)
    try:
        assert ctr.status == "exited" and ctr.exit_code == 0
        assert (ctr.upper_dir / "kept.txt").read_text() == "kept\n"
    finally:
        ctr.remove()
    assert not (Path(labkit_home) / "containers" / r.id).exists()


def test_attached_run_removes_the_container_by_default(labkit_home, container_dirs):
    before = container_dirs()
    r = sh("true")
    assert r.exit_code == 0
    assert container_dirs() == before
    with pytest.raises(NotFound):
        labkit.get(r.id)


def test_timeout_kills_an_attached_container():
    from labkit.errors import LabkitError

    with pytest.raises(LabkitError) as info:
        sh("sleep 300", timeout=0.5)
    assert info.value.exit_code == 124  # killed for the timeout: it did not end by itself


# -- exec ----------------------------------------------------------------------------------------


def test_exec_runs_in_the_same_namespaces(detached):
    ctr = detached("echo marker > /tmp/marker; sleep 300")
    assert wait_for(lambda: (ctr.upper_dir / "tmp" / "marker").exists())
    pid = ctr.pid
    script = "; ".join(f"readlink /proc/self/ns/{ns}" for ns in NAMESPACES)
    r = ctr.exec(["sh", "-c", script])
    assert r.exit_code == 0, r.stderr
    inside = r.stdout.split()
    expected = [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES]
    assert inside == expected
    assert ctr.exec("cat /tmp/marker").stdout == "marker\n"
    # it sees the container's PID 1 and is not PID 1 itself
    r = ctr.exec(["sh", "-c", "echo $$; cat /proc/1/cmdline | tr '\\0' ' '"])
    own, init = r.stdout.splitlines()
    assert own != "1" and init.strip() == "sleep 300"  # busybox sh execs its last command


def test_exec_exit_code_stdio_env_workdir(detached):
    ctr = detached()
    r = ctr.exec(["sh", "-c", "echo out; echo err >&2; echo $X; pwd; exit 5"], env={"X": "y"},
                 workdir="/etc")
    assert (r.exit_code, r.stdout, r.stderr) == (5, "out\ny\n/etc\n", "err\n")


def test_exec_is_in_the_container_cgroup_and_caps(detached):
    ctr = detached()
    r = ctr.exec(["sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"])
    fields = dict(line.split(":\t") for line in r.stdout.splitlines())
    assert fields == {"CapEff": "00000000800405fb", "CapBnd": "00000000800405fb", "NoNewPrivs": "1"}
    r = ctr.exec(["sh", "-c", "cat /proc/self/cgroup; echo ==; cat /proc/1/cgroup"])
    own, init = r.stdout.split("==\n")
    print(own)
    assert own == init  # the exec'd process is in the container's cgroups
    assert all(line.endswith(":/") for line in own.splitlines())  # seen through the cgroup namespace


# -- cgroup limits ----------------------------------------------------------------------------------


def _v1_file(cgroup, ctrl_file: str) -> str | None:
    for path in cgroup.paths():
        candidate = os.path.join(path, ctrl_file)
        if os.path.exists(candidate):
            with open(candidate) as f:
                return f.read().strip()
    return None


def test_update_memory_shows_in_the_cgroup(detached):
    ctr = detached()
    assert ctr.cgroup.stats()["memory_limit"] is None
    limits = labkit.get(ctr.name).update(memory="64m")
    assert limits["memory"] == 64 * 2**20
    stats = ctr.cgroup.stats()
    print(f"memory_limit after update: {stats['memory_limit']}")
    assert stats["memory_limit"] == 64 * 2**20
    raw = _v1_file(ctr.cgroup, "memory.limit_in_bytes") or _v1_file(ctr.cgroup, "memory.max")
    assert raw == str(64 * 2**20)
    assert ctr.inspect()["HostConfig"]["Limits"]["memory"] == 64 * 2**20


def test_default_pids_limit_is_2048(detached):
    ctr = detached()
    assert ctr.cgroup.stats()["pids_limit"] == 2048


def test_container_pid_is_in_its_cgroup(detached):
    ctr = detached()
    assert ctr.pid in ctr.cgroup.pids()
    assert ctr.cgroup.name == f"labkit/{ctr.id}"


def test_memory_limit_oom_kill_exits_137_with_oomkilled():
    r = labkit.run("busybox", ["sh", "-c", 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo $x | wc -c'],
                   memory="32m", remove=False)
    try:
        ctr = labkit.get(r.id)
        state = ctr.inspect()["State"]
        print(f"exit {r.exit_code}, OOMKilled {state['OOMKilled']}, stdout {r.stdout!r}")
        assert r.exit_code == 137
        assert r.oom_killed is True
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
        assert "104857600" not in r.stdout
    finally:
        labkit.get(r.id).remove()


def test_memory_limit_not_hit_means_no_oom():
    r = labkit.run("busybox", ["sh", "-c", "x=$(head -c 4m /dev/zero | tr '\\0' a); echo ${#x}"],
                   memory="64m", remove=False)
    try:
        assert r.exit_code == 0 and r.stdout == "4194304\n"
        assert labkit.get(r.id).inspect()["State"]["OOMKilled"] is False
    finally:
        labkit.get(r.id).remove()


def test_pids_limit_stops_a_fork_loop(detached):
    # ash gives up at the first failed fork, so the loop runs in a child shell; its
    # sleeps stay behind (orphans of PID 1), and PID 1 then execs without forking.
    ctr = detached("sh -c 'for i in $(seq 60); do sleep 300 & done'; echo inner-exit=$?; exec sleep 300",
                   pids_limit=20)
    assert wait_for(lambda: "inner-exit=" in ctr.logs(), timeout=30), ctr.logs()
    stats = ctr.cgroup.stats()
    events = _v1_file(ctr.cgroup, "pids.events")
    print(f"pids.current {stats['pids_current']} (limit {stats['pids_limit']}); pids.events {events!r}; "
          f"log: {ctr.logs().strip()!r}")
    assert stats["pids_limit"] == 20
    assert 15 <= stats["pids_current"] <= 20  # it forked up to the limit, and no further
    assert "can't fork" in ctr.logs()
    assert "inner-exit=0" not in ctr.logs()
    if events is not None:
        assert int(events.split()[-1]) >= 1  # "max N": the limit was hit
    assert len(ctr.cgroup.pids()) <= 20
    assert labkit.run("busybox", "true").exit_code == 0  # the host and other containers are fine


# -- network modes and live output ------------------------------------------------------------------


def test_network_host_shares_only_the_net_namespace(detached):
    ctr = detached(network="host")
    pid = ctr.pid
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net")
    for ns in ("pid", "mnt", "uts", "ipc", "cgroup"):
        assert os.readlink(f"/proc/{pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    inside = set(ctr.exec("ls /sys/class/net").stdout.split())
    print(f"network=host sees {sorted(inside)}")
    assert inside == set(os.listdir("/sys/class/net"))
    # still no CAP_NET_ADMIN (bit 12): it cannot reconfigure the host's network
    capeff = ctr.exec(["sh", "-c", "grep CapEff /proc/self/status"]).stdout.split()[1]
    assert int(capeff, 16) & (1 << 12) == 0
    assert ctr.inspect()["HostConfig"]["NetworkMode"] == "host"


def test_network_bridge_is_the_default_none_has_only_lo_and_unknown_is_refused():
    from labkit.errors import LabkitError

    r = sh("ls /sys/class/net; ip -o -4 addr show eth0; ip route")
    assert r.stdout.split()[:2] == ["eth0", "lo"], r.stdout  # Docker's default: the bridge network
    bridge = labkit.get_network("bridge")
    addr = r.stdout.split(" inet ")[1].split()[0]
    assert ipaddress.ip_interface(addr).network == ipaddress.ip_network(bridge.subnet)
    assert f"default via {bridge.gateway} dev eth0" in r.stdout
    assert sh("ls /sys/class/net", network="none").stdout == "lo\n"
    with pytest.raises(LabkitError) as info:
        sh("true", network="bridge-que-nao-existe")
    assert info.value.exit_code == 125 and "bridge-que-nao-existe" in str(info.value)


def test_live_stdout_and_stderr_streams(tmp_path: Path):
    out, err = tmp_path / "out", tmp_path / "err"
    with open(out, "w") as fo, open(err, "w") as fe:
        r = sh("echo linha-1; echo problema >&2; echo linha-2; exit 6", stdout=fo, stderr=fe)
    assert r.exit_code == 6
    assert out.read_text() == "linha-1\nlinha-2\n"
    assert err.read_text() == "problema\n"


def test_exec_as_another_user_has_no_capabilities(detached):
    ctr = detached()
    r = ctr.exec(["sh", "-c", "id -u; grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status"], user="1000")
    lines = r.stdout.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split()[1] == "0000000000000000" and lines[2].split()[1] == "0000000000000000"
    assert lines[3].split()[1] == "1"
