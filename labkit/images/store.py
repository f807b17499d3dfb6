"""The image store: an OCI image layout at ``$LABKIT_HOME/images`` plus unpacked layers.

``Store.resolve("busybox")`` returns an :class:`Image`; ``Image.layer_dirs()``
unpacks its layers once into ``$LABKIT_HOME/layers/<diff_id hex>/`` (bottom
layer first) for OverlayFS to stack as ``lowerdir``. Because the store is a
plain OCI layout, ``skopeo inspect oci:$LABKIT_HOME/images:localhost/busybox:latest``
and ``podman pull oci:...`` read it as is.
"""
from __future__ import annotations

import fcntl
import datetime as _dt
from pathlib import Path

from .. import paths
from ..errors import LabkitError, NotFound
from ..i18n import _
from . import refs as _refs
from .layout import (
    INDEX_TYPES, MT_CONFIG, MT_MANIFEST, REF_NAME, Layout,
)
from .image import ARCH, HEX, Image, host_arch, parse_time  # noqa: F401 - part of the store's contract
from .removal import STALE_TMP_SECONDS, Removal  # noqa: F401
from .unpacked import LayerFiles


class Store(LayerFiles, Removal):
    """``$LABKIT_HOME/images`` (OCI layout) and ``$LABKIT_HOME/layers`` (unpacked)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else paths.home()
        self.layout = Layout(paths.images_dir(self.home))
        self.layers_root = paths.layers_dir(self.home)
        self._sizes = self.home / "cache" / "layer-sizes"

    # ------------------------------------------------------------------ lookup
    def _entries(self) -> list[dict]:
        return list(self.layout.index().get("manifests", []))

    def names_of(self, digest: str) -> list[str]:
        return sorted(
            (m.get("annotations") or {}).get(REF_NAME)
            for m in self._entries()
            if m.get("digest") == digest and (m.get("annotations") or {}).get(REF_NAME)
        )

    def _image(self, entry: dict) -> Image:
        ref = (entry.get("annotations") or {}).get(REF_NAME)
        return Image(self, self._platform_manifest(entry), ref)

    def _platform_manifest(self, desc: dict) -> dict:
        """Follow an image index (multi-arch) down to this machine's manifest."""
        for _depth in range(4):
            if desc.get("mediaType") not in INDEX_TYPES:
                return desc
            index = self.layout.read_json(desc["digest"])
            options = index.get("manifests", [])
            arch = host_arch()
            chosen = [m for m in options if (m.get("platform") or {}).get("architecture") == arch
                      and (m.get("platform") or {}).get("os", "linux") == "linux"]
            if not chosen and options:
                chosen = options[:1]
            if not chosen:
                break
            desc = chosen[0]
        return desc

    def find(self, ref: str) -> Image | None:
        """Like :meth:`resolve` but returns None, and never builds busybox."""
        return self.find_by_name(ref) or self._find_by_id(ref)

    def find_by_name(self, ref: str) -> Image | None:
        try:
            names = _refs.candidates(ref)
        except LabkitError:
            return None
        entries = self._entries()
        for name in names:
            if "@" in name:
                base, digest = name.split("@", 1)
                repo = _refs.split(base)[0] if ":" in base.rsplit("/", 1)[-1] else base
                for m in entries:
                    n = (m.get("annotations") or {}).get(REF_NAME)
                    if m.get("digest") == digest and n and _refs.split(n)[0] == repo:
                        return self._image(m)
                continue
            for m in entries:
                if (m.get("annotations") or {}).get(REF_NAME) == name:
                    return self._image(m)
        return None

    def _find_by_id(self, ref: str) -> Image | None:
        """By image ID or manifest digest: ``sha256:<hex>`` or a unique prefix (3+ hex digits)."""
        ident = ref[7:] if ref.startswith("sha256:") else ref
        if not HEX.match(ident) or len(ident) < 3:
            return None
        matches: dict[str, Image] = {}
        for m in self._entries():
            try:
                img = self._image(m)
                if img.id[7:].startswith(ident) or img.digest[7:].startswith(ident):
                    if img.digest not in matches or (img.ref and not matches[img.digest].ref):
                        matches[img.digest] = img
            except (OSError, ValueError, KeyError):
                continue
        return next(iter(matches.values())) if len(matches) == 1 else None

    def resolve(self, ref: str) -> Image:
        """The image named ``ref`` (``busybox``, ``busybox:latest``, an ID...).

        ``busybox`` is built from the host's static busybox on first use.
        Raises :class:`~labkit.errors.NotFound` otherwise.
        """
        img = self.find(ref)
        if img is not None:
            return img
        from . import busybox

        try:
            canonical = _refs.normalize(ref)
        except LabkitError:
            canonical = None
        if canonical == busybox.REF:
            self.layout.ensure()
            with self.layout._flock(".busybox.lock", fcntl.LOCK_EX):
                img = self.find(ref)
                if img is None:
                    busybox.build(self.layout)
                    img = self.find(ref)
            if img is not None:
                return img
        raise NotFound(_("no such image: %(ref)s") % {"ref": ref})

    def list(self) -> list[Image]:
        """One :class:`Image` per name (and one per untagged image), newest first."""
        out = []
        for m in self._entries():
            try:
                out.append(self._image(m))
            except (OSError, ValueError, KeyError):
                continue
        epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)

        def key(img: Image) -> tuple:
            try:
                created = img.created or epoch
            except (OSError, ValueError):
                created = epoch
            return (created, img.ref or "")

        out.sort(key=key, reverse=True)
        return out

    # ------------------------------------------------------------------ changes
    def tag(self, src: str, dst: str) -> Image:
        """Give the image ``src`` the extra name ``dst`` (Docker's ``tag``)."""
        img = self.resolve(src)
        name = _refs.normalize(dst)
        if "@" in name:
            raise LabkitError(_("invalid image reference: %(ref)s") % {"ref": dst})
        self.layout.set_ref(name, img.descriptor)
        return Image(self, img.descriptor, name)

    def add(self, manifest_desc: dict, ref: str | None) -> Image:
        """Name a manifest already in the layout (its blobs written under :meth:`Layout.writing`)."""
        name = _refs.normalize(ref) if ref else None
        self.layout.set_ref(name, manifest_desc)
        return Image(self, manifest_desc, name)

    def write_image(self, config: dict, layers: list[dict], ref: str | None = None,
                    annotations: dict | None = None) -> Image:
        """Store a new image: ``config`` (dict) and ``layers`` (descriptors already in the layout).

        ``config["rootfs"]["diff_ids"]`` must list the layers' diff_ids.
        Each layer descriptor is ``{"mediaType", "digest", "size"}`` (extra keys dropped).
        """
        with self.layout.writing():
            cfg = self.layout.put_json(config, MT_CONFIG)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": cfg,
                "layers": [{k: d[k] for k in ("mediaType", "digest", "size")} for d in layers],
            }
            if annotations:
                manifest["annotations"] = annotations
            desc = self.layout.put_json(manifest, MT_MANIFEST)
            return self.add(desc, ref)

    def inspect(self, ref: str) -> dict:
        """``docker image inspect`` of one image (raises NotFound)."""
        return self.resolve(ref).inspect()

    def images_by_id(self) -> dict[str, list[Image]]:
        out: dict[str, list[Image]] = {}
        for img in self.list():
            out.setdefault(img.id, []).append(img)
        return out
