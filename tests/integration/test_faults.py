"""Faults that lose nothing (issue 14, item 5): ``kill -9`` during a build's RUN step and
during a pull, a corrupted blob, and ``labkit system check [--fix]``.

After each fault the next command starts a new engine that finds the running containers
(still running, logs intact), removes what the killed process left half-made, and leaves
a store that ``labkit system check`` finds consistent. Disk full: test_faults_disk.py;
20 clients at once: test_faults_load.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

import labkit
import labkit.engine.client
from faults_helpers import OtherHome, StallingProxy, kill_engine, temporaries, wait_until
from labkit import paths
from labkit.images.store import Store
from labkit_cli import LABKIT, cli
from requirements import needs_tool

pytestmark = pytest.mark.root


def _build_containers(home: Path | None = None) -> list[str]:
    return [c.name for c in labkit.containers(all=True, home=home) if c.name.startswith("labkit-build-")]


def _untagged(home: Path | None = None) -> list[str]:
    index = json.loads(((home or paths.home()) / "images" / "index.json").read_text())
    return [m["digest"] for m in index["manifests"] if not (m.get("annotations") or {})]


def _check(home: Path | None = None) -> subprocess.CompletedProcess:
    r = cli("system", "check", env={"LABKIT_HOME": str(home or paths.home())})
    print("system check:", r.returncode, r.stdout, r.stderr)
    return r


@pytest.fixture
def survivor():
    """A container running before the fault, that must still run (logs intact) after it."""
    ctr = labkit.run("busybox", ["sh", "-c", "echo antes-da-falha; sleep 600"], detach=True)
    assert wait_until(lambda: "antes-da-falha" in ctr.logs())
    yield ctr
    ctr.remove(force=True)


def _still_there(ctr) -> None:
    again = labkit.get(ctr.id)
    assert again.status == "running" and again.pid == ctr.pid
    assert "antes-da-falha" in again.logs()
    assert again.exec("echo ainda-vivo").stdout == "ainda-vivo\n"


def _start_build(tmp_path: Path, tag: str) -> subprocess.Popen:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\n"
        "RUN echo um > /um\n"
        "RUN echo dois > /dois; sleep 600\n")
    return subprocess.Popen([LABKIT, "build", "-t", tag, str(ctx)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "LABKIT_LANG": "pt_BR"})


def _in_second_run_step() -> bool:
    for c in labkit.containers():
        if c.name.startswith("labkit-build-") and (c.upper_dir / "dois").exists():
            return True
    return False


def test_kill9_engine_during_a_build_run_step(tmp_path, survivor):
    before = set(_untagged())
    build = _start_build(tmp_path, "lab/faults-build:v1")
    try:
        assert wait_until(_in_second_run_step, timeout=120), build.stderr.read() if build.poll() else ""
        old = kill_engine()
        out, err = build.communicate(timeout=120)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    print("build:", build.returncode, out, err)
    assert build.returncode != 0
    assert "labkit: erro:" in err and "Traceback" not in err
    new = labkit.containers()  # a new engine (the build's own clean-up may have started it)
    assert labkit.engine.client.request({"op": "ping"})["pid"] != old
    _still_there(survivor)
    assert [c.name for c in new if c.name.startswith("labkit-build-")] == []
    assert _build_containers() == []
    assert temporaries() == []
    assert set(_untagged()) == before  # the RUN steps' temporary images are gone
    assert Store().find("lab/faults-build:v1") is None
    assert _check().returncode == 0


def test_kill9_of_the_build_and_the_engine_the_next_engine_cleans_up(tmp_path, survivor):
    before = set(_untagged())
    build = _start_build(tmp_path, "lab/faults-build:v2")
    try:
        assert wait_until(_in_second_run_step, timeout=120)
        run_step = next(c for c in labkit.containers() if c.name.startswith("labkit-build-"))
        step_pid = run_step.pid
        build.send_signal(signal.SIGKILL)  # everything of labkit dies at once
        build.wait()
        kill_engine()
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert temporaries() != []  # the killed build's scratch (at least) is still there
    listed = {c.id: c for c in labkit.containers(all=True)}  # the next command: a new engine
    assert survivor.id in listed
    _still_there(survivor)
    # the RUN step's container belonged to the killed build: killed and removed
    assert wait_until(lambda: run_step.id not in {c.id for c in labkit.containers(all=True)})
    assert wait_until(lambda: not os.path.exists(f"/proc/{step_pid}"), timeout=10)
    assert temporaries() == []
    assert set(_untagged()) == before
    assert _check().returncode == 0


@pytest.fixture
def registry(tmp_path):
    from test_registry_server import Registry

    (tmp_path / "registry").mkdir()
    reg = Registry(tmp_path / "registry")
    yield reg
    reg.stop()


@needs_tool("docker-registry", package="docker-registry")
def test_kill9_during_a_pull_the_partial_blob_goes_and_a_new_pull_works(tmp_path, registry, survivor):
    ctx = tmp_path / "big"
    ctx.mkdir()
    payload = os.urandom(8 << 20)  # random: the gzip layer stays 8 MiB
    (ctx / "big.bin").write_bytes(payload)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big.bin /big.bin\n")
    from labkit.images.build import build
    from labkit.images.registry.commands import pull, push

    build(ctx, "lab/faults-pull:v1", quiet=True)
    push("lab/faults-pull:v1", f"{registry.host}/faults/pull:v1")
    assert cli("rmi", "lab/faults-pull:v1").returncode == 0
    proxy = StallingProxy(registry.host, limit=2 << 20)
    puller = subprocess.Popen([LABKIT, "pull", f"{proxy.host}/faults/pull:v1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    blobs = paths.home() / "images" / "blobs" / "sha256"
    try:
        def partial() -> list[Path]:
            return [p for p in blobs.iterdir() if p.name.endswith(".part") and p.stat().st_size > 0]

        assert wait_until(lambda: proxy.stalled.is_set() and partial(), timeout=60), puller.poll()
        half = partial()
        print("half-downloaded:", [(p.name, p.stat().st_size) for p in half])
        puller.send_signal(signal.SIGKILL)
        puller.wait()
        kill_engine()
        assert all(p.exists() for p in half)
    finally:
        if puller.poll() is None:
            puller.kill()
            puller.wait()
        proxy.release()
    labkit.containers()  # the next command: a new engine, which removes the partial blob
    assert temporaries() == []
    _still_there(survivor)
    assert Store().find(f"{proxy.host}/faults/pull:v1") is None
    assert _check().returncode == 0
    # nothing half-made is taken for done: a new pull fetches the layer whole
    pull(f"{registry.host}/faults/pull:v1")
    r = labkit.run(f"{registry.host}/faults/pull:v1", ["md5sum", "/big.bin"], remove=True)
    assert r.stdout.split()[0] == hashlib.md5(payload).hexdigest()
    for ref in (f"{registry.host}/faults/pull:v1",):
        assert cli("rmi", ref).returncode == 0


# --- the store check and a corrupted blob, in a home of their own (the test breaks its store)


@pytest.fixture
def home():
    h = OtherHome()
    yield h
    h.close()


def _layer_blob(home: Path, ref: str = "busybox") -> Path:
    from labkit.images.store import Store

    img = Store(home).resolve(ref)
    return home / "images" / "blobs" / "sha256" / img.layers[-1]["digest"].split(":")[1]


def _flip_one_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0x01]))


def test_system_check_reports_in_pt_br_and_fix_repairs(home):
    assert home.cli("run", "--rm", "busybox", "true").returncode == 0
    r = home.cli("system", "check")
    assert r.returncode == 0 and "armazém OK" in r.stdout, r.stdout + r.stderr
    blobs = home.path / "images" / "blobs" / "sha256"
    (blobs / ".tmp-killed").write_bytes(b"half")  # a writer that was killed
    (home.path / "layers" / ".tmp-killed-unpack").mkdir()
    orphan = os.urandom(100)
    (blobs / hashlib.sha256(orphan).hexdigest()).write_bytes(orphan)
    layer = _layer_blob(home.path)
    _flip_one_byte(layer)
    r = home.cli("system", "check")
    print(r.stdout)
    assert r.returncode == 1
    assert "[parcial]" in r.stdout and "deixado pela metade por um processo que foi morto" in r.stdout
    assert "[corrompido]" in r.stdout and layer.name in r.stdout
    assert "[sem uso]" in r.stdout and "nada se refere a ele" in r.stdout
    assert "3 problemas encontrados, 0 corrigidos" in r.stdout  # 2 partial + 1 corrupt (unused: a note)
    r = home.cli("system", "check", "--fix")
    print(r.stdout)
    assert r.returncode == 1 and "3 problemas encontrados, 3 corrigidos" in r.stdout
    assert not layer.exists() and temporaries(home.path) == []
    # the corrupt layer is gone: what references it now says what to do
    r = home.cli("system", "check")
    print(r.stdout)
    assert r.returncode == 1 and "[faltando]" in r.stdout and "baixe (pull) ou construa (build)" in r.stdout


def test_a_wrong_size_in_a_descriptor_is_reported(home):
    from labkit.images.layout import MT_CONFIG
    from labkit.images.store import Store

    store = Store(home.path)
    img = store.resolve("busybox")
    layers = [dict(img.layers[0], size=img.layers[0]["size"] + 1)]
    store.write_image(img.config, layers, "lab/tamanho-errado:v1")
    assert MT_CONFIG
    r = home.cli("system", "check")
    print(r.stdout)
    assert r.returncode == 1 and "[tamanho errado]" in r.stdout and "o descritor diz" in r.stdout


def test_a_corrupted_blob_is_refused_before_unpack(home):
    assert home.cli("run", "--rm", "busybox", "true").returncode == 0
    layer = _layer_blob(home.path)
    home.cli("engine", "stop")
    for d in (home.path / "layers").iterdir():  # the unpacked copy: the next run unpacks again
        if len(d.name) == 64:
            import shutil

            shutil.rmtree(d)
    _flip_one_byte(layer)
    r = home.cli("run", "--rm", "busybox", "echo", "nunca")
    print(r.returncode, r.stdout, r.stderr)
    assert r.returncode == 125 and "nunca" not in r.stdout
    assert f"o blob sha256:{layer.name} está corrompido" in r.stderr
    assert "labkit system check --fix" in r.stderr
    assert [d.name for d in (home.path / "layers").iterdir() if len(d.name) == 64] == []  # nothing unpacked
    assert temporaries(home.path) == []
    assert labkit.containers(all=True, home=home.path) == []


@needs_tool("docker-registry", package="docker-registry")
def test_a_corrupted_blob_is_refused_before_push(home, registry):
    assert home.cli("run", "--rm", "busybox", "true").returncode == 0
    layer = _layer_blob(home.path)
    _flip_one_byte(layer)
    r = home.cli("push", "busybox", f"{registry.host}/faults/corrupt:v1")
    print(r.returncode, r.stdout, r.stderr)
    assert r.returncode == 125
    assert f"o blob sha256:{layer.name} está corrompido" in r.stderr
    # nothing of it reached the registry
    data = Path(registry.root) / "data"
    assert not list(data.rglob(layer.name))


def test_system_df_counts_images_containers_and_the_build_cache(home):
    assert home.cli("run", "-d", "--name", "ativo", "busybox", "sleep", "300").returncode == 0
    r = home.cli("run", "--name", "parado", "busybox", "sh", "-c", "head -c 200000 /dev/zero > /x")
    assert r.returncode == 0, r.stderr
    orphan = os.urandom(5000)  # a blob nothing references: the build cache
    blobs = home.path / "images" / "blobs" / "sha256"
    (blobs / hashlib.sha256(orphan).hexdigest()).write_bytes(orphan)
    r = home.cli("system", "df")
    print(r.stdout)
    assert r.returncode == 0
    import re

    table = [re.split(r"\s{2,}", line.strip()) for line in r.stdout.splitlines()]
    assert table[0] == ["TIPO", "TOTAL", "ATIVOS", "TAMANHO", "RECUPERÁVEL"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["Imagens"][:2] == ["1", "1"] and rows["Imagens"][3] == "0B (0%)"  # busybox, in use
    assert rows["Contêineres"] == ["2", "1", "200kB", "200kB (100%)"]  # the stopped one's /x
    assert rows["Cache de build"] == ["1", "0", "5kB", "5kB (100%)"]
