"""A store's temporary file is abandoned exactly when its writer is gone (labkit/images/tempfiles.py),
and a blob is checked while it is unpacked (labkit/images/integrity.py)."""
from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from labkit.images import integrity, tempfiles


def test_a_live_writer_keeps_its_file_and_a_killed_one_does_not(tmp_path: Path):
    # another process makes a temporary file and a directory, then waits: alive, they are kept
    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from labkit.images import tempfiles
        fd, path = tempfiles.temp_file({str(tmp_path)!r})
        dfd, dpath = tempfiles.temp_dir({str(tmp_path)!r}, prefix="build-")
        print(path, dpath, flush=True)
        time.sleep(600)
    """)
    writer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        path, dpath = writer.stdout.readline().split()
        assert os.path.basename(path).startswith(".tmp-") and os.path.basename(dpath).startswith("build-")
        assert tempfiles.is_temporary(os.path.basename(path))
        assert not tempfiles.abandoned(path) and not tempfiles.abandoned(dpath)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert tempfiles.abandoned(path) and tempfiles.abandoned(dpath)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def test_own_files_are_held_and_released_on_close(tmp_path: Path):
    fd, path = tempfiles.temp_file(tmp_path, suffix=tempfiles.PART_SUFFIX)
    assert path.endswith(".part") and not tempfiles.abandoned(path)  # another open file description
    os.close(fd)
    assert tempfiles.abandoned(path)
    assert not tempfiles.abandoned(tmp_path / "gone")  # nothing there: nothing to remove
    young = tmp_path / ".new-x"
    young.write_bytes(b"")  # between create and lock: only its age can tell
    assert not tempfiles.abandoned(young)
    os.utime(young, (1, 1))
    assert tempfiles.abandoned(young)


def test_build_container_names_point_at_their_build(tmp_path: Path):
    (tmp_path / "tmp").mkdir()
    fd, scratch = tempfiles.temp_dir(tmp_path / "tmp", prefix=tempfiles.SCRATCH_PREFIX)
    name = tempfiles.build_container_name(Path(scratch))
    assert name.startswith("labkit-build-")
    assert not tempfiles.build_is_gone(tmp_path, name)
    os.close(fd)
    assert tempfiles.build_is_gone(tmp_path, name)
    assert not tempfiles.build_is_gone(tmp_path, "web")


def test_a_full_disk_becomes_a_pt_br_error(portuguese):
    with pytest.raises(tempfiles.DiskFull) as info:
        with tempfiles.disk_full_is_an_error("x.tar"):
            raise OSError(errno.ENOSPC, "No space left on device")
    assert "sem espaço em disco ao gravar x.tar" in info.value.message
    with pytest.raises(PermissionError):
        with tempfiles.disk_full_is_an_error("x.tar"):
            raise PermissionError(errno.EACCES, "denied")


def _layer() -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        data = os.urandom(4096)
        ti = tarfile.TarInfo("f")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), "sha256:" + hashlib.sha256(plain).hexdigest()


def test_a_blob_is_hashed_while_unpacked(tmp_path: Path, portuguese):
    blob, diff_id = _layer()
    desc = {"digest": "sha256:" + hashlib.sha256(blob).hexdigest()}
    integrity.extract_verified(io.BytesIO(blob), tmp_path / "ok", desc, diff_id)
    assert (tmp_path / "ok" / "f").stat().st_size == 4096
    broken = bytearray(blob)
    broken[len(broken) // 2] ^= 1
    with pytest.raises(integrity.CorruptBlob) as info:
        integrity.extract_verified(io.BytesIO(bytes(broken)), tmp_path / "bad", desc, diff_id)
    assert f"o blob {desc['digest']} está corrompido" in info.value.message
    # trailing bytes after the gzip stream are hashed too
    with pytest.raises(integrity.CorruptBlob):
        integrity.extract_verified(io.BytesIO(blob + b"x"), tmp_path / "tail", desc, diff_id)
    (tmp_path / "blob").write_bytes(blob)
    integrity.verify_blob(tmp_path / "blob", desc["digest"], len(blob))
    with pytest.raises(integrity.CorruptBlob):
        integrity.verify_blob(tmp_path / "blob", desc["digest"], len(blob) + 1)
