"""What a container may touch beyond its own files: the device nodes it gets
(``--device``, checked against the host's node), its capabilities
(``--cap-add``/``--cap-drop`` by Docker's rule, bounded by the engine's own) and
its seccomp filter (``--security-opt``, Docker's profile format).
Both are checked before anything is made, so a refused run leaves nothing behind.
"""
from __future__ import annotations

import os
import re

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


def _all_devices() -> list:
    from ..kernel.cgroups.devices import Rule

    return [Rule("a", None, None, "rwm")]


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


# Docker's --ulimit names (go-units), each an RLIMIT_* of resource(2).
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
                "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")


def parse_ulimit(spec: str) -> dict:
    """``NAME=SOFT[:HARD]`` → Docker's ``{"Name", "Hard", "Soft"}``; HARD defaults to SOFT and
    -1 means unlimited, as in ``docker run --ulimit``."""
    name, sep, value = str(spec).partition("=")
    if name not in ULIMIT_NAMES:
        raise LabkitError(_("invalid --ulimit %(spec)s: unknown limit %(name)s (known: %(names)s)")
                          % {"spec": spec, "name": name, "names": ", ".join(ULIMIT_NAMES)})
    soft, _sep, hard = value.partition(":")
    try:
        if not sep or not re.fullmatch(r"-1|\d+", soft) or (_sep and not re.fullmatch(r"-1|\d+", hard)):
            raise ValueError
        soft_n, hard_n = int(soft), int(hard if _sep else soft)
    except ValueError:
        raise LabkitError(_("invalid --ulimit %(spec)s: use NAME=SOFT[:HARD] with whole numbers "
                            "(-1 for unlimited)") % {"spec": spec}) from None
    if _over(soft_n, hard_n):
        raise LabkitError(_("invalid --ulimit %(spec)s: the soft limit %(soft)s is above the hard "
                            "limit %(hard)s") % {"spec": spec, "soft": soft, "hard": hard})
    return {"Name": name, "Hard": hard_n, "Soft": soft_n}


def _over(a: int, b: int) -> bool:
    """``a > b`` where -1 (RLIM_INFINITY) is above everything."""
    return a != b and (a == -1 or (b != -1 and a > b))


def container_ulimits(specs: list[str]) -> list[dict]:
    """``--ulimit`` values, checked against the engine's own hard limits: a process can lower its
    hard limit but only CAP_SYS_RESOURCE raises it, so a container cannot get more than the engine
    has. Refused before anything is made; a name given twice keeps the last, as Docker does."""
    import resource

    out: dict[str, dict] = {}
    for spec in specs:
        limit = parse_ulimit(spec)
        hard = resource.getrlimit(getattr(resource, "RLIMIT_" + limit["Name"].upper()))[1]
        if _over(limit["Hard"], -1 if hard == resource.RLIM_INFINITY else hard):
            raise LabkitError(_("invalid --ulimit %(spec)s: the hard limit is above the engine's own "
                                "hard limit for %(name)s (%(max)s); only lowering is possible")
                              % {"spec": spec, "name": limit["Name"],
                                 "max": _("unlimited") if hard == resource.RLIM_INFINITY else hard})
        out[limit["Name"]] = limit
    return list(out.values())


def process_ulimits(ulimits: list[dict]) -> list[list]:
    """HostConfig.Ulimits → what the child gives setrlimit: [name, soft, hard]."""
    return [[u["Name"], u["Soft"], u["Hard"]] for u in ulimits]


def check_user(user: str) -> None:
    """Refuse a ``--user`` that is not ``name|uid[:group|gid]`` before anything is made; whether
    the name exists is known only inside the container's root (its /etc/passwd)."""
    name, sep, group = str(user).partition(":")
    if not re.fullmatch(r"[^:\s]+", name) or (sep and not re.fullmatch(r"[^:\s]+", group)):
        raise LabkitError(_("invalid --user %(user)s: use name|uid[:group|gid]") % {"user": user})


def privileged_devices() -> list[dict]:
    """``--privileged``: every device node directly in the host's /dev gets its twin in the
    container's (Docker copies the host's /dev too), except those the small /dev has already."""
    import stat

    from .rootfs import DEVICES

    made = {name for name, _major, _minor in DEVICES} | {"ptmx", "console"}
    specs = []
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        try:
            st = os.lstat(path)
        except OSError:  # gone since the listing
            continue
        if name not in made and (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            specs.append([path, path, "rwm"])
    return host_devices(specs)


ALL_DEVICES = _all_devices()  # --privileged: "a *:* rwm", every device
