"""debian:<suite> through debootstrap: a fake debootstrap (fast) and the real one (slow, needs the archive)."""
from __future__ import annotations

import os

import pytest

import labkit
from labkit.errors import LabkitError
from labkit.images import debian
from labkit.images.store import Store
from requirements import require_tool, skip_here

pytestmark = pytest.mark.root

FAKE = r"""#!/bin/sh
# fake debootstrap: --variant=minbase --arch=ARCH SUITE TARGET MIRROR
target="$4"
for p in base-files libc6 dash; do echo "I: Retrieving $p 1.0"; echo "I: Validating $p 1.0"; done
echo "I: Extracting base-files..."
echo "I: Extracting libc6..."
echo "I: Extracting dash..."
mkdir -p "$target/etc" "$target/bin" "$target/dev" "$target/var/cache/apt/archives" "$target/tmp"
echo 12.99 > "$target/etc/debian_version"
echo build-host > "$target/etc/hostname"
cp /bin/busybox "$target/bin/busybox"
ln -s busybox "$target/bin/sh"
ln -s busybox "$target/bin/cat"
mknod "$target/dev/null" c 1 3
touch "$target/var/cache/apt/archives/libc6.deb"
echo "I: Configuring libc6..."
echo "I: Base system installed successfully."
"""


@pytest.fixture
def fake_debootstrap(tmp_path, monkeypatch):
    require_tool("busybox", package="busybox-static")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "debootstrap"
    script.write_text(FAKE)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setattr(debian, "reachable", lambda mirror, suite, timeout=10.0: None)
    return script


def test_fake_debootstrap_image(fake_debootstrap):
    lines: list[str] = []
    img = debian.ensure("fakesuite", progress=lines.append, mirror="http://example.invalid/debian")
    try:
        assert img.ref == "localhost/debian:fakesuite"
        assert any("debootstrap" in l for l in lines)
        assert any("3/3" in l for l in lines), lines  # extracting 3 of the 3 packages fetched
        root = img.layer_dirs()[0]
        assert (root / "etc/debian_version").read_text() == "12.99\n"
        assert not list((root / "dev").iterdir())  # no device nodes in the layer
        assert not (root / "var/cache/apt/archives/libc6.deb").exists()
        assert (root / "etc/hostname").read_text() == ""
        assert img.config["config"]["Labels"]["org.debian.version"] == "12.99"
        # second time: from the store, no debootstrap
        fake_debootstrap.unlink()
        assert debian.ensure("fakesuite", progress=lines.append).digest == img.digest
        res = labkit.run("debian:fakesuite", ["cat", "/etc/debian_version"])
        assert res.stdout == "12.99\n"
    finally:
        Store().remove("debian:fakesuite")


def test_unreachable_archive_message(monkeypatch):
    monkeypatch.setenv("LABKIT_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
    with pytest.raises(LabkitError) as exc:
        debian.ensure("nosuchsuite", progress=lambda s: None)
    msg = str(exc.value)
    assert "127.0.0.1:9" in msg and ("busybox" in msg)


def test_configured_mirror_is_debian(monkeypatch):
    monkeypatch.delenv("LABKIT_DEBIAN_MIRROR", raising=False)
    assert debian.configured_mirror().endswith("/debian")


@pytest.mark.slow
def test_real_debootstrap_bookworm(tmp_path):
    """Minutes: debootstrap from the machine's Debian mirror, then a build FROM it."""
    mirror = debian.configured_mirror()
    why = debian.reachable(mirror, "bookworm")
    if why:
        skip_here(f"the Debian archive is not reachable from this machine: {why}")
    from labkit.images.build import build
    from labkit.images.registry import pull

    existed = Store().find("debian:bookworm") is not None
    lines: list[str] = []
    img = pull("debian:bookworm", out=lines.append)
    try:
        res = labkit.run("debian:bookworm", ["cat", "/etc/debian_version"])
        assert res.exit_code == 0 and res.stdout.startswith("12.")
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text("FROM debian:bookworm\nRUN echo ok > /ok && dpkg -s bash | head -1\n")
        built = build(ctx, "itest/deb:1", out=lines.append)
        assert labkit.run(built.ref, ["cat", "/ok"]).stdout == "ok\n"
        assert built.layers[0] == img.layers[0]
        Store().remove("itest/deb:1")
    finally:
        if not existed:
            Store().remove("debian:bookworm")
