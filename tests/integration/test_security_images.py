"""Hostile images end to end (security-baseline P5, P6), made with ``labkit commit``.

An image whose ``/data`` is a symlink to a host path, and one whose
``/proc`` is a symlink to ``/``: the first must get its volume mounted
*inside* the container (the host path untouched), the second must be
refused with a clear error and nothing left behind.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

import labkit
from labkit.errors import LabkitError
from labkit.images import changes

pytestmark = pytest.mark.root


@pytest.fixture
def images():
    from labkit.images.store import Store

    made: list[str] = []

    def commit_from(script: str | None = None, upper_hook=None) -> str:
        ref = f"labkit-test-evil-{secrets.token_hex(4)}:latest"
        r = labkit.run("busybox", ["sh", "-c", script or "true"], remove=False)
        ctr = labkit.get(r.id)
        try:
            if upper_hook:
                upper_hook(ctr.upper_dir)
            changes.commit(r.id, ref)
        finally:
            ctr.remove()
        made.append(ref)
        return ref

    yield commit_from
    store = Store()
    for ref in made:
        try:
            store.remove(ref, force=True)
        except Exception:  # noqa: BLE001 - best effort
            pass


def test_p6_image_symlink_cannot_redirect_a_volume_to_the_host(images, tmp_path: Path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "host-file").write_text("host\n")
    source = tmp_path / "volume"
    source.mkdir()
    (source / "from-volume").write_text("v\n")
    ref = images(f"ln -s {victim} /data")  # the image: /data -> <a host directory>
    r = labkit.run(ref, ["sh", "-c", f"readlink /data; ls /data/; ls {victim}; grep ' /data\\| {victim} ' "
                                      "/proc/self/mountinfo | cut -d' ' -f5"],
                   volumes=[f"{source}:/data"])
    print(r.stdout, r.stderr)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == str(victim)  # the link is still there, inside
    assert lines[1] == "from-volume" and lines[2] == "from-volume"  # the volume is at the link's target
    assert lines[3] == str(victim)  # mounted at <victim> *inside* the container's root
    # on the host, nothing changed and nothing is mounted on the victim
    assert sorted(os.listdir(victim)) == ["host-file"]
    with open("/proc/self/mountinfo") as f:
        assert str(victim) not in {line.split()[4] for line in f}


def test_p5_image_with_proc_symlink_is_refused(images, container_dirs):
    ref = images(upper_hook=lambda upper: os.symlink("/", upper / "proc"))
    before = container_dirs()
    with pytest.raises(LabkitError) as info:
        labkit.run(ref, ["ls", "/proc"])
    print(info.value)
    assert info.value.exit_code == 125
    assert "/proc" in str(info.value)
    assert container_dirs() == before


def test_p5_image_with_sys_symlink_is_refused(images):
    ref = images(upper_hook=lambda upper: os.symlink("/", upper / "sys"))
    with pytest.raises(LabkitError) as info:
        labkit.run(ref, ["true"])
    assert info.value.exit_code == 125 and "/sys" in str(info.value)
