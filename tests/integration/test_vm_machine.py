"""labkit.vm.Machine: a second machine (a QEMU VM running labkit) fed by the host.

Each boot costs a few seconds of a core under TCG: the first test boots once and
checks the whole "máquina B" path (registry on the host -> pull in the guest ->
a container on a user network there, serving a shared host folder through a
forwarded port); the second checks what the guest can NOT reach and the statuses.
"""
from __future__ import annotations

import os
import socket
import urllib.request

import psutil
import pytest

import labkit
from labkit.errors import LabkitError
from labkit.vm import Machine

from requirements import needs_tool

pytestmark = [needs_tool("qemu-system-x86_64", package="qemu-system-x86"),
              needs_tool("docker-registry", package="docker-registry")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gone(m: Machine, pid: int) -> None:
    """Nothing of the machine is left: QEMU, its relays, its directory."""
    assert not m.running and not os.path.exists(m.dir)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    relays = [p for p in psutil.process_iter(["cmdline"]) if "relay.py" in " ".join(p.info["cmdline"] or [])
              and m.dir in " ".join(p.info["cmdline"] or [])]
    assert relays == []


@pytest.fixture
def registry():
    from labkit.course.registry import LocalRegistry

    reg = LocalRegistry()
    yield reg
    reg.close()


def test_machine_pulls_from_the_host_registry_and_serves_a_shared_folder(registry, tmp_path):
    pushed = labkit.push("busybox", f"{registry.host}/lab/busybox")
    www = tmp_path / "disco"
    www.mkdir()
    (www / "index.html").write_text("linhas da máquina A\n")
    port = free_port()
    with Machine("maquina-teste", shares=[str(www)], ports=[f"{port}:8000"],
                 forwards=[registry.host]) as m:
        pid = m.pid
        reg = m.forwarded[registry.host]
        assert reg.startswith("10.0.2.100:")
        r = m.python(f"""
import labkit
img = labkit.pull("{reg}/lab/busybox", secure=False)
print(img.digest)
labkit.network("rede-b")
w = labkit.run("{reg}/lab/busybox", ["sh", "-c", "echo escrito na B > /www/b.txt"],
               volumes=["{www}:/www"])
print("write", w.exit_code)
labkit.run("{reg}/lab/busybox", ["httpd", "-f", "-p", "8000", "-h", "/www"], name="web",
           detach=True, network="rede-b", volumes=["{www}:/www:ro"], ports=["8000:8000"])
""", timeout=300)
        assert r.exit_code == 0, r.output
        digest, write = r.output.split("\n")[:2]
        assert digest == pushed["digest"]  # the same bytes on both machines
        assert write == "write 0" and (www / "b.txt").read_text() == "escrito na B\n"
        for _ in range(100):  # the container's httpd may need a moment to listen
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=10) as resp:
                    body = resp.read().decode()
                break
            except OSError:
                pass
        assert body == "linhas da máquina A\n"
        facts = m.run("hostname; cat /proc/sys/kernel/random/boot_id; labkit ps --format '{{.Names}}'")
        name, boot_id, ps = facts.output.split("\n")[:3]
        with open("/proc/sys/kernel/random/boot_id") as f:
            assert (name, ps) == ("maquina-teste", "web") and boot_id != f.read().strip()
    gone(m, pid)


def test_restricted_network_failed_commands_and_a_clean_stop():
    forwarded, closed = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    for s in (forwarded, closed):
        s.settimeout(5)
    fport, cport = forwarded.getsockname()[1], closed.getsockname()[1]
    m = Machine("maquina-fechada", forwards=[f"127.0.0.1:{fport}"])
    pid = m.pid
    try:
        nc = "/run/labkit-vm/busybox nc -w 5"
        ok = m.run(f"echo por-aqui | {nc} 10.0.2.100 {fport}")
        conn, _a = forwarded.accept()
        assert ok.exit_code == 0 and conn.recv(100) == b"por-aqui\n"
        conn.close()
        # Without restrict=on, QEMU's user network takes 10.0.2.2 to the host's loopback: the
        # guest would reach every service listening there. With it, only the forwards.
        blocked = m.run(f"echo nao | {nc} 10.0.2.2 {cport}")
        assert blocked.exit_code != 0 and "10.0.2.2" in blocked.output
        with pytest.raises(socket.timeout):
            closed.accept()
        failed = m.run("echo antes; ls /nao-existe; exit 7")
        assert failed.exit_code == 7 and failed.output.startswith("antes\n") and "nao-existe" in failed.output
        py = m.python("import sys; print('py'); sys.exit(5)")
        assert (py.exit_code, py.output) == (5, "py\n")
        cli = m.run("labkit run --rm busybox-que-nao-existe true")
        assert cli.exit_code == 125 and "busybox-que-nao-existe" in cli.output  # pt-BR, Docker's 125
        assert m.run("sleep 30", timeout=1).exit_code == 137  # killed in the guest at its timeout
    finally:
        m.stop()
        forwarded.close()
        closed.close()
    gone(m, pid)
    with pytest.raises(LabkitError) as e:
        m.run("true")
    assert "não está ligada" in str(e.value)
    m.stop()  # twice is fine


def test_a_machine_that_cannot_start_says_why_and_leaves_nothing():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(LabkitError) as e:
            Machine("maquina-b", ports=[f"{port}:8000"])
    assert e.value.exit_code == 125 and "parou" in str(e.value) and str(port) in str(e.value)


def test_a_machine_dropped_without_stop_takes_its_qemu_along():
    import gc

    m = Machine("maquina-solta")
    pid, directory = m.pid, m.dir
    assert psutil.Process(pid).name().startswith("qemu")
    del m  # a notebook cell run again rebinds the name: the old machine must not linger
    gc.collect()
    assert not psutil.pid_exists(pid) and not os.path.exists(directory)
