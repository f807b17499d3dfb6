"""Layer files: a layer blob written from a directory or a stream, and unpacked once on demand.

``$LABKIT_HOME/layers/<diff_id hex>/`` holds each layer unpacked (with overlay
whiteouts), ready to be an OverlayFS ``lowerdir``; the uncompressed size of
each layer is remembered in ``$LABKIT_HOME/cache/layer-sizes/``.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import IO

from ..errors import LabkitError
from ..i18n import _
from .integrity import extract_verified
from .layout import MT_LAYER, atomic_write
from .tempfiles import disk_full_is_an_error, temp_dir


class LayerFiles:
    """The layers part of :class:`~labkit.images.store.Store`."""

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
        self.remember_size(res.diff_id, res.uncompressed_size)
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
        self.remember_size(diff_id, size)
        mt = {"gzip": MT_LAYER_GZIP, "zstd": MT_LAYER_ZSTD}.get(kind or "", MT_LAYER)
        return {"mediaType": mt, **desc, "diff_id": diff_id, "uncompressed_size": size}

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers_root / diff_id.split(":", 1)[-1]

    def unpacked(self, desc: dict, diff_id: str) -> Path:
        final = self.layer_dir(diff_id)
        if final.is_dir():
            return final
        from . import layers

        self.layers_root.mkdir(parents=True, exist_ok=True)
        # locked while unpacked: a killed unpack is found and removed (tempfiles.py)
        lock, tmp_name = temp_dir(self.layers_root, prefix=f".tmp-{final.name[:12]}-")
        tmp = Path(tmp_name)
        try:
            with disk_full_is_an_error(_("the image's layers")), self.layout.open_blob(desc["digest"]) as f:
                report = extract_verified(f, tmp, desc, diff_id)
            os.chmod(tmp, 0o755)
            self.remember_size(diff_id, report.size)
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
        finally:
            os.close(lock)
        return final

    def remember_size(self, diff_id: str, size: int) -> None:
        try:
            self._sizes.mkdir(parents=True, exist_ok=True)
            p = self._sizes / diff_id.split(":", 1)[-1]
            if not p.exists():
                atomic_write(p, str(size).encode())
        except OSError:
            pass

    def uncompressed_size(self, desc: dict, diff_id: str) -> int:
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
        self.remember_size(diff_id, size)
        return size
