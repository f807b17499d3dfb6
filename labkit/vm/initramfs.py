"""A small initramfs, built in memory: a static busybox, kernel modules, scripts.

The archive is ``newc`` cpio, the format the kernel unpacks into its first root.
Nothing is written to disk but the archive itself (QEMU's ``-initrd`` takes a file).
"""
from __future__ import annotations

import os
import shutil

from ..i18n import _
from .kernel import VMUnavailable

Entry = tuple  # (name, mode, data or None[, (major, minor)])


def cpio(entries: list[Entry]) -> bytes:
    """A ``newc`` archive of ``entries``: ``(name, mode, data or None[, (major, minor)])``."""
    out = bytearray()
    for ino, (name, mode, data, *rdev) in enumerate(list(entries) + [("TRAILER!!!", 0, b"")], 1):
        data = data or b""
        nm = name.encode() + b"\0"
        maj, mnr = rdev[0] if rdev else (0, 0)
        hdr = "070701" + "".join("%08x" % x for x in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, maj, mnr, len(nm), 0))
        out += hdr.encode() + nm
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def find_busybox(path: str | None = None) -> str:
    """A statically linked busybox (the initramfs has no libc to load a dynamic one)."""
    path = path or os.environ.get("LABKIT_VM_BUSYBOX") or "/bin/busybox"
    if not os.path.exists(path):
        path = shutil.which("busybox") or path
    if not os.path.exists(path):
        raise VMUnavailable(_("%(path)s not found (apt-get install busybox-static)") % {"path": path})
    with open(path, "rb") as f:
        if b"ld-linux" in f.read(8192):
            raise VMUnavailable(_("%(path)s is dynamically linked (apt-get install busybox-static)")
                                % {"path": path})
    return path


def build(busybox: str, mods: list[tuple[str, bytes]], files: dict[str, tuple[int, bytes]],
          dirs: tuple[str, ...] = ()) -> bytes:
    """The archive: ``/bin/busybox``, ``/dev/console``, the modules under ``/mod`` listed
    in load order in ``/modules.list``, and ``files`` (``name: (mode, data)``)."""
    ents: list[Entry] = [(d, 0o40755, None) for d in ("bin", "dev", "proc", "sys", "mod", *dirs)]
    ents.append(("dev/console", 0o20600, None, (5, 1)))  # stdio of /init
    with open(busybox, "rb") as f:
        ents.append(("bin/busybox", 0o100755, f.read()))
    for name, body in mods:
        ents.append(("mod/" + name, 0o100644, body))
    ents.append(("modules.list", 0o100644, "\n".join(n for n, _b in mods).encode()))
    ents += [(name, mode, data) for name, (mode, data) in files.items()]
    return cpio(ents)
