"""The image verbs of the ``labkit`` command, run as a learner would run them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def env():
    home = tempfile.mkdtemp(prefix="labkit-img-cli-")
    yield dict(os.environ, LABKIT_HOME=home, LABKIT_LANG="pt_BR")
    import shutil

    shutil.rmtree(home, ignore_errors=True)


def lk(env, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "labkit", *args], env=env, capture_output=True,
                          text=True, timeout=120, stdin=stdin)


def test_images_table_inspect_tag_rmi(env):
    r = lk(env, "image", "inspect", "busybox")  # built on first use
    assert r.returncode == 0, r.stderr
    (info,) = json.loads(r.stdout)
    assert info["RepoTags"] == ["busybox:latest"]
    assert info["Config"]["Cmd"] == ["sh"] and info["Id"].startswith("sha256:")
    short = info["Id"][7:19]

    r = lk(env, "images")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REPOSITÓRIO", "TAG", "ID", "DA", "IMAGEM", "CRIADO", "TAMANHO"]
    assert lines[1].split()[:3] == ["busybox", "latest", short]
    assert lines[1].split()[-1].endswith("MB")

    r = lk(env, "image", "inspect", "-f", "{{.Config.Cmd}} {{json .Config.Cmd}} {{.Os}}", "busybox")
    assert r.stdout == '[sh] ["sh"] linux\n'
    assert lk(env, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout == f"busybox:latest {short}\n"

    en = dict(env, LABKIT_LANG="en")
    assert lk(en, "image", "ls").stdout.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]

    assert lk(env, "tag", "busybox", "curso/caixa:v1").returncode == 0
    assert lk(env, "images", "-q").stdout.split() == [short]
    assert lk(env, "images", "curso/caixa").stdout.splitlines()[1].split()[:2] == ["curso/caixa", "v1"]

    r = lk(env, "rmi", short)
    assert r.returncode == 1 and "-f" in r.stderr
    r = lk(env, "rmi", "curso/caixa:v1")
    assert r.returncode == 0 and r.stdout.strip() == "Untagged: curso/caixa:v1"

    r = lk(env, "rmi", "naoexiste")
    assert r.returncode == 1 and "imagem não encontrada: naoexiste" in r.stderr
    r = lk(env, "image", "inspect", "naoexiste")
    assert r.returncode == 1 and json.loads(r.stdout) == []

    r = lk(env, "rmi", "-f", "busybox")
    assert r.returncode == 0 and f"Deleted: {info['Id']}" in r.stdout
    assert lk(env, "images", "-q").stdout == ""


def test_save_load_cli(env):
    home = Path(env["LABKIT_HOME"])
    out = home / "bb.tar"
    assert lk(env, "save", "-o", str(out), "busybox").returncode == 0
    assert lk(env, "rmi", "busybox").returncode == 0
    r = lk(env, "load", "-i", str(out))
    assert r.returncode == 0 and r.stdout.strip() == "Imagem carregada: busybox:latest"
    with open(out, "rb") as f:  # from standard input, docker format
        r = subprocess.run([sys.executable, "-m", "labkit", "load"], env=env, stdin=f, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "labkit", "save", "--format", "docker-archive", "busybox"],
                       env=env, capture_output=True, timeout=120)  # to a pipe
    assert r.returncode == 0 and b"manifest.json" in r.stdout
    r = lk(env, "load", "-i", str(home / "missing.tar"))
    assert r.returncode == 125 and "missing.tar" in r.stderr
    bad = home / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    r = lk(env, "load", "-i", str(bad))
    assert r.returncode == 125 and "não é um arquivo de imagem" in r.stderr


def test_rmi_refuses_an_image_a_container_uses():
    """Docker's rule: the last name of an image a container uses needs -f, and then the image stays."""
    import labkit
    from labkit.errors import Conflict
    from labkit.images.store import Store

    s = Store()
    base = s.resolve("busybox")
    s.tag("busybox", "curso/usada:v1")
    res = labkit.run("curso/usada:v1", ["true"], remove=False)
    try:
        s.remove("busybox")  # other names remain: just an untag
        with pytest.raises(Conflict):
            s.remove("curso/usada:v1")
        assert s.remove("curso/usada:v1", force=True) == ["Untagged: curso/usada:v1"]
        assert s.find(base.id) is not None  # kept, untagged, for the container
        assert s.prune() == []
        assert all(d.is_dir() for d in s.find(base.id).layer_dirs())
    finally:
        labkit.get(res.id).remove(force=True)
        s.tag(base.id, "busybox")
