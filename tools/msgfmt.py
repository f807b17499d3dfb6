"""Compile the pt-BR ``.po`` fragments into one gettext catalog (``labkit.mo``) with Babel.

Each area of labkit keeps its own fragment (``labkit/locale/pt_BR/fragments/*.po``)
so that translations of different modules never collide in one file. This
script merges them (a msgid defined twice must have the same translation) and
writes the ``.mo`` that :mod:`gettext` reads, only when its bytes change.

Usage: ``.venv/bin/python tools/msgfmt.py [--check]``; ``--check`` exits 1 when
the committed ``.mo`` differs from what the fragments give.
"""
from __future__ import annotations

import datetime as dt
import io
import os
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = ROOT / "labkit" / "locale" / "pt_BR" / "fragments"
OUTPUT = ROOT / "labkit" / "locale" / "pt_BR" / "LC_MESSAGES" / "labkit.mo"
# Portuguese as gettext counts: one form for 0 and 1, another above (not CLDR's three forms).
PLURAL_FORMS = "nplurals=2; plural=(n > 1);"
# Fixed dates: the same fragments always give the same bytes (the .mo is committed).
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def read_fragment(path: Path) -> Catalog:
    """One fragment; plural messages keep their two forms (``msgstr[0]``, ``msgstr[1]``)."""
    with open(path, "rb") as fh:
        return read_po(fh, locale=None, domain="labkit")


def _key(value: str | tuple) -> str:
    """gettext's spelling of a plural message: the forms joined by NUL."""
    return "\0".join(value) if isinstance(value, tuple) else value


def parse_po(path: Path) -> dict[str, str]:
    """{msgid: msgstr} of one fragment, as gettext keys them; fuzzy and untranslated left out."""
    entries: dict[str, str] = {}
    for msg in read_fragment(path):
        if msg.id and not msg.fuzzy and _key(msg.string).replace("\0", ""):
            entries[_key(msg.id)] = _key(msg.string)
    return entries


def merge(fragments: list[Path]) -> dict[str, str]:
    """Every fragment in one {msgid: msgstr}; a msgid translated two ways stops the build."""
    merged: dict[str, str] = {}
    where: dict[str, Path] = {}
    for path in fragments:
        for key, value in parse_po(path).items():
            if key in merged and merged[key] != value:
                raise SystemExit(f"{path}: {key!r} is translated differently in {where[key]}")
            merged[key] = value
            where[key] = path
    return merged


def to_catalog(entries: dict[str, str]) -> Catalog:
    catalog = Catalog(locale=None, domain="labkit", project="labkit", version="0.1.0",
                      creation_date=EPOCH, revision_date=EPOCH, fuzzy=False)
    catalog.mime_headers = [("Language", "pt_BR"), ("Plural-Forms", PLURAL_FORMS)]
    for key, value in entries.items():
        msgid = tuple(key.split("\0")) if "\0" in key else key
        catalog.add(msgid, tuple(value.split("\0")) if isinstance(msgid, tuple) else value)
    return catalog


def build() -> bytes:
    out = io.BytesIO()
    write_mo(out, to_catalog(merge(sorted(FRAGMENTS.glob("*.po")))))
    return out.getvalue()


def main(argv: list[str]) -> int:
    data = build()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_bytes() != data:
            print(f"{OUTPUT} is out of date: run .venv/bin/python tools/msgfmt.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    if not OUTPUT.exists() or OUTPUT.read_bytes() != data:
        tmp = OUTPUT.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, OUTPUT)  # atomic: a running labkit never reads half a catalog
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
