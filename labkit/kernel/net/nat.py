"""labkit's nftables table: masquerade out of each network, DNAT for published ports.

Everything lives in one table, ``inet labkit``, and labkit never touches
another. Each network owns three base chains in it, named after the network
(``<id>-post``, ``<id>-pre``, ``<id>-out``): :func:`apply` adds them if
missing, flushes them and writes their rules in one atomic transaction, so
applying twice gives the same ruleset (after a restart, or after a host
firewall flushed ours). The rules, in ``nft`` syntax::

    postrouting: ip saddr SUBNET oifname != BRIDGE masquerade   # out to the world
                 ct status dnat oifname BRIDGE masquerade        # into a published port
    prerouting, output: fib daddr type local tcp dport 8080 dnat ip to 172.18.0.2:80

``ct status`` is a bit field: it is matched with ``in`` (nft's JSON
``"op": "=="`` there is an exact comparison and never fires).
The JSON goes through ``nft -j -f -`` (nftables' own JSON API).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess

from ...errors import LabkitError
from ...i18n import _

FAMILY, TABLE = "inet", "labkit"


LOCK = "/run/labkit/nft.lock"  # host-wide: every home's engine shares the table


@contextlib.contextmanager
def _locked():
    """One engine at a time in the table: :func:`remove` reads which chains are left before it
    deletes the table, and another home's engine must not add its chains in between."""
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _nft(commands: list[dict]) -> None:
    proc = subprocess.run(["nft", "-j", "-f", "-"], input=json.dumps({"nftables": commands}),
                          text=True, capture_output=True)
    if proc.returncode != 0:  # nft's own words (a missing kernel module, say) reach the user
        raise LabkitError(_("nft refused labkit's firewall rules: %(err)s")
                          % {"err": proc.stderr.strip() or f"exit {proc.returncode}"})


def ruleset() -> dict:
    """``nft -j list table inet labkit`` as a dict ({} when the table does not exist)."""
    proc = subprocess.run(["nft", "-j", "list", "table", FAMILY, TABLE], text=True, capture_output=True)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def _chain(name: str, hook: str | None = None, prio: int = 0) -> dict:
    chain = {"family": FAMILY, "table": TABLE, "name": name}
    if hook:
        chain.update(type="nat", hook=hook, prio=prio, policy="accept")
    return chain


def _rule(chain: str, *expr: dict) -> dict:
    return {"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": list(expr)}}}


def _eq(left: dict, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def chains(net_id: str) -> list[str]:
    return [f"{net_id}-post", f"{net_id}-pre", f"{net_id}-out"]


def apply(net_id: str, subnet: str, bridge: str, ports: list[dict]) -> None:
    """Write the network's chains: masquerade for ``subnet``, DNAT for each published port.

    ``ports``: ``{"proto": "tcp", "host_ip": "" | "127.0.0.1", "host_port": 8080,
    "ip": "172.18.0.2", "port": 80}``.
    """
    post, pre, out = chains(net_id)
    addr, length = subnet.split("/")
    oif = {"meta": {"key": "oifname"}}
    cmds: list[dict] = [{"add": {"table": {"family": FAMILY, "name": TABLE}}}]
    for name, hook, prio in ((post, "postrouting", 100), (pre, "prerouting", -100), (out, "output", -100)):
        cmds.append({"add": {"chain": _chain(name, hook, prio)}})
        cmds.append({"flush": {"chain": _chain(name)}})
    cmds.append(_rule(post, _eq({"payload": {"protocol": "ip", "field": "saddr"}},
                                {"prefix": {"addr": addr, "len": int(length)}}),
                      _eq(oif, bridge, "!="), {"masquerade": None}))
    cmds.append(_rule(post, _eq({"ct": {"key": "status"}}, "dnat", "in"), _eq(oif, bridge),
                      {"masquerade": None}))
    for p in ports:
        match = [_eq({"meta": {"key": "nfproto"}}, "ipv4"),
                 _eq({"fib": {"result": "type", "flags": ["daddr"]}}, "local")]
        if p.get("host_ip") and p["host_ip"] != "0.0.0.0":
            match.append(_eq({"payload": {"protocol": "ip", "field": "daddr"}}, p["host_ip"]))
        match.append(_eq({"payload": {"protocol": p["proto"], "field": "dport"}}, int(p["host_port"])))
        target = {"dnat": {"family": "ip", "addr": p["ip"], "port": int(p["port"])}}
        for chain in (pre, out):
            cmds.append(_rule(chain, *match, target))
    with _locked():
        _nft(cmds)


def remove(net_id: str) -> None:
    """Delete the network's chains; the table too once it holds no chain."""
    with _locked():
        have = {c["chain"]["name"] for c in ruleset().get("nftables", []) if "chain" in c}
        cmds = [{"delete": {"chain": _chain(name)}} for name in chains(net_id) if name in have]
        if cmds:
            _nft(cmds)
        if not have - set(chains(net_id)) and ruleset():
            _nft([{"delete": {"table": {"family": FAMILY, "name": TABLE}}}])
