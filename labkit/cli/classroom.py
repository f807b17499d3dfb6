"""``labkit classroom setup|teardown|top``: a class on one server (as root)."""
from __future__ import annotations

import sys

from ..i18n import _


def register(sub) -> None:
    p = sub.add_parser("classroom", help=_("Set up a shared server for a class (as root)"))
    csub = p.add_subparsers(dest="classroom_command", metavar=_("COMMAND"))

    s = csub.add_parser("setup", help=_("Accounts, id ranges, cgroup caps and the hub's "
                                        "configuration for a class"))
    s.add_argument("--students", required=True, metavar=_("FILE|NAME,..."),
                   help=_("a file (one name a line, name:password to set one) or a comma list"))
    s.add_argument("--create", action="store_true",
                   help=_("create the accounts that do not exist (home 0700)"))
    s.add_argument("--cpus", default="1", help=_("each student's CPU cap in cores (default 1)"))
    s.add_argument("-m", "--memory", default="1g",
                   help=_("each student's memory cap (default 1g)"))
    s.add_argument("--pids", type=int, default=512,
                   help=_("each student's process cap (default 512)"))
    s.add_argument("--class-cpus", default=None,
                   help=_("the whole class's CPU cap (default: every core but half of one)"))
    s.add_argument("--class-memory", default=None,
                   help=_("the whole class's memory cap (default: none)"))
    s.add_argument("--teacher-group", default="professores",
                   help=_("the teachers' group: sees every process, reads the dashboard "
                          "(default professores)"))
    s.add_argument("--parent", default="lkclass", help=_("the class cgroup (default lkclass)"))
    s.add_argument("--etc", default=None, help=_("configuration directory (default /etc/labkit)"))
    s.add_argument("--data", default=None,
                   help=_("the hub's data directory (default /var/lib/labkit/classroom)"))
    s.add_argument("--proc", default="/proc",
                   help=_("the proc mount to remount with hidepid (default /proc)"))
    s.add_argument("--no-hidepid", action="store_true", help=_("leave /proc as it is"))
    s.add_argument("--port", type=int, default=8000, help=_("the hub's port on 127.0.0.1"))
    s.add_argument("--proxy", default="", help=_("configurable-http-proxy's path"))
    s.set_defaults(func=cmd_setup)

    t = csub.add_parser("teardown", help=_("Undo what classroom setup made"))
    t.add_argument("--etc", default=None, help=_("configuration directory (default /etc/labkit)"))
    t.set_defaults(func=cmd_teardown)

    d = csub.add_parser("top", help=_("Live table of every student's slice (teachers only)"))
    d.add_argument("--etc", default=None, help=_("configuration directory (default /etc/labkit)"))
    d.add_argument("--no-stream", action="store_true", help=_("print one reading and exit"))
    d.add_argument("-i", "--interval", type=float, default=1.0,
                   help=_("seconds between redraws (default 1)"))
    d.set_defaults(func=cmd_top)
    p.set_defaults(func=lambda args: (p.print_help(), 125)[1])


def _caps(cpus, memory, pids):
    from ..classroom import Caps
    from ..units import parse_cpus, parse_size

    return Caps(cpus=parse_cpus(cpus) if cpus else None,
                memory=parse_size(memory) if memory else None, pids=pids)


def cmd_setup(args) -> int:
    from ..classroom import Options, read_students, setup
    from ..classroom.setup import default_class_caps
    from ..classroom.state import DATA, ETC

    opts = Options(
        students=read_students(args.students), create=args.create,
        caps=_caps(args.cpus, args.memory, args.pids),
        class_caps=_caps(args.class_cpus, args.class_memory, None)
        if args.class_cpus or args.class_memory else default_class_caps(),
        teacher_group=args.teacher_group, etc=args.etc or ETC, data=args.data or DATA,
        parent=args.parent, proc=None if args.no_hidepid else args.proc,
        port=args.port, proxy=args.proxy)
    state, passwords = setup(opts)
    print(_("class ready: %(n)d students under cgroup %(parent)s (%(version)s)")
          % {"n": len(state.students), "parent": state.parent, "version": state.cgroup})
    for name, pw in sorted(passwords.items()):
        print(_("new account %(name)s, password %(password)s") % {"name": name, "password": pw})
    print(_("hub configuration: %(path)s") % {"path": f"{opts.etc}/jupyterhub/jupyterhub_config.py"})
    return 0


def cmd_teardown(args) -> int:
    from ..classroom import teardown
    from ..classroom.state import ETC

    names = teardown(args.etc or ETC)
    print(_("class removed: %(names)s") % {"names": ", ".join(names) or "-"})
    return 0


def cmd_top(args) -> int:
    from ..classroom import top
    from ..classroom.state import ETC

    try:
        top(args.etc or ETC, interval=args.interval, once=args.no_stream, out=sys.stdout)
    except KeyboardInterrupt:
        return 0
    return 0
