"""Docker Compose's names and labels: how a project's containers, networks and volumes are found again.

Compose keeps no database of its own: the engine's labels are the state.
``com.docker.compose.project`` and ``.service`` say whose a container is,
``.config-hash`` whether it still matches the file (``up`` is idempotent).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import LabkitError
from ..i18n import _

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
CONFIG_HASH = "com.docker.compose.config-hash"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"


def normalize(name: str) -> str:
    """Docker's rule for a project name from a folder: lowercase, only ``[a-z0-9_-]``, no leading ``_``/``-``."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def project_name(explicit: str | None, declared: str | None, directory: Path) -> str:
    """``-p NAME`` first, then the file's ``name:``, then the folder's name, normalized."""
    for given in (explicit, declared):
        if given:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", given):
                raise LabkitError(_("invalid project name %(name)s: it must contain only lowercase letters, "
                                    "digits, dashes and underscores, and begin with a letter or a digit")
                                  % {"name": repr(given)})
            return given
    name = normalize(directory.name)
    if not name:
        raise LabkitError(_("cannot make a project name from the folder %(dir)s: use -p NAME")
                          % {"dir": str(directory)})
    return name


def container_name(project: str, service: Any) -> str:
    """``<project>-<service>-1`` (Compose v2), or the service's ``container_name``."""
    return service.container_name or f"{project}-{service.name}-1"


def resource_name(project: str, key: str, spec: dict) -> str:
    """A network's or volume's engine name: its ``name:``, or ``<project>_<key>``."""
    return spec.get("name") or f"{project}_{key}"


def config_hash(service: Any, image_id: str, resolved: dict) -> str:
    """What decides whether a running container still matches the file: its service
    description, the image it was made from, and the real names of its networks and volumes."""
    doc = {"service": asdict(service), "image": image_id, "resolved": resolved}
    doc["service"].pop("line", None)  # moving a service in the file changes nothing
    text = json.dumps(doc, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def container_labels(project: str, service: Any, model: Any, digest: str) -> dict[str, str]:
    return {**service.labels, PROJECT: project, SERVICE: service.name, NUMBER: "1", ONEOFF: "False",
            WORKING_DIR: str(model.directory), CONFIG_FILES: str(model.path), CONFIG_HASH: digest}
