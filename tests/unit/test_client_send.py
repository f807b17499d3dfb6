"""An engine that hangs up at once (another user's engine after its SO_PEERCRED check) must
be an error of 125 for `exec`/`run`, not the BrokenPipeError the CLI exits 0 on (`| head`)."""
from __future__ import annotations

import socket

import pytest

from labkit.engine import client
from labkit.errors import LabkitError


def test_send_to_an_engine_that_hung_up_is_a_labkit_error():
    ours, engine = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    engine.close()  # what the engine does to a peer of another uid
    try:
        with pytest.raises(LabkitError) as err:
            client.send(ours, {"op": "exec", "ref": "x", "cmd": ["true"]})
        assert err.value.exit_code == 125
    finally:
        ours.close()


def test_send_to_a_listening_engine_delivers_the_message():
    from labkit.engine import protocol

    ours, engine = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.send(ours, {"op": "ps"})
        msg, fds = protocol.recv(engine)
        assert (msg["op"], fds) == ("ps", [])
    finally:
        ours.close()
        engine.close()
