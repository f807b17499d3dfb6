"""Container verbs: run, ps, logs, stop, kill, rm, exec, inspect, prune, engine."""
from __future__ import annotations

import json
import sys

from ..i18n import _, ngettext
from .attaching import attach, need_a_terminal
from .tables import ago, status_text, table


def register(sub) -> None:
    import argparse

    from .run_flags import PROCESS_FLAGS, RUN_FLAGS, add_to

    p = sub.add_parser("run", help=_("Create and run a new container from an image"))
    add_to(p, RUN_FLAGS)
    p.add_argument("image", metavar=_("IMAGE"))
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar=_("COMMAND"))
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("exec", help=_("Run a command in a running container"))
    add_to(p, PROCESS_FLAGS)
    p.add_argument("container", metavar=_("CONTAINER"))
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar=_("COMMAND"))
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("ps", help=_("List containers"))
    p.add_argument("-a", "--all", action="store_true", help=_("show all containers (default shows just running)"))
    p.add_argument("-q", "--quiet", action="store_true", help=_("only display container IDs"))
    p.add_argument("--no-trunc", action="store_true", help=_("don't truncate output"))
    p.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                   help=_("filter output based on conditions provided (label=KEY[=VALUE], name=NAME, status=, id=)"))
    p.add_argument("--format", help=_(
        "format output using a Go template subset, e.g. {{.Names}} or 'table {{.ID}}\\t{{.Label \"k\"}}'"))
    p.set_defaults(func=cmd_ps)

    p = sub.add_parser("logs", help=_("Fetch the logs of a container"))
    p.add_argument("-f", "--follow", action="store_true", help=_("follow log output"))
    p.add_argument("container", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("stop", help=_("Stop one or more running containers"))
    p.add_argument("-t", "--time", type=float, default=10, help=_("seconds to wait before killing it (default 10)"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("kill", help=_("Kill one or more running containers"))
    p.add_argument("-s", "--signal", default="KILL", help=_("signal to send (default KILL)"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_kill)

    p = sub.add_parser("rm", help=_("Remove one or more containers"))
    p.add_argument("-f", "--force", action="store_true", help=_("force the removal of a running container"))
    p.add_argument("-v", "--volumes", action="store_true", help=_("remove anonymous volumes associated with the container"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("wait", help=_("Block until containers stop, then print their exit codes"))
    p.add_argument("containers", nargs="+", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_wait)

    p = sub.add_parser("inspect", help=_("Return low-level information on containers or images"))
    p.add_argument("objects", nargs="+", metavar=_("NAME"))
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("prune", help=_("Remove all stopped containers and leftovers"))
    p.add_argument("-f", "--force", action="store_true", help=_("do not prompt for confirmation"))
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("engine", help=_("Manage the labkit engine"))
    p.add_argument("action", choices=["status", "stop", "start"])
    p.set_defaults(func=cmd_engine)


def cmd_run(args) -> int:
    from ..spec import client_env as _client_env, parse_limits as _limits, parse_volumes as _volumes
    from ..spec import parse_add_hosts, parse_devices, parse_ports, security_opts as _security_opts
    from ..labels import flag_labels

    need_a_terminal(args)

    pids = args.pids_limit if args.pids_limit and args.pids_limit > 0 else None
    config = {
        "image": args.image, "cmd": args.cmd or None,
        "entrypoint": [args.entrypoint] if args.entrypoint else None,
        "name": args.name, "env": _client_env(args.env), "workdir": args.workdir, "hostname": args.hostname,
        "user": args.user, "volumes": _volumes(args.volume), "devices": parse_devices(args.device),
        "limits": _limits(args.memory, args.cpus, args.cpu_shares, args.cpuset_cpus,
                          args.memory_swap, pids),
        "detach": args.detach, "remove": args.rm, "interactive": args.interactive, "tty": args.tty,
        "network": args.network, "cap_add": args.cap_add, "cap_drop": args.cap_drop,
        "read_only": args.read_only, "ports": parse_ports(args.publish), "publish_all": args.publish_all,
        "ip": args.ip, "aliases": args.network_alias, "add_hosts": parse_add_hosts(args.add_host),
        "dns": args.dns, "security_opt": _security_opts(args.security_opt), "ulimits": args.ulimit,
        "privileged": args.privileged, **_storage(args),
        "labels": flag_labels(args.label, args.label_file),
    }
    from .restart_flags import run_fields

    config.update(run_fields(args))  # --restart, --health-*, and create's "created" state
    if args.privileged:
        from ..spec import warn_privileged

        warn_privileged()
    if args.detach or config.get("create_only"):
        from ..engine import client

        reply = client.request({"op": "run", "config": config})
        print(reply["id"])
        return 0
    return attach({"op": "run", "config": config}, args)


def _storage(args) -> dict:
    """``--mount``, ``--tmpfs``, ``--volumes-from``, checked before the request (labkit.volspec)."""
    if not (args.mount or args.tmpfs or args.volumes_from):
        return {}  # the everyday `labkit run` imports nothing more
    from ..volspec import parse_mounts, parse_tmpfs, parse_volumes_from

    parse_tmpfs(args.tmpfs)
    return {"mounts": parse_mounts(args.mount), "tmpfs": args.tmpfs,
            "volumes_from": parse_volumes_from(args.volumes_from)}


def cmd_exec(args) -> int:
    from ..errors import LabkitError

    if not args.cmd:
        raise LabkitError(_("exec needs a command to run"))
    need_a_terminal(args)
    from ..spec import client_env as _client_env

    message = {"op": "exec", "ref": args.container, "cmd": args.cmd, "env": _client_env(args.env),
               "workdir": args.workdir, "user": args.user, "tty": args.tty}
    return attach(message, args)


def cmd_ps(args) -> int:
    from ..engine import client

    from ..labels import select

    items = select(client.request({"op": "list", "all": args.all})["containers"], args.filter)
    if args.format:
        from .formats import render

        return print(render(items, args.format, status_text)) or 0
    if args.quiet:
        for d in items:
            print(d["Id"] if args.no_trunc else d["Id"][:12])
        return 0
    rows = []
    for d in items:
        command = " ".join([d["Path"]] + d["Args"])
        if not args.no_trunc and len(command) > 22:
            command = command[:21] + "…"
        rows.append([d["Id"] if args.no_trunc else d["Id"][:12], d["ImageRef"], f'"{command}"',
                     ago(d["Created"]), status_text(d["State"]),
                     _ports_text(d), d["Name"]])
    print(table([_("CONTAINER ID"), _("IMAGE"), _("COMMAND"), _("CREATED"), _("STATUS"), _("PORTS"),
                 _("NAMES")], rows))
    return 0


def _ports_text(doc: dict) -> str:
    """``0.0.0.0:8080->80/tcp``, as ``docker ps`` shows published ports."""
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    return ", ".join(f"{b['HostIp']}:{b['HostPort']}->{key}" for key, binds in sorted(ports.items()) for b in binds)


def cmd_logs(args) -> int:
    from ..api import get

    ctr = get(args.container)
    if args.follow:
        for chunk in ctr.logs(follow=True):
            sys.stdout.write(chunk)
            sys.stdout.flush()
    else:
        sys.stdout.write(ctr.logs())
    return 0


def _each(refs, action) -> int:
    from ..errors import LabkitError

    code = 0
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            code = exc.exit_code if code == 0 else code
    return code


def cmd_stop(args) -> int:
    from ..engine import client

    return _each(args.containers, lambda r: client.request({"op": "stop", "ref": r, "timeout": args.time}))


def cmd_kill(args) -> int:
    import signal

    from ..engine import client
    from ..errors import LabkitError

    name = args.signal.upper()
    try:
        sig = int(name) if name.isdigit() else int(getattr(signal, name if name.startswith("SIG") else "SIG" + name))
        if not 0 < sig < signal.NSIG:  # e.g. 999, or SIG_DFL/SIG_IGN picked up by the name
            raise AttributeError(name)
    except AttributeError:
        raise LabkitError(_("invalid signal: %(sig)s") % {"sig": args.signal}) from None
    return _each(args.containers, lambda r: client.request({"op": "kill", "ref": r, "signal": sig}))


def cmd_rm(args) -> int:
    from ..engine import client

    return _each(args.containers, lambda r: client.request({"op": "rm", "ref": r, "force": args.force,
                                                            "volumes": args.volumes}))


def cmd_wait(args) -> int:
    from ..api import get

    for ref in args.containers:
        print(get(ref).wait())
    return 0


def cmd_inspect(args) -> int:
    from ..engine import client
    from ..errors import NotFound

    docs = []
    for ref in args.objects:
        try:
            docs.append(client.request({"op": "inspect", "ref": ref})["container"])
        except NotFound:
            try:
                from ..images.store import Store

                docs.append(Store().inspect(ref))
            except (ImportError, AttributeError):
                raise
            except NotFound:
                try:  # a volume, as `docker inspect` finds those too
                    docs.append(client.request({"op": "volume_inspect", "name": ref})["volume"])
                except NotFound:
                    raise NotFound(_("no such object: %(ref)s") % {"ref": ref}) from None
    print(json.dumps(docs, indent=4, ensure_ascii=False))
    return 0


def cmd_prune(args) -> int:
    from ..engine import client

    removed = client.request({"op": "prune"})["removed"]
    if removed:
        print(_("Deleted Containers:"))
        for cid in removed:
            print(cid)
    print(ngettext("%(n)d container removed", "%(n)d containers removed", len(removed)) % {"n": len(removed)})
    return 0


def cmd_engine(args) -> int:
    from .. import paths
    from ..engine import client

    if args.action == "status":
        if not client.is_running():
            print(_("engine: stopped (%(home)s)") % {"home": paths.home()})
            return 3
        reply = client.request({"op": "ping"})
        running = len(client.request({"op": "list", "all": False})["containers"])
        print(_("engine: running, pid %(pid)d, %(home)s, %(n)d running containers")
              % {"pid": reply["pid"], "home": reply["home"], "n": running})
        if reply.get("spare"):  # the process `ps` shows as labkit-spare
            print(_("ready for the next container: pid %(pid)d, cgroup labkit/%(id)s")
                  % {"pid": reply["spare"]["pid"], "id": reply["spare"]["id"]})
        return 0
    if args.action == "start":
        client.connect().close()
        return 0
    from ..api import engine_stop

    print(_("engine stopped") if engine_stop() else _("engine: stopped (%(home)s)") % {"home": paths.home()})
    return 0
