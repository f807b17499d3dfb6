"""labkit.vm: the same image as a VM (QEMU, the host's kernel) and as a container.

Each boot costs seconds of a core under TCG, so each test boots once and checks
several things in what came back.
"""
from __future__ import annotations

import shutil

import pytest

import labkit
from labkit import vm

from labkit_cli import cli

pytestmark = pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="no qemu")

# Several layers, a file deleted by a later one (a whiteout), Env, WorkingDir and Cmd.
DOCKERFILE = """FROM busybox
RUN mkdir /data && echo one > /data/a && echo two > /data/b
RUN rm /data/a && echo three >> /data/b
ENV GREETING=olá
WORKDIR /data
CMD ["sh", "-c", "ls; cat b; echo $GREETING; pwd; md5sum /bin/busybox"]
"""


@pytest.fixture(scope="module")
def app_image(tmp_path_factory):
    ctx = tmp_path_factory.mktemp("vmctx")
    return labkit.build(str(ctx), "vmapp:1", dockerfile=DOCKERFILE, quiet=True)


def test_same_image_same_output_as_container_and_vm(app_image):
    ctr = labkit.run("vmapp:1")
    res = vm.run("vmapp:1", timeout=300)
    assert res.exit_code == 0 == ctr.exit_code
    assert res.stdout == ctr.stdout  # whiteout honoured: no /data/a in either
    assert res.stdout.startswith("b\ntwo\nthree\nolá\n/data\n")
    assert res.accel in ("kvm", "tcg") and res.kernel
    assert 0 < res.boot_s <= res.total_s and res.rss_peak > 0
