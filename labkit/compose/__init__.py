"""``labkit compose``: an application of several containers described in one file (Docker Compose's subset).

    >>> proj = labkit.compose.up("exemplo/")        # doctest: +SKIP
    >>> proj.service("db").name                     # doctest: +SKIP
    'exemplo-db-1'

:mod:`.loader` reads the YAML keeping its lines, :mod:`.model` and
:mod:`.services` check it, :mod:`.project` makes the containers, networks and
volumes through the public API, :mod:`.naming` holds Compose's names and labels.
"""
from __future__ import annotations

from .model import Model, load
from .project import Project, down, get_project, up

__all__ = ["Model", "Project", "down", "get_project", "load", "up"]
