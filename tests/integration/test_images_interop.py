"""The image store and archives against the real tools: skopeo, umoci and podman (runc).

podman runs with private ``--root/--runroot/--tmpdir`` under a temporary
directory, ``--runtime runc`` (crun refuses this hybrid cgroup host), rlimits
from a private containers.conf (root lacks CAP_SYS_RESOURCE), a private
``--cgroup-parent``, and is reset and unmounted after every test.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from labkit.images import archive
from labkit.images.store import Store
from requirements import needs_tool, optional_tool, require_tool

PY = sys.executable


class Podman:
    """podman with all of its state under one temporary directory."""

    def __init__(self) -> None:
        # lower case and short: podman names `oci:` pulls after the path, and limits runroot length
        self.dir = Path(tempfile.mkdtemp(prefix="lkimg", dir="/tmp"))
        self.dir.chmod(0o755)
        self.cgroup = "lkimgtest-" + self.dir.name.lower()
        conf = self.dir / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]\n')
        self.env = dict(os.environ, CONTAINERS_CONF=str(conf), TMPDIR=str(self.dir))
        self.base = ["podman", "--root", str(self.dir / "root"), "--runroot", str(self.dir / "run"),
                     "--tmpdir", str(self.dir / "tmp"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "none", "--storage-driver", "vfs"]

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(self.base + list(args), env=self.env, capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r

    def run(self, image: str, *cmd: str) -> str:
        r = self("run", "--rm", "--network", "none", "--cgroup-parent", "/" + self.cgroup, image, *cmd)
        return r.stdout

    def cleanup(self) -> None:
        self("rm", "-af", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        prefix = str(self.dir) + "/"
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        for point in reversed(points):
            subprocess.run(["umount", "-l", point], check=False)
        for hier in Path("/sys/fs/cgroup").iterdir():
            top = hier / self.cgroup
            if top.is_dir():
                for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def leftovers(self) -> list[str]:
        out = []
        with open("/proc/self/mountinfo") as f:
            out += [line.split()[4] for line in f if str(self.dir) in line]
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if str(self.dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        out.append(f"process {pid}")
                except OSError:
                    pass
        out += [str(p / self.cgroup) for p in Path("/sys/fs/cgroup").iterdir() if (p / self.cgroup).exists()]
        if self.dir.exists():
            out.append(str(self.dir))
        return out


@pytest.fixture
def podman():
    require_tool("podman", package="podman")
    require_tool("runc", package="runc")
    p = Podman()
    try:
        yield p
    finally:
        p.cleanup()
        assert p.leftovers() == []


@pytest.fixture
def work():
    d = Path(tempfile.mkdtemp(prefix="lkimgwork", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def store():
    s = Store()
    s.resolve("busybox")
    return s


def labkit_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "labkit", *args], capture_output=True, text=True, timeout=120, **kw)


@needs_tool("skopeo", package="skopeo")
def test_skopeo_inspects_the_store(store):
    out = subprocess.run(["skopeo", "inspect", f"oci:{store.layout.root}:localhost/busybox:latest"],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    img = store.resolve("busybox")
    assert info["Digest"] == img.digest
    assert info["Layers"] == [layer["digest"] for layer in img.layers]
    raw = subprocess.run(["skopeo", "inspect", "--config", f"oci:{store.layout.root}:localhost/busybox:latest"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(raw)["config"]["Cmd"] == ["sh"]


@needs_tool("umoci", package="umoci")
def test_umoci_lists_the_store(store):
    out = subprocess.run(["umoci", "ls", "--layout", str(store.layout.root)],
                         capture_output=True, text=True, check=True).stdout
    assert "localhost/busybox:latest" in out.split()


def test_podman_pulls_the_store_and_runs_it(store, podman):
    image_id = podman("pull", "-q", f"oci:{store.layout.root}:localhost/busybox:latest").stdout.strip()
    assert image_id == store.resolve("busybox").id.split(":")[1]
    assert podman.run(image_id, "busybox", "echo", "hi") == "hi\n"
    assert podman.run(image_id, "sh", "-c", "id -u; ls -ld /tmp | cut -c1-10") == "0\ndrwxrwxrwt\n"


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_podman_loads_and_runs_what_labkit_saved(store, podman, work, fmt):
    out = work / f"busybox-{fmt}.tar"
    r = labkit_cli("save", "-o", str(out), "--format", fmt, "busybox")
    assert r.returncode == 0, r.stderr
    if optional_tool("skopeo", package="skopeo"):
        subprocess.run(["skopeo", "inspect", f"{fmt}:{out}"], check=True, capture_output=True)
    r = podman("load", "-i", str(out))
    assert "localhost/busybox:latest" in r.stdout
    assert podman.run("localhost/busybox:latest", "echo", "hi") == "hi\n"
    listed = podman("images", "--format", "{{.ID}}").stdout.split()
    assert store.resolve("busybox").short_id in listed


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_labkit_loads_and_runs_what_podman_saved(store, podman, work, fmt):
    image_id = podman("pull", "-q", f"oci:{store.layout.root}:localhost/busybox:latest").stdout.strip()
    podman("tag", image_id, f"localhost/podbox:{fmt}")
    # podman adds a file, so the image is really podman's own
    podman("run", "--name", "mk", "--network", "none", "--cgroup-parent", "/" + podman.cgroup,
           f"localhost/podbox:{fmt}", "sh", "-c", "echo from-podman > /made-by-podman")
    podman("commit", "-q", "mk", f"localhost/podbox:{fmt}")
    podman("rm", "mk")
    out = work / f"podman-{fmt}.tar"
    podman("save", "--format", fmt, "-o", str(out), f"localhost/podbox:{fmt}")
    r = labkit_cli("load", "-i", str(out))
    assert r.returncode == 0, r.stderr
    assert f"podbox:{fmt}" in r.stdout
    s = Store()
    img = s.resolve(f"podbox:{fmt}")
    try:
        dirs = img.layer_dirs()
        assert (dirs[0] / "bin/busybox").is_file()
        assert any((d / "made-by-podman").is_file() for d in dirs)
        import labkit

        res = labkit.run(f"podbox:{fmt}", ["cat", "/made-by-podman"])
        assert res.exit_code == 0 and res.stdout.strip() in ("from-podman", b"from-podman")
    finally:
        s.remove(f"podbox:{fmt}", force=True)


@needs_tool("skopeo", package="skopeo")
def test_skopeo_writes_into_the_store_and_labkit_reads_it(store, work):
    saved = work / "bb.tar"
    archive.save(["busybox"], saved, format="docker-archive", store=store)
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{saved}",
                    f"oci:{store.layout.root}:localhost/via-skopeo:v1"], check=True, capture_output=True)
    try:
        img = Store().resolve("via-skopeo:v1")
        assert img.config["config"]["Cmd"] == ["sh"]
        assert (img.layer_dirs()[0] / "bin/busybox").is_file()
        assert img.layer_dirs()[0] == store.resolve("busybox").layer_dirs()[0]  # same diff_id, same dir
    finally:
        Store().remove("via-skopeo:v1", force=True)
