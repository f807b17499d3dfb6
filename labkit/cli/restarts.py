"""Verbs of a container's life after ``run``: create, start, restart (see
:mod:`labkit.engine.restarts`); the flags are in :mod:`.restart_flags`."""
from __future__ import annotations

from ..i18n import _


def register(sub) -> None:
    import argparse

    from .run_flags import RUN_FLAGS, add_to

    p = sub.add_parser("create", help=_("Create a new container without starting it"))
    add_to(p, [row for row in RUN_FLAGS if "--detach" not in row[0]])
    p.add_argument("image", metavar=_("IMAGE"))
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar=_("COMMAND"))
    p.set_defaults(func=cmd_create, detach=False)

    p = sub.add_parser("start", help=_("Start one or more created or stopped containers"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("restart", help=_("Restart one or more containers"))
    p.add_argument("-t", "--time", type=float, default=10,
                   help=_("seconds to wait for it to stop before killing it (default 10)"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_restart)


def cmd_create(args) -> int:
    from .containers import cmd_run

    args.create = True
    return cmd_run(args)  # prints the id, as `docker create`


def cmd_start(args) -> int:
    return _each(args.containers, {"op": "start"})


def cmd_restart(args) -> int:
    return _each(args.containers, {"op": "restart", "timeout": args.time})


def _each(refs: list[str], request: dict) -> int:
    """One request per container; its name printed, or the error (the first code is returned)."""
    import sys

    from ..engine import client
    from ..errors import LabkitError

    code = 0
    for ref in refs:
        try:
            client.request({**request, "ref": ref})
            print(ref)
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            code = code or exc.exit_code
    return code
