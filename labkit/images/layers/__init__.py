"""Image layers: safe extraction of untrusted tarballs, and reproducible tarballs from a directory.

A layer is a tar (often gzip-compressed) of the files one build step added,
changed or deleted. Deletions are *whiteouts*: in the tar an empty file named
``.wh.NAME`` deletes ``NAME`` of the layers below, and ``.wh..wh..opq`` in a
directory hides everything the lower layers had in it (opaque directory).
OverlayFS spells the same two things differently: a character device 0/0
named ``NAME``, and the extended attribute ``trusted.overlay.opaque=y``.
:func:`extract` converts the tar spelling into the overlay one, so an unpacked
layer can be used directly as an OverlayFS ``lowerdir``; :func:`tar_from_dir`
does the reverse for an overlay upper directory.

Layer tarballs are untrusted input (see ``security-baseline.md`` P7-P10), so
:func:`extract` never uses ``tarfile.extractall``:

* absolute names lose their leading ``/``; a name that climbs out with ``..``
  refuses the whole layer;
* every parent directory is checked with ``lstat``: a path through a symlink
  (``lnk -> /etc`` then ``lnk/passwd``) refuses the layer, and a file is
  created with ``O_EXCL|O_NOFOLLOW`` after removing what was there, so nothing
  is ever written through a link;
* a hard link must name a file extracted earlier from the same tarball, inside
  the destination, never a directory: no extracted inode is a host inode;
* device nodes are skipped (only the 0/0 character device, the overlay
  whiteout, is ever created); FIFOs are kept;
* modes, owners and setuid bits are kept, as Docker does (the runtime sets
  ``no_new_privs``); extended attributes are applied only for
  ``security.capability`` and ``user.*`` (never ``trusted.overlay.*`` from a
  tarball).

The package: :mod:`.whiteouts` (the two spellings of a deletion),
:mod:`.streams` (compressed or not, hashed while read or written),
:mod:`.extraction` (the safe extractor), :mod:`.writing` (reproducible
tarballs from entries or a directory).
"""
from __future__ import annotations

from .extraction import Report, extract
from .streams import CHUNK, compression_of, diff_id_of, open_uncompressed
from .whiteouts import OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX, UnsafeLayer, is_opaque, is_whiteout
from .writing import (Entry, TarResult, dir_entries, dir_entry, file_entry, symlink_entry, tar_from_dir,
                      write_tar)

__all__ = ["CHUNK", "Entry", "OPAQUE_MARKER", "OPAQUE_XATTR", "Report", "TarResult", "UnsafeLayer",
           "WHITEOUT_PREFIX", "compression_of", "diff_id_of", "dir_entries", "dir_entry", "extract",
           "file_entry", "is_opaque", "is_whiteout", "open_uncompressed", "symlink_entry", "tar_from_dir",
           "write_tar"]
