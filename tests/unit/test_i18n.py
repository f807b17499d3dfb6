"""Translations: the committed catalog is current, every message has pt-BR, English on request."""
from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "labkit"
MSGFMT = ROOT / "tools" / "msgfmt.py"
LANG_VARS = ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def load_msgfmt():
    spec = importlib.util.spec_from_file_location("labkit_msgfmt", MSGFMT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def env_with(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LANG_VARS}
    env.update(values)
    return env


def messages_in_code() -> tuple[list[tuple[str, str]], list[str]]:
    """Every ``_("...")`` / ``N_("...")`` / ``ngettext("...", "...", n)`` literal in labkit/ as (msgid, where),
    and the calls of ``_`` with a text built at run time (f-string, ``%``, ``+``), which can
    never be found in a catalog."""
    found: list[tuple[str, str]] = []
    bad: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name not in ("_", "N_", "ngettext"):
                continue
            where = f"{rel}:{node.lineno}"
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                if name in ("_", "N_"):
                    found.append((first.value, where))
                elif len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    found.append((first.value + "\0" + node.args[1].value, where))
            elif isinstance(first, (ast.JoinedStr, ast.BinOp)):
                bad.append(where)
    return found, bad


def test_committed_catalog_is_current():
    """The committed labkit.mo is exactly what tools/msgfmt.py builds from the fragments."""
    r = subprocess.run([sys.executable, str(MSGFMT), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, (
        "labkit/locale/pt_BR/LC_MESSAGES/labkit.mo is out of date: run "
        "`.venv/bin/python tools/msgfmt.py` and commit the .mo\n" + r.stderr
    )


def test_fragments_parse_and_agree():
    msgfmt = load_msgfmt()
    catalog = msgfmt.merge(sorted(msgfmt.FRAGMENTS.glob("*.po")))  # raises on a conflict
    assert len(catalog) > 1


def test_every_message_has_a_translation():
    msgfmt = load_msgfmt()
    catalog = msgfmt.merge(sorted(msgfmt.FRAGMENTS.glob("*.po")))
    found, _ = messages_in_code()
    assert found, "no _() call found in labkit/: is the scan broken?"
    missing: dict[str, list[str]] = {}
    for msgid, where in found:
        if msgid not in catalog:
            missing.setdefault(msgid, []).append(where)
    if missing:
        lines = [f"  {', '.join(w)}: {m.replace(chr(0), ' | ')!r}" for m, w in sorted(missing.items())]
        pytest.fail(
            f"{len(missing)} message(s) without a pt-BR translation; add them to your fragment "
            "labkit/locale/pt_BR/fragments/<area>.po and run tools/msgfmt.py:\n" + "\n".join(lines),
            pytrace=False,
        )


def test_no_message_built_at_run_time():
    _, bad = messages_in_code()
    if bad:
        pytest.fail(
            "_() must get a literal msgid; format after translating, as "
            "_('no such image: %(ref)s') % {'ref': ref}. Found at:\n  " + "\n  ".join(bad),
            pytrace=False,
        )


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "pt_BR.UTF-8"}, "pt_BR"),
        ({}, "pt_BR"),                       # nothing set: Portuguese
        ({"LANG": "C.UTF-8"}, "pt_BR"),      # the default locale of a container or CI
        ({"LANG": "pt_BR.UTF-8", "LC_ALL": "en_GB.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LABKIT_LANG": "pt_BR"}, "pt_BR"),
    ],
)
def test_language_choice(env, expected):
    code = "from labkit.i18n import language, _; print(language()); print(_('usage: '))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=env_with(**env), cwd=ROOT, check=True)
    lang, usage = r.stdout.splitlines()
    assert lang == expected
    assert usage == ("usage: " if expected == "en" else "uso: ")


def test_cli_help_in_both_languages():
    """argparse's own headings and errors follow the language too (argparse._ = labkit.i18n._)."""
    run = lambda env, *args: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "labkit", *args], capture_output=True, text=True,
        env=env_with(**env), cwd=ROOT)
    pt = run({"LANG": "pt_BR.UTF-8"}, "--help")
    assert pt.returncode == 0, pt.stderr
    assert pt.stdout.startswith("uso: labkit")
    assert "opções:" in pt.stdout and "mostra esta mensagem de ajuda e sai" in pt.stdout
    en = run({"LANG": "en_US.UTF-8"}, "--help")
    assert en.stdout.startswith("usage: labkit")
    assert "show this help message and exit" in en.stdout
    err = run({"LANG": "pt_BR.UTF-8"}, "--no-such-flag")
    assert err.returncode != 0
    assert "argumentos não reconhecidos: --no-such-flag" in err.stderr
    err = run({"LANG": "en_US.UTF-8"}, "--no-such-flag")
    assert "unrecognized arguments: --no-such-flag" in err.stderr
