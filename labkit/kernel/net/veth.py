"""A veth pair per container endpoint: one end on the bridge, the other the container's ``ethN``.

The pair is made in the host's namespace; the peer is moved into the
container's network namespace (``/proc/PID/ns/net``), renamed, given its
address, and the default route goes through the gateway (pyroute2's
``NetNS`` runs the netlink calls inside that namespace).
"""
from __future__ import annotations

import os


def mac_for(address: str) -> str:
    """Docker's scheme: 02:42 and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))


def attach(bridge: str, host_name: str, netns: str, ifname: str, address: str, prefixlen: int,
           gateway: str | None, mtu: int) -> None:
    """Connect the namespace at path ``netns`` to ``bridge`` as ``ifname`` with ``address``."""
    from pyroute2 import IPRoute, NetNS

    peer = "lkp" + host_name[3:]
    with IPRoute() as ipr:
        ipr.link("add", ifname=host_name, kind="veth", peer=peer)
        try:
            host_idx = ipr.link_lookup(ifname=host_name)[0]
            ipr.link("set", index=host_idx, mtu=mtu, master=ipr.link_lookup(ifname=bridge)[0], state="up")
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                ipr.link("set", index=ipr.link_lookup(ifname=peer)[0], mtu=mtu, net_ns_fd=fd)
            finally:
                os.close(fd)
        except BaseException:
            ipr.link("del", index=ipr.link_lookup(ifname=host_name)[0])
            raise
    ns = NetNS(netns)
    try:
        idx = ns.link_lookup(ifname=peer)[0]
        ns.link("set", index=idx, ifname=ifname, address=mac_for(address))
        ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ns.link("set", index=idx, state="up")
        lo = ns.link_lookup(ifname="lo")
        if lo:
            ns.link("set", index=lo[0], state="up")
        if gateway:
            ns.route("add", dst="0.0.0.0/0", gateway=gateway)
    except BaseException:
        delete(host_name)
        raise
    finally:
        ns.close()


def delete(host_name: str) -> None:
    """Remove the pair by its host end (the peer goes with it); nothing if it is gone already."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=host_name)
        if found:
            ipr.link("del", index=found[0])
