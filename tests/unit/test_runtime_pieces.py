"""Pure pieces of the runtime: wire format, volume specs, path resolution, records."""
from __future__ import annotations

import os
import socket

import pytest

from labkit.api import parse_volume
from labkit.engine import protocol
from labkit.engine.state import Record, process_start_time, random_name
from labkit.errors import LabkitError
from labkit.kernel.openat2 import open_in_root


def test_protocol_carries_json_and_fds(tmp_path):
    a, b = socket.socketpair()
    path = tmp_path / "f"
    path.write_text("olá")
    fd = os.open(path, os.O_RDONLY)
    protocol.send(a, {"op": "x", "texto": "ção"}, [fd])
    msg, fds = protocol.recv(b)
    assert msg["op"] == "x" and msg["texto"] == "ção"
    assert msg["lang"] in ("pt_BR", "en")  # requests carry the client's language
    assert len(fds) == 1 and os.read(fds[0], 10).decode() == "olá"
    # a second message without fds on the same connection
    protocol.send(a, {"n": 2})
    assert protocol.recv(b) == ({"n": 2}, [])
    for f in (fd, *fds):
        os.close(f)
    a.close()
    with pytest.raises(ConnectionError):
        protocol.recv(b)


def test_parse_volume(tmp_path):
    m = parse_volume(f"{tmp_path}:/data")
    assert (m["type"], m["source"], m["target"], m["readonly"]) == ("bind", str(tmp_path), "/data", False)
    m = parse_volume(f"{tmp_path}:/data:ro")
    assert (m["type"], m["source"], m["target"], m["readonly"]) == ("bind", str(tmp_path), "/data", True)
    with pytest.raises(LabkitError, match="absolut"):
        parse_volume(f"{tmp_path}:data")
    with pytest.raises(LabkitError, match="não existe|does not exist"):
        parse_volume("/nao/existe/mesmo:/data")
    with pytest.raises(LabkitError):
        parse_volume("a:b:c:d")


def test_open_in_root_never_leaves_the_root(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "data").symlink_to(outside)            # absolute symlink to a host dir
    (root / "up").symlink_to("../../..")           # relative climb
    (root / "etc").mkdir()
    (root / "conf").symlink_to("/etc")             # absolute, but meant inside the image
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # data -> <host dir>: the link is followed *inside* the root (as Docker's securejoin does)
        fd = open_in_root(root_fd, "/data/sub", create="dir")
        made = os.readlink(f"/proc/self/fd/{fd}")
        os.close(fd)
        assert made == str(root) + str(outside) + "/sub", made
        assert not (outside / "sub").exists()
        fd = open_in_root(root_fd, "/conf/sub", create="dir")
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "etc" / "sub")
        os.close(fd)
        fd = open_in_root(root_fd, "/up/etc", create="dir")
        assert os.readlink(f"/proc/self/fd/{fd}") == str(root / "etc")
        os.close(fd)
        with pytest.raises(OSError):
            open_in_root(root_fd, "/data", symlinks=False)
    finally:
        os.close(root_fd)


def test_record_roundtrip(tmp_path):
    rec = Record(tmp_path, {"Id": "abc", "Name": "n", "State": {"Status": "running", "Pid": 5},
                            "Cgroup": "labkit/abc"})
    rec.save()
    back = Record.load(tmp_path)
    assert back.id == "abc" and back.running and back.pid == 5 and back.cgroup_name == "labkit/abc"
    assert Record.load(tmp_path / "missing") is None


def test_names_and_start_time():
    assert random_name(set()).count("_") >= 1
    assert process_start_time(os.getpid()) == process_start_time(os.getpid()) is not None
    assert process_start_time(2**22 + 1) is None
