"""The DNS server of user-defined networks: container names and aliases, on the gateway's port 53.

Docker answers at 127.0.0.11 inside each container; netavark's aardvark-dns
listens on the gateway, which is what labkit does: one UDP socket per
network, in the engine's loop. A question about a container of that network
(its name, an alias, its short id) is answered from the engine's records;
any other is forwarded, unchanged, to the host's own resolvers
(``/etc/resolv.conf``), and their answer is passed back. Packets are read and
written with dnslib, not by hand.
"""
from __future__ import annotations

import selectors
import socket
import traceback

PORT = 53
FORWARD_TIMEOUT = 5.0


class Dns:
    """The DNS part of :class:`~labkit.engine.server.Engine`."""

    def _dns_start(self, net: dict) -> None:
        if net["Id"] in self.dns_socks:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((net["IPAM"]["Config"][0]["Gateway"], PORT))
        self.dns_socks[net["Id"]] = s
        self.sel.register(s, selectors.EVENT_READ, ("dns", net["Name"]))

    def _dns_stop(self, net_id: str) -> None:
        s = self.dns_socks.pop(net_id, None)
        if s is not None:
            self.sel.unregister(s)
            s.close()

    def _dns_names(self, network: str) -> dict[str, str]:
        names = {}
        for rec in self.records.values():
            ep = (rec.data.get("NetworkSettings") or {}).get("Networks", {}).get(network)
            if rec.running and ep:
                for n in ep.get("DNSNames") or []:
                    names[n.lower()] = ep["IPAddress"]
        return names

    def on_dns(self, sock: socket.socket, network: str) -> None:
        from dnslib import QTYPE, RR, A, DNSRecord

        try:
            data, client = sock.recvfrom(4096)
            query = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - not a DNS packet
            return
        qname = str(query.q.qname).rstrip(".").lower()
        names = self._dns_names(network)
        short = qname.split(".")[0]
        ip = names.get(qname) or (names.get(short) if "." in qname and qname.split(".", 1)[1] in _search() else None)
        if ip is not None:
            reply = query.reply()
            if query.q.qtype in (QTYPE.A, QTYPE.ANY):
                reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(ip), ttl=600))
            sock.sendto(reply.pack(), client)
            return
        upstream = [s for s in _nameservers() if not s.startswith("127.")]
        if not upstream:
            reply = query.reply()
            reply.header.rcode = 2  # SERVFAIL
            sock.sendto(reply.pack(), client)
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        try:
            up.sendto(data, (upstream[0], PORT))
        except OSError:
            up.close()
            return
        self.sel.register(up, selectors.EVENT_READ, ("dnsup", (sock, client)))
        self.later(FORWARD_TIMEOUT, lambda: self._dns_up_close(up))

    def on_dns_upstream(self, up: socket.socket, where) -> None:
        sock, client = where
        try:
            data = up.recv(65536)
            sock.sendto(data, client)
        except OSError:
            traceback.print_exc()
        self._dns_up_close(up)

    def _dns_up_close(self, up: socket.socket) -> None:
        if up.fileno() < 0:
            return
        try:
            self.sel.unregister(up)
        except (KeyError, ValueError):
            pass
        up.close()


def resolv_conf(key: str) -> list[str]:
    """The values of ``key`` lines (nameserver, search, options) in the host's ``/etc/resolv.conf``."""
    out = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] == key:
                    out.extend(parts[1:])
    except OSError:
        pass
    return out


def _nameservers() -> list[str]:
    return resolv_conf("nameserver")


def _search() -> list[str]:
    return resolv_conf("search")
