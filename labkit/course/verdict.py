"""The answer of a check: ✔ or ✘ with an explanation in the learner's language."""
from __future__ import annotations

from dataclasses import dataclass, field

from labkit.i18n import _, language

OK_MARK = "✔"
FAIL_MARK = "✘"


@dataclass
class Verdict:
    """Result of a check. ``bool(verdict)`` is ``ok``; ``str(verdict)`` is what
    a notebook shows: one line per finding, each starting with ✔ or ✘."""

    ok: bool
    message: str
    details: list["Verdict"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # unmarked lines at the end

    def __bool__(self) -> bool:
        return self.ok

    def lines(self) -> list[str]:
        mark = OK_MARK if self.ok else FAIL_MARK
        out = [f"{mark} {self.message}"] if self.message else []
        for d in self.details:
            out.extend(("  " if self.message else "") + line for line in d.lines())
        out.extend(("  " if self.message else "") + note for note in self.notes)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    # A notebook cell ending with a verdict shows its text, nothing else
    # (plain text only, so nbval compares one stable representation).
    def __repr__(self) -> str:
        return str(self)


def ok(message: str) -> Verdict:
    return Verdict(True, message)


def fail(message: str) -> Verdict:
    return Verdict(False, message)


def all_of(*verdicts: Verdict, message: str = "") -> Verdict:
    """Passes when every verdict passes; shows each of them."""
    return Verdict(all(v.ok for v in verdicts), message, list(verdicts))


# ---------------------------------------------------------------- formatting
def number(value: float) -> str:
    """``0.5`` → ``"0,5"`` in Portuguese, ``"0.5"`` in English; no trailing zeros."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    if text in ("", "-0"):
        text = "0"
    return text.replace(".", ",") if language() == "pt_BR" else text


def size(nbytes: int | None) -> str:
    """Bytes as the course prints them: ``67108864`` → ``"64 MiB"``."""
    if nbytes is None:
        return _("no limit")
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{number(value) if unit != 'B' else int(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
