"""The guest's root disk: an image's layers as one ext4 file, made once per image.

Why a disk image and not a shared directory (9p, virtiofs): measured here under
TCG, virtio-blk with ext4 booted as fast as 9p and needs no daemon on the host
(virtiofs needs ``virtiofsd`` and a socket per VM); the file is made once per
image, as Firecracker's block devices are, and read-only, so many VMs share it.

The tree is the image's layers merged by OverlayFS, exactly as a container sees
them (whiteouts hide what upper layers deleted); ``mke2fs -d`` copies that view
into a new file system. The overlay is mounted in a private mount namespace of
its own (``unshare -m``), so it never appears in, or leaks into, the host's.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _
from .kernel import VMUnavailable

# Inside the private namespace: $1 = target file, $2 = lowerdir (top first).
MAKE = r"""set -e
m=$(mktemp -d)
mount -t overlay -o ro,lowerdir="$2" vmroot "$m"
files=$(find "$m" -xdev | wc -l)
kb=$(du -skx "$m" | cut -f1)
mke2fs -q -F -t ext4 -O ^has_journal -L labkit-root -N $((files * 2 + 1024)) -d "$m" "$1" \
  $((kb + kb / 4 + 16384))k
# mke2fs makes /lost+found; the image did not have it, and ls / would show it.
[ -e "$m/lost+found" ] || debugfs -w -R "rmdir lost+found" "$1" >/dev/null 2>&1
umount "$m"; rmdir "$m"
"""


def disks_dir(home: Path | None = None) -> Path:
    from .. import paths

    return (home or paths.home()) / "vm" / "disks"


def disk_for(image, home: Path | None = None) -> Path:
    """The ext4 file of ``image`` (an :class:`~labkit.images.image.Image`), made on first use."""
    out = disks_dir(home) / (image.id.split(":", 1)[-1] + ".ext4")
    if out.exists():
        return out
    mke2fs = shutil.which("mke2fs") or shutil.which("mkfs.ext4")
    if not mke2fs:
        raise VMUnavailable(_("mke2fs not found (Debian: apt-get install e2fsprogs)"))
    out.parent.mkdir(parents=True, exist_ok=True)
    layers = [str(d) for d in image.layer_dirs()]
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".ext4", dir=out.parent)
    os.close(fd)
    empty = tempfile.mkdtemp(prefix=".empty-", dir=out.parent)
    try:
        # The empty directory at the bottom: a read-only overlay needs two lower layers.
        lower = ":".join(list(reversed(layers)) + [empty])
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", MAKE, "sh",
                            tmp, lower], capture_output=True, text=True)
        if r.returncode != 0:
            raise LabkitError(_("cannot make the VM's root disk: %(err)s")
                              % {"err": r.stderr.strip()[-500:]})
        os.rename(tmp, out)
    finally:
        os.rmdir(empty)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
