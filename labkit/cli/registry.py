"""Registry verbs: pull, push, login, logout."""
from __future__ import annotations

import sys

from ..i18n import _


def _tls_flags(p) -> None:
    p.add_argument("--tls-verify", default="true", choices=["true", "false"],
                   help=_("verify the registry's TLS certificate (default true)"))
    p.add_argument("--ca-file", metavar=_("FILE"), help=_("CA certificate(s) to trust for the registry"))
    p.add_argument("--insecure-http", action="store_true",
                   help=_("speak plain HTTP to the registry (default only for localhost/127.0.0.1)"))
    p.add_argument("-u", "--username", help=_("user name for the registry"))
    p.add_argument("--password-stdin", action="store_true", help=_("read the password from STDIN"))


def register(sub) -> None:
    p = sub.add_parser("pull", help=_("Download an image from a registry"))
    _tls_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help=_("suppress verbose output"))
    p.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("push", help=_("Upload an image to a registry"))
    _tls_flags(p)
    p.add_argument("-q", "--quiet", action="store_true", help=_("suppress verbose output"))
    p.add_argument("--chunk-size", type=int, default=0, metavar=_("BYTES"),
                   help=_("upload blobs in chunks of this size (default: one request per blob)"))
    p.add_argument("image", metavar="NAME[:TAG]")
    p.add_argument("destination", nargs="?", metavar="REGISTRY/NAME[:TAG]",
                   help=_("push under another name (default: the image's own name)"))
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("login", help=_("Log in to a registry"))
    _tls_flags(p)
    p.add_argument("-p", "--password", help=_("password (prefer --password-stdin)"))
    p.add_argument("registry", metavar="REGISTRY")
    p.set_defaults(func=cmd_login)

    p = sub.add_parser("logout", help=_("Log out from a registry"))
    p.add_argument("registry", metavar="REGISTRY")
    p.set_defaults(func=cmd_logout)


def _creds(args) -> dict:
    password = getattr(args, "password", None)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    opts = {"tls_verify": args.tls_verify == "true", "ca_file": args.ca_file,
            "username": args.username, "password": password}
    if args.insecure_http:
        opts["secure"] = False
    return opts


def cmd_pull(args) -> int:
    from ..images.registry import pull

    img = pull(args.image, out=None if args.quiet else sys.stdout, **_creds(args))
    print(img.ref or img.id)
    return 0


def cmd_push(args) -> int:
    from ..images.registry import push

    push(args.image, args.destination, out=None if args.quiet else sys.stdout,
         chunk_size=args.chunk_size or None, **_creds(args))
    return 0


def cmd_login(args) -> int:
    from ..errors import LabkitError
    from ..images.registry import login

    opts = _creds(args)
    user = opts["username"]
    if not user:
        sys.stderr.write(_("Username: "))
        sys.stderr.flush()
        user = sys.stdin.readline().strip()
    password = opts["password"]
    if password is None:
        import getpass

        password = getpass.getpass(_("Password: "))
    if not user:
        raise LabkitError(_("a user name is needed"))
    login(args.registry, user, password, tls_verify=opts["tls_verify"], ca_file=opts["ca_file"])
    print(_("Login Succeeded"))
    return 0


def cmd_logout(args) -> int:
    from ..images.registry import remove_credentials

    if remove_credentials(args.registry):
        print(_("Removing login credentials for %(host)s") % {"host": args.registry})
    else:
        print(_("Not logged in to %(host)s") % {"host": args.registry})
    return 0
