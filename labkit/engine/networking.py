"""Bridge networks: create, list, remove, connect; a container's endpoints and names.

A network is ``$LABKIT_HOME/networks/<id>/network.json`` (what ``network
inspect`` shows) plus its leases (:mod:`.ipam`). On the host it is a bridge
``lkbr-<id>``, three chains in labkit's nftables table
(:mod:`labkit.kernel.net.nat`) and, for user-defined networks, a DNS
server on the gateway's port 53 (:mod:`.dns`). ``bridge`` is made on first use,
as Docker's default network; like Docker's, it has no DNS by name.

``bridge`` is also the default network of ``run`` (and of a build's ``RUN``).
A container on a bridge network usually starts from the spare (:mod:`.spare`),
whose network namespace exists already: the veth is plugged in there when the
spare is claimed. Without a spare its namespace comes from a *holder* (a forked
process that only ``unshare()``s ``CLONE_NEWNET`` and waits): the veth is
configured there, then the container's PID 1 ``setns()``s into it before its
root is built. Either way its command starts with ``eth0`` ready. Its name
files are :mod:`.names`'.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import traceback

from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from ..kernel.net import bridge, nat, veth
from . import ipam
from .netns import holder, release_holder
from .state import now

DEFAULT = "bridge"
SPECIAL = ("none", "host")


class Networking:
    """The network operations of :class:`~labkit.engine.server.Engine`."""

    # -- state ------------------------------------------------------------------------------
    @property
    def ndir(self):
        return self.home / "networks"

    def _networks(self) -> dict[str, dict]:
        out = {}
        if self.ndir.exists():
            for d in sorted(self.ndir.iterdir()):
                try:
                    out[d.name] = json.loads((d / "network.json").read_text())
                except (OSError, ValueError):
                    continue
        return out

    def _net_find(self, ref: str, create_default: bool = True) -> dict:
        nets = self._networks()
        for n in nets.values():
            if ref in (n["Name"], n["Id"]):
                return n
        matches = [n for i, n in nets.items() if len(ref) >= 3 and i.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if ref == DEFAULT and create_default:
            return self._net_create(DEFAULT)
        raise NotFound(_("network %(name)s not found") % {"name": ref})

    def _leases(self, net: dict) -> ipam.Leases:
        cfg = net["IPAM"]["Config"][0]
        return ipam.Leases(self.ndir / net["Id"] / "leases", cfg["Subnet"], cfg["Gateway"])

    def _endpoints(self, net: dict) -> list[tuple[object, dict]]:
        """(record, endpoint) of every running container on ``net``."""
        out = []
        for rec in self.records.values():
            ep = (rec.data.get("NetworkSettings") or {}).get("Networks", {}).get(net["Name"])
            if ep and rec.running and ep.get("IPAddress"):
                out.append((rec, ep))
        return out

    # -- networks ---------------------------------------------------------------------------
    def _net_create(self, name: str, subnet: str | None = None, gateway: str | None = None,
                    labels: dict | None = None) -> dict:
        if name in SPECIAL or (name != DEFAULT and name in {n["Name"] for n in self._networks().values()}):
            raise Conflict(_("network with name %(name)s already exists") % {"name": name}, exit_code=125)
        ipam.check_name(name)
        with ipam.host_lock():
            return self._net_make(name, subnet, gateway, labels)

    def _net_make(self, name: str, subnet: str | None, gateway: str | None, labels: dict | None) -> dict:
        taken = bridge.host_networks() + [ipaddress.ip_network(n["IPAM"]["Config"][0]["Subnet"])
                                          for n in self._networks().values()]
        net, gw = ipam.choose_subnet(taken, subnet, gateway)
        nid = secrets.token_hex(32)
        doc = {"Name": name, "Id": nid, "Created": now(), "Scope": "local", "Driver": "bridge",
               "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": {},
                                             "Config": [{"Subnet": str(net), "Gateway": str(gw)}]},
               "Internal": False, "Attachable": False, "Ingress": False,
               "Options": {"com.docker.network.bridge.name": "lkbr-" + nid[:10],
                           "com.docker.network.driver.mtu": str(bridge.default_mtu())},
               "Labels": labels or {}}
        d = self.ndir / nid
        d.mkdir(parents=True)
        tmp = d / "network.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        try:
            self._net_up(doc)
        except BaseException:
            self._net_down(doc)
            shutil.rmtree(d, ignore_errors=True)
            raise
        os.replace(tmp, d / "network.json")
        return doc

    def _net_up(self, net: dict) -> None:
        """Bridge, rules and DNS of ``net``; idempotent (also the recovery after a restart)."""
        cfg = net["IPAM"]["Config"][0]
        br = net["Options"]["com.docker.network.bridge.name"]
        bridge.create(br, cfg["Gateway"], int(cfg["Subnet"].split("/")[1]),
                      int(net["Options"]["com.docker.network.driver.mtu"]))
        self._net_rules(net)
        if net["Name"] != DEFAULT:
            try:
                self._dns_start(net)
            except OSError:  # port 53 of the gateway taken: names still work through /etc/hosts
                traceback.print_exc()

    def _net_rules(self, net: dict) -> None:
        ports = []
        for rec, ep in self._endpoints(net):
            for p in rec.data["HostConfig"].get("labkitPorts") or []:
                ports.append({**p, "ip": ep["IPAddress"]})
        nat.apply(net["Id"][:12], net["IPAM"]["Config"][0]["Subnet"],
                  net["Options"]["com.docker.network.bridge.name"], ports)

    def _net_down(self, net: dict) -> None:
        self._dns_stop(net["Id"])
        for step in (lambda: nat.remove(net["Id"][:12]),
                     lambda: bridge.delete(net["Options"]["com.docker.network.bridge.name"])):
            try:
                step()
            except Exception:  # noqa: BLE001 - remove what can be removed
                traceback.print_exc()

    def _net_remove(self, net: dict) -> None:
        if net["Name"] in (*SPECIAL, DEFAULT):
            raise LabkitError(_("%(name)s is a pre-defined network and cannot be removed") % {"name": net["Name"]},
                              exit_code=1)
        users = [r.name for r, _ep in self._endpoints(net)]
        if users:
            raise Conflict(_("network %(name)s is in use by container(s) %(users)s: remove them or "
                             "disconnect them first") % {"name": net["Name"], "users": ", ".join(users)}, exit_code=1)
        self._net_down(net)
        shutil.rmtree(self.ndir / net["Id"], ignore_errors=True)

    def _net_view(self, net: dict) -> dict:
        view = dict(net)
        view["Containers"] = {rec.id: {"Name": rec.name, "EndpointID": ep["EndpointID"],
                                       "MacAddress": ep["MacAddress"],
                                       "IPv4Address": f"{ep['IPAddress']}/{ep['IPPrefixLen']}", "IPv6Address": ""}
                              for rec, ep in self._endpoints(net)}
        return view

    def op_network_create(self, msg, fds, conn):
        net = self._net_create(msg["name"], msg.get("subnet"), msg.get("gateway"), msg.get("labels"))
        return {"ok": True, "network": net}

    def op_network_ls(self, msg, fds, conn):
        self._net_find(DEFAULT)
        return {"ok": True, "networks": [self._net_view(n) for n in self._networks().values()]}

    def op_network_inspect(self, msg, fds, conn):
        return {"ok": True, "network": self._net_view(self._net_find(msg["ref"]))}

    def op_network_rm(self, msg, fds, conn):
        if msg["ref"] in (*SPECIAL, DEFAULT):  # made on demand or not: never removed (Docker's rule)
            self._net_remove({"Name": msg["ref"]})
        net = self._net_find(msg["ref"], create_default=False)
        self._net_remove(net)
        return {"ok": True, "name": net["Name"]}

    def op_network_prune(self, msg, fds, conn):
        removed = []
        for net in list(self._networks().values()):
            if net["Name"] != DEFAULT and not self._endpoints(net):
                self._net_remove(net)
                removed.append(net["Name"])
        return {"ok": True, "removed": removed}

    def op_network_connect(self, msg, fds, conn):
        rec = self.find(msg["container"])
        net = self._net_find(msg["network"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        if rec.data["HostConfig"]["NetworkMode"] in SPECIAL:
            raise LabkitError(_("container %(name)s uses network %(mode)s and cannot join another")
                              % {"name": rec.name, "mode": rec.data["HostConfig"]["NetworkMode"]})
        if net["Name"] in rec.data["NetworkSettings"]["Networks"]:
            raise Conflict(_("container %(name)s is already connected to network %(net)s")
                           % {"name": rec.name, "net": net["Name"]}, exit_code=125)
        ifname = f"eth{len(rec.data['NetworkSettings']['Networks'])}"
        self._attach(rec, net, f"/proc/{rec.pid}/ns/net", ifname, msg.get("ip"), msg.get("aliases") or [],
                     default_route=False)
        rec.save()
        self._names_changed(net)
        self._net_rules(net)
        return {"ok": True}

    def op_network_disconnect(self, msg, fds, conn):
        rec = self.find(msg["container"])
        net = self._net_find(msg["network"], create_default=False)
        if net["Name"] not in (rec.data.get("NetworkSettings") or {}).get("Networks", {}):
            raise LabkitError(_("container %(name)s is not connected to network %(net)s")
                              % {"name": rec.name, "net": net["Name"]})
        self._detach(rec, net["Name"])
        rec.save()
        return {"ok": True}

    # -- endpoints --------------------------------------------------------------------------
    def _attach(self, rec, net: dict, netns: str, ifname: str, ip: str | None, aliases: list[str],
                default_route: bool = True) -> dict:
        """Lease an address, plug a veth into ``netns``; the endpoint is stored in ``rec``."""
        cfg = net["IPAM"]["Config"][0]
        address = self._leases(net).take(rec.id, ip)
        host_name = "lkv" + secrets.token_hex(6)[:11]
        prefix = int(cfg["Subnet"].split("/")[1])
        try:
            veth.attach(net["Options"]["com.docker.network.bridge.name"], host_name, netns, ifname, address,
                        prefix, cfg["Gateway"] if default_route else None,
                        int(net["Options"]["com.docker.network.driver.mtu"]))
        except BaseException:
            self._leases(net).release(address)
            raise
        ep = {"IPAMConfig": {"IPv4Address": ip} if ip else None, "Links": None,
              "Aliases": aliases or None, "NetworkID": net["Id"], "EndpointID": secrets.token_hex(32),
              "Gateway": cfg["Gateway"], "IPAddress": address, "IPPrefixLen": prefix,
              "MacAddress": veth.mac_for(address),
              "DNSNames": [rec.name, rec.id[:12], *aliases] if net["Name"] != DEFAULT else None,
              "labkitHostInterface": host_name, "labkitInterface": ifname}
        ns = rec.data.setdefault("NetworkSettings", {"Networks": {}})
        ns["Networks"][net["Name"]] = ep
        if default_route:
            ns.update(Gateway=cfg["Gateway"], IPAddress=address, IPPrefixLen=prefix, MacAddress=ep["MacAddress"])
        return ep

    def _detach(self, rec, name: str) -> None:
        """Undo :meth:`_attach`: veth, lease, the peers' names, the rules for its ports."""
        ep = rec.data["NetworkSettings"]["Networks"].pop(name, None)
        if not ep:
            return
        if rec.running:  # disconnect: the pair goes now
            self._veth_delete(ep["labkitHostInterface"])
        else:  # its namespace is gone and the kernel removes the pair with it; a delete of ours would
            # wait for an RCU grace period (15 ms here) in the engine's loop: only if it is still there
            self.later(2.0, lambda: self._veth_delete(ep["labkitHostInterface"]))
        try:
            net = self._net_find(ep["NetworkID"], create_default=False)
        except NotFound:
            return
        self._leases(net).release(ep["IPAddress"])
        try:
            if rec.data["HostConfig"].get("labkitPorts"):  # the chains hold only published ports
                self._net_rules(net)
            self._names_changed(net)
        except Exception:  # noqa: BLE001
            traceback.print_exc()

    @staticmethod
    def _veth_delete(host_name: str) -> None:
        try:
            veth.delete(host_name)
        except Exception:  # noqa: BLE001 - remove what can be removed
            traceback.print_exc()

    def _net_plug(self, rec, cfg: dict, net: dict | None, network: str, spare) -> tuple[list, tuple | None]:
        """A new container's endpoint and name files: (bind mounts for /etc, holder or None).

        The veth goes into the spare's namespace if there is a spare, else into a holder's.
        """
        holder_ = None
        try:
            if net is not None:
                if spare is not None:
                    netns = f"/proc/{spare.pid}/ns/net"
                else:
                    holder_ = holder()
                    netns = holder_[2]
                self._attach(rec, net, netns, "eth0", cfg.get("ip"), list(cfg.get("aliases") or []))
            names = self._name_files(rec, cfg, net) if network != "none" else []
        except BaseException:
            if holder_ is not None:
                release_holder(holder_[0], holder_[1])
            raise
        return names, holder_

    def _net_replug(self, rec, cfg: dict, net: dict | None, spec: dict) -> tuple | None:
        """The spare died after its claim: its endpoint went with it; plug one into a holder."""
        if net is None:
            return None
        for name in list(rec.data["NetworkSettings"]["Networks"]):
            self._detach(rec, name)
        _names, holder_ = self._net_plug(rec, cfg, net, net["Name"], None)
        spec["netns"] = holder_[2]
        return holder_

    def _net_release(self, rec) -> None:
        """A container stopped: give back everything its endpoints held (the record keeps the view)."""
        for name in list((rec.data.get("NetworkSettings") or {}).get("Networks", {})):
            self._detach(rec, name)
        self._ports_close(rec.id)

    # -- published ports -----------------------------------------------------------------------
    def _ports_open(self, cid: str, ports: list[dict]) -> list[dict]:
        """Bind every host port first (a port in use is refused before anything is made).

        A host port 0 (``-P``, ``-p 80``) becomes the one the kernel picked.
        """
        socks = []
        try:
            for p in ports:
                s = port_socket(p["proto"], p.get("host_ip") or "", int(p.get("host_port") or 0))
                socks.append(s)
                p["host_port"] = s.getsockname()[1]
        except BaseException:
            for s in socks:
                s.close()
            raise
        self.port_socks.setdefault(cid, []).extend(socks)
        return ports

    def _ports_close(self, cid: str) -> None:
        for s in getattr(self, "port_socks", {}).pop(cid, []):
            s.close()

    # -- recovery ----------------------------------------------------------------------------
    def recover_networks(self) -> None:
        """After a restart: bridges, rules and DNS back from the state; stale leases dropped."""
        for net in self._networks().values():
            live = {ep["IPAddress"] for _r, ep in self._endpoints(net)}
            for ip in self._leases(net).all():
                if ip not in live:
                    self._leases(net).release(ip)
            try:
                self._net_up(net)
            except Exception:  # noqa: BLE001
                traceback.print_exc()
        for rec in self.records.values():
            if rec.running and rec.data["HostConfig"].get("labkitPorts"):
                try:
                    self._ports_open(rec.id, rec.data["HostConfig"]["labkitPorts"])
                except LabkitError:
                    traceback.print_exc()


def port_socket(proto: str, host_ip: str, port: int) -> socket.socket:
    """Bind (and keep) the host port: nobody else takes it while the container publishes it."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        s.bind((host_ip or "0.0.0.0", port))
    except OSError:
        s.close()
        raise Conflict(_("port %(port)s/%(proto)s on %(ip)s is already in use on the host")
                       % {"port": port, "proto": proto, "ip": host_ip or "0.0.0.0"}, exit_code=125) from None
    return s
