"""Every course exercise on real containers: ✘ before, its solution, ✔ after; and ✘
("ainda não") for a wrong answer.

This is what the notebooks rely on: the solution kept in
labkit/course/solutions.py really solves the exercise, the check really sees it
in the kernel (cgroup files, the overlay upper dir, /proc/PID/ns), and a learner
who does something close but wrong is told "not yet".
"""
from __future__ import annotations

import pytest

import labkit
from labkit.api import ShellSyntaxWarning
from labkit.course import check, exercises, reset
from labkit.course.solutions import SOLUTIONS

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("portuguese")]



@pytest.fixture(scope="module", autouse=True)
def loja_images(tmp_path_factory):
    """Notebook 08's two versions of its app (08.1 and 08.3 run them), built the same way."""
    from labkit.images.store import Store

    ctx = tmp_path_factory.mktemp("loja")
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY app.sh /app.sh\nCMD ["sh", "/app.sh"]\n')
    for tag, text in (("loja:v1", "loja v1"), ("loja:v2", "loja v2")):
        (ctx / "app.sh").write_text(f'echo "{text}"\n'
                                    'if [ "$1" = "--servir" ]; then exec sleep 600; fi\n')
        labkit.build(ctx, tag, quiet=True)
    yield
    for tag in ("loja:v1", "loja:v2"):
        if Store().find(tag) is not None:
            Store().remove(tag)


# 01.3, 02.3, 04.2 and 04.3 build on the state an earlier exercise leaves, so
# the exercises run in catalogue order within one test.
def test_solutions_solve_their_exercises():
    names = sorted({n for e in exercises() for n in e.containers})
    try:
        for e in exercises():
            assert not check(e.id), f"{e.id} passes before its solution"
            exec(SOLUTIONS[e.id], {"labkit": labkit})
            verdict = check(e.id)
            assert verdict, str(verdict)
            assert str(verdict).startswith(f"✔ Exercício {e.id} (")
    finally:
        for e in exercises():
            reset(e.id)
    left = {c.name for c in labkit.containers(all=True)} & set(names)
    assert not left


def _run(*args, **kw):
    return labkit.run("busybox", *args, **kw)


def _cow():
    return _run(["sleep", "600"], name="cow", detach=True)


def _wrong_00_1():
    # the string form: shlex passes ">" to echo as an argument and no file is written
    with pytest.warns(ShellSyntaxWarning):
        _run("echo olá > /ola.txt", name="primeiro", remove=False)


def _wrong_01_2():
    # both, but in the other order: exercise 01.3 relies on loja-app starting first here
    _run(["sleep", "600"], name="loja-cache", detach=True)
    _run(["sleep", "600"], name="loja-app", detach=True)


def _wrong_01_3():
    # 01.2 done, then the wrong container made again: loja-app is still the first one
    exec(SOLUTIONS["01.2"], {"labkit": labkit})
    labkit.get("loja-cache").remove(force=True)
    _run(["sleep", "600"], name="loja-cache", detach=True)


def _wrong_03_3():
    _run(["true"], name="guloso", memory="32m", remove=False)   # ends well, never OOM-killed


def _wrong_04_2():
    _cow().exec(["sh", "-c", ": > /etc/group"])    # emptied, not deleted: no whiteout


def _wrong_04_3():
    # replaced by a file with only the new line, instead of appending to the copy
    _cow().exec(["sh", "-c", "echo 'aluno:x:1000:1000::/home/aluno:/bin/sh' > /etc/passwd"])


def _wrong_05_1():
    # the file written in diario-1's own upper dir, not in the volume: it dies with it
    _run(["sh", "-c", "mkdir -p /dados; echo sobrevivi > /dados/nota.txt"], name="diario-1")
    _run(["cat", "/dados/nota.txt"], name="diario-2", volumes=["diario:/dados"], remove=False)


def _wrong_05_2():
    (labkit.volume("achado").mountpoint / "achei.txt").write_text("outra coisa")


def _wrong_05_3():
    # mounted read-write: the write works
    _run(["touch", "/dados/proibido.txt"], name="so-leitura", volumes=["diario:/dados"], remove=False)


def _wrong_06_1():
    # on the default network: no names there, and not on "exercicio"
    labkit.network("exercicio")
    _run(["sleep", "600"], name="ping-a", detach=True)
    _run(["nslookup", "ping-a"], name="ping-b", remove=False)


def _wrong_08_2():
    # committed before the file was written: the image exists, without /versao.txt
    editor = _run(["sleep", "600"], name="editor", detach=True)
    labkit.commit(editor, "editor:v2")
    editor.exec(["sh", "-c", "echo 2 > /versao.txt"])


def _wrong_08_3():
    # both running, both from the new version
    for name in ("app-antigo", "app-novo"):
        labkit.run("loja:v2", ["sh", "/app.sh", "--servir"], name=name, detach=True)


WRONG = {
    "00.1": _wrong_00_1,
    "00.2": lambda: _run(["sleep", "1"], name="segundo-plano", remove=False),  # not detached
    "01.1": lambda: _run(["sleep", "600"], name="vigia", detach=True),         # not top
    "01.2": _wrong_01_2,
    "01.3": _wrong_01_3,
    "02.1": lambda: _run(["sleep", "600"], name="isolado", network="host", detach=True),
    "02.2": lambda: _run(["sleep", "600"], name="nomeado", detach=True),       # no hostname=
    "02.3": lambda: _run(["sleep", "600"], name="na-rede-do-host", detach=True),  # own net
    "03.1": lambda: _run(["sleep", "600"], name="meia-cpu", cpus=1, detach=True),
    "03.2": lambda: _run(["sleep", "600"], name="pouca-memoria", memory="32m", detach=True),
    "03.3": _wrong_03_3,
    "03.4": lambda: _run(["sleep", "600"], name="poucos-pids", pids_limit=20, detach=True),
    "04.1": lambda: _cow().exec(["sh", "-c", "echo outro texto > /nota.txt"]),
    "04.2": _wrong_04_2,
    "04.3": _wrong_04_3,
    "05.1": _wrong_05_1,
    "05.2": _wrong_05_2,
    "05.3": _wrong_05_3,
    "06.1": _wrong_06_1,
    "06.2": lambda: _run(["sh", "-c", "exit 3"], name="teimoso", restart="on-failure", detach=True),
    "06.3": lambda: _run(["httpd", "-f", "-p", "80"], name="vitrine", detach=True),  # no ports=
    "07.1": lambda: _run(["sleep", "600"], name="mini-vm", memory="64m", cpus=1, detach=True),
    "07.2": lambda: _run(["sh", "-c", "uname -s > /kernel.txt"], name="qual-kernel",
                         remove=False),                                   # "Linux", not the version
    "08.1": lambda: labkit.run("loja:v2", ["sh", "/app.sh", "--servir"], name="loja",
                               detach=True),                              # the new version
    "08.2": _wrong_08_2,
    "08.3": _wrong_08_3,
}


def test_every_exercise_has_a_wrong_answer():
    assert set(WRONG) == {e.id for e in exercises()}


@pytest.mark.parametrize("exercise_id", sorted(WRONG))
def test_a_wrong_answer_is_not_yet(exercise_id):
    try:
        WRONG[exercise_id]()
        verdict = check(exercise_id)
        assert not verdict, str(verdict)
        assert str(verdict).startswith(f"✘ Exercício {exercise_id} (")
        assert "ainda não" in str(verdict).splitlines()[0], str(verdict)
    finally:
        for e in exercises():
            reset(e.id)


def test_reset_removes_the_exercise_containers():
    labkit.run("busybox", ["sleep", "60"], name="meia-cpu", cpus=0.5, detach=True)
    assert "meia-cpu" in reset("03.1")
    assert not check("03.1")
    assert reset("03.1") == "Nada para remover."
