"""Docker's units: sizes ("64m") and CPUs ("0.5") for a container's slice, and sizes as a person reads them ("2.03MB").

Standard library only (no dataclasses, no cgroup code): the ``labkit``
command parses its flags with these before anything else is imported.
"""
from __future__ import annotations

import re

from .errors import LabkitError
from .i18n import _

DEFAULT_PIDS_LIMIT = 2048  # podman's default (containers.conf pids_limit)

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str | int) -> int:
    """Parse a Docker-style size ("512", "64m", "1.5g", "100MB") into bytes."""
    if isinstance(text, int):
        if text < 0:
            raise LabkitError(_("invalid size: %(value)s") % {"value": text})
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise LabkitError(
            _("invalid size: %(value)s (use a number with b, k, m or g, e.g. 64m)")
            % {"value": text}
        )
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def parse_cpus(text: str | float) -> float:
    """Parse ``--cpus`` (a positive number of cores, e.g. 0.5)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = -1.0
    if value <= 0:
        raise LabkitError(
            _("invalid number of CPUs: %(value)s (use a positive number, e.g. 0.5)")
            % {"value": text}
        )
    return value


_backend = None


def human_size(size: float) -> str:
    """Docker's ``HumanSizeWithPrecision(size, 3)``: decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"
