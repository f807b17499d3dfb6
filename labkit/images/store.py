"""The image store: an OCI image layout at ``$LABKIT_HOME/images`` plus unpacked layers.

``Store.resolve("busybox")`` returns an :class:`Image`; ``Image.layer_dirs()``
unpacks its layers once into ``$LABKIT_HOME/layers/<diff_id hex>/`` (bottom
layer first) for OverlayFS to stack as ``lowerdir``. Because the store is a
plain OCI layout, ``skopeo inspect oci:$LABKIT_HOME/images:localhost/busybox:latest``
and ``podman pull oci:...`` read it as is.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import datetime as _dt
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import IO, Iterable

from .. import paths
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from . import refs as _refs
from .layout import (
    INDEX_TYPES, MT_CONFIG, MT_LAYER, MT_MANIFEST, REF_NAME, Layout,
)

_HEX = re.compile(r"^[0-9a-f]{1,64}$")
STALE_TMP_SECONDS = 3600  # temporary files older than this belong to a dead process

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
        return self.store._names_of(self.digest)

    @property
    def size(self) -> int:
        """Uncompressed size of all layers (what ``docker images`` shows)."""
        return sum(self.store._uncompressed_size(d, i) for d, i in zip(self.layers, self.diff_ids))

    def layer_dirs(self) -> list[Path]:
        """Unpacked layer directories, bottom layer first (unpacking the missing ones)."""
        if len(self.layers) != len(self.diff_ids):
            raise LabkitError(_("image %(ref)s is corrupt: layers and diff_ids differ") % {"ref": self.ref or self.id})
        return [self.store._unpacked(desc, diff_id) for desc, diff_id in zip(self.layers, self.diff_ids)]

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


class Store:
    """``$LABKIT_HOME/images`` (OCI layout) and ``$LABKIT_HOME/layers`` (unpacked)."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else paths.home()
        self.layout = Layout(paths.images_dir(self.home))
        self.layers_root = paths.layers_dir(self.home)
        self._sizes = self.home / "cache" / "layer-sizes"

    # ------------------------------------------------------------------ lookup
    def _entries(self) -> list[dict]:
        return list(self.layout.index().get("manifests", []))

    def _names_of(self, digest: str) -> list[str]:
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
        return self._find_by_name(ref) or self._find_by_id(ref)

    def _find_by_name(self, ref: str) -> Image | None:
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
        if not _HEX.match(ident) or len(ident) < 3:
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

    def add_layer_from_dir(self, src: str | os.PathLike, *, move: bool = False, **tar_options) -> dict:
        """Write the directory ``src`` (an overlay upper dir) as a gzip layer blob.

        Returns ``{"mediaType", "digest", "size", "diff_id", "uncompressed_size"}``.
        With ``move=True`` the directory itself becomes the unpacked layer
        (``layers/<diff_id>/``), saving an extraction later. Options go to
        :func:`labkit.images.layers.tar_from_dir` (owner, mtime, prefix, level...).
        Call inside ``store.layout.writing()`` together with :meth:`write_image`
        if a garbage collection may run at the same time.
        """
        from . import layers

        self.layout.ensure()
        with self.layout.new_blob_writer() as w:
            res = layers.tar_from_dir(src, w, **tar_options)
            w.commit()
        self._remember_size(res.diff_id, res.uncompressed_size)
        if move:
            final = self.layer_dir(res.diff_id)
            if not final.exists():
                self.layers_root.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(OSError):
                    os.rename(src, final)
        return {"mediaType": res.media_type, "digest": res.digest, "size": res.size,
                "diff_id": res.diff_id, "uncompressed_size": res.uncompressed_size}

    def add_layer(self, stream: IO[bytes]) -> dict:
        """Store a layer tarball (plain, gzip or zstd) from a stream; returns its descriptor and diff_id."""
        from . import layers
        from .layout import MT_LAYER_GZIP, MT_LAYER_ZSTD

        desc = self.layout.put_stream(stream)
        with self.layout.open_blob(desc["digest"]) as f:
            head = f.read(4)
            f.seek(0)
            kind = layers.compression_of(head)
            diff_id, size = layers.diff_id_of(f)
        self._remember_size(diff_id, size)
        mt = {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}.get(kind or "", MT_LAYER)
        return {"mediaType": mt, **desc, "diff_id": diff_id, "uncompressed_size": size}

    def _in_use(self) -> set[str]:
        """diff_id hexes of unpacked layers an OverlayFS mount is using right now."""
        used: set[str] = set()
        root = str(self.layers_root)
        try:
            with open("/proc/self/mountinfo") as f:
                for line in f:
                    if root not in line.replace("\\040", " "):
                        continue
                    for m in re.finditer(re.escape(root) + r"/([0-9a-f]{64})", line):
                        used.add(m.group(1))
        except OSError:
            pass
        return used

    def remove(self, ref: str, force: bool = False) -> list[str]:
        """Docker's ``rmi``: untag ``ref``; delete the image when no name is left.

        Removing by ID an image with several names needs ``force``. The last
        name of an image a container uses (any state, or whose layers are
        mounted) is refused unless ``force``; then only the name goes and the
        image stays, untagged, for its containers. Returns what
        was done, as Docker prints it (``Untagged: ...``, ``Deleted: ...``).
        """
        img = self._find_by_name(ref)
        by_name = img is not None
        if img is None:
            img = self._find_by_id(ref)
        if img is None:
            raise NotFound(_("no such image: %(ref)s") % {"ref": ref})
        names = img.repo_tags
        if not by_name and len(names) > 1 and not force:
            raise Conflict(
                _("unable to delete %(id)s (must be forced): image is referenced in multiple repositories")
                % {"id": img.short_id}
            )
        targets = [img.ref] if by_name else (names or [None])
        last = by_name and len(names) == 1 or not by_name
        users = self.containers_using(img.id) if last else []
        mounted = last and any(d[7:] in self._in_use() for d in img.diff_ids)
        if (users or mounted) and not force:
            if users:
                raise Conflict(
                    _("unable to remove %(ref)s (must be forced): container %(id)s is using its image")
                    % {"ref": ref, "id": users[0][:12]}
                )
            raise Conflict(_("image %(ref)s is in use by a running container") % {"ref": ref})
        keep_untagged = bool(users or mounted)  # forced: the name goes, the image stays for its containers
        done = [f"Untagged: {_refs.familiar(n)}" for n in targets if n]
        digest = img.digest

        def change(manifests: list[dict]) -> list[dict]:
            out = []
            for m in manifests:
                name = (m.get("annotations") or {}).get(REF_NAME)
                if m.get("digest") == digest and (name in targets or (not by_name)):
                    continue
                out.append(m)
            if keep_untagged and not any(m.get("digest") == digest for m in out):
                out.append({k: v for k, v in img.descriptor.items() if k != "annotations"})
            return out

        self.layout.update_index(change)
        if last and not keep_untagged:
            done.append(f"Deleted: {img.id}")
            self.gc()
        return done

    def containers_using(self, image_id: str) -> list[str]:
        """IDs of containers (any state) whose ``container.json`` names this image ID."""
        users = []
        cdir = paths.containers_dir(self.home)
        try:
            entries = list(os.scandir(cdir))
        except OSError:
            return users
        for entry in entries:
            try:
                with open(os.path.join(entry.path, "container.json")) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and doc.get("Image") == image_id:
                users.append(str(doc.get("Id") or entry.name))
        return users

    def inspect(self, ref: str) -> dict:
        """``docker image inspect`` of one image (raises NotFound)."""
        return self.resolve(ref).inspect()

    def prune(self) -> list[str]:
        """Remove untagged images no container uses; return their manifest digests."""
        gone = []
        used = set()
        for m in self._entries():
            if not (m.get("annotations") or {}).get(REF_NAME):
                try:
                    if self.containers_using(self._image(m).id):
                        used.add(m["digest"])
                except (OSError, ValueError, KeyError):
                    continue

        def change(manifests: list[dict]) -> list[dict]:
            keep = []
            for m in manifests:
                if (m.get("annotations") or {}).get(REF_NAME) or m["digest"] in used:
                    keep.append(m)
                else:
                    gone.append(m["digest"])
            return keep

        self.layout.update_index(change)
        if gone:
            self.gc()
        return gone

    def gc(self) -> None:
        """Delete unreferenced blobs and unpacked layers no image (or mount) uses."""
        self.layout.gc()
        if not self.layers_root.is_dir():
            return
        wanted: set[str] = set()
        for m in self._entries():
            try:
                wanted.update(d[7:] for d in self._image(m).diff_ids)
            except (OSError, ValueError, KeyError):
                continue
        used = self._in_use()
        stale = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self.layers_root):
            if entry.name.startswith(".tmp-"):  # an unpack killed half-way (kill -9, power loss)
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < stale:
                        shutil.rmtree(entry.path, ignore_errors=True)
                continue
            if len(entry.name) == 64 and _HEX.match(entry.name) and entry.name not in wanted | used:
                shutil.rmtree(entry.path, ignore_errors=True)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._sizes / entry.name)

    # ------------------------------------------------------------------ layers
    def layer_dir(self, diff_id: str) -> Path:
        return self.layers_root / diff_id.split(":", 1)[-1]

    def _unpacked(self, desc: dict, diff_id: str) -> Path:
        final = self.layer_dir(diff_id)
        if final.is_dir():
            return final
        from . import layers

        self.layers_root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name[:12]}-", dir=self.layers_root))
        try:
            with self.layout.open_blob(desc["digest"]) as f:
                report = layers.extract(f, tmp, expect_diff_id=diff_id)
            os.chmod(tmp, 0o755)
            self._remember_size(diff_id, report.size)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
        except layers.UnsafeLayer as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise LabkitError(_("unsafe image layer %(digest)s refused: %(reason)s")
                              % {"digest": desc["digest"], "reason": exc}) from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def _remember_size(self, diff_id: str, size: int) -> None:
        try:
            self._sizes.mkdir(parents=True, exist_ok=True)
            p = self._sizes / diff_id.split(":", 1)[-1]
            if not p.exists():
                Layout._atomic_write(p, str(size).encode())
        except OSError:
            pass

    def _uncompressed_size(self, desc: dict, diff_id: str) -> int:
        if desc.get("mediaType") == MT_LAYER or desc.get("mediaType", "").endswith(".tar"):
            return int(desc.get("size", 0))
        p = self._sizes / diff_id.split(":", 1)[-1]
        try:
            return int(p.read_text())
        except (OSError, ValueError):
            pass
        from . import layers

        try:
            with self.layout.open_blob(desc["digest"]) as f:
                _d, size = layers.diff_id_of(f)
        except OSError:
            return int(desc.get("size", 0))
        self._remember_size(diff_id, size)
        return size

    def images_by_id(self) -> dict[str, list[Image]]:
        out: dict[str, list[Image]] = {}
        for img in self.list():
            out.setdefault(img.id, []).append(img)
        return out
