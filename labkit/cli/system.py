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


def register(sub: argparse._SubParsersAction) -> None:
    _register_doctor(sub)
