"""A Linux bridge per network, and what the host already has (addresses, routes, MTU).

Through netlink (pyroute2's ``IPRoute``), as ``ip link add ... type bridge``
would. The bridge holds the network's gateway address, so the host routes the
subnet to it. ``ip_forward`` is switched on while a labkit bridge exists and
put back as it was when the last one goes.
"""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

PREFIX = "lkbr-"  # every labkit bridge's name starts so: forwarding is restored after the last
FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
SAVED = Path("/run/labkit/ip_forward.saved")  # host-wide: several engines (homes) share the kernel


def _ipr():
    from pyroute2 import IPRoute

    return IPRoute()


def index(name: str) -> int | None:
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
    return found[0] if found else None


def exists(name: str) -> bool:
    return index(name) is not None


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the host has an address in or a route to (the default route aside)."""
    nets = []
    with _ipr() as ipr:
        for a in ipr.get_addr(family=2):
            nets.append(ipaddress.ip_network(f"{a.get_attr('IFA_ADDRESS')}/{a['prefixlen']}", strict=False))
        for r in ipr.get_routes(family=2, table=254):
            dst = r.get_attr("RTA_DST")
            if dst and r["dst_len"] > 0:
                nets.append(ipaddress.ip_network(f"{dst}/{r['dst_len']}", strict=False))
    return nets


def default_mtu() -> int:
    """The MTU of the default route's device (a veth's 1500 may not fit the way out)."""
    with _ipr() as ipr:
        for r in ipr.get_routes(family=2, table=254):
            if r["dst_len"] == 0 and r.get_attr("RTA_OIF"):
                link = ipr.get_links(r.get_attr("RTA_OIF"))[0]
                return int(link.get_attr("IFLA_MTU"))
    return 1500


def create(name: str, gateway: str, prefixlen: int, mtu: int) -> None:
    """Make the bridge ``name`` with the gateway address, up; idempotent."""
    with _ipr() as ipr:
        if not ipr.link_lookup(ifname=name):
            ipr.link("add", ifname=name, kind="bridge")
        idx = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=idx, mtu=mtu)
        have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx, family=2)}
        if gateway not in have:
            ipr.addr("add", index=idx, address=gateway, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
    # 127.0.0.1 -> a container (a port published on the loopback) leaves through this bridge:
    # the kernel drops such packets unless route_localnet is on, here only, not host-wide.
    _write(Path(f"/proc/sys/net/ipv4/conf/{name}/route_localnet"), "1")
    enable_forwarding()


def delete(name: str) -> None:
    """Remove the bridge (its veths' host ends are detached by the kernel); then maybe forwarding."""
    with _ipr() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])
    restore_forwarding()


def labkit_bridges() -> list[str]:
    """Every labkit bridge on the host, of any home."""
    with _ipr() as ipr:
        names = [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()]
    return [n for n in names if n and n.startswith(PREFIX)]


def enable_forwarding() -> None:
    """Routing between the bridge and the host's interfaces; the value found is kept to put back."""
    if not SAVED.exists():
        SAVED.parent.mkdir(parents=True, exist_ok=True)
        SAVED.write_text(FORWARD.read_text().strip())
    _write(FORWARD, "1")


def restore_forwarding() -> None:
    """Put ``ip_forward`` back as it was, once no labkit bridge is left on the host."""
    if labkit_bridges() or not SAVED.exists():
        return
    _write(FORWARD, SAVED.read_text().strip() or "0")
    SAVED.unlink()


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
