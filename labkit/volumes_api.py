"""Volumes from Python: ``labkit.volume("dados")``, ``labkit.volumes()``, as a notebook uses them.

A volume is a directory the engine keeps outside every container
(``$LABKIT_HOME/volumes/<name>/_data``): the data stays when the container goes, and a
new container mounts it again (``labkit.run(..., volumes=["dados:/var/lib/db"])``).
"""
from __future__ import annotations

from pathlib import Path

from .engine import client


class Volume:
    """A volume the engine knows, by name. ``inspect()`` reads it fresh."""

    def __init__(self, doc: dict, home: Path | None = None) -> None:
        self._doc = doc
        self.home = home

    def __repr__(self) -> str:
        return f"<Volume {self.name}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Volume) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def name(self) -> str:
        return self._doc["Name"]

    @property
    def mountpoint(self) -> Path:
        """Where its data is on the host: ``.../volumes/<name>/_data``."""
        return Path(self._doc["Mountpoint"])

    @property
    def labels(self) -> dict:
        return dict(self._doc.get("Labels") or {})

    def inspect(self) -> dict:
        """Docker's document: Name, Driver ("local"), Mountpoint, Labels, Scope, CreatedAt."""
        self._doc = client.request({"op": "volume_inspect", "name": self.name}, home=self.home)["volume"]
        return dict(self._doc)

    reload = inspect

    def remove(self, force: bool = False) -> None:
        """As ``docker volume rm``: refused while a container (running or not) uses it,
        with ``force`` too (Docker's rule); ``force`` only forgives a volume already gone."""
        from .errors import NotFound

        try:
            client.request({"op": "volume_rm", "name": self.name}, home=self.home)
        except NotFound:
            if not force:
                raise


def _labels(labels) -> dict:
    if not labels:
        return {}
    if isinstance(labels, dict):
        return {str(k): str(v) for k, v in labels.items()}
    return dict(str(item).partition("=")[::2] for item in labels)


def volume(name: str | None = None, *, labels=None, home: Path | None = None) -> Volume:
    """The volume ``name``, created if it does not exist (an anonymous one without a name)."""
    reply = client.request({"op": "volume_create", "name": name, "labels": _labels(labels)}, home=home)
    return Volume(reply["volume"], home)


def volumes(home: Path | None = None) -> list[Volume]:
    return [Volume(d, home) for d in client.request({"op": "volume_list"}, home=home)["volumes"]]


def get_volume(name: str, home: Path | None = None) -> Volume:
    return Volume(client.request({"op": "volume_inspect", "name": name}, home=home)["volume"], home)


def prune_volumes(all: bool = False, home: Path | None = None) -> list[str]:
    """Remove the volumes no container uses: anonymous ones (Docker 23's rule), named ones too
    with ``all=True``. Returns their names."""
    return client.request({"op": "volume_prune", "all": all}, home=home)["removed"]
