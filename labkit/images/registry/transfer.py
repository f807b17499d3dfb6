"""Moving an image between a registry and an OCI layout, blob by blob, each checked."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

from ...errors import NotFound
from ...i18n import _
from ...units import human_size
from ..integrity import verify_blob
from ..layout import atomic_write
from ..tempfiles import PART_SUFFIX, temp_file
from .client import RegistryClient, RegistryError
from .names import INDEX_TYPES, MT_DOCKER_MANIFEST, MT_OCI_MANIFEST, Reference, api_repository


def pick_platform(index: dict, os_name: str = "linux", arch: str = "amd64") -> dict:
    """The manifest descriptor for ``os/arch`` in an image index."""
    for desc in index.get("manifests", []):
        plat = desc.get("platform") or {}
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            return desc
    raise NotFound(_("the image has no variant for %(platform)s") % {"platform": f"{os_name}/{arch}"})


def _blob_path(layout: Path, digest: str) -> Path:
    algo, _sep, hexd = digest.partition(":")
    return layout / "blobs" / algo / hexd


def push_layout(client: RegistryClient, layout: Path, manifest_digest: str, ref: Reference, *,
                chunk_size: int | None = None, out: Callable[[str], None] | None = None) -> dict:
    """Send the manifest ``manifest_digest`` of the OCI layout ``layout`` and its blobs.

    Returns counters: ``{"pushed": n, "skipped": n, "digest": manifest digest}``.
    """
    repo = api_repository(ref)
    manifest_bytes = _blob_path(layout, manifest_digest).read_bytes()
    if "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() != manifest_digest:
        verify_blob(_blob_path(layout, manifest_digest), manifest_digest)  # raises, in pt-BR
    manifest = json.loads(manifest_bytes)
    media_type = manifest.get("mediaType", MT_OCI_MANIFEST)
    descs = [manifest["config"], *manifest.get("layers", [])]
    pushed = skipped = 0
    for desc in descs:
        digest = desc["digest"]
        short = digest.split(":", 1)[1][:12]
        if client.blob_exists(repo, digest):
            skipped += 1
            if out:
                out(_("%(id)s: already in the registry") % {"id": short})
            continue
        # a corrupt blob is refused here, before a byte leaves (the registry would refuse it after)
        verify_blob(_blob_path(layout, digest), digest, desc.get("size"))
        client.upload_blob(repo, digest, _blob_path(layout, digest), chunk_size=chunk_size)
        pushed += 1
        if out:
            out(_("%(id)s: sent (%(size)s)") % {"id": short, "size": human_size(desc.get("size", 0))})
    digest = client.put_manifest(repo, ref.reference, manifest_bytes, media_type)
    if out:
        out(_("%(tag)s: digest: %(digest)s size: %(size)d")
            % {"tag": ref.tag or ref.digest, "digest": digest, "size": len(manifest_bytes)})
    return {"pushed": pushed, "skipped": skipped, "digest": digest}


def pull_into_layout(client: RegistryClient, layout: Path, ref: Reference, *,
                     out: Callable[[str], None] | None = None) -> tuple[str, bytes, int]:
    """Download the image ``ref`` into the blobs of the OCI layout ``layout``.

    Blobs already present are not downloaded again. Returns
    ``(manifest digest, manifest bytes, number of blobs downloaded)``; the
    caller records the manifest in ``index.json`` (the store does that).
    Docker schema-2 manifests are kept as they are (skopeo and podman read them).
    """
    repo = api_repository(ref)
    data, media_type, digest = client.get_manifest(repo, ref.reference)
    doc = json.loads(data)
    if media_type in INDEX_TYPES or "manifests" in doc:
        desc = pick_platform(doc)
        data, media_type, digest = client.get_manifest(repo, desc["digest"])
        doc = json.loads(data)
    if media_type not in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST) or "config" not in doc:
        raise RegistryError(_("unsupported manifest type: %(type)s") % {"type": media_type})
    fetched = 0
    for desc in [doc["config"], *doc.get("layers", [])]:
        d = desc["digest"]
        dest = _blob_path(layout, d)
        short = d.split(":", 1)[1][:12]
        if dest.exists():
            if out:
                out(_("%(id)s: already here") % {"id": short})
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        # locked while it downloads: after a kill -9 the next engine removes it (tempfiles.py)
        fd, tmp = temp_file(dest.parent, prefix=f".{dest.name[:12]}-", suffix=PART_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                client.fetch_blob(repo, d, fh)
                fh.flush()
                os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        fetched += 1
        if out:
            out(_("%(id)s: downloaded (%(size)s)") % {"id": short, "size": human_size(desc.get("size", 0))})
    mpath = _blob_path(layout, digest)
    if not mpath.exists():
        mpath.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(mpath, data)
    return digest, data, fetched


def iter_descriptors(manifest: dict) -> Iterator[dict]:
    yield manifest["config"]
    yield from manifest.get("layers", [])
