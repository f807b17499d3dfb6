"""A veth pair per container endpoint: one end on the bridge, the other the container's ``ethN``.

The pair is made in the host's namespace with its peer created directly in
the container's network namespace (``/proc/PID/ns/net``) under its final
name and MAC; the address, ``lo`` and the default route through the gateway
are set by a netlink socket opened *inside* that namespace: a short thread
``setns()``s there and opens it (a thread's network namespace is its own,
so the engine's other threads stay on the host). pyroute2's own
``IPRoute(netns=...)`` forks a helper process per socket, about 25 ms
more per start.
"""
from __future__ import annotations

import os
import threading


def mac_for(address: str) -> str:
    """Docker's scheme: 02:42 and the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))


def in_netns(netns: str, fn):
    """Run ``fn()`` in a thread that has joined the network namespace at path ``netns``."""
    from ..namespaces import CLONE_NEWNET, setns

    out: dict = {}

    def body() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            out["error"] = exc

    t = threading.Thread(target=body, name="labkit-netns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def attach(bridge: str, host_name: str, netns: str, ifname: str, address: str, prefixlen: int,
           gateway: str | None, mtu: int) -> None:
    """Connect the namespace at path ``netns`` to ``bridge`` as ``ifname`` with ``address``."""
    from pyroute2 import IPRoute

    # one request makes the pair: the host end up on the bridge, the peer born in the container's
    # namespace under its final name (nothing else is there yet) with its MAC and MTU
    with IPRoute() as ipr:
        fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, master=ipr.link_lookup(ifname=bridge)[0],
                     state="up", peer={"ifname": ifname, "net_ns_fd": fd, "address": mac_for(address), "mtu": mtu})
        finally:
            os.close(fd)

    def inside() -> None:
        with IPRoute() as ns:
            idx = ns.link_lookup(ifname=ifname)[0]
            ns.addr("add", index=idx, address=address, prefixlen=prefixlen)
            ns.link("set", index=idx, state="up")
            lo = ns.link_lookup(ifname="lo")
            if lo:
                ns.link("set", index=lo[0], state="up")
            if gateway:
                ns.route("add", dst="0.0.0.0/0", gateway=gateway)

    try:
        in_netns(netns, inside)
    except BaseException:
        delete(host_name)
        raise


def delete(host_name: str) -> None:
    """Remove the pair by its host end (the peer goes with it); nothing if it is gone already."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=host_name)
        if found:
            ipr.link("del", index=found[0])
