"""Exercises: a statement lives in the notebook; here live its checks, hints
and (apart, in :mod:`labkit.course.solutions`) its solution.

A check is a list of steps, each a function returning a
:class:`~labkit.course.verdict.Verdict`. Steps run in order and stop at the
first ✘ (there is no point asking for the memory limit of a container that
does not exist). Errors from labkit become a ✘ with their message, so a
learner never sees a traceback from a check.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from labkit.errors import LabkitError, NotFound
from labkit.i18n import _

from .verdict import Verdict, fail

Step = Callable[[], Verdict]


class Text(str):
    """A string a notebook shows as plain text (no quotes around it)."""

    def __repr__(self) -> str:
        return str(self)


class Solution(Text):
    """Solution code: plain text, and a Python code block in Markdown."""

    code: str = ""

    def _repr_markdown_(self) -> str:
        head, _sep, _rest = str(self).partition("\n")
        return f"{head}\n\n```python\n{self.code}\n```\n"


@dataclass
class Exercise:
    id: str
    title: str                      # English msgid, shown translated
    steps: Sequence[Step]
    hints: Sequence[str] = ()       # English msgids, shown translated, in order
    containers: Sequence[str] = ()  # names the exercise creates (for reset())
    images: Sequence[str] = ()      # image refs the exercise creates (reset() removes them too)
    volumes: Sequence[str] = ()     # volumes and networks it creates, removed after them
    networks: Sequence[str] = ()
    _hints_shown: int = field(default=0, repr=False)

    def label(self) -> str:
        return _("Exercise %(id)s (%(title)s)") % {"id": self.id, "title": _(self.title)}

    def check(self) -> Verdict:
        """Look at the real state and say ✔ or ✘, with what was found."""
        found: list[Verdict] = []
        for step in self.steps:
            try:
                verdict = step()
            except LabkitError as err:
                verdict = fail(str(err))
            except Exception as err:  # noqa: BLE001 - a learner sees a sentence
                verdict = fail(_("The check could not look at the machine: "
                                 "%(error)s") % {"error": f"{type(err).__name__}: {err}"})
            found.append(verdict)
            if not verdict:
                break
        passed = bool(found) and all(v.ok for v in found)
        if passed:
            head = _("%(label)s: solved!") % {"label": self.label()}
        else:
            head = _("%(label)s: not yet.") % {"label": self.label()}
        result = Verdict(passed, head, found)
        if not passed and self.hints:
            result.notes.append(_('Stuck? Ask for a hint: hint("%(id)s")') % {"id": self.id})
        return result

    def hint(self) -> Text:
        """The next hint (each call shows one more, then repeats the last)."""
        if not self.hints:
            return Text(_("This exercise has no hints."))
        n = min(self._hints_shown, len(self.hints) - 1)
        self._hints_shown = n + 1
        return Text(_("Hint %(n)s of %(total)s: %(text)s")
                    % {"n": n + 1, "total": len(self.hints), "text": _(self.hints[n])})

    def solution(self) -> Solution:
        """The solution, kept in labkit/course/solutions.py. Try first!"""
        from .solutions import SOLUTIONS

        code = SOLUTIONS.get(self.id)
        if code is None:
            return Solution(_("Exercise %(id)s has no written solution.") % {"id": self.id})
        text = Solution(_("Solution of %(label)s:") % {"label": self.label()}
                        + "\n\n" + code.strip())
        text.code = code.strip()
        return text

    def reset(self) -> Text:
        """Remove the containers (then the images) this exercise creates, to start it again."""
        import labkit

        removed = []
        for name in self.containers:
            try:
                labkit.get(name).remove(force=True, **({"volumes": True} if self.volumes else {}))
            except NotFound:
                continue
            removed.append(name)
        if self.images:
            from labkit.images.store import Store

            store = Store()
            for ref in self.images:
                if store.find(ref) is not None:
                    store.remove(ref)
                    removed.append(ref)
        for name in self.volumes:
            try:
                labkit.get_volume(name).remove()
            except LabkitError:  # gone already, or another exercise's container still uses it
                continue
            removed.append(name)
        for name in self.networks:
            try:
                labkit.get_network(name).remove()
            except LabkitError:
                continue
            removed.append(name)
        if not removed:
            return Text(_("Nothing to remove."))
        return Text(_("Removed: %(names)s") % {"names": ", ".join(removed)})


# ---------------------------------------------------------------- registry
_REGISTRY: dict[str, Exercise] = {}


def register(exercise: Exercise) -> Exercise:
    _REGISTRY[exercise.id] = exercise
    return exercise


def exercise(exercise_id: str) -> Exercise:
    try:
        return _REGISTRY[str(exercise_id)]
    except KeyError:
        raise NotFound(_('There is no exercise "%(id)s". Exercises: %(ids)s')
                       % {"id": exercise_id, "ids": ", ".join(sorted(_REGISTRY))}) from None


def exercises(notebook: str | None = None) -> list[Exercise]:
    """All exercises, or those of one notebook (``"03"``)."""
    return [e for k, e in sorted(_REGISTRY.items())
            if notebook is None or k.split(".")[0] == notebook]


def check(exercise_id: str) -> Verdict:
    return exercise(exercise_id).check()


def hint(exercise_id: str) -> Text:
    return exercise(exercise_id).hint()


def solution(exercise_id: str) -> Solution:
    return exercise(exercise_id).solution()


def reset(exercise_id: str) -> Text:
    return exercise(exercise_id).reset()
