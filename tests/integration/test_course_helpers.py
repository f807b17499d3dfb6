"""The course's helpers for notebook 08 on the real tools: podman with private state and
docker-registry on 127.0.0.1. Each leaves nothing behind (the leak fixture checks cgroups,
mounts and processes; these tests check their own directory too)."""
from __future__ import annotations

from pathlib import Path

import pytest

import labkit
from labkit.images import archive
from labkit.images.store import Store
from requirements import needs_tool

pytestmark = [pytest.mark.root]


@needs_tool("podman", package="podman")
def test_podman_runs_a_labkit_image_and_closes_clean(tmp_path):
    from labkit.course.podman import Podman

    tar = tmp_path / "busybox.tar"
    labkit.run("busybox", ["true"])          # the store has busybox
    archive.save("busybox", tar)
    pm = Podman()
    try:
        assert "localhost/busybox:latest" in pm("load", "-i", tar)
        assert pm.run("--rm", "localhost/busybox:latest", "echo", "olá") == "olá\n"
        pm.run("-d", "--name", "fica", "localhost/busybox:latest", "sleep", "600")
        assert pm("ps", "-q").split() != []
        cgroup_dirs = [p for p in Path("/sys/fs/cgroup").glob(f"*/{pm.cgroup}")]
        assert cgroup_dirs, "the containers' cgroups live under our own parent"
    finally:
        pm.close()
    assert not pm.dir.exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{pm.cgroup}"))
    pm.close()                               # a second close does nothing


@needs_tool("docker-registry", package="docker-registry")
def test_local_registry_push_pull_into_another_home(tmp_path):
    from labkit.course.registry import LocalRegistry

    labkit.run("busybox", ["true"])
    other = tmp_path / "outra"
    with LocalRegistry() as reg:
        assert reg.host.startswith("127.0.0.1:")
        dest = f"{reg.host}/curso/bb:v1"
        assert labkit.push("busybox", dest)["pushed"] >= 2
        assert reg.tags("curso/bb") == ["v1"]
        img = labkit.pull(dest, store=Store(other))
        assert img.digest == Store().find("busybox").digest
        assert labkit.run(dest, ["echo", "oi"], home=other).stdout == "oi\n"
        labkit.engine_stop(home=other)
    assert reg.proc.poll() is not None and not reg.dir.exists()


def test_image_checks_on_a_real_commit():
    from labkit.course import checks as c

    ctr = labkit.run("busybox", ["sleep", "600"], detach=True)
    try:
        labkit.commit(ctr, "teste-checagem:vazia")
        assert not c.image_has_file("teste-checagem:vazia", "/versao.txt")
        ctr.exec(["sh", "-c", "echo 2 > /versao.txt"])
        labkit.commit(ctr, "teste-checagem:v2")
        assert c.image_has_file("teste-checagem:v2", "/versao.txt", "2")
        assert not c.image_has_file("teste-checagem:v2", "/versao.txt", "3")
        assert not c.image_has_file("nao-existe:v9", "/versao.txt")
    finally:
        ctr.remove(force=True)
        for ref in ("teste-checagem:vazia", "teste-checagem:v2"):
            Store().remove(ref)
