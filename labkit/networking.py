"""Networks from Python: ``labkit.network(...)``, ``labkit.networks()``, ``Network``.

The same requests as ``labkit network ...`` (see :mod:`labkit.engine.networking`).
"""
from __future__ import annotations

from pathlib import Path

from .engine import client


class Network:
    """A bridge network the engine knows, by id. Properties read the stored document."""

    def __init__(self, data: dict, home: Path | None = None) -> None:
        self._data, self.home = data, home
        self.id, self.name = data["Id"], data["Name"]

    def __repr__(self) -> str:
        return f"<Network {self.id[:12]} {self.name} {self.subnet}>"

    @property
    def subnet(self) -> str:
        return self._data["IPAM"]["Config"][0]["Subnet"]

    @property
    def gateway(self) -> str:
        return self._data["IPAM"]["Config"][0]["Gateway"]

    @property
    def bridge(self) -> str:
        """The Linux bridge on the host (``ip link show <bridge>``)."""
        return self._data["Options"]["com.docker.network.bridge.name"]

    def inspect(self) -> dict:
        """Docker's ``network inspect`` document, with ``Containers`` filled in."""
        self._data = client.request({"op": "network_inspect", "ref": self.id}, home=self.home)["network"]
        return self._data

    def containers(self) -> list:
        from .api import Container

        return [Container(cid, home=self.home) for cid in self.inspect()["Containers"]]

    def connect(self, container, ip: str | None = None, aliases: list[str] | None = None) -> None:
        client.request({"op": "network_connect", "network": self.id, "container": _ref(container),
                        "ip": ip, "aliases": list(aliases or [])}, home=self.home)

    def disconnect(self, container) -> None:
        client.request({"op": "network_disconnect", "network": self.id, "container": _ref(container)},
                       home=self.home)

    def remove(self) -> None:
        client.request({"op": "network_rm", "ref": self.id}, home=self.home)

    def figure(self):
        """A small drawing of the network: the bridge and its gateway, one veth pair per container
        (host end, ``eth0`` inside), each container's address and names. A matplotlib ``Figure``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyBboxPatch

        doc = self.inspect()
        members = []
        for cid, ep in sorted(doc["Containers"].items(), key=lambda kv: kv[1]["IPv4Address"]):
            data = client.request({"op": "inspect", "ref": cid}, home=self.home)["container"]
            mine = data["NetworkSettings"]["Networks"][self.name]
            members.append((ep["Name"], ep["IPv4Address"], mine.get("labkitHostInterface", ""),
                            mine.get("labkitInterface", "eth0"), mine.get("Aliases") or []))
        n = max(len(members), 1)
        fig = Figure(figsize=(max(4.0, 2.6 * n), 3.4))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        ax.set_xlim(0, n)
        ax.set_ylim(0, 3.4)
        ax.axis("off")

        def box(x, y, w, h, text, color):
            ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=color, ec="#444"))
            ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8)

        box(0.1, 2.5, n - 0.2, 0.7, f"{self.bridge} ({self.name})\n{self.subnet}, gateway {self.gateway}",
            "#dbe9f6")
        for i, (name, addr, host_if, ifname, aliases) in enumerate(members):
            x = i + 0.5
            ax.plot([x, x], [2.5, 1.3], color="#444", lw=1.5)
            ax.text(x + 0.05, 2.0, f"veth {host_if}\n↕\n{ifname}", fontsize=7, va="center")
            names = ", ".join([name, *aliases])
            box(i + 0.1, 0.2, 0.8, 1.1, f"{names}\n{ifname} {addr}", "#e8f5e0")
        if not members:
            ax.text(n / 2, 1.2, "—", ha="center")
        return fig


def _ref(container) -> str:
    return container if isinstance(container, str) else container.id


def network(name: str, subnet: str | None = None, gateway: str | None = None, *,
            labels: dict | None = None, home: Path | None = None) -> Network:
    """Create a bridge network (``labkit network create``) and return it."""
    reply = client.request({"op": "network_create", "name": name, "subnet": subnet, "gateway": gateway,
                            "labels": labels}, home=home)
    return Network(reply["network"], home=home)


def networks(home: Path | None = None) -> list[Network]:
    """Every network of this home, ``bridge`` included (made on first use)."""
    return [Network(n, home=home) for n in client.request({"op": "network_ls"}, home=home)["networks"]]


def get_network(ref: str, home: Path | None = None) -> Network:
    return Network(client.request({"op": "network_inspect", "ref": ref}, home=home)["network"], home=home)


def prune_networks(home: Path | None = None) -> list[str]:
    return client.request({"op": "network_prune"}, home=home)["removed"]
