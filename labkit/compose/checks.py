"""Error messages for a compose file that name the file, the line and the place (``services.web``)."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from ..errors import LabkitError
from ..i18n import _
from .loader import read_dotenv


class Check:
    """Error messages that name the file, the line and the place (``services.web.ports``)."""

    def __init__(self, path: Path) -> None:
        self.file = path.name

    def fail(self, line: int, text: str) -> LabkitError:
        return LabkitError(_("%(file)s, line %(line)d: %(msg)s") % {"file": self.file, "line": line, "msg": text})

    def keys(self, node: Any, allowed: set[str], where: str) -> None:
        if not isinstance(node, dict):
            raise self.fail(getattr(node, "line", 0), _("%(where)s must be a mapping") % {"where": where})
        for key in node:
            if key not in allowed:
                raise self.fail(node.line_of(key), _("unknown key %(key)s in %(where)s (known keys: %(known)s)")
                                % {"key": repr(key), "where": where, "known": ", ".join(sorted(allowed))})

    def string(self, node: dict, key: str, where: str) -> str | None:
        value = node.get(key)
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            raise self.fail(node.line_of(key), _("%(where)s.%(key)s must be a string") % {"where": where, "key": key})
        return str(value)


def labels_of(c: Check, node: dict, where: str) -> dict[str, str]:
    value = node.get("labels")
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        return dict(str(e).split("=", 1) if "=" in str(e) else (str(e), "") for e in value)
    raise c.fail(node.line_of("labels"), _("%(where)s.labels must be a list or a mapping") % {"where": where})


def argv_of(c: Check, node: dict, key: str, where: str) -> list[str] | None:
    value = node.get(key)
    if value is None:
        return None
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, dict):
        raise c.fail(node.line_of(key), _("%(where)s.%(key)s must be a string or a list") % {"where": where, "key": key})
    try:
        return shlex.split(str(value))
    except ValueError as exc:
        raise c.fail(node.line_of(key), str(exc)) from None


def environment_of(c: Check, node: dict, where: str, base: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    files = node.get("env_file")
    for f in [files] if isinstance(files, str) else files or []:
        path = base / str(f)
        if not path.is_file():
            raise c.fail(node.line_of("env_file"), _("env file %(path)s not found") % {"path": path})
        env.update(read_dotenv(path))
    value = node.get("environment")
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = [tuple(str(e).split("=", 1)) if "=" in str(e) else (str(e), None) for e in value]
    elif value is None:
        items = []
    else:
        raise c.fail(node.line_of("environment"), _("%(where)s.environment must be a list or a mapping")
                     % {"where": where})
    for key, val in items:
        if val is None:  # a bare name takes the caller's value, or is left out (compose's rule)
            if key in os.environ:
                env[str(key)] = os.environ[key]
            continue
        env[str(key)] = ("true" if val else "false") if isinstance(val, bool) else str(val)
    return env
