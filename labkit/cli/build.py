"""Build verbs: build, history, diff, commit, image prune (and image build/history)."""
from __future__ import annotations

import sys

from ..i18n import _


def register(sub) -> None:
    p = sub.add_parser("build", help=_("Build an image from a Dockerfile"))
    _build_flags(p)
    p = sub.add_parser("history", help=_("Show the history of an image"))
    _history_flags(p)
    p = sub.add_parser("diff", help=_("Inspect changes to files or directories on a container's filesystem"))
    p.add_argument("container", metavar=_("CONTAINER"))
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser("commit", help=_("Create a new image from a container's changes"))
    p.add_argument("-m", "--message", default="", help=_("commit message"))
    p.add_argument("-a", "--author", default="", help=_('author (e.g. "Ana <ana@example.com>")'))
    p.add_argument("-p", "--pause", action="store_true", default=True, help=_("pause the container during commit (default)"))
    p.add_argument("container", metavar=_("CONTAINER"))
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_commit)
    try:
        from . import images
    except ImportError:  # pragma: no cover
        images = None
    isub = getattr(images, "IMAGE_SUBCOMMANDS", None)
    if isub is not None:
        p = isub.add_parser("prune", help=_("Remove unused images"))
        _prune_flags(p)
        _build_flags(isub.add_parser("build", help=_("Build an image from a Dockerfile")))
        _history_flags(isub.add_parser("history", help=_("Show the history of an image")))


def _build_flags(p) -> None:
    p.add_argument("-t", "--tag", metavar="NAME[:TAG]", help=_("name and optionally a tag for the image"))
    p.add_argument("-f", "--file", metavar=_("FILE"), help=_("name of the Dockerfile (default: CONTEXT/Dockerfile; - reads it from STDIN)"))
    p.add_argument("--build-arg", action="append", default=[], metavar="K=V", help=_("set a build-time variable"))
    p.add_argument("--no-cache", action="store_true", help=_("do not use the cache when building the image"))
    p.add_argument("--network", default="bridge", metavar=_("NETWORK"),
                   help=_("network for RUN instructions: bridge (default), none, host or a network made "
                          "with labkit network create"))
    p.add_argument("--target", metavar=_("STAGE"), help=_("build up to this stage"))
    p.add_argument("--label", action="append", default=[], metavar="K=V", help=_("set a label on the image"))
    p.add_argument("-q", "--quiet", action="store_true", help=_("print only the image ID"))
    p.add_argument("context", metavar=_("CONTEXT"))
    p.set_defaults(func=cmd_build)


def _history_flags(p) -> None:
    p.add_argument("--no-trunc", action="store_true", help=_("don't truncate output"))
    p.add_argument("-q", "--quiet", action="store_true", help=_("only show image IDs"))
    p.add_argument("image", metavar=_("IMAGE"))
    p.set_defaults(func=cmd_history)


def _prune_flags(p) -> None:
    p.add_argument("-a", "--all", action="store_true", help=_("remove all images not used by a container"))
    p.add_argument("-f", "--force", action="store_true", help=_("do not ask for confirmation"))
    p.set_defaults(func=cmd_prune)


def _pairs(items: list[str], what: str) -> dict[str, str]:
    import os

    from ..errors import LabkitError

    out = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise LabkitError(_("invalid %(what)s: %(value)s (use KEY=VALUE)") % {"what": what, "value": item})
        if not eq:  # --build-arg NAME takes the value from the environment, as Docker does
            if k not in os.environ:
                continue
            v = os.environ[k]
        out[k] = v
    return out


def cmd_build(args) -> int:
    from ..images.build import build_result

    dockerfile = args.file
    if dockerfile == "-":  # the Dockerfile on standard input, as `docker build -f -`
        dockerfile = sys.stdin.read()
        if "\n" not in dockerfile:
            dockerfile += "\n"
    res = build_result(args.context, args.tag, dockerfile=dockerfile,
                       build_args=_pairs(args.build_arg, "--build-arg"), no_cache=args.no_cache,
                       network=args.network, target=args.target, quiet=args.quiet,
                       labels=_pairs(args.label, "--label"))
    if args.quiet:
        print(res.image.id)
    return 0


def _created(created: str) -> str:
    from ..images.store import parse_time
    from .tables import ago

    t = parse_time(created)
    if t is not None and t.timestamp() == 0:
        return _("1970 (fixed, reproducible)")
    return ago(t)


def cmd_history(args) -> int:
    from ..images.changes import history
    from .tables import human_size, table

    layers = history(args.image)
    if args.quiet:
        for r in layers:
            print(r.id if args.no_trunc else (r.id.split(":", 1)[-1][:12] if r.id != "<missing>" else r.id))
        return 0
    rows = []
    for r in layers:
        ident = r.id if args.no_trunc or r.id == "<missing>" else r.id.split(":", 1)[-1][:12]
        by = r.created_by.replace("\n", " ")
        if not args.no_trunc and len(by) > 45:
            by = by[:44] + "…"
        rows.append([ident, _created(r.created), by, human_size(r.size), r.comment])
    print(table([_("IMAGE"), _("CREATED"), _("CREATED BY"), _("SIZE"), _("COMMENT")], rows))
    return 0


def cmd_diff(args) -> int:
    from ..images.changes import diff

    for kind, path in diff(args.container):
        print(f"{kind} {path}")
    return 0


def cmd_commit(args) -> int:
    from ..images.changes import commit

    img = commit(args.container, args.repository, message=args.message, author=args.author, pause=args.pause)
    print(img.id)
    return 0


def cmd_prune(args) -> int:
    from ..images.changes import prune_images

    if not args.force and sys.stdin.isatty():
        prompt = (_("WARNING! This will remove all images without at least one container associated to them.")
                  if args.all else _("WARNING! This will remove all dangling images."))
        sys.stdout.write(prompt + "\n" + _("Are you sure you want to continue? [y/N] "))
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes", "s", "sim"):
            return 0
    gone = prune_images(all=args.all)
    if gone:
        print(_("Deleted Images:"))
        for d in gone:
            print(f"deleted: {d}")
    print(_("Total reclaimed: %(n)d images") % {"n": len(gone)})
    return 0
