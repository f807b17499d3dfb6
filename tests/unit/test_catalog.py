"""The pt-BR catalog: every msgid of every fragment is translated, with the same placeholders.

Read with Babel (the library tools/msgfmt.py compiles with). A placeholder
changed in pt-BR (``%(nome)s`` for ``%(name)s``, a ``{x}`` lost) would raise
KeyError or print the wrong value at run time, in front of a learner.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = sorted((ROOT / "labkit" / "locale" / "pt_BR" / "fragments").glob("*.po"))
# %(name)s, %s, %d, %.1f ... (not %%), and str.format's {x} / {0} / {x:>5}
PLACEHOLDER = re.compile(r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
                         r"|\{[A-Za-z_0-9.]*(?:![rsa])?(?::[^{}]*)?\}")


def placeholders(text: str) -> list[str]:
    return sorted(PLACEHOLDER.findall(text.replace("%%", "").replace("{{", "").replace("}}", "")))


def messages():
    for path in FRAGMENTS:
        with open(path, "rb") as fh:
            for msg in read_po(fh, locale=None):
                if msg.id:
                    yield path.name, msg


MESSAGES = list(messages())


def test_the_placeholder_pattern():
    assert placeholders("%(name)s has %d of %s, 100%% {x} {0:>5} {{literal}}") == \
        sorted(["%(name)s", "%d", "%s", "{x}", "{0:>5}"])


def test_fragments_are_read():
    assert FRAGMENTS and len(MESSAGES) > 100


@pytest.mark.parametrize("fragment", [p.name for p in FRAGMENTS])
def test_every_msgid_has_a_translation(fragment):
    missing = [msg.id for name, msg in MESSAGES if name == fragment
               and (msg.fuzzy or not all(msg.string if isinstance(msg.string, tuple) else [msg.string]))]
    assert missing == []


@pytest.mark.parametrize("fragment", [p.name for p in FRAGMENTS])
def test_placeholders_are_the_same(fragment):
    wrong = []
    for name, msg in MESSAGES:
        if name != fragment:
            continue
        if isinstance(msg.id, tuple):  # (singular, plural) -> msgstr[0], msgstr[1]
            pairs = list(zip(msg.id, msg.string))
        else:
            pairs = [(msg.id, msg.string)]
        for source, translated in pairs:
            if placeholders(source) != placeholders(translated):
                wrong.append((source, translated))
    assert wrong == []


def test_the_committed_catalog_is_up_to_date():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "msgfmt.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
