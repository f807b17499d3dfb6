"""Every message of labkit.course has a pt-BR translation with the same placeholders."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COURSE = ROOT / "labkit" / "course"
FRAGMENT = ROOT / "labkit" / "locale" / "pt_BR" / "fragments" / "course.po"

sys.path.insert(0, str(ROOT / "tools"))
from msgfmt import parse_po  # noqa: E402


def course_msgids() -> set[str]:
    """Strings given to _(), and exercise titles and hints (translated on use)."""
    found: set[str] = set()
    for path in sorted(COURSE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", None)
            if name == "_" and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
            elif name == "Exercise":
                found.add(node.args[1].value)
                for kw in node.keywords:
                    if kw.arg == "hints":
                        found.update(e.value for e in kw.value.elts)
    return found


def placeholders(text: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", text))


def test_every_message_translated():
    catalog = parse_po(FRAGMENT)
    missing = sorted(course_msgids() - set(catalog))
    assert not missing, f"add to {FRAGMENT.name}: {missing}"


def test_placeholders_match_and_no_stale_entries():
    catalog = parse_po(FRAGMENT)
    ids = course_msgids()
    for msgid, msgstr in catalog.items():
        assert msgid in ids, f"stale entry in {FRAGMENT.name}: {msgid!r}"
        assert placeholders(msgid) == placeholders(msgstr), msgid


def test_prose_says_conteiner():
    catalog = parse_po(FRAGMENT)
    for msgstr in catalog.values():
        assert not re.search(r"\bcontainers?\b(?![.(=_])", msgstr.replace("container.", "")), msgstr
