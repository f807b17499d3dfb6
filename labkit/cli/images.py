"""Image verbs: images, image ls/inspect/rm/tag/save/load, rmi, tag, save, load.

Other areas may add ``image`` subcommands (``image prune``, ``image history``)
through :data:`IMAGE_SUBCOMMANDS`, set when this module registers.
"""
from __future__ import annotations

import argparse
import json
import re
import os
import sys
import time

from ..i18n import _
from .tables import ago, human_size, table

#: argparse subparsers of ``labkit image`` (None until :func:`register` ran)
IMAGE_SUBCOMMANDS = None


def register(sub) -> None:
    global IMAGE_SUBCOMMANDS
    p = sub.add_parser("images", help=_("List images"))
    _ls_flags(p)

    p = sub.add_parser("rmi", help=_("Remove one or more images"))
    _rm_flags(p)

    p = sub.add_parser("tag", help=_("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"))
    _tag_flags(p)

    p = sub.add_parser("save", help=_("Save one or more images to a tar archive (streamed to STDOUT by default)"))
    _save_flags(p)

    p = sub.add_parser("load", help=_("Load an image from a tar archive or STDIN"))
    _load_flags(p)

    img = sub.add_parser("image", help=_("Manage images"))
    img.set_defaults(func=lambda args: (img.print_help(), 0)[1])
    isub = img.add_subparsers(dest="image_command", metavar=_("COMMAND"), parser_class=type(img))
    IMAGE_SUBCOMMANDS = isub
    _ls_flags(isub.add_parser("ls", aliases=["list"], help=_("List images")))
    p = isub.add_parser("inspect", help=_("Display detailed information on one or more images"))
    p.add_argument("-f", "--format", help=_("Go-template-like format, e.g. '{{.Config.Cmd}}' or '{{json .Config}}'"))
    p.add_argument("images", nargs="+", metavar=_("IMAGE"))
    p.set_defaults(func=cmd_inspect)
    _rm_flags(isub.add_parser("rm", help=_("Remove one or more images")))
    _tag_flags(isub.add_parser("tag", help=_("Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE")))
    _save_flags(isub.add_parser("save", help=_("Save one or more images to a tar archive (streamed to STDOUT by default)")))
    _load_flags(isub.add_parser("load", help=_("Load an image from a tar archive or STDIN")))


def _ls_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help=_("show all images (default hides none; kept for Docker)"))
    p.add_argument("-q", "--quiet", action="store_true", help=_("only show image IDs"))
    p.add_argument("--no-trunc", action="store_true", help=_("don't truncate output"))
    p.add_argument("--digests", action="store_true", help=_("show digests"))
    p.add_argument("--format", help=_("Go-template-like format, e.g. '{{.Repository}}:{{.Tag}}'"))
    p.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]")
    p.set_defaults(func=cmd_images)


def _rm_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help=_("force removal of the image"))
    p.add_argument("images", nargs="+", metavar=_("IMAGE"))
    p.set_defaults(func=cmd_rmi)


def _tag_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    p.add_argument("target", metavar="TARGET_IMAGE[:TAG]")
    p.set_defaults(func=cmd_tag)


def _save_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar=_("FILE"), help=_("write to a file, instead of STDOUT"))
    p.add_argument("--format", default="oci-archive", choices=["oci-archive", "docker-archive"],
                   help=_("archive format (default oci-archive)"))
    p.add_argument("images", nargs="+", metavar=_("IMAGE"))
    p.set_defaults(func=cmd_save)


def _load_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", metavar=_("FILE"), help=_("read from tar archive file, instead of STDIN"))
    p.add_argument("-q", "--quiet", action="store_true", help=_("suppress the load output"))
    p.set_defaults(func=cmd_load)


# --------------------------------------------------------------------------- formatting
_FIELD = re.compile(r"\{\{\s*(json\s+)?\.([A-Za-z0-9_.]*)\s*\}\}")


def _go_value(value) -> str:
    """How Go's text/template prints a value: lists as [a b], maps as map[k:v]."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items())) + "]"
    return str(value)


def render(template: str, doc: dict) -> str:
    """A small subset of Docker's ``--format``: ``{{.A.B}}`` and ``{{json .A}}``; ``\\t`` and ``\\n`` escapes."""
    def field(m: re.Match) -> str:
        value = doc
        for part in filter(None, m.group(2).split(".")):
            value = value.get(part) if isinstance(value, dict) else None
        if m.group(1):
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return _go_value(value)

    return _FIELD.sub(field, template).replace("\\t", "\t").replace("\\n", "\n")


# --------------------------------------------------------------------------- verbs
def cmd_images(args) -> int:
    from ..images import refs
    from ..images.store import Store

    store = Store()
    images = store.list()
    if args.repository:
        try:
            wanted = refs.candidates(args.repository)
        except Exception:
            wanted = []
        has_tag = ":" in args.repository.rsplit("/", 1)[-1]
        repos = {refs.split(w)[0] for w in wanted}
        images = [i for i in images if i.ref and ((i.ref in wanted) if has_tag else refs.split(i.ref)[0] in repos)]
    if args.quiet:
        seen = []
        for img in images:
            ident = img.id if args.no_trunc else img.short_id
            if ident not in seen:
                seen.append(ident)
        if seen:
            print("\n".join(seen))
        return 0
    if args.format:
        now = time.time()
        for img in images:
            repo, tag = refs.split(refs.familiar(img.ref)) if img.ref else ("<none>", "<none>")
            created = img.created
            print(render(args.format, {
                "ID": img.id if args.no_trunc else img.short_id, "Repository": repo, "Tag": tag,
                "Digest": img.digest, "CreatedSince": ago(created, now),
                "CreatedAt": created.isoformat() if created else "", "Size": human_size(img.size)}))
        return 0
    header = [_("REPOSITORY"), _("TAG")]
    if args.digests:
        header.append(_("DIGEST"))
    header += [_("IMAGE ID"), _("CREATED"), _("SIZE")]
    rows = []
    now = time.time()
    for img in images:
        repo, tag = refs.split(refs.familiar(img.ref)) if img.ref else ("<none>", "<none>")
        row = [repo, tag]
        if args.digests:
            row.append(img.digest)
        row += [img.id if args.no_trunc else img.short_id, ago(img.created, now), human_size(img.size)]
        rows.append(row)
    print(table(header, rows))
    return 0


def cmd_inspect(args) -> int:
    from ..errors import NotFound
    from ..images.store import Store

    store = Store()
    out, missing = [], []
    for ref in args.images:
        try:
            out.append(store.resolve(ref).inspect())
        except NotFound as exc:
            missing.append(exc.message)
    if args.format:
        for doc in out:
            print(render(args.format, doc))
    else:
        print(json.dumps(out, indent=4, ensure_ascii=False))
    for msg in missing:
        sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": msg} + "\n")
    return 1 if missing else 0


def cmd_rmi(args) -> int:
    from ..errors import LabkitError
    from ..images.store import Store

    store = Store()
    rc = 0
    for ref in args.images:
        try:
            for line in store.remove(ref, force=args.force):
                print(line)
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            rc = 1
    return rc


def cmd_tag(args) -> int:
    from ..images.store import Store

    Store().tag(args.source, args.target)
    return 0


def cmd_save(args) -> int:
    from ..errors import LabkitError
    from ..images import archive

    if not args.output and sys.stdout.isatty():
        raise LabkitError(_("cowardly refusing to save to a terminal. Use the -o flag or redirect"))
    if args.output:
        parent = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(parent):  # Docker's words; checked before the archive is written
            raise LabkitError(_('invalid output path: directory "%(dir)s" does not exist') % {"dir": parent})
        if os.path.isdir(args.output):
            raise LabkitError(f"{args.output}: {_('is a directory')}")
    archive.save(args.images, args.output or "-", format=args.format)
    return 0


def cmd_load(args) -> int:
    from ..errors import LabkitError
    from ..images import archive, refs

    if not args.input and sys.stdin.isatty():
        raise LabkitError(_("requested load from stdin, but stdin is empty"))
    images = archive.load(args.input or "-")
    if not args.quiet:
        for img in images:
            if img.ref:
                print(_("Loaded image: %(ref)s") % {"ref": refs.familiar(img.ref)})
            else:
                print(_("Loaded image ID: %(id)s") % {"id": img.id})
    return 0
