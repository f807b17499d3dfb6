"""Every course exercise on real containers: ✘ before, its solution, ✔ after.

This is what the notebooks rely on: the solution kept in
labkit/course/solutions.py really solves the exercise, and the check really
sees it in the kernel (cgroup files, the overlay upper dir, /proc/PID/ns).
"""
from __future__ import annotations

import pytest

import labkit
from labkit.course import check, exercises, reset
from labkit.course.solutions import SOLUTIONS

pytestmark = [pytest.mark.root]

# 01.3 (remove a container) and 02.3/04.2/04.3 reuse the containers of an
# earlier exercise, so the exercises run in catalogue order within one test.


def test_solutions_solve_their_exercises():
    names = sorted({n for e in exercises() for n in e.containers})
    try:
        for e in exercises():
            if e.id not in ("01.3", "02.3", "04.2", "04.3"):
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


def test_reset_removes_the_exercise_containers():
    labkit.run("busybox", ["sleep", "60"], name="meia-cpu", cpus=0.5, detach=True)
    assert "meia-cpu" in reset("03.1")
    assert not check("03.1")
    assert reset("03.1") == "Nada para remover."
