"""The disk fills during a build, a pull and a ``save`` (issue 14, item 5).

``LABKIT_HOME`` is a small tmpfs with a size limit, mounted and unmounted by the test.
Each time: a clear pt-BR error ("sem espaço em disco"), exit 125, no half-written blob
(and so none that ``index.json`` references: ``labkit system check`` finds the store
consistent), and the image made before still runs.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from faults_helpers import OtherHome, temporaries
from requirements import needs_tool

pytestmark = pytest.mark.root

SIZE_MIB = 24
BIG_MIB = 32  # more than the whole tmpfs


@pytest.fixture
def full_home(tmp_path):
    """A LABKIT_HOME on a 24 MiB tmpfs, holding busybox already."""
    home = OtherHome()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m,mode=700", "tmpfs", str(home.path)],
                   check=True)
    try:
        r = home.cli("run", "--rm", "busybox", "echo", "antes")
        assert r.returncode == 0 and r.stdout == "antes\n", r.stderr
        yield home
    finally:
        try:
            home.close(remove=False)
        finally:
            subprocess.run(["umount", str(home.path)], check=True)
            os.rmdir(home.path)


def _consistent_and_busybox_runs(home: OtherHome) -> None:
    assert temporaries(home.path) == []
    r = home.cli("system", "check")
    print("system check:", r.stdout, r.stderr)
    assert r.returncode == 0 and "armazém OK" in r.stdout
    r = home.cli("run", "--rm", "busybox", "echo", "ainda roda")
    assert r.returncode == 0 and r.stdout == "ainda roda\n", r.stderr


def _big_context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    with open(ctx / "big.bin", "wb") as f:  # random: gzip cannot make it smaller
        for _ in range(BIG_MIB):
            f.write(os.urandom(1 << 20))
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    return ctx


def test_disk_full_during_a_build(full_home, tmp_path):
    r = full_home.cli("build", "-t", "lab/grande:v1", str(_big_context(tmp_path)), timeout=300)
    print(r.returncode, r.stdout, r.stderr)
    assert r.returncode == 125
    assert "sem espaço em disco ao gravar as camadas da imagem" in r.stderr
    assert "Traceback" not in r.stderr
    assert "lab/grande" not in full_home.cli("images").stdout
    _consistent_and_busybox_runs(full_home)


def test_disk_full_during_a_save(full_home):
    fill = full_home.path / "enche"
    with open(fill, "wb") as f:  # leave less room than busybox's layer (about 1 MiB)
        try:
            while True:
                f.write(b"\0" * (64 << 10))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            pass
    os.truncate(fill, fill.stat().st_size - (256 << 10))
    out = full_home.path / "busybox.tar"
    r = full_home.cli("save", "-o", str(out), "busybox")
    print(r.returncode, r.stdout, r.stderr)
    assert r.returncode == 125 and "sem espaço em disco ao gravar" in r.stderr and str(out) in r.stderr
    assert [n for n in os.listdir(full_home.path) if "busybox.tar" in n] == []  # no half archive
    fill.unlink()
    _consistent_and_busybox_runs(full_home)


@needs_tool("docker-registry", package="docker-registry")
def test_disk_full_during_a_pull(full_home, tmp_path):
    from labkit.images.build import build
    from labkit.images.registry.commands import push
    from labkit_cli import cli
    from test_registry_server import Registry

    (tmp_path / "registry").mkdir()
    registry = Registry(tmp_path / "registry")
    try:
        build(_big_context(tmp_path), "lab/grande-pull:v1", quiet=True)  # in the session's home
        push("lab/grande-pull:v1", f"{registry.host}/faults/grande:v1")
        assert cli("rmi", "lab/grande-pull:v1").returncode == 0
        r = full_home.cli("pull", f"{registry.host}/faults/grande:v1", timeout=300)
        print(r.returncode, r.stdout, r.stderr)
        assert r.returncode == 125
        assert "sem espaço em disco ao gravar as camadas da imagem" in r.stderr
        assert "faults/grande" not in full_home.cli("images").stdout
        _consistent_and_busybox_runs(full_home)
    finally:
        registry.stop()


def test_disk_full_while_a_run_unpacks_the_image(full_home, tmp_path):
    """A small blob (zeros compress well) whose unpacked layer does not fit: `run` fails
    cleanly, the half-unpacked layer is gone, the container is not left created."""
    from labkit.images.build import build
    from labkit_cli import cli

    ctx = tmp_path / "zeros"
    ctx.mkdir()
    with open(ctx / "zeros.bin", "wb") as f:
        f.truncate(BIG_MIB << 20)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY zeros.bin /zeros.bin\n")
    build(ctx, "lab/zeros:v1", quiet=True)  # in the session's home
    archive = tmp_path / "zeros.tar"
    assert cli("save", "-o", str(archive), "lab/zeros:v1").returncode == 0
    assert cli("rmi", "lab/zeros:v1").returncode == 0
    r = full_home.cli("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr  # the blobs fit: about 40 KiB
    r = full_home.cli("run", "--rm", "lab/zeros:v1", "true")
    print(r.returncode, r.stdout, r.stderr)
    assert r.returncode == 125
    assert "sem espaço em disco ao gravar as camadas da imagem" in r.stderr
    assert full_home.cli("ps", "-a", "-q").stdout.strip() == ""
    _consistent_and_busybox_runs(full_home)
