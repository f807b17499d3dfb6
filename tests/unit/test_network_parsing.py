"""Pure parts of networking: -p parsing, --add-host, subnet choice and leases (no root)."""
from __future__ import annotations

import ipaddress

import pytest

from labkit.engine import ipam
from labkit.errors import LabkitError
from labkit.spec import parse_add_hosts, parse_port, parse_ports


@pytest.mark.parametrize("spec, want", [
    ("8080:80", {"proto": "tcp", "host_ip": "", "host_port": 8080, "port": 80}),
    ("127.0.0.1:8080:80/udp", {"proto": "udp", "host_ip": "127.0.0.1", "host_port": 8080, "port": 80}),
    ("80", {"proto": "tcp", "host_ip": "", "host_port": 0, "port": 80}),
    ("127.0.0.1::80", {"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 0, "port": 80}),
])
def test_parse_port_like_docker(spec, want):
    assert parse_port(spec) == want


@pytest.mark.parametrize("spec", ["70000:80", "abc", "8080:0", "8080:80/sctp", "1.2.3:80:80", "a:b:c:d", ""])
def test_parse_port_refuses(spec):
    with pytest.raises(LabkitError) as info:
        parse_port(spec)
    assert info.value.exit_code == 125


def test_parse_ports_from_a_dict():
    assert parse_ports({"80/tcp": 8080}) == [{"proto": "tcp", "host_ip": "", "host_port": 8080, "port": 80}]


def test_add_hosts():
    assert parse_add_hosts(["db:10.0.0.5"]) == ["db:10.0.0.5"]
    with pytest.raises(LabkitError):
        parse_add_hosts(["db"])


def test_choose_subnet_skips_what_the_host_has():
    taken = [ipaddress.ip_network("172.17.0.0/16"), ipaddress.ip_network("172.18.5.0/24")]
    net, gw = ipam.choose_subnet(taken)
    assert str(net) == "172.19.0.0/16" and str(gw) == "172.19.0.1"


@pytest.mark.parametrize("subnet, gateway", [("10.0.0.0/8", None), ("10.9.0.0/33", None),
                                             ("10.9.0.1/24", None), ("10.9.0.0/24", "10.9.1.1"),
                                             ("10.9.0.0/24", "10.9.0.255")])
def test_choose_subnet_refuses(subnet, gateway):
    with pytest.raises(LabkitError):
        ipam.choose_subnet([ipaddress.ip_network("10.1.0.0/16")], subnet, gateway)


def test_leases(tmp_path):
    leases = ipam.Leases(tmp_path / "leases", "10.9.0.0/29", "10.9.0.1")
    assert leases.take("a") == "10.9.0.2"
    assert leases.take("b", "10.9.0.6") == "10.9.0.6"
    for bad in ("10.9.0.6", "10.9.0.1", "10.9.0.7", "10.9.1.2", "x"):
        with pytest.raises(LabkitError):
            leases.take("c", bad)
    assert [leases.take(c) for c in "cde"] == ["10.9.0.3", "10.9.0.4", "10.9.0.5"]
    with pytest.raises(LabkitError):
        leases.take("f")
    leases.release("10.9.0.3")
    assert leases.all() == {"10.9.0.2": "a", "10.9.0.4": "d", "10.9.0.5": "e", "10.9.0.6": "b"}


@pytest.mark.parametrize("name", ["bad name", "-x", "", "a/b", "x" * 70])
def test_network_names(name):
    with pytest.raises(LabkitError):
        ipam.check_name(name)
