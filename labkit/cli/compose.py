"""``labkit compose [-f FILE] [-p NAME] up|down|ps|logs|restart|exec|config``: Docker Compose's verbs."""
from __future__ import annotations

import sys

from ..i18n import _


def register(sub) -> None:
    import argparse

    p = sub.add_parser("compose", help=_("Define and run applications of several containers (compose.yaml)"))
    p.add_argument("-f", "--file", help=_("compose file (default: compose.yaml in the current directory)"))
    p.add_argument("-p", "--project-name", help=_("project name (default: the folder's name)"))
    p.add_argument("--project-directory", default=".", metavar="DIR",
                   help=_("where to look for the compose file (default: the current directory)"))
    verbs = p.add_subparsers(dest="compose_command", metavar=_("COMMAND"), parser_class=type(p))
    verbs.required = True

    q = verbs.add_parser("up", help=_("Create and start the containers"))
    q.add_argument("-d", "--detach", action="store_true", help=_("run the containers in the background"))
    q.add_argument("services", nargs="*", metavar=_("SERVICE"))
    q.set_defaults(func=cmd_up)

    q = verbs.add_parser("down", help=_("Stop and remove the containers and networks"))
    q.add_argument("-v", "--volumes", action="store_true",
                   help=_("also remove the named volumes of the file and the anonymous ones"))
    q.add_argument("-t", "--timeout", type=float, default=10, help=_("seconds to wait before killing (default 10)"))
    q.set_defaults(func=cmd_down)

    q = verbs.add_parser("ps", help=_("List the project's containers"))
    q.add_argument("-a", "--all", action="store_true", help=_("show stopped containers too"))
    q.add_argument("-q", "--quiet", action="store_true", help=_("only display container IDs"))
    q.set_defaults(func=cmd_ps)

    q = verbs.add_parser("logs", help=_("Show the output of the containers"))
    q.add_argument("-f", "--follow", action="store_true", help=_("follow log output"))
    q.add_argument("service", nargs="?", metavar=_("SERVICE"))
    q.set_defaults(func=cmd_logs)

    q = verbs.add_parser("restart", help=_("Restart the service containers"))
    q.add_argument("-t", "--timeout", type=float, default=10, help=_("seconds to wait before killing (default 10)"))
    q.add_argument("service", nargs="?", metavar=_("SERVICE"))
    q.set_defaults(func=cmd_restart)

    q = verbs.add_parser("exec", help=_("Run a command in a service's container"))
    q.add_argument("-T", "--no-TTY", action="store_true", help=_("no pseudo-terminal (the only mode here)"))
    q.add_argument("-e", "--env", action="append", default=[], metavar="KEY=VALUE",
                   help=_("set environment variables"))
    q.add_argument("-w", "--workdir", help=_("working directory inside the container"))
    q.add_argument("-u", "--user", help=_("username or UID"))
    q.add_argument("service", metavar=_("SERVICE"))
    q.add_argument("cmd", nargs=argparse.REMAINDER, metavar=_("COMMAND"))
    q.set_defaults(func=cmd_exec)

    q = verbs.add_parser("config", help=_("Check the compose file and print it as it was understood"))
    q.set_defaults(func=cmd_config)


def _project(args, out=None):
    from ..compose import get_project

    return get_project(args.project_directory, project=args.project_name, file=args.file, out=out)


def _say(text: str) -> None:  # progress goes to stderr, as docker compose's
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def cmd_up(args) -> int:
    proj = _project(args, _say)
    proj.up(args.services or None)
    if not args.detach:
        from ..compose.views import follow

        follow(proj, sys.stdout)
    return 0


def cmd_down(args) -> int:
    _project(args, _say).down(volumes=args.volumes, timeout=args.timeout)
    return 0


def cmd_ps(args) -> int:
    proj = _project(args)
    if args.quiet:
        for ctr in proj.containers(all=args.all):
            print(ctr.id)
        return 0
    print(proj.ps(all=args.all))
    return 0


def cmd_logs(args) -> int:
    proj = _project(args)
    if args.follow:
        from ..compose.views import follow

        follow(proj, sys.stdout, args.service)
        return 0
    if args.service and args.service not in proj.model.services:
        from ..errors import NotFound

        raise NotFound(_("no such service: %(name)s") % {"name": args.service})
    sys.stdout.write(proj.logs(args.service))
    return 0


def cmd_restart(args) -> int:
    _project(args, _say).restart(args.service, timeout=args.timeout)
    return 0


def cmd_exec(args) -> int:
    """The same attached exec as ``labkit exec``, in the service's container: output as it comes."""
    from argparse import Namespace

    from ..errors import LabkitError
    from ..spec import client_env
    from .containers import cmd_exec as plain_exec

    if not args.cmd:
        raise LabkitError(_("exec needs a command to run"))
    ctr = _project(args).service(args.service)
    return plain_exec(Namespace(container=ctr.id, cmd=args.cmd, env=client_env(args.env), workdir=args.workdir,
                                user=args.user, interactive=False, tty=False))


def cmd_config(args) -> int:
    sys.stdout.write(_project(args).config())
    return 0
