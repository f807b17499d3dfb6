"""Docker's copy-up: an empty volume mounted over a directory of the image gets its content.

``docker run -v data:/var/lib/db postgres`` starts with the image's files in the new
volume, owners and modes kept, so a program finds what its image put there. It runs in
the container's child, on the overlay root before the volume is mounted over it. The
image side is opened inside the root (``openat2(RESOLVE_IN_ROOT)``), and every step of
the copy goes through directory file descriptors without following a symlink: a symlink
in the image is copied as a symlink, never read through, on either side.
"""
from __future__ import annotations

import os
import stat

from ..kernel.openat2 import fd_path, open_in_root

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def populate(root_fd: int, target: str, data_dir: str) -> bool:
    """Copy ``target`` of the root into ``data_dir`` if that is empty; True if it copied."""
    try:
        src_path = open_in_root(root_fd, target)
    except (FileNotFoundError, NotADirectoryError):
        return False  # nothing in the image at that path: the volume stays empty
    try:
        if not stat.S_ISDIR(os.fstat(src_path).st_mode):
            return False
        dst = os.open(data_dir, _DIR)
        try:
            if os.listdir(dst):
                return False  # the volume has data: it wins, as in Docker
            src = os.open(fd_path(src_path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                _copy_tree(src, dst)
                st = os.fstat(src)
                os.fchown(dst, st.st_uid, st.st_gid)  # the directory's owner and mode, too
                os.fchmod(dst, stat.S_IMODE(st.st_mode))
            finally:
                os.close(src)
        finally:
            os.close(dst)
        return True
    finally:
        os.close(src_path)


def _copy_tree(src: int, dst: int) -> None:
    for entry in os.scandir(src):
        name = entry.name
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            s2 = os.open(name, _DIR, dir_fd=src)
            d2 = os.open(name, _DIR, dir_fd=dst)
            try:
                _copy_tree(s2, d2)
            finally:
                os.close(s2)
                os.close(d2)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISREG(mode):
            _copy_file(src, dst, name, st.st_size)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
            try:
                os.mknod(name, mode, st.st_rdev, dir_fd=dst)
            except OSError:  # a device the container may not make: left out, as a socket is
                continue
        else:
            continue
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst)  # after chown, which clears set-id bits
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


def _copy_file(src: int, dst: int, name: str, size: int) -> None:
    fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                       dir_fd=dst)
        try:
            while os.sendfile(fout, fin, None, 1 << 20):
                pass
        finally:
            os.close(fout)
    finally:
        os.close(fin)
