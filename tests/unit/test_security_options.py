"""Capability names and sets (Docker's rules), ``--device`` parsing and the eBPF device
program's shape; no root needed. The program itself runs in tests/integration/test_devices.py."""
from __future__ import annotations

import struct

import pytest

from labkit.errors import LabkitError
from labkit.kernel import capabilities as caps
from labkit.kernel.cgroups import devices
from labkit.spec import parse_device


def test_capability_names_in_docker_spellings():
    assert caps.normalize("net_raw") == caps.normalize("CAP_NET_RAW") == "NET_RAW"
    assert caps.normalize("all") == "ALL"
    with pytest.raises(ValueError):
        caps.normalize("CAP_NOPE")


def test_resolve_follows_moby_tweak_capabilities():
    assert caps.resolve() == sorted(caps.DEFAULT, key=caps.NAMES.index)
    assert caps.resolve(["NET_RAW"], ["ALL"]) == ["NET_RAW"]
    assert caps.resolve([], ["ALL"]) == []
    everything = caps.resolve(["ALL"], ["SYS_ADMIN"])
    assert "SYS_ADMIN" not in everything and "SYS_MODULE" in everything
    assert len(everything) == caps.last_cap()  # all but one
    got = caps.resolve(["MKNOD", "KILL"], ["CHOWN", "KILL"])  # an added one wins
    assert "MKNOD" in got and "KILL" in got and "CHOWN" not in got


@pytest.mark.parametrize("spec, want", [
    ("/dev/fuse", ["/dev/fuse", "/dev/fuse", "rwm"]),
    ("/dev/sda:/dev/xvda", ["/dev/sda", "/dev/xvda", "rwm"]),
    ("/dev/sda:/dev/xvda:r", ["/dev/sda", "/dev/xvda", "r"]),
    ("/dev/sda:mw", ["/dev/sda", "/dev/sda", "mw"]),
])
def test_parse_device(spec, want):
    assert parse_device(spec) == want


@pytest.mark.parametrize("spec", ["dev/sda", "/dev/sda:/dev/x:rwx", "/dev/a:/dev/b:/dev/c", "/dev/sda:"])
def test_parse_device_refuses(spec):
    with pytest.raises(LabkitError) as info:
        parse_device(spec)
    assert info.value.exit_code == 125


def test_device_rules_in_v1_syntax():
    assert str(devices.Rule("c", 136, None)) == "c 136:* rwm"
    assert str(devices.Rule("b", None, None, "m")) == "b *:* m"


def test_ebpf_program_shape():
    code = devices.program(devices.DEFAULT_RULES)
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert len(code) % 8 == 0
    assert insns[-1][0] == devices.EXIT and insns[-2] == (devices.MOV64_K, 0, 0, 0)  # deny
    # every jump lands inside the program, on the first instruction of a later rule or the deny
    for pc, (op, _regs, off, _imm) in enumerate(insns):
        if op in (devices.JNE_K, devices.JNE_X):
            assert pc + off + 1 < len(insns) and off >= 0
    # an allow-all rule ends the program (the verifier refuses unreachable code)
    short = devices.program([devices.Rule("a", None, None), devices.Rule("c", 1, 3)])
    assert struct.unpack("<BBhi", short[-8:])[0] == devices.EXIT and len(short) == 8 * 8
