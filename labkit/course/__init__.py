"""Exercises of the course, checked against the real state of the machine.

In a notebook::

    from labkit.course import check, hint, solution
    check("03.1")      # ✔ / ✘ with what was found (a container, a cgroup file...)
    hint("03.1")       # one more hint at each call
    solution("03.1")   # the solution, kept apart in labkit/course/solutions.py

The checks never read what a cell printed: they ask labkit and the kernel
(``labkit.get(name).cgroup.stats()``, the overlay upper directory,
``/proc/PID/ns``). Generic helpers are in :mod:`labkit.course.checks`.
"""
from __future__ import annotations

from . import catalog  # noqa: F401 - registers the course's exercises
from .framework import Exercise, check, exercise, exercises, hint, register, reset, solution
from .verdict import Verdict

__all__ = ["Exercise", "Verdict", "check", "exercise", "exercises", "hint", "register",
           "reset", "solution"]
