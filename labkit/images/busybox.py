"""The ``busybox`` base image, made from the host's static busybox with no network.

One gzip layer holding ``/bin/busybox``, a symlink per applet (from
``busybox --list-full``), the usual top-level directories and a minimal
``/etc/passwd`` and ``/etc/group``. Everything that could vary between runs
or machines is fixed: entries sorted, owner 0:0, mtime 0, gzip header mtime 0
and level 9, JSON with sorted keys. ``created`` is ``SOURCE_DATE_EPOCH`` when set,
else the binary's own mtime (the date the busybox-static package gave it, the
same on every machine with that package version). The same busybox binary
therefore always gives the same image digest.
"""
from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _
from . import layers
from .layout import MT_CONFIG, MT_MANIFEST, Layout, canonical_json

REF = "localhost/busybox:latest"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GZIP_LEVEL = 9

PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
# (name, mode) of the directories every container expects
DIRS = [
    ("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("home", 0o755), ("proc", 0o555),
    ("root", 0o700), ("sbin", 0o755), ("sys", 0o555), ("tmp", 0o1777), ("usr", 0o755),
    ("usr/bin", 0o755), ("usr/sbin", 0o755), ("var", 0o755), ("var/tmp", 0o1777),
]

_ELF_ARCH = {62: "amd64", 183: "arm64", 3: "386", 40: "arm", 243: "riscv64", 21: "ppc64le", 22: "s390x"}


def find_binary() -> Path:
    """The host's busybox, which must be statically linked."""
    candidates = [os.environ.get("LABKIT_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox", shutil.which("busybox")]
    for c in candidates:
        if c and os.path.isfile(c):
            path = Path(c).resolve()
            if elf_info(path)[1]:
                return path
            raise LabkitError(
                _("%(path)s is not a static busybox; install it with: apt-get install -y busybox-static")
                % {"path": path}
            )
    raise LabkitError(_("busybox not found; install it with: apt-get install -y busybox-static"))


def elf_info(path: Path) -> tuple[str, bool]:
    """(OCI architecture, statically linked?) from the ELF headers."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return "unknown", False
        end = "<" if head[5] == 1 else ">"
        machine = struct.unpack_from(end + "H", head, 18)[0]
        phoff = struct.unpack_from(end + "Q", head, 32)[0]
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    static = all(struct.unpack_from(end + "I", table, i * phentsize)[0] != 3 for i in range(phnum))  # PT_INTERP
    return _ELF_ARCH.get(machine, "unknown"), static


def applets(binary: Path) -> list[str]:
    out = subprocess.run([str(binary), "--list-full"], check=True, capture_output=True, text=True).stdout
    names = sorted({line.strip().lstrip("/") for line in out.splitlines() if "/" in line.strip()})
    return [n for n in names if n != "bin/busybox" and n.split("/")[0] in ("bin", "sbin", "usr")]


def version(binary: Path) -> str:
    out = subprocess.run([str(binary)], capture_output=True, text=True).stdout
    first = out.splitlines()[0] if out else "BusyBox"
    return first.split(" multi-call")[0].strip()


def rootfs_entries(binary: Path) -> list[layers.Entry]:
    data = binary.read_bytes()
    entries = [layers.dir_entry(name, mode) for name, mode in DIRS]
    entries.append(layers.file_entry("bin/busybox", data, mode=0o755))
    entries.append(layers.file_entry("etc/group", GROUP))
    entries.append(layers.file_entry("etc/passwd", PASSWD))
    for name in applets(binary):
        entries.append(layers.symlink_entry(name, "/bin/busybox"))
    entries.sort(key=lambda e: e.info.name.encode())
    return entries


def created(binary: Path) -> str:
    """The image's date: SOURCE_DATE_EPOCH, else when the binary was built (its mtime)."""
    try:
        when = int(os.environ["SOURCE_DATE_EPOCH"])
    except (KeyError, ValueError):
        when = int(binary.stat().st_mtime)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def build(layout: Layout, binary: Path | None = None, ref: str = REF) -> dict:
    """Write the busybox image into ``layout``; return its manifest descriptor."""
    binary = binary or find_binary()
    arch, _static = elf_info(binary)
    date = created(binary)
    layout.ensure()
    with layout.writing():
        buf = io.BytesIO()
        tar = layers.write_tar(rootfs_entries(binary), buf, compress="gzip", level=GZIP_LEVEL)
        layer = layout.put_blob(buf.getvalue())
        config = {
            "architecture": arch,
            "os": "linux",
            "created": date,
            "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [tar.diff_id]},
            "history": [{"created": date, "created_by": f"labkit: {version(binary)} from the host's busybox-static"}],
        }
        config_desc = layout.put_json(config, MT_CONFIG)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config_desc,
            "layers": [{"mediaType": tar.media_type, **layer}],
        }
        desc = layout.put_json(manifest, MT_MANIFEST)
        layout.set_ref(ref, desc)
    return desc
