"""The ``labkit`` command: Docker's verbs, a thin layer over the Python API.

Each area registers its verbs from its own module (``containers.py``,
``images.py``, ``slices.py``, ``system.py``...) through ``register(sub)``,
where ``sub`` is argparse's subparsers object; a verb sets
``func=handler`` with ``handler(args) -> int``. Handlers import what they
need lazily: the command must start fast (see ``bench/``). For the same
reason argparse itself is imported only when needed: the everyday
``labkit run IMAGE CMD`` is parsed by :func:`.run_flags.parse_run`, from the
same table of flags.
"""
from __future__ import annotations

import os
import sys

from ..errors import LabkitError
from ..i18n import _

# Modules that add verbs; a missing one is skipped so areas can land apart.
AREAS = ("containers", "images", "build", "registry", "slices", "system", "vm", "network", "volumes", "restarts",
         "classroom", "compose")

# Which areas a verb needs: `labkit run` imports and registers only "containers",
# which keeps the command's start-up small (bench/bench_runtime.py measures it).
VERBS = {
    **dict.fromkeys(("run", "exec", "ps", "logs", "stop", "kill", "rm", "wait", "prune", "engine",
                     "inspect"), ("containers",)),
    **dict.fromkeys(("images", "rmi", "tag", "save", "load"), ("images",)),
    **dict.fromkeys(("image", "build", "history", "diff", "commit"), ("images", "build")),
    **dict.fromkeys(("pull", "push", "login", "logout"), ("registry",)),
    **dict.fromkeys(("stats", "update"), ("slices",)),
    "doctor": ("system",), "system": ("system",),
    "vm": ("vm",),
    "network": ("network",), "port": ("network",),
    "volume": ("volumes",),
    "compose": ("compose",),
    **dict.fromkeys(("create", "start", "restart"), ("restarts",)),
}


def build_parser(verb: str | None = None):
    """The command's argparse parser; for a known ``verb``, only the areas that verb needs."""
    import argparse
    import importlib

    from ..i18n import ngettext

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # argparse prints English; keep ours
            self.print_usage(sys.stderr)
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": message} + "\n")
            sys.exit(125)

    # argparse's own texts (usage, headings, its errors) go through labkit's catalog too
    argparse._ = _
    argparse.ngettext = ngettext
    parser = _Parser(
        prog="labkit",
        description=_("Containers on the real Linux kernel, for the course."),
    )
    sub = parser.add_subparsers(dest="command", metavar=_("COMMAND"), parser_class=_Parser)
    for area in VERBS.get(verb or "", AREAS):
        try:
            module = importlib.import_module(f"{__name__}.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{area}":
                raise
            continue
        module.register(sub)
    return parser


def _os_error(exc: OSError) -> str:
    """An OSError in pt-BR (the C library's text is English): what failed, and on which file."""
    import errno

    reasons = {
        errno.ENOENT: _("no such file or directory"),
        errno.EACCES: _("permission denied"),
        errno.EPERM: _("operation not permitted"),
        errno.EISDIR: _("is a directory"),
        errno.ENOTDIR: _("not a directory"),
        errno.EEXIST: _("file exists"),
        errno.ENOSPC: _("no space left on device"),
        errno.EROFS: _("read-only file system"),
    }
    reason = reasons.get(exc.errno) or exc.strerror or str(exc)
    return f"{exc.filename}: {reason}" if exc.filename else reason


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = None
    if argv and argv[0] == "run":
        from .containers import cmd_run
        from .run_flags import parse_run

        args = parse_run(argv[1:])
        if args is not None:
            args.func = cmd_run
    if args is None:
        parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if args.command is None else 125
    try:
        return int(args.func(args) or 0)
    except LabkitError as exc:
        sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            # e.g. `labkit logs x | head`: not an error of ours
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        # a file the user named that cannot be read or written: a message, not a traceback
        sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": _os_error(exc)} + "\n")
        return 125


if __name__ == "__main__":
    sys.exit(main())
