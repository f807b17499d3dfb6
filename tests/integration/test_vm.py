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
from requirements import needs_tool

pytestmark = needs_tool("qemu-system-x86_64", package="qemu-system-x86")

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


def test_guest_uptime_is_its_own_and_exit_status_propagates():
    with open("/proc/uptime") as f:
        host_before = float(f.read().split()[0])
    r = cli("vm", "run", "busybox", "sh", "-c", "cat /proc/uptime; exit 3", timeout=600)
    assert r.returncode == 3, r.stderr
    guest = float(r.stdout.split()[0])
    c = cli("run", "--rm", "busybox", "cat", "/proc/uptime")
    assert c.returncode == 0
    assert float(c.stdout.split()[0]) >= host_before  # a container reads the host's kernel
    assert guest < host_before and guest < float(c.stdout.split()[0])  # the VM's kernel booted just now


def test_image_without_a_shell_boots(tmp_path):
    shutil.copy("/bin/busybox", tmp_path / "busybox")
    labkit.build(str(tmp_path), "vmnosh:1", quiet=True,
                 dockerfile="FROM scratch\nCOPY busybox /bin/busybox\n")
    res = vm.run("vmnosh:1", ["/bin/busybox", "sh", "-c", "ls /bin; echo ok"], timeout=300)
    assert (res.exit_code, res.stdout) == (0, "busybox\nok\n")  # no sh in the image's /bin


def test_a_command_that_never_ends_is_killed_at_the_timeout():
    r = cli("vm", "run", "--timeout", "15", "busybox", "sleep", "600", timeout=300)
    assert r.returncode == 124
    assert "tempo esgotado" in r.stderr  # the fixture checks that QEMU and its files are gone


def test_a_guest_that_panics_shows_the_panic_and_fails():
    r = cli("vm", "run", "busybox", "sh", "-c", "echo c > /proc/sysrq-trigger", timeout=600)
    assert r.returncode == 255
    assert "Kernel panic" in r.stdout + r.stderr
    assert "kernel panic?" in r.stderr


def test_missing_kernel_image_and_missing_qemu_are_clear_errors(tmp_path):
    r = cli("vm", "run", "busybox", "true", env={"LABKIT_VM_BOOT": str(tmp_path)})
    assert r.returncode == 125 and "linux-image-amd64" in r.stderr and "nenhuma imagem" in r.stderr
    r = cli("vm", "run", "busybox", "true", env={"PATH": str(tmp_path)})  # no qemu on PATH
    assert r.returncode == 125 and "qemu-system-x86" in r.stderr and "não encontrado" in r.stderr
