"""Addresses for bridge networks: a subnet that collides with nothing, leases inside it.

Docker's and podman's shape: a network gets a subnet from a pool (Docker's
172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/20 ...) unless one is given,
skipping every network the host already has an address in or a route to, and
every subnet of another labkit network. The gateway is the subnet's first
address; a container gets the next free one. A lease is a file
``$LABKIT_HOME/networks/<id>/leases/<ip>`` holding the container's id (as CNI's
host-local plugin keeps them), so a restarted engine reads them back.
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
from pathlib import Path

from ..errors import Conflict, LabkitError
from ..i18n import _

NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}")
HOST_LOCK = Path("/run/labkit/subnets.lock")  # host-wide: every home's engine picks from one pool


@contextlib.contextmanager
def host_lock():
    """Held from choosing a subnet until its bridge holds the gateway address: two engines
    (two homes) making a network at the same moment would otherwise both pick the first free
    subnet of the pool (each sees the other's bridge only once it exists)."""
    HOST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def pool() -> list[ipaddress.IPv4Network]:
    return ([ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)]
            + [ipaddress.ip_network(f"192.168.{n}.0/20") for n in range(0, 256, 16)])


def check_name(name: str) -> None:
    if not NAME.fullmatch(name or ""):
        raise LabkitError(_('invalid network name "%(name)s": use letters, digits, "_", "." and "-", '
                            "starting with a letter or digit") % {"name": name})


def choose_subnet(taken: list[ipaddress.IPv4Network], subnet: str | None = None,
                  gateway: str | None = None) -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]:
    """The network's subnet and gateway: checked if given, else the first free one of the pool."""
    if subnet:
        try:
            net = ipaddress.ip_network(subnet, strict=True)
        except ValueError:
            raise LabkitError(_("invalid subnet: %(subnet)s (use an IPv4 network such as 172.30.0.0/24)")
                              % {"subnet": subnet}) from None
        if net.version != 4 or net.prefixlen > 30:
            raise LabkitError(_("invalid subnet: %(subnet)s (use an IPv4 network such as 172.30.0.0/24)")
                              % {"subnet": subnet})
        for other in taken:
            if net.overlaps(other):
                raise Conflict(_("subnet %(subnet)s overlaps %(other)s, already in use on this host")
                               % {"subnet": net, "other": other}, exit_code=125)
    else:
        if gateway:
            raise LabkitError(_("--gateway needs --subnet"))
        net = next((n for n in pool() if not any(n.overlaps(o) for o in taken)), None)
        if net is None:
            raise LabkitError(_("no free subnet left in the address pool; give one with --subnet"))
    if gateway:
        try:
            gw = ipaddress.ip_address(gateway)
        except ValueError:
            gw = None
        if gw is None or gw not in net or gw in (net.network_address, net.broadcast_address):
            raise LabkitError(_("gateway %(gw)s is not a usable address of subnet %(subnet)s")
                              % {"gw": gateway, "subnet": net})
    else:
        gw = net.network_address + 1
    return net, gw


class Leases:
    """The addresses given out in one network: files named after the address."""

    def __init__(self, directory: Path, subnet: str, gateway: str) -> None:
        self.dir = directory
        self.net = ipaddress.ip_network(subnet)
        self.gateway = ipaddress.ip_address(gateway)

    def all(self) -> dict[str, str]:
        """address -> container id."""
        if not self.dir.exists():
            return {}
        return {p.name: p.read_text().strip() for p in self.dir.iterdir()}

    def take(self, cid: str, wanted: str | None = None) -> str:
        held = self.all()
        if wanted:
            try:
                ip = ipaddress.ip_address(wanted)
            except ValueError:
                ip = None
            if ip is None or ip not in self.net or ip in (self.net.network_address, self.net.broadcast_address,
                                                          self.gateway):
                raise LabkitError(_("address %(ip)s is not usable in subnet %(subnet)s")
                                  % {"ip": wanted, "subnet": self.net})
            if str(ip) in held:
                raise Conflict(_("address %(ip)s is already in use") % {"ip": wanted}, exit_code=125)
        else:
            ip = next((h for h in self.net.hosts() if h != self.gateway and str(h) not in held), None)
            if ip is None:
                raise LabkitError(_("no free address left in subnet %(subnet)s") % {"subnet": self.net})
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / str(ip)).write_text(cid)
        return str(ip)

    def release(self, ip: str) -> None:
        (self.dir / ip).unlink(missing_ok=True)
