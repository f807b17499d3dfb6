"""The guest kernel: the host's Debian kernel from ``/boot``, and its modules.

A VM needs no kernel of its own making: ``linux-image-amd64`` ships a bzImage in
``/boot`` and its modules in ``/lib/modules/<version>``. Booting the bzImage makes
the guest decompress itself (and, with ``pc``, go through the firmware), which
costs 3–5 s under TCG; the ELF ``vmlinux`` inside it boots directly (PVH) in about
1 s, so it is extracted once and cached.

Used by :mod:`labkit.vm` and by ``tools/cg2vm.py`` (the cgroup-v2 test VM).
"""
from __future__ import annotations

import lzma
import os
import zlib

from ..errors import LabkitError
from ..i18n import _


class VMUnavailable(LabkitError):
    """This machine lacks something a VM needs (qemu, a kernel image, a static busybox)."""


def cache_dir() -> str:
    """Machine-wide cache (extracted kernels, the KVM verdict): they belong to the
    machine, not to one ``$LABKIT_HOME``. ``$LABKIT_VM_CACHE`` overrides it."""
    env = os.environ.get("LABKIT_VM_CACHE")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/cache/labkit/vm"
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "labkit", "vm")


def _vkey(v: str) -> list:
    return [int(x) if x.isdigit() else x for x in v.replace("-", ".").split(".")]


def pick_version(kver: str | None = None, boot: str | None = None, modules: str = "/lib/modules") -> str:
    """The newest kernel that has both an image in ``boot`` (``$LABKIT_VM_BOOT`` or
    ``/boot``) and its modules."""
    boot = boot or boot_dir()
    if not kver:
        vers = [v for v in os.listdir(modules) if os.path.exists(f"{boot}/vmlinuz-{v}")] \
            if os.path.isdir(modules) else []
        if not vers:
            raise VMUnavailable(_("no kernel image with modules in %(boot)s and %(mods)s "
                                  "(Debian: apt-get install linux-image-amd64)")
                                % {"boot": boot, "mods": modules})
        kver = sorted(vers, key=_vkey)[-1]
    for p in (f"{boot}/vmlinuz-{kver}", f"{modules}/{kver}/modules.dep"):
        if not os.access(p, os.R_OK):
            raise VMUnavailable(_("cannot read %(path)s") % {"path": p})
    return kver


def extract_vmlinux(bz: str, out: str) -> str:
    """A PVH-bootable ELF from a bzImage, written to ``out``; ``bz`` itself when its
    compression is unknown (zstd: the standard library has no decoder)."""
    with open(bz, "rb") as f:
        data = f.read()
    decoders = ((b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
                (b"\x1f\x8b\x08", lambda b: zlib.decompressobj(31).decompress(b)))
    for magic, dec in decoders:
        i = data.find(magic)
        while i != -1:
            try:
                elf = dec(data[i:])
            except (lzma.LZMAError, zlib.error, EOFError):
                elf = b""
            if elf[:4] == b"\x7fELF":
                tmp = f"{out}.{os.getpid()}.tmp"
                with open(tmp, "wb") as f:
                    f.write(elf)
                os.rename(tmp, out)
                return out
            i = data.find(magic, i + 1)
    return bz


def boot_dir() -> str:
    return os.environ.get("LABKIT_VM_BOOT") or "/boot"


def boot_image(kver: str, cache: str | None = None, boot: str | None = None) -> str:
    """The file QEMU's ``-kernel`` gets: the cached vmlinux, extracted on first use."""
    boot = boot or boot_dir()
    cache = cache or cache_dir()
    os.makedirs(cache, exist_ok=True)
    out = os.path.join(cache, f"vmlinux-{kver}")
    if os.path.exists(out):
        return out
    return extract_vmlinux(f"{boot}/vmlinuz-{kver}", out)


def modules(kver: str, names: list[str], root: str = "/lib/modules") -> list[tuple[str, bytes]]:
    """``(file name, uncompressed .ko)`` for ``names`` and their dependencies, in load
    order (from ``modules.dep``). A name absent from it is built into the kernel."""
    base = f"{root}/{kver}"
    dep: dict[str, list[str]] = {}
    with open(f"{base}/modules.dep") as f:
        for line in f:
            k, v = line.split(":", 1)
            dep[k] = v.split()
    by_name = {os.path.basename(k).split(".ko")[0].replace("-", "_"): k for k in dep}
    order: list[str] = []

    def add(path: str) -> None:
        for d in dep[path]:
            add(d)
        if path not in order:
            order.append(path)

    for m in names:
        if m in by_name:
            add(by_name[m])
    out = []
    for rel in order:
        name = os.path.basename(rel)
        with open(os.path.join(base, rel), "rb") as f:
            body = f.read()
        if name.endswith(".xz"):
            body, name = lzma.decompress(body), name[:-3]
        elif name.endswith(".gz"):
            body, name = zlib.decompress(body, 31), name[:-3]
        out.append((name, body))
    return out
