"""``labkit network create|ls|inspect|rm|prune|connect|disconnect`` and ``labkit port``, Docker's shapes."""
from __future__ import annotations

import json

from ..i18n import _


def register(sub) -> None:
    p = sub.add_parser("network", help=_("Manage networks"))
    nsub = p.add_subparsers(dest="network_command", metavar=_("COMMAND"), required=True)

    q = nsub.add_parser("create", help=_("Create a network"))
    q.add_argument("name", metavar=_("NETWORK"))
    q.add_argument("-d", "--driver", default="bridge", choices=["bridge"], help=_("driver (only bridge)"))
    q.add_argument("--subnet", help=_("subnet in CIDR format (e.g. 172.30.0.0/24)"))
    q.add_argument("--gateway", help=_("gateway address of the subnet"))
    q.add_argument("--label", action="append", default=[], help=_("set metadata on the network"))
    q.set_defaults(func=cmd_create)

    q = nsub.add_parser("ls", aliases=["list"], help=_("List networks"))
    q.add_argument("-q", "--quiet", action="store_true", help=_("only display network IDs"))
    q.set_defaults(func=cmd_ls)

    q = nsub.add_parser("inspect", help=_("Display detailed information on one or more networks"))
    q.add_argument("networks", nargs="+", metavar=_("NETWORK"))
    q.set_defaults(func=cmd_inspect)

    q = nsub.add_parser("rm", aliases=["remove"], help=_("Remove one or more networks"))
    q.add_argument("networks", nargs="+", metavar=_("NETWORK"))
    q.set_defaults(func=cmd_rm)

    q = nsub.add_parser("prune", help=_("Remove all unused networks"))
    q.add_argument("-f", "--force", action="store_true", help=_("do not prompt for confirmation"))
    q.set_defaults(func=cmd_prune)

    q = nsub.add_parser("connect", help=_("Connect a container to a network"))
    q.add_argument("network", metavar=_("NETWORK"))
    q.add_argument("container", metavar=_("CONTAINER"))
    q.add_argument("--ip", help=_("IPv4 address of the container on its network"))
    q.add_argument("--alias", action="append", default=[], help=_("another name of the container on its network"))
    q.set_defaults(func=cmd_connect)

    q = nsub.add_parser("disconnect", help=_("Disconnect a container from a network"))
    q.add_argument("network", metavar=_("NETWORK"))
    q.add_argument("container", metavar=_("CONTAINER"))
    q.set_defaults(func=cmd_disconnect)

    p = sub.add_parser("port", help=_("List port mappings of a container"))
    p.add_argument("container", metavar=_("CONTAINER"))
    p.add_argument("port", nargs="?", metavar="PORT[/PROTO]")
    p.set_defaults(func=cmd_port)


def _request(msg: dict) -> dict:
    from ..engine import client

    return client.request(msg)


def cmd_create(args) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    net = _request({"op": "network_create", "name": args.name, "subnet": args.subnet, "gateway": args.gateway,
                    "labels": labels})["network"]
    print(net["Id"])
    return 0


def cmd_ls(args) -> int:
    from .tables import table

    nets = _request({"op": "network_ls"})["networks"]
    if args.quiet:
        for n in nets:
            print(n["Id"][:12])
        return 0
    rows = [[n["Id"][:12], n["Name"], n["Driver"], n["Scope"]] for n in nets]
    rows += [["", name, "null" if name == "none" else name, "local"] for name in ("host", "none")]
    print(table([_("NETWORK ID"), _("NAME"), _("DRIVER"), _("SCOPE")], rows))
    return 0


def cmd_inspect(args) -> int:
    docs = [_request({"op": "network_inspect", "ref": ref})["network"] for ref in args.networks]
    print(json.dumps(docs, indent=4, ensure_ascii=False))
    return 0


def cmd_rm(args) -> int:
    for ref in args.networks:
        _request({"op": "network_rm", "ref": ref})
        print(ref)
    return 0


def cmd_prune(args) -> int:
    removed = _request({"op": "network_prune"})["removed"]
    if removed:
        print(_("Deleted Networks:"))
        for name in removed:
            print(name)
    return 0


def cmd_connect(args) -> int:
    _request({"op": "network_connect", "network": args.network, "container": args.container, "ip": args.ip,
              "aliases": args.alias})
    return 0


def cmd_disconnect(args) -> int:
    _request({"op": "network_disconnect", "network": args.network, "container": args.container})
    return 0


def port_lines(ports: dict) -> list[str]:
    """``80/tcp -> 0.0.0.0:8080`` lines, as ``docker port`` prints them."""
    return [f"{key} -> {b['HostIp']}:{b['HostPort']}" for key, binds in sorted(ports.items()) for b in binds]


def cmd_port(args) -> int:
    from ..errors import NotFound

    doc = _request({"op": "inspect", "ref": args.container})["container"]
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    if args.port:
        key = args.port if "/" in args.port else f"{args.port}/tcp"
        if key not in ports:
            raise NotFound(_("no public port '%(port)s' published for %(name)s") % {"port": key, "name": doc["Name"]},
                           exit_code=1)
        ports = {key: ports[key]}
        for b in ports[key]:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for line in port_lines(ports):
        print(line)
    return 0
