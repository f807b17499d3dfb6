"""Reading a compose file with YAML's line numbers kept, and ``${VAR}`` interpolation.

PyYAML forgets where a value came from once it is a dict. The loader here
keeps each mapping's own line and the line of each key (``node.start_mark``),
so that an unknown key, a bad port or an undefined service is reported with
the line a person has to fix, as ``docker compose`` does.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import LabkitError
from ..i18n import _


class Mapping(dict):
    """A YAML mapping that remembers its line and the line of each of its keys (1-based)."""

    line: int = 0
    key_lines: dict

    def line_of(self, key: str) -> int:
        return getattr(self, "key_lines", {}).get(key, self.line)


class Sequence(list):
    """A YAML sequence with its line and the line of each item."""

    line: int = 0
    item_lines: list

    def line_at(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if index < len(lines) else self.line


class LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry ``start_mark`` lines."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML's hook
        self.flatten_mapping(node)  # YAML merge keys (<<: *anchor), as SafeLoader does
        out = Mapping()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise LabkitError(_("line %(line)d: a mapping key must be a plain value")
                                  % {"line": key_node.start_mark.line + 1})
            key = str(key) if not isinstance(key, str) else key
            out[key] = self.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(self, node, deep=False):  # noqa: D102
        out = Sequence(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, LineLoader.construct_mapping)
LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, LineLoader.construct_sequence)

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $VAR; $$ is a literal $.
_VAR = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def read_dotenv(path: Path) -> dict[str, str]:
    """A ``.env`` / ``env_file``: ``KEY=VALUE`` lines, ``#`` comments, optional quotes."""
    out: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ")
        key, eq, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value if eq else os.environ.get(key.strip(), "")
    return out


def interpolate(value: Any, env: dict[str, str], where: str) -> Any:
    """Replace ``${VAR}`` in every string of the document (compose does it before validating)."""
    if isinstance(value, Mapping):
        out = Mapping((k, interpolate(v, env, where)) for k, v in value.items())
        out.line, out.key_lines = value.line, value.key_lines
        return out
    if isinstance(value, Sequence):
        seq = Sequence(interpolate(v, env, where) for v in value)
        seq.line, seq.item_lines = value.line, getattr(value, "item_lines", [])
        return seq
    if not isinstance(value, str) or "$" not in value:
        return value

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, arg = m.group(3), m.group(4) or ""
        current = env.get(name)
        if op == ":-" and not current or op == "-" and current is None:
            return arg
        if op in (":?", "?") and (current is None or op == ":?" and not current):
            raise LabkitError(_("%(file)s: required variable %(name)s is missing a value: %(msg)s")
                              % {"file": where, "name": name, "msg": arg})
        return current or ""

    return _VAR.sub(sub, value)


def load_yaml(path: Path) -> Mapping:
    """The file's top-level mapping; an error naming the file and line when it is not YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LabkitError(_("no compose file found: %(path)s (compose.yaml, compose.yml, "
                            "docker-compose.yaml or docker-compose.yml, or -f FILE)")
                          % {"path": path}) from None
    except UnicodeDecodeError:
        raise LabkitError(_("%(file)s is not a YAML file (not UTF-8 text)") % {"file": path.name}) from None
    try:
        doc = yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise LabkitError(_("%(file)s, line %(line)d: not valid YAML: %(problem)s")
                          % {"file": path.name, "line": line, "problem": problem}) from None
    if not isinstance(doc, Mapping):
        raise LabkitError(_("%(file)s: a compose file is a YAML mapping with a services: key")
                          % {"file": path.name})
    return doc
