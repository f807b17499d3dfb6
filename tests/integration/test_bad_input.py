"""Bad input (issue 2, item 7): a clear message, Docker's exit code, nothing left behind.

Every case runs the real ``labkit`` command and checks: the exit code (125
for an error of labkit, 126 cannot invoke, 127 not found), a message on
stderr in pt-BR (the default) and, for a few, in English with
``LANG=en_US.UTF-8``; an empty stdout; and that ``labkit ps -a`` and the
state directories are the same afterwards (the ``no_leftovers`` fixture
also checks mounts, cgroups and processes).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import labkit
from labkit.errors import Conflict, LabkitError, NotFound
from labkit_cli import LABKIT, cli  # tests/integration/labkit_cli.py

pytestmark = pytest.mark.root


def inventory(container_dirs) -> tuple[str, set[str]]:
    ps = cli("ps", "-a", "-q", "--no-trunc")
    assert ps.returncode == 0, ps.stderr
    return ps.stdout, container_dirs()


@pytest.fixture
def unchanged(container_dirs):
    """Asserts that ``labkit ps -a`` and the state directories did not change."""
    before = inventory(container_dirs)
    yield
    assert inventory(container_dirs) == before


CASES = [
    # (args, exit code, pt-BR text, English text)
    (["run", "--rm", "imagem-que-nao-existe", "true"], 125,
     "imagem não encontrada: imagem-que-nao-existe", "no such image: imagem-que-nao-existe"),
    (["run", "--rm", "busybox", "comando-inexistente"], 127,
     "executável não encontrado no $PATH do contêiner: comando-inexistente",
     "executable file not found in $PATH: comando-inexistente"),
    (["run", "--rm", "--memory", "12zz", "busybox", "true"], 125,
     "tamanho inválido: 12zz", "invalid size: 12zz"),
    (["run", "--rm", "-v", "/nao/existe/origem:/dados", "busybox", "true"], 125,
     "a origem do volume não existe: /nao/existe/origem", "volume source does not exist: /nao/existe/origem"),
    (["run", "--rm", "-v", "/tmp:relativo", "busybox", "true"], 125,
     "o destino do volume precisa ser um caminho absoluto", "volume target must be an absolute path"),
    (["run", "--rm", "-v", "/tmp:/", "busybox", "true"], 125,  # Docker: destination can't be '/'
     "volume inválido: /tmp:/", "invalid volume specification: /tmp:/"),
    (["run", "--rm", "-v", "/tmp:/..", "busybox", "true"], 125,
     "volume inválido: /tmp:/..", "invalid volume specification: /tmp:/.."),
    (["run", "--rm", "--cpus", "abc", "busybox", "true"], 125, "abc", "abc"),
    (["run", "--rm", "busybox", "/etc/passwd"], 126, "permissão negada: /etc/passwd",
     "permission denied: /etc/passwd"),
    (["run", "--rm", "-d", "busybox", "comando-inexistente"], 127,
     "executável não encontrado", "executable file not found"),
    # issue 14: a user the image does not have fails the run itself (125), Docker's words
    (["run", "--rm", "-u", "usuario-inexistente", "busybox", "true"], 125,
     "usuário usuario-inexistente não encontrado: nenhuma entrada correspondente no arquivo passwd",
     "unable to find user usuario-inexistente: no matching entries in passwd file"),
    (["run", "--rm", "-d", "-u", "nobody:grupo-inexistente", "busybox", "true"], 125,
     "grupo grupo-inexistente não encontrado", "unable to find group grupo-inexistente"),
    (["run", "--rm", "-u", "a:b:c", "busybox", "true"], 125, "--user inválido a:b:c", "invalid --user a:b:c"),
    (["run", "--rm", "--ulimit", "arquivos=10", "busybox", "true"], 125,
     "limite desconhecido arquivos", "unknown limit arquivos"),
    (["run", "--rm", "--ulimit", "nofile=dez", "busybox", "true"], 125,
     "--ulimit inválido nofile=dez: use NOME=FLEXÍVEL[:RÍGIDO]", "invalid --ulimit nofile=dez"),
    (["run", "--rm", "--ulimit", "nofile=20:10", "busybox", "true"], 125,
     "o limite flexível 20 está acima do limite rígido 10", "the soft limit 20 is above the hard limit 10"),
    (["run", "--rm", "--ulimit", "nofile=-1", "busybox", "true"], 125,
     "o limite rígido está acima do limite rígido do próprio motor para nofile",
     "the hard limit is above the engine's own hard limit for nofile"),
    (["run", "--rm", "-w", "/nao/existe", "busybox", "true"], 126, "/nao/existe", "/nao/existe"),
    (["inspect", "nada-disso"], 125, "nenhum contêiner ou imagem com esse nome: nada-disso",
     "no such object: nada-disso"),
    (["rm", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["rm", "-f", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["stop", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["kill", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["logs", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["exec", "nada-disso", "true"], 125, "contêiner não encontrado: nada-disso",
     "no such container: nada-disso"),
    (["wait", "nada-disso"], 125, "contêiner não encontrado: nada-disso", "no such container: nada-disso"),
    (["run"], 125, "os seguintes argumentos são obrigatórios", "the following arguments are required"),
    (["verbo-inventado"], 125, "escolha inválida", "invalid choice"),
]


@pytest.mark.parametrize("args,code,pt,en", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_pt_br(args, code, pt, en, unchanged):
    r = cli(*args)
    print(f"labkit {' '.join(args)} -> {r.returncode}: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == code
    assert pt in r.stderr
    assert "labkit: erro:" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("args,code,pt,en", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_english(args, code, pt, en, unchanged):
    r = cli(*args, lang="en")
    assert r.returncode == code
    assert en in r.stderr, r.stderr
    assert "labkit: error:" in r.stderr
    if pt != en:
        assert pt not in r.stderr  # no Portuguese from an engine started in pt-BR


def test_name_already_in_use(container_dirs):
    first = cli("run", "-d", "--name", "nome-repetido", "busybox", "sleep", "300")
    assert first.returncode == 0, first.stderr
    cid = first.stdout.strip()
    try:
        before = inventory(container_dirs)
        r = cli("run", "--rm", "--name", "nome-repetido", "busybox", "true")
        print(r.stderr.strip())
        assert r.returncode == 125
        assert 'o nome "nome-repetido" já está em uso pelo contêiner ' + cid[:12] in r.stderr
        r = cli("run", "-d", "--name", "nome-repetido", "busybox", "true", lang="en")
        assert r.returncode == 125 and "already in use" in r.stderr
        assert inventory(container_dirs) == before
        assert labkit.get("nome-repetido").id == cid
        with pytest.raises(Conflict):
            labkit.run("busybox", "true", name="nome-repetido")
    finally:
        assert cli("rm", "-f", "nome-repetido").returncode == 0


def test_rm_of_a_running_container_needs_force(labkit_home):
    ctr = labkit.run("busybox", ["sleep", "300"], detach=True, name="ainda-rodando")
    try:
        r = cli("rm", "ainda-rodando")
        print(r.stderr.strip())
        assert r.returncode == 125
        assert "não é possível remover o contêiner ainda-rodando: ele está em execução" in r.stderr
        assert "rm -f" in r.stderr
        assert ctr.status == "running"  # untouched
        assert (Path(labkit_home) / "containers" / ctr.id).is_dir()
        r = cli("rm", "ainda-rodando", lang="en")
        assert r.returncode == 125 and "it is running" in r.stderr
        r = cli("rm", "-f", "ainda-rodando")
        assert r.returncode == 0 and r.stdout.strip() == "ainda-rodando"
    finally:
        try:
            ctr.remove(force=True)
        except NotFound:
            pass
    assert not (Path(labkit_home) / "containers" / ctr.id).exists()


def test_a_failed_run_does_not_reserve_its_name(unchanged):
    r = cli("run", "--rm", "--name", "nome-livre", "busybox", "comando-inexistente")
    assert r.returncode == 127
    r = cli("run", "--rm", "--name", "nome-livre", "busybox", "true")
    assert r.returncode == 0, r.stderr


def test_rm_partial_failure_removes_the_rest_and_fails():
    a = labkit.run("busybox", ["true"], detach=True)
    a.wait(timeout=20)
    r = cli("rm", a.id, "nada-disso")
    assert r.returncode == 125
    assert r.stdout.strip() == a.id
    assert "nada-disso" in r.stderr
    with pytest.raises(NotFound):
        labkit.get(a.id)


# -- the same through the Python API -----------------------------------------------------------


@pytest.mark.parametrize("kwargs,exc,code,text", [
    ({"image": "imagem-que-nao-existe"}, NotFound, 125, "imagem-que-nao-existe"),
    ({"cmd": "comando-inexistente"}, LabkitError, 127, "comando-inexistente"),
    ({"memory": "12zz"}, LabkitError, 125, "12zz"),
    ({"volumes": ["/nao/existe:/x"]}, LabkitError, 125, "/nao/existe"),
    ({"volumes": ["a:b:c:d"]}, LabkitError, 125, "a:b:c:d"),
    ({"volumes": ["/tmp:/"]}, LabkitError, 125, "/tmp:/"),
    ({"pids_limit": "muitos"}, ValueError, None, "muitos"),
])
def test_bad_input_api(kwargs, exc, code, text, unchanged):
    args = {"image": "busybox", "cmd": "true", **kwargs}
    with pytest.raises(exc) as info:
        labkit.run(args.pop("image"), args.pop("cmd"), **args)
    print(type(info.value).__name__, info.value)
    assert text in str(info.value)
    if code is not None:
        assert info.value.exit_code == code


@pytest.mark.parametrize("op", ["inspect", "logs", "stop", "kill", "remove", "exec", "wait", "update"])
def test_unknown_container_api(op, unchanged):
    with pytest.raises(NotFound) as info:
        if op in ("inspect", "logs"):
            getattr(labkit.get("nada-disso"), op)()
        else:
            ctr = labkit.Container("nada-disso")
            {"stop": lambda: ctr.stop(timeout=1), "kill": ctr.kill, "remove": ctr.remove,
             "exec": lambda: ctr.exec("true"), "wait": lambda: ctr.wait(timeout=5),
             "update": lambda: ctr.update(memory="64m")}[op]()
    assert info.value.exit_code == 125
    assert "nada-disso" in str(info.value)


def test_exec_or_update_on_an_exited_container_is_a_conflict():
    r = labkit.run("busybox", "true", remove=False)
    ctr = labkit.get(r.id)
    try:
        with pytest.raises(Conflict):
            ctr.exec("true")
        with pytest.raises(Conflict):
            ctr.update(memory="64m")
        with pytest.raises(Conflict):
            ctr.kill()
        ctr.stop(timeout=1)  # stopping a stopped container is fine, as in Docker
    finally:
        ctr.remove()


def test_engine_refuses_a_volume_over_the_root_even_from_a_raw_request(tmp_path: Path, unchanged):
    """The engine checks too: a client that skips labkit.api cannot replace the container's /."""
    from labkit.engine import client

    with pytest.raises(LabkitError) as info:
        client.request({"op": "run", "config": {"image": "busybox", "cmd": ["true"], "detach": True,
                                                "volumes": [[str(tmp_path), "/", False]]}})
    assert info.value.exit_code == 125 and f"{tmp_path}:/" in str(info.value)


@pytest.fixture
def readable_dir():
    """A directory under /tmp that any user can read (pytest's tmp_path is root-only)."""
    import shutil
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="labkit-nonroot-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_non_root_user_gets_a_clear_message(labkit_home, unchanged, readable_dir):
    """Root's engine socket is root-only: a student without sudo pointed at it gets told why,
    not a traceback (without LABKIT_HOME the student gets an engine of their own: rootless,
    tests/integration/test_rootless.py).

    The project may live where that user cannot even read (a clone under /root, mode 0700):
    the test runs a copy of the labkit package, in a directory anyone can read, with the
    interpreter the venv was made from (labkit's CLI needs only the standard library to
    get this far), so it checks labkit, not the file system's permissions."""
    import shutil

    labkit.containers()  # the engine runs
    copy = readable_dir
    shutil.copytree(Path(labkit.__file__).parent, copy / "labkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    argv = ["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", python, "-B", "-m", "labkit", "ps"]
    env = {**os.environ, "LABKIT_LANG": "pt_BR", "PYTHONPATH": str(copy), "PYTHONNOUSERSITE": "1"}
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=copy)
    print(r.returncode, r.stderr.strip())
    assert r.returncode == 125
    assert "pertence a outro usuário" in r.stderr
    assert "Traceback" not in r.stderr
