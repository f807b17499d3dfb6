"""Every ``labkit`` verb (and subcommand) with wrong arguments: an unknown flag, a missing
argument, a bad value, a container or image that does not exist, a terminal request
without a terminal.

Each case runs the real command (stdin from /dev/null, as in CI) and checks that it
fails (exit status != 0), says why on stderr, prints no Python traceback, and leaves
nothing behind: ``labkit ps -a``, the images and the state directories are the same
afterwards (the ``no_leftovers`` fixture also checks mounts, cgroups and processes).
``tests/integration/test_bad_input.py`` checks the exact messages and exit codes of the
common mistakes; this file checks that no verb is left out. (Not here, because Docker
succeeds too: ``logout`` of a registry never logged in to, and a ``--format`` field that
does not exist, which prints ``<no value>``.)
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

LABKIT = str(Path(sys.executable).parent / "labkit")
NOSUCH_CTR = "conteiner-que-nao-existe"
NOSUCH_IMG = "imagem-que-nao-existe:v0"
# a registry that cannot answer: the discard port of this machine (no packet leaves it)
DEAD_REGISTRY = "127.0.0.1:9"

VERBS = ["run", "exec", "ps", "logs", "stop", "kill", "rm", "wait", "inspect", "prune", "engine",
         "images", "rmi", "tag", "save", "load", "image", "build", "history", "diff", "commit",
         "pull", "push", "login", "logout", "stats", "update", "doctor"]
IMAGE_SUBCOMMANDS = ["ls", "inspect", "rm", "tag", "save", "load", "prune", "build", "history"]

CASES = [
    # an unknown flag, for every verb and every `image` subcommand
    *[[verb, "--opcao-que-nao-existe"] for verb in VERBS],
    *[["image", sub, "--opcao-que-nao-existe"] for sub in IMAGE_SUBCOMMANDS],
    ["--opcao-que-nao-existe"],
    ["verbo-que-nao-existe"],
    ["image", "subcomando-que-nao-existe"],
    # a missing argument
    ["run"], ["exec"], ["exec", NOSUCH_CTR], ["logs"], ["stop"], ["kill"], ["rm"], ["wait"],
    ["inspect"], ["engine"], ["rmi"], ["tag"], ["tag", "busybox"], ["save"], ["build"],
    ["history"], ["diff"], ["commit"], ["pull"], ["push"], ["login"], ["logout"], ["update"],
    ["update", NOSUCH_CTR], ["image", "inspect"], ["image", "rm"], ["image", "tag"],
    ["image", "save"], ["image", "build"], ["image", "history"],
    ["run", "--memory"], ["run", "-v"], ["stop", "-t"],
    # a bad value
    ["run", "--rm", "--memory", "12zz", "busybox", "true"],
    ["run", "--rm", "--cpus", "abc", "busybox", "true"],
    ["run", "--rm", "--cpus", "-1", "busybox", "true"],
    ["run", "--rm", "--cpu-shares", "abc", "busybox", "true"],
    ["run", "--rm", "--pids-limit", "abc", "busybox", "true"],
    ["run", "--rm", "--memory-swap", "1m", "--memory", "64m", "busybox", "true"],
    ["run", "--rm", "--cpuset-cpus", "99-100", "busybox", "true"],
    ["run", "--rm", "--cpuset-cpus", "x", "busybox", "true"],
    ["run", "--rm", "-e", "=sem-nome", "busybox", "true"],
    ["run", "--rm", "-v", "sem-dois-pontos", "busybox", "true"],
    ["run", "--rm", "-v", "/tmp:/dados:xyz", "busybox", "true"],
    ["run", "--rm", "--network", "rede-que-nao-existe", "busybox", "true"],
    ["run", "--rm", "--name", "nome/invalido", "busybox", "true"],
    ["run", "--rm", "--hostname", "x" * 300, "busybox", "true"],
    ["run", "--rm", "busybox:tag-que-nao-existe", "true"], ["run", "--rm", "busybox", ""],
    ["run", "--rm", "Maiusculas/Invalida", "true"],
    ["stop", "-t", "abc", NOSUCH_CTR],
    ["kill", "-s", "SINAL-QUE-NAO-EXISTE", NOSUCH_CTR], ["kill", "-s", "999", NOSUCH_CTR],
    ["kill", "-s", "0", NOSUCH_CTR], ["kill", "-s", "_DFL", NOSUCH_CTR],
    ["engine", "acao-que-nao-existe"],
    ["save", "--format", "formato-que-nao-existe", "busybox"],
    ["save", "-o", "/diretorio/que/nao/existe/x.tar", "busybox"], ["save", "-o", "/tmp", "busybox"],
    ["load", "-i", "/tmp"],
    ["load", "-i", "/arquivo/que/nao/existe.tar"],
    ["load"],  # stdin is /dev/null: an empty archive
    ["load", "-i", "/etc/passwd"],  # not a tar archive
    ["tag", "busybox", "Maiusculas:Invalidas"],
    ["tag", "busybox", "nome:tag:demais"],
    ["build", "/diretorio/que/nao/existe"],
    ["build", "-f", "/arquivo/que/nao/existe", "."],
    ["build", "--build-arg", "SEM-IGUAL", "/diretorio/que/nao/existe"],
    ["build", "--network", "rede-que-nao-existe", "."],
    ["stats", "-i", "abc"],
    ["stats", "--format", "yaml"],
    ["update", "--cpus", "abc", NOSUCH_CTR],
    ["update", "--memory", "12zz", NOSUCH_CTR],
    ["update", "--pids-limit", "abc", NOSUCH_CTR],
    ["push", "--chunk-size", "abc", "busybox"],
    ["pull", "--tls-verify", "talvez", "busybox"],
    ["pull", "Maiusculas/Invalida"],
    ["pull", f"{DEAD_REGISTRY}/curso/imagem:v1"],
    ["push", "busybox", f"{DEAD_REGISTRY}/curso/imagem:v1"],
    ["login", "-u", "ana", "-p", "x", DEAD_REGISTRY],
    ["commit", "--pause", NOSUCH_CTR],
    # a container or an image that does not exist
    ["exec", NOSUCH_CTR, "true"], ["logs", NOSUCH_CTR], ["logs", "-f", NOSUCH_CTR],
    ["stop", NOSUCH_CTR], ["kill", NOSUCH_CTR], ["rm", NOSUCH_CTR], ["rm", "-f", NOSUCH_CTR],
    ["wait", NOSUCH_CTR], ["inspect", NOSUCH_CTR], ["diff", NOSUCH_CTR],
    ["commit", NOSUCH_CTR, "curso/x:v1"], ["stats", "--no-stream", NOSUCH_CTR],
    ["stats", NOSUCH_CTR], ["update", "--cpus", "0.5", NOSUCH_CTR],
    ["run", "--rm", NOSUCH_IMG, "true"], ["rmi", NOSUCH_IMG], ["rmi", "-f", NOSUCH_IMG],
    ["tag", NOSUCH_IMG, "curso/x:v1"], ["save", NOSUCH_IMG], ["history", NOSUCH_IMG],
    ["push", NOSUCH_IMG], ["image", "inspect", NOSUCH_IMG], ["image", "rm", NOSUCH_IMG],
    ["image", "tag", NOSUCH_IMG, "curso/x:v1"], ["image", "save", NOSUCH_IMG],
    ["image", "history", NOSUCH_IMG],
    # a terminal without a terminal (stdin is /dev/null)
    ["run", "-it", "busybox", "sh"], ["run", "--rm", "-i", "-t", "busybox", "sh"],
    ["exec", "-it", NOSUCH_CTR, "sh"],
]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, LABKIT_LANG="pt_BR")
    return subprocess.run([LABKIT, *args], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def _state(container_dirs, cwd: Path) -> tuple:
    ps = _cli(["ps", "-a", "-q", "--no-trunc"], cwd)
    images = _cli(["images", "-q", "--no-trunc"], cwd)
    assert ps.returncode == 0 and images.returncode == 0, ps.stderr + images.stderr
    return ps.stdout, sorted(images.stdout.split()), container_dirs()


@pytest.fixture(scope="module")
def busybox_image():
    import labkit
    from labkit.images.store import Store

    Store().resolve("busybox")  # built once, so that every case finds it
    labkit.containers()  # and the engine runs
    return "busybox"


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a)[:60] for a in CASES])
def test_wrong_arguments_fail_cleanly(args, busybox_image, container_dirs, tmp_path):
    before = _state(container_dirs, tmp_path)
    r = _cli(args, tmp_path)
    out = r.stdout + r.stderr
    print(f"labkit {' '.join(args)} -> {r.returncode}\n{out}")
    assert r.returncode != 0
    assert "Traceback" not in out
    assert r.stderr.strip(), "no message"
    assert _state(container_dirs, tmp_path) == before


def test_a_terminal_request_without_a_terminal(busybox_image, container_dirs, tmp_path):
    """Docker: "the input device is not a TTY", exit status 1, and nothing is created."""
    before = _state(container_dirs, tmp_path)
    for args in (["run", "-it", "busybox", "sh"], ["run", "--rm", "-ti", "busybox", "sh"]):
        r = _cli(args, tmp_path)
        print(r.returncode, r.stderr)
        assert r.returncode == 1
        assert "o dispositivo de entrada não é um TTY" in r.stderr
        assert r.stdout == ""
    assert _state(container_dirs, tmp_path) == before
