"""Container labels and ``ps --filter``: what Docker calls metadata, key=value pairs.

A label means nothing to the kernel; tools find their containers by them
(``docker compose`` marks each container with its project and service).
Filtering is done on the client side, on the inspect documents the engine
lists: Docker's rules, ``label=`` filters all have to match, ``name=`` filters
any of them (a regular expression searched in the name).
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time in `labkit run` (bench/bench_runtime.py)
    from typing import Any, Iterable

from .errors import LabkitError
from .i18n import _

FILTER_KEYS = ("label", "name", "status", "id")


def parse_labels(labels: Any) -> dict[str, str]:
    """``{"k": "v"}``, ``["k=v", "k"]`` or ``"k=v"`` → ``{"k": "v"}`` (a bare key has the value "")."""
    if not labels:
        return {}
    if isinstance(labels, dict):
        items = [(str(k), "" if v is None else str(v)) for k, v in labels.items()]
    else:
        if isinstance(labels, str):
            labels = [labels]
        items = [tuple(str(entry).split("=", 1)) if "=" in str(entry) else (str(entry), "")
                 for entry in labels]
    out: dict[str, str] = {}
    for key, value in items:
        if not key.strip():
            raise LabkitError(_("invalid label: %(label)s (use KEY=VALUE)") % {"label": f"{key}={value}"})
        out[key] = value
    return out


def read_label_files(paths: Iterable[str]) -> list[str]:
    """``--label-file``: one ``KEY=VALUE`` a line, blank lines and ``#`` comments skipped."""
    entries: list[str] = []
    for path in paths or ():
        with open(path, encoding="utf-8") as f:
            entries += [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return entries


def flag_labels(labels: Iterable[str], files: Iterable[str]) -> dict[str, str]:
    """``--label-file`` first, then ``--label``: a flag overrides the file (Docker's order)."""
    return parse_labels(read_label_files(files) + list(labels or []))


def parse_filters(filters: Any) -> dict[str, list[str]]:
    """``["label=k=v", "name=web"]`` (the CLI's) or ``{"label": [...]}`` (the API's) → a dict of lists."""
    if not filters:
        return {}
    out: dict[str, list[str]] = {}
    if isinstance(filters, dict):
        pairs = [(k, v) for k, vs in filters.items() for v in ([vs] if isinstance(vs, str) else vs)]
    else:
        pairs = []
        for entry in [filters] if isinstance(filters, str) else filters:
            key, eq, value = str(entry).partition("=")
            if not eq:
                raise LabkitError(_('bad format of filter (expected name=value): %(filter)s') % {"filter": entry})
            pairs.append((key, value))
    for key, value in pairs:
        if key not in FILTER_KEYS:
            raise LabkitError(_("invalid filter '%(key)s'") % {"key": key})
        out.setdefault(key, []).append(str(value))
    return out


def matches(doc: dict, filters: dict[str, list[str]]) -> bool:
    """Whether an inspect document passes every kind of filter (Docker's ``ps --filter``)."""
    labels = (doc.get("Config") or {}).get("Labels") or {}
    for wanted in filters.get("label", []):
        key, eq, value = wanted.partition("=")
        if key not in labels or (eq and labels[key] != value):
            return False
    names = filters.get("name")
    if names:
        name = doc.get("Name", "")
        try:
            if not any(re.search(n, name) for n in names):
                return False
        except re.error:
            if not any(n in name for n in names):
                return False
    ids = filters.get("id")
    if ids and not any(doc.get("Id", "").startswith(i) for i in ids):
        return False
    statuses = filters.get("status")
    if statuses and (doc.get("State") or {}).get("Status") not in statuses:
        return False
    return True


def select(docs: list[dict], filters: Any) -> list[dict]:
    wanted = parse_filters(filters)
    return [d for d in docs if matches(d, wanted)] if wanted else docs
