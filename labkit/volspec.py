"""What a person writes to give a container storage, read into one shape (no engine, no I/O
except checking that a bind's source exists).

Docker has three spellings for the same thing, and labkit reads all three:

- ``-v SRC:DST[:ro|rw]``: SRC is a host path when it starts with ``/``, ``.`` or ``~``,
  otherwise the name of a volume (made on first use); ``-v /path`` alone is an
  anonymous volume.
- ``--mount type=bind|volume|tmpfs,source=...,target=...,readonly,...`` (Docker's keys
  and their aliases: ``src``, ``dst``/``destination``, ``ro``, ``volume-nocopy``,
  ``tmpfs-size``, ``tmpfs-mode``).
- ``--tmpfs /path[:size=64m,mode=1777,...]``.

Each becomes a dict, the form that travels to the engine in the run request::

    {"type": "bind"|"volume"|"tmpfs", "source": str, "target": str, "readonly": bool,
     "nocopy": bool, "options": "size=...,mode=...", "flags": ["noexec", ...], "mode": str}

``source`` is "" for an anonymous volume and for a tmpfs; ``mode`` is what ``inspect``
shows in ``Mounts[].Mode``. The engine runs every item through :func:`normalize` again:
a client that skips this module is checked all the same.
"""
from __future__ import annotations

import os
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from .errors import LabkitError
from .i18n import _

# Docker's rule for a local volume's name (moby: daemon/names.RestrictedNamePattern)
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

# Flags a tmpfs may be given as words (Docker's --tmpfs accepts mount(8)'s)
TMPFS_FLAGS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev"}


def check_volume_name(name: str) -> str:
    """``name`` if Docker would accept it for a local volume; a clear error otherwise."""
    if not isinstance(name, str) or not VOLUME_NAME.fullmatch(name):
        raise LabkitError(_('invalid volume name "%(name)s": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed '
                            '(at least two characters; "/" and ".." are not); to mount a host '
                            'directory, use an absolute path') % {"name": name})
    return name


def _check_target(target: str, spec: Any) -> str:
    if not isinstance(target, str) or not target:
        raise LabkitError(_("invalid mount specification: %(spec)s (a target is required)") % {"spec": spec})
    if not target.startswith("/"):
        raise LabkitError(_("volume target must be an absolute path: %(path)s") % {"path": target})
    if os.path.normpath(target) in ("/", "//"):  # Docker: "destination can't be '/'"
        raise LabkitError(_("invalid volume specification: %(spec)s (use SOURCE:TARGET[:ro])") % {"spec": spec})
    return os.path.normpath(target).replace("//", "/")


def _is_host_path(source: str) -> bool:
    return source.startswith(("/", ".", "~"))


def _bind_source(source: str) -> str:
    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.exists(path):
        raise LabkitError(_("volume source does not exist: %(path)s") % {"path": path})
    return path


def _mount(kind: str, source: str, target: str, readonly: bool = False, *, nocopy: bool = False,
           options: str = "", flags: list | None = None, mode: str = "") -> dict:
    return {"type": kind, "source": source, "target": target, "readonly": readonly, "nocopy": nocopy,
            "options": options, "flags": list(flags or []), "mode": mode}


def parse_volume(spec: str | tuple | list) -> dict:
    """``-v``: ``"SRC:DST[:ro|rw]"``, ``"NAME:DST[:ro|rw]"`` or ``"/DST"`` (anonymous)."""
    parts = [str(p) for p in spec] if isinstance(spec, (tuple, list)) else str(spec).split(":")
    if isinstance(spec, (tuple, list)):
        if len(parts) == 3 and parts[2] in ("True", "False"):
            parts[2] = "ro" if parts[2] == "True" else "rw"  # the engine's old [src, dst, readonly]
        spec = ":".join(parts)
    mode = ""
    if len(parts) == 3 and parts[2] in ("ro", "rw", "nocopy", "ro,nocopy", "nocopy,ro", "rw,nocopy"):
        src, dst, mode = parts
    elif len(parts) == 2:
        src, dst = parts
    elif len(parts) == 1 and parts[0].startswith("/"):
        src, dst = "", parts[0]
    else:
        raise LabkitError(_("invalid volume specification: %(spec)s (use SOURCE:TARGET[:ro])")
                          % {"spec": spec})
    words = set(mode.split(",")) if mode else set()
    target = _check_target(dst, spec)
    readonly = "ro" in words
    if not src:
        return _mount("volume", "", target, readonly, mode=mode)
    if _is_host_path(src):
        if "nocopy" in words:
            raise LabkitError(_("invalid volume specification: %(spec)s (nocopy is for volumes, "
                                "not for host directories)") % {"spec": spec})
        return _mount("bind", _bind_source(src), target, readonly, mode=mode)
    return _mount("volume", check_volume_name(src), target, readonly, nocopy="nocopy" in words, mode=mode)


def parse_mount(spec: str | dict) -> dict:
    """``--mount``: Docker's comma-separated ``key=value`` list (or that dict)."""
    if isinstance(spec, dict) and "readonly" in spec and "type" in spec and "flags" in spec:
        return normalize(spec)
    fields: dict[str, str] = {}
    if isinstance(spec, dict):
        fields = {str(k).lower(): str(v) for k, v in spec.items()}
    else:
        for item in str(spec).split(","):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not key:
                continue
            fields[key] = value if eq else "true"
    known = {"type", "source", "src", "target", "dst", "destination", "readonly", "ro", "volume-nocopy",
             "tmpfs-size", "tmpfs-mode", "bind-propagation", "consistency", "volume-driver"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise LabkitError(_("invalid mount specification: %(spec)s (unknown key %(key)s)")
                          % {"spec": spec, "key": unknown[0]})
    kind = fields.get("type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise LabkitError(_("invalid mount specification: %(spec)s (type must be bind, volume or tmpfs)")
                          % {"spec": spec})
    source = fields.get("source", fields.get("src", ""))
    target = _check_target(fields.get("target", fields.get("dst", fields.get("destination", ""))), spec)
    readonly = _boolean(fields.get("readonly", fields.get("ro", "false")), spec)
    if fields.get("volume-driver", "local") != "local":
        raise LabkitError(_("invalid mount specification: %(spec)s (only the local volume driver exists)")
                          % {"spec": spec})
    if kind != "volume" and "volume-nocopy" in fields:
        raise LabkitError(_("invalid mount specification: %(spec)s (volume-nocopy is for type=volume)")
                          % {"spec": spec})
    if kind != "tmpfs" and ("tmpfs-size" in fields or "tmpfs-mode" in fields):
        raise LabkitError(_("invalid mount specification: %(spec)s (tmpfs-size and tmpfs-mode are for "
                            "type=tmpfs)") % {"spec": spec})
    if kind == "bind":
        if not source:
            raise LabkitError(_("invalid mount specification: %(spec)s (a bind needs a source)") % {"spec": spec})
        if not source.startswith("/"):
            raise LabkitError(_("invalid mount specification: %(spec)s (a bind's source must be an absolute "
                                "path)") % {"spec": spec})
        return _mount("bind", _bind_source(source), target, readonly)
    if kind == "volume":
        if source:
            check_volume_name(source)
        return _mount("volume", source, target, readonly,
                      nocopy=_boolean(fields.get("volume-nocopy", "false"), spec))
    if source:
        raise LabkitError(_("invalid mount specification: %(spec)s (a tmpfs has no source)") % {"spec": spec})
    opts = []
    if "tmpfs-size" in fields:
        opts.append(f"size={fields['tmpfs-size']}")
    if "tmpfs-mode" in fields:
        opts.append(f"mode={fields['tmpfs-mode']}")
    options, flags = tmpfs_options(",".join(opts), spec)
    if readonly:
        flags.append("ro")
    return _mount("tmpfs", "", target, readonly, options=options, flags=flags)


def _boolean(value: str, spec: Any) -> bool:
    low = value.lower()
    if low in ("true", "1", ""):
        return True
    if low in ("false", "0"):
        return False
    raise LabkitError(_("invalid mount specification: %(spec)s (%(value)s is not true or false)")
                      % {"spec": spec, "value": value})


def tmpfs_options(text: str, spec: Any = None) -> tuple[str, list[str]]:
    """``size=64m,mode=1777,noexec`` → (data for mount(2), flag words); sizes must parse."""
    from .units import parse_size

    data, flags = [], []
    for item in filter(None, (i.strip() for i in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            if key not in TMPFS_FLAGS:
                raise LabkitError(_("invalid tmpfs option %(opt)s in %(spec)s") % {"opt": item, "spec": spec or text})
            flags.append(key)
            continue
        if key == "size":
            try:
                size = parse_size(value)
            except (LabkitError, ValueError):
                size = -1
            if size <= 0:
                raise LabkitError(_("invalid tmpfs size %(size)s in %(spec)s (use a size such as 64m)")
                                  % {"size": value, "spec": spec or text})
            data.append(f"size={size}")
        elif key == "mode":
            if not re.fullmatch(r"[0-7]{1,4}", value):
                raise LabkitError(_("invalid tmpfs mode %(mode)s in %(spec)s (use octal, such as 1777)")
                                  % {"mode": value, "spec": spec or text})
            data.append(f"mode={value}")
        elif key in ("uid", "gid", "nr_inodes"):
            if not value.isdigit():
                raise LabkitError(_("invalid tmpfs option %(opt)s in %(spec)s") % {"opt": item, "spec": spec or text})
            data.append(f"{key}={value}")
        else:
            raise LabkitError(_("invalid tmpfs option %(opt)s in %(spec)s") % {"opt": item, "spec": spec or text})
    return ",".join(data), flags


def parse_tmpfs(tmpfs: Any) -> list[dict]:
    """``--tmpfs``: ``["/run:size=64m"]``, ``"/run"`` or ``{"/run": "size=64m"}``."""
    if not tmpfs:
        return []
    if isinstance(tmpfs, str):
        tmpfs = [tmpfs]
    items = list(tmpfs.items()) if isinstance(tmpfs, dict) else [str(t).partition(":")[::2] for t in tmpfs]
    out = []
    for target, opts in items:
        spec = f"{target}:{opts}" if opts else target
        options, flags = tmpfs_options(opts or "", spec)
        out.append(_mount("tmpfs", "", _check_target(target, spec), "ro" in flags, options=options,
                          flags=flags))
    return out


def parse_volumes_from(refs: Any) -> list[str]:
    """``--volumes-from CTR[:ro|rw]``."""
    if not refs:
        return []
    if isinstance(refs, str):
        refs = [refs]
    out = []
    for ref in refs:
        name, sep, mode = str(ref).partition(":")
        if not name or (sep and mode not in ("ro", "rw")):
            raise LabkitError(_("invalid --volumes-from: %(spec)s (use CONTAINER[:ro|rw])") % {"spec": ref})
        out.append(str(ref))
    return out


def parse_volumes(volumes: Any) -> list[dict]:
    """``volumes=``: a list of ``-v`` strings, one string, or docker-py's dict
    ``{src: dst}`` / ``{src: {"bind": dst, "mode": "ro"}}``."""
    if not volumes:
        return []
    if isinstance(volumes, dict):
        specs: list = []
        for src, dst in volumes.items():
            if isinstance(dst, dict):
                specs.append((src, dst["bind"], dst.get("mode", "rw")))
            else:
                specs.append((src, dst))
        volumes = specs
    elif isinstance(volumes, str):
        volumes = [volumes]
    return [normalize(v) if isinstance(v, dict) else parse_volume(v) for v in volumes]


def parse_mounts(mounts: Any) -> list[dict]:
    if not mounts:
        return []
    if isinstance(mounts, (str, dict)):
        mounts = [mounts]
    return [parse_mount(m) for m in mounts]


def normalize(item: Any) -> dict:
    """One mount as the engine takes it, checked again (a raw request skips the client)."""
    if not isinstance(item, dict):
        return parse_volume(item)
    kind = item.get("type")
    target = _check_target(item.get("target", ""), f"{item.get('source', '')}:{item.get('target', '')}")
    source = str(item.get("source") or "")
    if kind == "bind":
        if not source.startswith("/"):
            raise LabkitError(_("invalid mount specification: %(spec)s (a bind's source must be an absolute "
                                "path)") % {"spec": f"{source}:{target}"})
    elif kind == "volume":
        if source:
            check_volume_name(source)
    elif kind == "tmpfs":
        options, flags = tmpfs_options(str(item.get("options") or ""), target)
        extra = [f for f in item.get("flags") or [] if f in TMPFS_FLAGS]
        return _mount("tmpfs", "", target, bool(item.get("readonly")), options=options,
                      flags=flags + extra, mode=str(item.get("mode") or ""))
    else:
        raise LabkitError(_("invalid mount specification: %(spec)s (type must be bind, volume or tmpfs)")
                          % {"spec": kind})
    return _mount(kind, source, target, bool(item.get("readonly")), nocopy=bool(item.get("nocopy")),
                  mode=str(item.get("mode") or ""))
