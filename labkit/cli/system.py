"""System verbs: ``labkit doctor`` (and the engine's verbs, registered by their own function).

Each verb has its own ``_register_<verb>(sub)``; ``register(sub)`` calls them all.
"""
from __future__ import annotations

import argparse

from ..i18n import _


def _register_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help=_("Check what this machine has for the course"),
        description=_(
            "Check what this machine has for the course: root, kernel, cgroups, OverlayFS, "
            "namespaces, busybox, qemu, podman and skopeo, with the command that fixes each "
            "missing piece. Exit status 0 when the essentials are there, 1 otherwise."
        ),
    )
    p.add_argument("--json", action="store_true", help=_("Print the checks as JSON"))
    p.set_defaults(func=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from .. import doctor

    checks = doctor.run_checks()
    if args.json:
        import dataclasses
        import json

        print(json.dumps([dataclasses.asdict(c) for c in checks], ensure_ascii=False, indent=2))
    else:
        print(doctor.format_checks(checks))
    return 0 if doctor.essentials_ok(checks) else 1


def _register_system(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("system", help=_("Manage labkit's store"),
                       description=_("Manage labkit's store (as docker system)."))
    verbs = p.add_subparsers(dest="system_command", metavar=_("COMMAND"))
    c = verbs.add_parser(
        "check",
        help=_("Check every blob of the image store against its digest"),
        description=_(
            "Hash every blob of the image store and compare it with its name, follow every "
            "reference from index.json and its manifests (the blob must exist, with the size "
            "the descriptor says), and look for what a killed process left behind. "
            "Exit status 1 when a problem is found."),
    )
    c.add_argument("--fix", action="store_true",
                   help=_("Remove partial, orphan and corrupt files (a missing blob needs a new pull)"))
    c.set_defaults(func=_system_check)
    d = verbs.add_parser("df", help=_("Show labkit's disk usage"),
                         description=_("Show what images, containers and the build cache take on disk "
                                       "(as docker system df)."))
    d.set_defaults(func=_system_df)
    p.set_defaults(func=lambda _args: p.print_help() or 125)


def _system_check(args: argparse.Namespace) -> int:
    from ..images.check import NOT_PROBLEMS, check
    from ..images.store import Store

    store = Store()
    problems = check(store, fix=args.fix)
    labels = {"corrupt": _("corrupt"), "size": _("wrong size"), "missing": _("missing"),
              "unreadable": _("unreadable"), "partial": _("partial"), "orphan": _("unused"),
              "busy": _("note")}
    for p in problems:
        line = f"[{labels.get(p.kind, p.kind)}] {p.message}"
        if p.fixed:
            line += " " + _("(removed)")
        print(line)
    real = [p for p in problems if p.kind not in NOT_PROBLEMS]
    blobs = sum(1 for _e in store.layout.blobs.iterdir()) if store.layout.blobs.is_dir() else 0
    if not real:
        print(_("store OK: %(n)d blobs checked") % {"n": blobs})
        return 0
    print(_("%(n)d problems found, %(fixed)d fixed") % {"n": len(real), "fixed": sum(p.fixed for p in real)})
    return 1


def _system_df(args: argparse.Namespace) -> int:
    import labkit

    from ..images.store import Store
    from ..images.usage import disk_usage
    from .tables import human_size

    ctrs = [(c.attrs["Image"], c.status == "running", c.upper_dir) for c in labkit.containers(all=True)]
    names = {"images": _("Images"), "containers": _("Containers"), "build-cache": _("Build Cache")}
    rows = [(_("TYPE"), _("TOTAL"), _("ACTIVE"), _("SIZE"), _("RECLAIMABLE"))]
    for u in disk_usage(Store(), ctrs):
        share = f" ({u.reclaimable * 100 // u.size}%)" if u.size else ""
        rows.append((names[u.kind], str(u.total), str(u.active), human_size(u.size),
                     human_size(u.reclaimable) + share))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    _register_doctor(sub)
    _register_system(sub)
