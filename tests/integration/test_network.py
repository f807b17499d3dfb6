"""Bridge networks with real containers: names, published ports, cleanup, recovery.

Traffic stays on this machine: between containers on bridges these tests make,
and from the host's loopback to a published port. Nothing is sent outside (the
masquerade rule is read from the ruleset, never exercised).
"""
from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import time

import pytest

import labkit
from labkit.errors import LabkitError, NotFound
from labkit.kernel.net import bridge, nat
from tests.integration.labkit_cli import cli

SUBNET = "10.213.7.0/24"  # for the tests that give one: checked against the host's routes first


def free_subnet(subnet: str = SUBNET) -> str:
    net = ipaddress.ip_network(subnet)
    clash = [str(n) for n in bridge.host_networks() if n.overlaps(net)]
    if clash:
        pytest.skip(f"{subnet} overlaps a route or address of this host: {clash}")
    return subnet


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def net():
    """A user-defined network (automatic subnet) removed at the end, with every container on it."""
    made = labkit.network(f"rede{os.getpid()}")
    assert not any(ipaddress.ip_network(made.subnet).overlaps(n)
                   for n in bridge.host_networks() if str(n) != made.subnet)
    yield made
    for ctr in labkit.containers(all=True):
        if made.name in (ctr.inspect().get("NetworkSettings") or {}).get("Networks", {}) or \
                ctr.inspect()["HostConfig"]["NetworkMode"] == made.name:
            ctr.remove(force=True)
    try:
        made.remove()
    except NotFound:
        pass


def busybox(script: str, **kw):
    return labkit.run("busybox", ["sh", "-c", script], **kw)


def test_two_containers_reach_each_other_by_name_and_alias(net):
    srv = busybox("mkdir /www && echo ola-da-rede > /www/index.html && httpd -f -p 80 -h /www",
                  detach=True, network=net.name, name=f"srv{os.getpid()}", network_aliases=["db"])
    assert ipaddress.ip_address(srv.ip) in ipaddress.ip_network(net.subnet)
    r = busybox(f"nslookup db; nslookup {srv.name}; wget -q -O - http://db/; wget -q -O - http://{srv.name}/",
                network=net.name)
    print(r.stdout, r.stderr)
    assert r.exit_code == 0
    assert r.stdout.count(f"Address: {srv.ip}") == 2  # both names, answered by the network's DNS
    assert r.stdout.count("ola-da-rede") == 2


def test_names_files_like_docker(net):
    a = busybox("sleep 300", detach=True, network=net.name, hostname="alfa", add_hosts=["extra:10.1.2.3"])
    inode = int(a.exec(["stat", "-c", "%i", "/etc/hosts"]).stdout)
    b = busybox("sleep 300", detach=True, network=net.name)
    hosts = a.exec(["cat", "/etc/hosts"]).stdout
    resolv = a.exec(["cat", "/etc/resolv.conf"]).stdout
    print(hosts, resolv)
    assert f"{a.ip}\talfa" in hosts and "10.1.2.3\textra" in hosts
    assert any(line.startswith(f"{b.ip}\t{b.name}") for line in hosts.splitlines())  # the peer joined
    assert int(a.exec(["stat", "-c", "%i", "/etc/hosts"]).stdout) == inode  # rewritten in place
    assert resolv.splitlines()[0] == f"nameserver {net.gateway}"
    assert a.exec(["cat", "/etc/hostname"]).stdout == "alfa\n"
    b.remove(force=True)
    assert b.name not in a.exec(["cat", "/etc/hosts"]).stdout  # and left


def test_dns_flag_and_host_network_files():
    r = busybox("cat /etc/resolv.conf", network="bridge", dns=["192.0.2.53"])
    assert r.stdout.splitlines()[0] == "nameserver 192.0.2.53"
    with open("/etc/resolv.conf") as f:
        host_resolv = f.read()
    r = busybox("cat /etc/resolv.conf; echo x >> /etc/resolv.conf", network="host")
    assert r.stdout == host_resolv and r.exit_code != 0  # the host's file, read-only


def test_published_port_answers_on_loopback(net):
    port = free_port()
    ctr = busybox("while true; do echo ola-porta | nc -l -p 80; done", detach=True, network=net.name,
                  ports=[f"127.0.0.1:{port}:80"])
    assert ctr.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    got = b""
    for _attempt in range(50):  # nc restarts between connections: a refused connect is retried
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                got = s.recv(100)
            if got:
                break
        except OSError:
            pass
        time.sleep(0.1)
    assert got == b"ola-porta\n"
    assert cli("port", ctr.name).stdout == f"80/tcp -> 127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->80/tcp" in cli("ps").stdout


def test_rules_in_labkit_table(net):
    port = free_port()
    ctr = busybox("sleep 300", detach=True, network=net.name, ports=[f"{port}:80/tcp"])
    rules = [r["rule"] for r in nat.ruleset()["nftables"] if "rule" in r]
    mine = [r for r in rules if r["chain"].startswith(net.id[:12])]
    text = json.dumps(mine)
    addr, length = net.subnet.split("/")
    assert json.dumps({"prefix": {"addr": addr, "len": int(length)}}) in text
    assert sum("masquerade" in json.dumps(r["expr"]) for r in mine) == 2
    dnat = [r for r in mine if any("dnat" in e for e in r["expr"])]
    assert len(dnat) == 2 and all(f'"addr": "{ctr.ip}", "port": 80' in json.dumps(r["expr"]) for r in dnat)
    ctr.remove(force=True)
    rules = [r["rule"] for r in nat.ruleset()["nftables"] if "rule" in r]
    assert not [r for r in rules if r["chain"].startswith(net.id[:12]) and any("dnat" in e for e in r["expr"])]


def test_port_in_use_is_refused_before_anything_is_made(net, container_dirs):
    before = container_dirs()
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
        with pytest.raises(LabkitError) as info:
            busybox("true", network=net.name, ports=[f"{port}:80"])
    assert info.value.exit_code == 125 and str(port) in str(info.value)
    assert container_dirs() == before


@pytest.mark.parametrize("args, words", [
    (["network", "create", "nome ruim!"], "nome de rede"),
    (["network", "create", "x1", "--subnet", "127.99.0.0/16"], "sobrepõe"),
    (["network", "create", "x2", "--subnet", SUBNET, "--gateway", "10.99.0.1"], "gateway"),
    (["network", "create", "x3", "--subnet", "10.213.7.0/33"], "sub-rede inválida"),
    (["run", "--rm", "--network", "bridge", "-p", "70000:80", "busybox", "true"], "porta inválida"),
    (["run", "--rm", "--network", "bridge", "-p", "abc", "busybox", "true"], "porta inválida"),
    (["run", "--rm", "--network", "rede-que-nao-existe", "busybox", "true"], "não encontrada"),
])
def test_bad_input_is_refused_in_portuguese(args, words, container_dirs):
    free_subnet()
    before = (container_dirs(), sorted(n.name for n in labkit.networks()))
    r = cli(*args)
    assert r.returncode == 125 and words in r.stderr, r.stderr
    assert (container_dirs(), sorted(n.name for n in labkit.networks())) == before


def test_ip_outside_taken_connect_twice_and_in_use(container_dirs):
    net = labkit.network(f"fixa{os.getpid()}", subnet=free_subnet(), gateway="10.213.7.254")
    try:
        before = container_dirs()
        for ip, words in (("10.213.8.5", "não pode ser usado"), ("10.213.7.254", "não pode ser usado")):
            r = cli("run", "--rm", "--network", net.name, "--ip", ip, "busybox", "true")
            assert r.returncode == 125 and words in r.stderr, r.stderr
        a = busybox("sleep 300", detach=True, network=net.name, ip="10.213.7.10")
        assert a.ip == "10.213.7.10" and a.inspect()["NetworkSettings"]["Networks"][net.name]["Gateway"] == \
            "10.213.7.254"
        r = cli("run", "--rm", "--network", net.name, "--ip", "10.213.7.10", "busybox", "true")
        assert r.returncode == 125 and "já está em uso" in r.stderr
        r = cli("network", "connect", net.name, a.name)
        assert r.returncode == 125 and "já está conectado" in r.stderr
        r = cli("network", "rm", net.name)
        assert r.returncode != 0 and "em uso" in r.stderr
        assert net.inspect()["Containers"][a.id]["IPv4Address"] == "10.213.7.10/24"
        a.remove(force=True)
        assert container_dirs() == before
    finally:
        net.remove()
    assert not bridge.exists(net.bridge)


def test_connect_and_disconnect_a_running_container(net):
    other = labkit.network(f"outra{os.getpid()}")
    made = []
    try:
        a = busybox("sleep 300", detach=True, network=net.name)
        made.append(a)
        other.connect(a, aliases=["segundo"])
        assert a.exec(["ls", "/sys/class/net"]).stdout.split() == ["eth0", "eth1", "lo"]
        second = a.inspect()["NetworkSettings"]["Networks"][other.name]["IPAddress"]
        assert ipaddress.ip_address(second) in ipaddress.ip_network(other.subnet)
        b = busybox("sleep 300", detach=True, network=other.name)
        made.append(b)
        assert f"Address: {second}" in b.exec(["nslookup", "segundo"]).stdout
        other.disconnect(a)
        assert a.exec(["ls", "/sys/class/net"]).stdout.split() == ["eth0", "lo"]
    finally:
        for ctr in made:
            ctr.remove(force=True)
        other.remove()


def test_engine_kill_and_restart_rebuild_rules_without_duplicates(net):
    from labkit.engine import client

    port = free_port()
    ctr = busybox("while true; do echo de-volta | nc -l -p 80; done", detach=True, network=net.name,
                  ports=[f"127.0.0.1:{port}:80"])
    gone = busybox("sleep 300", detach=True, network=net.name)
    gone_veth = gone.inspect()["NetworkSettings"]["Networks"][net.name]["labkitHostInterface"]

    def rules():
        return sorted(json.dumps(r["rule"]["expr"]) for r in nat.ruleset()["nftables"]
                      if "rule" in r and r["rule"]["chain"].startswith(net.id[:12]))

    before = rules()
    gone_pid = gone.pid
    pid = client.request({"op": "ping"})["pid"]
    os.kill(pid, signal.SIGKILL)
    os.kill(gone_pid, signal.SIGKILL)  # exits while no engine runs: its lease must be dropped
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert labkit.get(ctr.id).status == "running"  # a new engine, which adopted it
    assert gone.status == "exited"
    after = rules()
    assert after == before  # the same rules, not twice
    assert not bridge.exists(gone_veth)
    from labkit import paths

    assert os.listdir(paths.home() / "networks" / net.id / "leases") == [ctr.ip]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert s.recv(100) == b"de-volta\n"
    gone.remove()


@pytest.mark.parametrize("mode", ["host", "net"])
def test_build_run_steps_get_the_network_names(mode, net):
    """``RUN`` of ``labkit build --network host`` sees the host's resolv.conf (the issue's apt-get case);
    on a user network it finds a peer by name."""
    from labkit.images.store import Store

    network = "host" if mode == "host" else net.name
    peer = ""
    if mode == "net":
        peer = busybox("sleep 300", detach=True, network=net.name, name=f"par{os.getpid()}").name
    dockerfile = ("FROM busybox\n"
                  f"RUN cp /etc/resolv.conf /copia && {'nslookup ' + peer + ' > /achou' if peer else 'true'}\n")
    ref = f"itest/net-{mode}:1"
    labkit.build(dockerfile=dockerfile, tag=ref, network=network, no_cache=True, quiet=True)
    try:
        r = labkit.run(ref, ["sh", "-c", "cat /copia; cat /achou 2>/dev/null || true"])
        if mode == "host":
            with open("/etc/resolv.conf") as f:
                assert r.stdout == f.read()
        else:
            assert r.stdout.startswith(f"nameserver {net.gateway}\n") and f"Name:\t{peer}" in r.stdout
    finally:
        Store().remove(ref)


def test_publish_all_uses_the_image_expose(net):
    from labkit.images.store import Store

    ref = "itest/net-expose:1"
    labkit.build(dockerfile="FROM busybox\nEXPOSE 80 53/udp\n", tag=ref, quiet=True)
    try:
        ctr = labkit.run(ref, ["sleep", "300"], detach=True, network=net.name, publish_all=True)
        ports = ctr.ports
        assert sorted(ports) == ["53/udp", "80/tcp"]
        assert all(int(b[0]["HostPort"]) > 0 for b in ports.values())
        shown = cli("port", ctr.id).stdout.splitlines()
        assert shown == [f"{k} -> 0.0.0.0:{ports[k][0]['HostPort']}" for k in sorted(ports)]
        ctr.remove(force=True)
    finally:
        Store().remove(ref)


def test_network_figure_shows_bridge_veths_and_names(net):
    a = busybox("sleep 300", detach=True, network=net.name, network_aliases=["cache"])
    b = busybox("sleep 300", detach=True, network=net.name)
    fig = net.figure()
    texts = "\n".join(t.get_text() for t in fig.axes[0].texts)
    for want in (net.bridge, net.subnet, net.gateway, a.name, "cache", a.ip, b.name, b.ip,
                 a.inspect()["NetworkSettings"]["Networks"][net.name]["labkitHostInterface"]):
        assert want in texts


def test_default_bridge_like_docker_files_no_names_and_not_removable():
    """``run`` with no network goes to ``bridge``: an address there, its own three name files,
    the host's resolvers minus loopback ones, no names of its peers (Docker's default bridge has
    no DNS by name), and ``bridge`` cannot be removed nor pruned."""
    from labkit.engine.names import usable_nameservers
    from labkit.engine.dns import resolv_conf

    a = busybox("sleep 300", detach=True, hostname="alfa")
    b = busybox("while true; do echo ola-bridge | nc -l -p 7000; done", detach=True)
    default = labkit.get_network("bridge")
    assert a.inspect()["HostConfig"]["NetworkMode"] == "bridge"
    for c in (a, b):
        assert ipaddress.ip_address(c.ip) in ipaddress.ip_network(default.subnet)
    assert "bridge" in [n.name for n in labkit.networks()]
    assert {a.id, b.id} <= set(default.inspect()["Containers"])
    hosts = a.exec(["cat", "/etc/hosts"]).stdout
    resolv = a.exec(["cat", "/etc/resolv.conf"]).stdout
    print(hosts, resolv)
    assert f"{a.ip}\talfa" in hosts and b.name not in hosts and b.ip not in hosts
    assert a.exec(["cat", "/etc/hostname"]).stdout == "alfa\n"
    servers = [line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver")]
    assert servers == usable_nameservers(resolv_conf("nameserver"))
    assert not any(s.startswith("127.") or s == "::1" for s in servers)
    got = a.exec(["sh", "-c", f"for i in $(seq 50); do nc {b.ip} 7000 && break; sleep 0.1; done"]).stdout
    assert "ola-bridge" in got  # by address, over the bridge
    r = cli("network", "rm", "bridge")
    assert r.returncode == 1 and "predefinida" in r.stderr, r.stderr
    assert "bridge" not in labkit.prune_networks()
    assert labkit.get_network("bridge").id == default.id
    a.remove(force=True)
    b.remove(force=True)


def test_build_run_steps_default_to_the_bridge():
    from labkit.images.store import Store

    ref = "itest/net-default:1"
    labkit.build(dockerfile="FROM busybox\nRUN ls /sys/class/net > /redes\n", tag=ref, no_cache=True, quiet=True)
    try:
        r = labkit.run(ref, ["cat", "/redes"], network="none")
        assert r.stdout.split() == ["eth0", "lo"]
    finally:
        Store().remove(ref)
