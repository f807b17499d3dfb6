"""labkit.vm.machine and .hostroot without booting: the command line (a closed user
network, the forwards), the initramfs, the relay, and bad input refused before anything
exists."""
from __future__ import annotations

import glob
import os
import socket
import sys
import tempfile
import threading

import pytest

from labkit.errors import LabkitError
from labkit.vm import hostroot, machine, relay

from test_vm import parse_newc


def test_ports_are_host_guest_pairs():
    assert machine.parse_ports(["8080:8000", "9000", 7000]) == [(8080, 8000), (9000, 9000), (7000, 7000)]
    for bad in ("8080:", "a:80", "0:80", "70000:80", "1:2:3"):
        with pytest.raises(LabkitError) as e:
            machine.parse_ports([bad])
        assert e.value.exit_code == 125 and "HOSPEDEIRO:CONVIDADO" in str(e.value)


def test_forwards_go_only_to_loopback():
    assert machine.parse_forwards(["127.0.0.1:5000", "localhost:6000"]) == [
        ("127.0.0.1", 5000), ("127.0.0.1", 6000)]
    for bad in ("10.0.0.1:5000", "example.org:443", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:0"):
        with pytest.raises(LabkitError) as e:
            machine.parse_forwards([bad])
        assert "só encaminha para o loopback" in str(e.value)


def test_user_network_is_restricted_with_explicit_forwards_only():
    argv = machine.netdev([(8080, 8000)], [("127.0.0.1", 5000)], "/v/bin/python")
    assert argv[0] == "-netdev" and argv[2:] == ["-device", "virtio-net-pci,netdev=net0"]
    opts = argv[1].split(",")
    assert opts[:4] == ["user", "id=net0", "restrict=on", "net=10.0.2.0/24"]
    assert "hostfwd=tcp:127.0.0.1:8080-10.0.2.15:8000" in opts  # the host side: loopback only
    fwd = [o for o in opts if o.startswith("guestfwd=")]
    assert fwd == [f"guestfwd=tcp:10.0.2.100:5000-cmd:/v/bin/python -I {machine.RELAY} 127.0.0.1 5000"]
    assert len(opts) == 6  # nothing else opens the network


def test_commas_in_paths_are_escaped_for_qemu():
    argv = machine.netdev([], [("127.0.0.1", 1)], "/a,b/python")
    assert "cmd:/a,,b/python" in argv[1]
    share = hostroot.qemu_args([("/x,y", "rw"), ("/ro", "ro")])
    assert "local,id=rw0,path=/x,,y,security_model=none,multidevs=remap" in share
    assert any(a.startswith("local,id=rw1,path=/ro,") and a.endswith(",readonly=on") for a in share)
    assert share[:2] == ["-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"]


def test_shares_are_real_paths_read_only_first(tmp_path):
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "d", tmp_path / "link")
    assert hostroot.shares(rw=[str(tmp_path / "link")], ro=["/srv"]) == [
        ("/srv", "ro"), (str(tmp_path / "d"), "rw")]


def test_initrd_holds_init_stage2_files_shares_and_net_modules(tmp_path):
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF static")
    (tmp_path / "9.9" / "k").mkdir(parents=True)
    (tmp_path / "9.9" / "modules.dep").write_text(
        "k/virtio_net.ko: k/net_failover.ko\nk/net_failover.ko:\nk/overlay.ko:\n")
    for m in ("virtio_net", "net_failover", "overlay"):
        (tmp_path / "9.9" / "k" / f"{m}.ko").write_bytes(m.encode())
    arc = hostroot.initrd(str(bb), "9.9", "echo stage2", {"env.sh": b"export A=1\n"},
                          [("/ro", "ro"), ("/chan", "rw")], hostroot.MODULES + hostroot.NET_MODULES,
                          modroot=str(tmp_path))
    files = parse_newc(arc)
    assert files["init"][0] == 0o100755 and files["init"][1].startswith(b"#!/bin/busybox sh")
    assert files["vm/stage2"][1] == b"echo stage2" and files["vm/env.sh"][1] == b"export A=1\n"
    assert files["rw.list"][1] == b"rw0 /ro ro\nrw1 /chan rw\n"
    assert files["modules.list"][1] == b"overlay.ko\nnet_failover.ko\nvirtio_net.ko"
    init = files["init"][1].decode()
    assert f"exec switch_root $R {hostroot.DIR}/busybox sh {hostroot.DIR}/stage2" in init


def test_stage2_names_the_machine_and_polls_the_channel():
    assert "$B hostname @NAME@" in machine.STAGE2 and "ip addr add @IP@/24 dev eth0" in machine.STAGE2
    # a command file is renamed before it runs (never twice), its status written last
    s = machine.STAGE2
    assert s.index('$B mv "$f" "$n.sh"') < s.index('/bin/sh "$n.sh"') < s.index('$B mv "$n.st" "$n.status"')


def test_guest_env_puts_this_venv_first_and_its_own_home(monkeypatch):
    monkeypatch.setenv("LABKIT_LANG", "pt_BR")
    env = machine.guest_env("/run/labkit", {"X": "1"})
    assert env["PATH"].split(":")[0] == os.path.dirname(sys.executable)
    assert env["LABKIT_HOME"] == "/run/labkit" and env["X"] == "1" and env["LABKIT_LANG"] == "pt_BR"


@pytest.mark.parametrize("kw, words", [
    ({"name": "máquina b"}, "nome de máquina inválido"),
    ({"shares": ["/no/such/dir"]}, "não é uma pasta"),
    ({"ports": ["80:x"]}, "mapeamento de porta inválido"),
    ({"forwards": ["192.0.2.1:80"]}, "só encaminha para o loopback"),
])
def test_bad_input_is_refused_before_anything_exists(kw, words, monkeypatch):
    monkeypatch.setenv("LABKIT_QEMU", "qemu-that-is-never-reached")  # refused before the lookup
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "labkit-machine-*")))
    args = {"name": kw.pop("name", "b"), **kw}
    with pytest.raises(LabkitError) as e:
        machine.Machine(args.pop("name"), **args)
    assert e.value.exit_code == 125 and words in str(e.value)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "labkit-machine-*"))) == before


def test_relay_copies_both_ways_and_ends_with_either_side():
    srv = socket.create_server(("127.0.0.1", 0))
    got = []

    def echo_upper():
        conn, _a = srv.accept()
        with conn:
            data = conn.recv(100)
            got.append(data)
            conn.sendall(data.upper())  # then closes: the relay must end
    t = threading.Thread(target=echo_upper)
    t.start()
    guest, qemu_end = socket.socketpair()  # what libslirp gives the command as stdin/stdout
    sock = socket.create_connection(srv.getsockname())
    guest.sendall(b"hello")
    relay.relay(qemu_end.fileno(), qemu_end.fileno(), sock)  # returns: the server closed
    t.join()
    assert got == [b"hello"] and guest.recv(100) == b"HELLO"
    for s in (guest, qemu_end, sock, srv):
        s.close()


def test_code_below_tmp_or_run_is_shared_again_outermost_only(tmp_path):
    assert hostroot.under_tmpfs(["/work/p/.venv", "/tmp/ci/p/.venv", "/tmp/ci/p", "/run/x", "/tmpfoo"]) == [
        "/run/x", "/tmp/ci/p"]
