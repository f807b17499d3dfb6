"""A container's ``/etc/hosts``, ``/etc/resolv.conf`` and ``/etc/hostname``, as Docker writes them.

They are files in the container's state directory, bind-mounted over the
image's. ``hosts`` lists the container itself, its peers on user-defined
networks (name, aliases, host name) and ``--add-host`` entries; it is
rewritten *in place* when peers come and go, because a bind mount holds the
inode (a new file renamed over it would not be seen inside). ``resolv.conf``
points at the network's DNS server (:mod:`.dns`) on user-defined networks, at
the host's resolvers on ``bridge`` (minus the loopback ones, which would be
the container's own; Google's public ones if none is left: Docker's rules), or
at ``--dns``. With ``--network host`` the
container gets the host's own two files, read-only.
"""
from __future__ import annotations

import os

from .dns import resolv_conf

DEFAULT = "bridge"
FALLBACK = ["8.8.8.8", "8.8.4.4"]  # Docker's, when the host has only loopback resolvers


def usable_nameservers(servers: list[str]) -> list[str]:
    """The host's resolvers a container can reach: not 127.x nor ::1 (Docker's filter)."""
    import ipaddress

    out = []
    for s in servers:
        try:
            if not ipaddress.ip_address(s.split("%")[0]).is_loopback:
                out.append(s)
        except ValueError:
            continue
    return out or list(FALLBACK)


class Names:
    """The name files of :class:`~labkit.engine.server.Engine`'s containers."""

    def _hosts_text(self, rec) -> str:
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix", "ff02::1\tip6-allnodes",
                 "ff02::2\tip6-allrouters"]
        hostname = rec.data["Config"]["Hostname"]
        nets = (rec.data.get("NetworkSettings") or {}).get("Networks", {})
        for name, ep in nets.items():
            lines.append(f"{ep['IPAddress']}\t{hostname}")
        for name, ep in nets.items():
            if name == DEFAULT:
                continue
            for peer, pep in self._endpoints({"Name": name}):
                if peer.id != rec.id:
                    names = [peer.name, *(pep.get("Aliases") or []), peer.data["Config"]["Hostname"]]
                    lines.append(f"{pep['IPAddress']}\t" + " ".join(dict.fromkeys(names)))
        for entry in rec.data["HostConfig"].get("ExtraHosts") or []:
            host, _sep, addr = entry.partition(":")
            lines.append(f"{addr}\t{host}")
        return "\n".join(lines) + "\n"

    def _write_in_place(self, path, text: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _names_changed(self, net: dict) -> None:
        """Rewrite ``/etc/hosts`` of every container on ``net`` (in place: it is bind-mounted)."""
        if net["Name"] == DEFAULT:  # no names by peer there: nobody's hosts changes
            return
        for rec, _ep in self._endpoints(net):
            path = rec.dir / "hosts"
            if path.exists():
                self._write_in_place(path, self._hosts_text(rec))

    def _name_files(self, rec, cfg: dict, net: dict | None) -> list[list]:
        """The bind mounts for /etc/hosts, /etc/resolv.conf, /etc/hostname (Docker's three)."""
        mode = rec.data["HostConfig"]["NetworkMode"]
        if mode == "host":
            return [[os.path.realpath("/etc/resolv.conf"), "/etc/resolv.conf", True],
                    [os.path.realpath("/etc/hosts"), "/etc/hosts", True]]
        d = rec.dir
        self._write_in_place(d / "hostname", rec.data["Config"]["Hostname"] + "\n")
        self._write_in_place(d / "hosts", self._hosts_text(rec))
        host = {key: resolv_conf(key) for key in ("nameserver", "search", "options")}
        if cfg.get("dns"):
            servers = list(cfg["dns"])
        elif net is not None and net["Name"] != DEFAULT:
            servers = [net["IPAM"]["Config"][0]["Gateway"]]  # our DNS answers there (see .dns)
        else:
            servers = usable_nameservers(host["nameserver"])
        text = "".join(f"nameserver {s}\n" for s in servers)
        for key in ("search", "options"):
            if host[key]:
                text += f"{key} {' '.join(host[key])}\n"
        self._write_in_place(d / "resolv.conf", text)
        return [[str(d / "resolv.conf"), "/etc/resolv.conf", False], [str(d / "hostname"), "/etc/hostname", False],
                [str(d / "hosts"), "/etc/hosts", False]]
