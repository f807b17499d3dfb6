"""An image in the store: its manifest, its config, its layers (unpacked on demand)."""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import LabkitError
from ..i18n import _
from . import refs as _refs
from .layout import MT_MANIFEST

if TYPE_CHECKING:
    from .store import Store

HEX = re.compile(r"^[0-9a-f]{1,64}$")

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "riscv64": "riscv64",
        "ppc64le": "ppc64le", "s390x": "s390x"}


def host_arch() -> str:
    return ARCH.get(os.uname().machine, os.uname().machine)


def parse_time(value: str | None) -> _dt.datetime | None:
    """An OCI ``created`` timestamp (RFC 3339, maybe with nanoseconds)."""
    if not value:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", value)
    if not m:
        return None
    frac = (m.group(2) or "")[:7]
    tz = m.group(3) or "Z"
    tz = "+00:00" if tz == "Z" else tz
    try:
        return _dt.datetime.fromisoformat(m.group(1) + frac + tz)
    except ValueError:
        return None


class Image:
    """An image in the store: a manifest, its config and its layers."""

    def __init__(self, store: "Store", descriptor: dict, ref: str | None) -> None:
        self.store = store
        self.ref = ref  # canonical name ("localhost/busybox:latest") or None when untagged
        self.descriptor = descriptor
        self.digest: str = descriptor["digest"]  # manifest digest
        self._manifest: dict | None = None
        self._config: dict | None = None

    def __repr__(self) -> str:
        return f"<Image {self.ref or '<none>'} {self.short_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.digest == self.digest and other.ref == self.ref

    def __hash__(self) -> int:
        return hash((self.digest, self.ref))

    @property
    def manifest(self) -> dict:
        if self._manifest is None:
            self._manifest = self.store.layout.read_json(self.digest)
        return self._manifest

    @property
    def id(self) -> str:
        """``sha256:<config digest>``: Docker's image ID."""
        return self.manifest["config"]["digest"]

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def config(self) -> dict:
        """The OCI image config (``config["config"]`` has Env, Cmd, Entrypoint...)."""
        if self._config is None:
            self._config = self.store.layout.read_json(self.id)
        return self._config

    @property
    def layers(self) -> list[dict]:
        return list(self.manifest.get("layers", []))

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def created(self) -> _dt.datetime | None:
        return parse_time(self.config.get("created"))

    @property
    def repo_tags(self) -> list[str]:
        """Every name in the store pointing at this manifest."""
        return self.store.names_of(self.digest)

    @property
    def size(self) -> int:
        """Uncompressed size of all layers (what ``docker images`` shows)."""
        return sum(self.store.uncompressed_size(d, i) for d, i in zip(self.layers, self.diff_ids))

    def layer_dirs(self) -> list[Path]:
        """Unpacked layer directories, bottom layer first (unpacking the missing ones)."""
        if len(self.layers) != len(self.diff_ids):
            raise LabkitError(_("image %(ref)s is corrupt: layers and diff_ids differ") % {"ref": self.ref or self.id})
        return [self.store.unpacked(desc, diff_id) for desc, diff_id in zip(self.layers, self.diff_ids)]

    def inspect(self) -> dict:
        """A ``docker image inspect``-like dict."""
        cfg = self.config
        created = self.created
        names = self.repo_tags
        return {
            "Id": self.id,
            "Digest": self.digest,
            "RepoTags": [_refs.familiar(n) for n in names],
            "RepoDigests": sorted({_refs.familiar(_refs.split(n)[0]) + "@" + self.digest for n in names}),
            "Parent": "",
            "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
            "Created": created.isoformat().replace("+00:00", "Z") if created else "",
            "Author": cfg.get("author", ""),
            "Config": cfg.get("config", {}),
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": self.size,
            "RootFS": {"Type": "layers", "Layers": self.diff_ids},
            "History": cfg.get("history", []),
            "Labels": (cfg.get("config") or {}).get("Labels"),
            "ManifestMediaType": self.manifest.get("mediaType", MT_MANIFEST),
        }
