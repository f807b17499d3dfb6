"""``labkit volume create|ls|inspect|rm|prune``, Docker's shapes and output."""
from __future__ import annotations

import json
import sys

from ..i18n import _, ngettext


def register(sub) -> None:
    p = sub.add_parser("volume", help=_("Manage volumes"))
    vsub = p.add_subparsers(dest="volume_command", metavar=_("COMMAND"), required=True)

    q = vsub.add_parser("create", help=_("Create a volume"))
    q.add_argument("name", nargs="?", metavar=_("VOLUME"))
    q.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help=_("set metadata for a volume"))
    q.set_defaults(func=cmd_create)

    q = vsub.add_parser("ls", aliases=["list"], help=_("List volumes"))
    q.add_argument("-q", "--quiet", action="store_true", help=_("only display volume names"))
    q.set_defaults(func=cmd_ls)

    q = vsub.add_parser("inspect", help=_("Display detailed information on one or more volumes"))
    q.add_argument("volumes", nargs="+", metavar=_("VOLUME"))
    q.set_defaults(func=cmd_inspect)

    q = vsub.add_parser("rm", aliases=["remove"], help=_("Remove one or more volumes"))
    q.add_argument("-f", "--force", action="store_true",
                   help=_("do not fail on a volume that does not exist (a volume in use is never removed)"))
    q.add_argument("volumes", nargs="+", metavar=_("VOLUME"))
    q.set_defaults(func=cmd_rm)

    q = vsub.add_parser("prune", help=_("Remove unused anonymous volumes"))
    q.add_argument("-a", "--all", action="store_true", help=_("remove unused named volumes too"))
    q.add_argument("-f", "--force", action="store_true", help=_("do not prompt for confirmation"))
    q.set_defaults(func=cmd_prune)


def _request(msg: dict) -> dict:
    from ..engine import client

    return client.request(msg)


def cmd_create(args) -> int:
    labels = dict(item.partition("=")[::2] for item in args.label)
    print(_request({"op": "volume_create", "name": args.name, "labels": labels})["volume"]["Name"])
    return 0


def cmd_ls(args) -> int:
    docs = _request({"op": "volume_list"})["volumes"]
    if args.quiet:
        for d in docs:
            print(d["Name"])
        return 0
    headers = [_("DRIVER"), _("VOLUME NAME")]
    rows = [[d["Driver"], d["Name"]] for d in docs]
    # Docker's tabwriter: cells padded by 3, at least 10 wide
    width = max(10, *(len(r[0]) + 3 for r in [headers, *rows]))
    for first, second in [headers, *rows]:
        print(first.ljust(width) + second)
    return 0


def cmd_inspect(args) -> int:
    from ..errors import LabkitError

    docs, code = [], 0
    for name in args.volumes:
        try:
            docs.append(_request({"op": "volume_inspect", "name": name})["volume"])
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            code = code or exc.exit_code
    print(json.dumps(docs, indent=4, ensure_ascii=False, sort_keys=True))
    return code


def cmd_rm(args) -> int:
    from ..errors import LabkitError, NotFound

    code = 0
    for name in args.volumes:
        try:
            _request({"op": "volume_rm", "name": name})
            print(name)
        except NotFound:
            if args.force:
                continue
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": _("no such volume: %(name)s") % {"name": name}}
                             + "\n")
            code = code or 125
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            code = code or exc.exit_code
    return code


def cmd_prune(args) -> int:
    removed = _request({"op": "volume_prune", "all": args.all})["removed"]
    if removed:
        print(_("Deleted Volumes:"))
        for name in removed:
            print(name)
    print(ngettext("%(n)d volume removed", "%(n)d volumes removed", len(removed)) % {"n": len(removed)})
    return 0
