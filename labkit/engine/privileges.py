"""What a container may touch beyond its own files: the device nodes it gets
(``--device``, checked against the host's node), its capabilities
(``--cap-add``/``--cap-drop`` by Docker's rule, bounded by the engine's own) and
its seccomp filter (``--security-opt``, Docker's profile format).
Both are checked before anything is made, so a refused run leaves nothing behind.
"""
from __future__ import annotations

import os

from ..errors import LabkitError, NotFound
from ..i18n import _


def host_devices(specs: list) -> list[dict]:
    """``--device`` [host, container, access] → what the node in the container needs
    (type, major, minor, mode, owner), read from the host's node. A path that is missing or
    no device is refused before anything is made."""
    import stat

    out = []
    for host, path, access in specs:
        try:
            st = os.stat(host)
        except OSError as exc:
            raise NotFound(_("error gathering device information while adding custom device "
                             "%(path)s: %(error)s") % {"path": host, "error": exc.strerror}) from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise LabkitError(_("%(path)s is not a device node") % {"path": host})
        out.append({"host": host, "path": os.path.normpath(path), "access": access,
                    "type": "c" if stat.S_ISCHR(st.st_mode) else "b", "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev), "mode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid, "gid": st.st_gid})
    return out


def device_rules(devices: list[dict]) -> list:
    """The cgroup rules allowing ``devices`` (what :func:`host_devices` returned)."""
    from ..kernel.cgroups.devices import Rule

    return [Rule(d["type"], d["major"], d["minor"], d["access"]) for d in devices]


def container_caps(add: list[str], drop: list[str]) -> list[str]:
    """``--cap-add``/``--cap-drop`` → the container's capabilities (Docker's rule, see
    :func:`~labkit.kernel.capabilities.resolve`), limited to what the engine has itself:
    ``ALL`` means all of those; naming one it lacks is an error."""
    from ..kernel import capabilities

    for flag, names in (("--cap-add", add), ("--cap-drop", drop)):
        for name in names:
            try:
                capabilities.normalize(name)
            except ValueError:
                raise LabkitError(_('invalid %(flag)s: unknown capability: "%(name)s"')
                                  % {"flag": flag, "name": name}) from None
    caps = capabilities.resolve(add, drop)
    own = capabilities.from_status()["CapBnd"]
    lacking = [c for c in caps if not own & capabilities.mask([c])]
    named = {capabilities.normalize(n) for n in add}
    if any(c in named for c in lacking):
        raise LabkitError(_("the engine itself does not have the capability %(name)s, so it cannot "
                            "give it to a container") % {"name": next(c for c in lacking if c in named)})
    return [c for c in caps if c not in lacking]


def security_options(opts: list[str], caps: list[str]) -> tuple[list[str], str]:
    """``--security-opt`` values → (what inspect shows, the seccomp filter as hex; "" = none).

    ``seccomp=unconfined``, ``seccomp=FILE.json`` (Docker's profile format, compiled for
    ``caps`` now: a bad file fails the run before anything is made), ``no-new-privileges``
    (labkit sets it on every container anyway).
    """
    from ..kernel import seccomp

    shown, path, unconfined = [], None, False
    for opt in opts:
        key, sep, value = opt.replace(":", "=", 1).partition("=") if opt.startswith(
            ("seccomp:", "no-new-privileges:")) else opt.partition("=")
        if key == "no-new-privileges" and value in ("", "true"):
            shown.append("no-new-privileges")
        elif key == "seccomp" and value == "unconfined":
            unconfined, path = True, None
            shown.append("seccomp=unconfined")
        elif key == "seccomp" and value:
            path, unconfined = value, False
            shown.append(f"seccomp={value}")
        else:
            raise LabkitError(_("invalid --security-opt: %(opt)s (use seccomp=unconfined, "
                                "seccomp=FILE.json or no-new-privileges)") % {"opt": opt})
    if unconfined:
        return shown, ""
    try:
        return shown, seccomp.program(path, caps).hex()
    except OSError as exc:
        raise LabkitError(_("cannot read the seccomp profile %(path)s: %(err)s")
                          % {"path": path, "err": exc.strerror}) from None
    except seccomp.ProfileError as exc:
        msg = {"not JSON": _("the seccomp profile %(path)s is not valid JSON: %(detail)s"),
               "unknown syscall": _("the seccomp profile %(path)s names an unknown system call: "
                                    "%(detail)s"),
               "unknown action": _("the seccomp profile %(path)s names an unknown action: "
                                   "%(detail)s"),
               }.get(exc.kind, _("invalid seccomp profile %(path)s: %(detail)s"))
        raise LabkitError(msg % {"path": path, "detail": exc.detail}) from None
