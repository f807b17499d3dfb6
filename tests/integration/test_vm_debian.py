"""The same Debian image (debootstrap, debian:bookworm) as a VM and as a container: the same output.

debootstrap fetches from this machine's Debian mirror (as tests/integration/test_build_debian.py
does) once for the module: minutes, and then one VM boot.
"""
from __future__ import annotations

import pytest

import labkit
from labkit import vm
from labkit.images import debian
from labkit.images.store import Store

from requirements import needs_tool, require_tool, skip_here

pytestmark = [pytest.mark.root, pytest.mark.slow,
              needs_tool("qemu-system-x86_64", package="qemu-system-x86")]


@pytest.fixture(scope="module")
def bookworm():
    require_tool("debootstrap", package="debootstrap")
    why = debian.reachable(debian.configured_mirror(), "bookworm")
    if why:
        skip_here(f"the Debian archive is not reachable from this machine: {why}")
    existed = Store().find("debian:bookworm") is not None
    img = debian.ensure("bookworm", progress=lambda line: None)
    yield img
    if not existed:
        Store().remove("debian:bookworm")


def test_debian_image_gives_the_same_output_as_vm_and_container(bookworm):
    cmd = ["sh", "-c", "cat /etc/debian_version; md5sum /bin/ls; dpkg-query -W | md5sum; id -u"]
    ctr = labkit.run("debian:bookworm", cmd)
    res = vm.run("debian:bookworm", cmd, timeout=600)
    assert ctr.exit_code == 0 == res.exit_code, res.console[-2000:]
    assert res.stdout == ctr.stdout
    lines = res.stdout.splitlines()
    assert lines[0].startswith("12.") and lines[1].endswith("  /bin/ls") and lines[3] == "0"
