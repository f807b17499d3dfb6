"""Read a Dockerfile: instructions, flags, ``$VARIABLE`` expansion, as Docker does.

``dockerfile-parse`` splits the file into instructions (joining the ``\\``
continuation lines and dropping comments); this module checks each one,
expands variables with Docker's rules (``$X``, ``${X}``, ``${X:-default}``,
``${X:+alt}``; nothing inside single quotes; ``\\$`` is a literal dollar) and
groups the instructions into stages (one per ``FROM``).

Every error names the line and the instruction: ``Dockerfile, linha 3 (COPY): ...``.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field

from ..errors import LabkitError
from ..i18n import _

INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY",
    "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL",
    "HEALTHCHECK", "SHELL",
}
# instructions whose arguments get variables expanded (Docker's list)
EXPANDS = {"ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR", "ONBUILD", "ARG"}
FLAGS = {"FROM": {"platform"}, "COPY": {"from", "chown", "chmod", "link"},
         "ADD": {"chown", "chmod", "link", "keep-git-dir", "checksum"},
         "RUN": {"network", "mount", "security"},
         "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"}}


class DockerfileError(LabkitError):
    """A Dockerfile that cannot be built; the message names the line."""


@dataclass
class Instruction:
    cmd: str              # upper case: "RUN"
    value: str            # the text after the instruction word (continuations joined)
    line: int             # 1-based line where it starts
    text: str             # the original text, as shown in progress and history
    flags: dict[str, str] = field(default_factory=dict)
    args: str = ""        # value without the leading --flags

    def error(self, message: str) -> DockerfileError:
        return DockerfileError(
            _("Dockerfile, line %(line)d (%(instr)s): %(msg)s")
            % {"line": self.line, "instr": self.cmd, "msg": message}
        )

    def json_list(self) -> list[str] | None:
        """The exec form ``["a", "b"]`` as a list, or None for the shell form."""
        s = self.args.strip()
        if not s.startswith("["):
            return None
        try:
            value = json.loads(s)
        except ValueError:
            return None  # Docker also falls back to the shell form
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            return None
        return value


@dataclass
class Stage:
    base: str                 # the FROM argument, before expansion of ARGs
    name: str | None
    index: int
    from_instr: Instruction
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    global_args: list[Instruction]
    stages: list[Stage]

    def steps(self) -> int:
        """How many steps the progress shows (global ARGs are not steps, as in Docker)."""
        return sum(1 + len(s.instructions) for s in self.stages)


# --------------------------------------------------------------------------- expansion
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _expand_var(s: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """``s[i] == '$'``: return the expansion and the index after it."""
    if i + 1 < len(s) and s[i + 1] == "{":
        end = s.find("}", i + 2)
        if end < 0:
            raise ValueError(_("missing '}' in %(text)s") % {"text": s})
        inner = s[i + 2:end]
        m = _NAME.match(inner)
        if not m:
            raise ValueError(_("bad substitution: %(text)s") % {"text": "${" + inner + "}"})
        name, rest = m.group(0), inner[m.end():]
        value = env.get(name)
        if not rest:
            return value or "", end + 1
        if rest.startswith(":-") or rest.startswith("-"):
            word = rest[2:] if rest.startswith(":-") else rest[1:]
            unset = value is None or (rest.startswith(":-") and value == "")
            return (expand_word(word, env) if unset else value), end + 1
        if rest.startswith(":+") or rest.startswith("+"):
            word = rest[2:] if rest.startswith(":+") else rest[1:]
            isset = value is not None and (rest.startswith("+") or value != "")
            return (expand_word(word, env) if isset else ""), end + 1
        raise ValueError(_("bad substitution: %(text)s") % {"text": "${" + inner + "}"})
    m = _NAME.match(s, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def lex(s: str, env: dict[str, str] | None, split: bool = True) -> list[str]:
    """Docker's word processing: quotes removed, ``\\`` escapes, variables expanded.

    With ``split`` the text is cut into words at unquoted blanks (and an
    unquoted variable's value is split too); without it one word comes back.
    ``env=None`` leaves ``$`` alone (no expansion).
    """
    out: list[str] = []
    cur: list[str] = []
    have = False
    i, n = 0, len(s)

    def flush() -> None:
        nonlocal cur, have
        if cur or have:
            out.append("".join(cur))
        cur, have = [], False

    while i < n:
        c = s[i]
        if c == "'":
            end = s.find("'", i + 1)
            if end < 0:
                raise ValueError(_("unterminated quote in %(text)s") % {"text": s})
            cur.append(s[i + 1:end])
            have = True
            i = end + 1
        elif c == '"':
            i += 1
            have = True
            while True:
                if i >= n:
                    raise ValueError(_("unterminated quote in %(text)s") % {"text": s})
                c = s[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and s[i + 1] in '"\\$':
                    cur.append(s[i + 1])
                    i += 2
                elif c == "$" and env is not None:
                    value, i = _expand_var(s, i, env)
                    cur.append(value)
                else:
                    cur.append(c)
                    i += 1
        elif c == "\\" and i + 1 < n:
            cur.append(s[i + 1])
            i += 2
        elif c == "$" and env is not None:
            value, i = _expand_var(s, i, env)
            if split and value and re.search(r"\s", value):
                parts = re.split(r"\s+", value)
                cur.append(parts[0])
                for part in parts[1:]:
                    flush()
                    cur.append(part)
                have = bool(cur)
            else:
                cur.append(value)
        elif c.isspace() and split:
            flush()
            i += 1
        else:
            cur.append(c)
            i += 1
    flush()
    return out


def expand_words(s: str, env: dict[str, str]) -> list[str]:
    return [w for w in lex(s, env, split=True)]


def expand_word(s: str, env: dict[str, str]) -> str:
    """One word (WORKDIR, USER, a default value): blanks kept, quotes removed."""
    parts = lex(s.strip(), env, split=False)
    return parts[0] if parts else ""


def key_values(instr: Instruction, env: dict[str, str], *, legacy: bool = True) -> list[tuple[str, str]]:
    """ENV and LABEL: ``K=V K2="v 2"``, or the legacy ``K value with blanks``."""
    try:
        toks = expand_words(instr.args, env)
    except ValueError as exc:
        raise instr.error(str(exc)) from None
    if not toks:
        raise instr.error(_("needs at least one argument"))
    if "=" not in toks[0]:
        if not legacy or len(toks) < 2:
            raise instr.error(_("expected KEY=VALUE"))
        # legacy form: the rest of the line is the value (blanks kept)
        rest = instr.args.strip()[len(instr.args.strip().split(None, 1)[0]):].strip()
        try:
            value = expand_word(rest, env) if rest else ""
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        return [(toks[0], value)]
    pairs = []
    for tok in toks:
        if "=" not in tok:
            raise instr.error(_("expected KEY=VALUE, got %(tok)s") % {"tok": tok})
        k, _sep, v = tok.partition("=")
        if not k:
            raise instr.error(_("expected KEY=VALUE, got %(tok)s") % {"tok": tok})
        pairs.append((k, v))
    return pairs


# --------------------------------------------------------------------------- parsing
def _split_flags(instr: Instruction) -> None:
    rest = instr.value.strip()
    allowed = FLAGS.get(instr.cmd, set())
    while rest.startswith("--"):
        tok, _sep, tail = rest.partition(" ")
        name, eq, val = tok[2:].partition("=")
        if name not in allowed:
            raise instr.error(_("unknown flag: --%(flag)s") % {"flag": name})
        instr.flags[name] = val if eq else "true"
        rest = tail.lstrip()
    instr.args = rest


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse the text of a Dockerfile into stages; raise ``DockerfileError``."""
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    names: set[str] = set()
    try:
        structure = parser.structure
    except Exception as exc:  # dockerfile-parse raises plain exceptions on garbage
        raise DockerfileError(_("cannot read the Dockerfile: %(err)s") % {"err": exc}) from None
    for item in structure:
        cmd = item["instruction"].upper()
        if cmd == "COMMENT":
            continue
        line = item["startline"] + 1
        content = item["content"].rstrip("\n")
        first = " ".join(content.split("\n")[0].split())
        instr = Instruction(cmd=cmd, value=item["value"], line=line,
                            text=f"{cmd} {item['value'].strip()}".strip())
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(
                _("Dockerfile, line %(line)d (%(instr)s): unknown instruction")
                % {"line": line, "instr": first.split(" ", 1)[0] if first else cmd}
            )
        _split_flags(instr)
        if cmd == "FROM":
            toks = instr.args.split()
            if len(toks) == 3 and toks[1].upper() == "AS":
                sname = toks[2].lower()
                if not re.fullmatch(r"[a-z][a-z0-9_.-]*", sname):
                    raise instr.error(_("invalid stage name: %(name)s") % {"name": toks[2]})
                if sname in names:
                    raise instr.error(_("duplicate stage name: %(name)s") % {"name": toks[2]})
                names.add(sname)
            elif len(toks) == 1:
                sname = None
            else:
                raise instr.error(_("expected FROM image [AS name]"))
            stages.append(Stage(base=toks[0], name=sname, index=len(stages), from_instr=instr))
            continue
        if not stages:
            if cmd != "ARG":
                raise instr.error(_("the first instruction must be FROM (or ARG before FROM)"))
            global_args.append(instr)
            continue
        # only CMD and ENTRYPOINT may be empty (they then clear the value)
        if cmd not in ("CMD", "ENTRYPOINT") and not instr.args.strip():
            raise instr.error(_("needs at least one argument"))
        stages[-1].instructions.append(instr)
    if not stages:
        raise DockerfileError(_("the Dockerfile has no FROM instruction"))
    return Dockerfile(global_args=global_args, stages=stages)


def parse_arg(instr: Instruction, env: dict[str, str]) -> tuple[str, str | None]:
    """``ARG NAME`` or ``ARG NAME=default`` (the default is expanded)."""
    raw = instr.args.strip()
    name, eq, default = raw.partition("=")
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise instr.error(_("invalid ARG name: %(name)s") % {"name": name})
    if not eq:
        return name, None
    try:
        return name, expand_word(default, env)
    except ValueError as exc:
        raise instr.error(str(exc)) from None
