"""Compile the pt-BR ``.po`` fragments into one gettext catalog (``labkit.mo``).

Each area of labkit keeps its own fragment (``labkit/locale/pt_BR/fragments/*.po``)
so that translations of different modules never collide in one file. This
script merges them (a msgid defined twice must have the same translation) and
writes the binary ``.mo`` format that :mod:`gettext` reads. Standard library
only, so ``make setup`` can run it before anything is installed.

Usage: ``python tools/msgfmt.py [--check]``; ``--check`` exits 1 when the
committed ``.mo`` differs from what the fragments give.
"""
from __future__ import annotations

import ast
import os
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FRAGMENTS = ROOT / "labkit" / "locale" / "pt_BR" / "fragments"
OUTPUT = ROOT / "labkit" / "locale" / "pt_BR" / "LC_MESSAGES" / "labkit.mo"


def parse_po(path: Path) -> dict[str, str]:
    """Return {msgid: msgstr}; plural forms are stored as gettext does (NUL-joined)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    plural: list[str] | None = None
    strs: dict[int, list[str]] = {}
    current: list[str] | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal msgid, plural, strs, fuzzy
        if msgid is not None and not fuzzy:
            key = "".join(msgid)
            if plural is not None:
                key += "\0" + "".join(plural)
                value = "\0".join("".join(strs[i]) for i in sorted(strs))
            else:
                value = "".join(strs.get(0, []))
            if value.replace("\0", ""):
                if key in entries and entries[key] != value:
                    raise SystemExit(f"{path}: {key!r} translated twice differently")
                entries[key] = value
        msgid, plural, strs, fuzzy = None, None, {}, False

    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            flush()
            fuzzy = True
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("msgid_plural "):
            plural = [ast.literal_eval(line[13:])]
            current = plural
        elif line.startswith("msgid "):
            keep_fuzzy = fuzzy
            flush()
            fuzzy = keep_fuzzy
            msgid = [ast.literal_eval(line[6:])]
            current = msgid
        elif line.startswith("msgstr["):
            index = int(line[7:line.index("]")])
            strs[index] = [ast.literal_eval(line[line.index("]") + 1:].strip())]
            current = strs[index]
        elif line.startswith("msgstr "):
            strs[0] = [ast.literal_eval(line[7:])]
            current = strs[0]
        elif line.startswith('"') and current is not None:
            current.append(ast.literal_eval(line))
        else:
            raise SystemExit(f"{path}:{lineno}: cannot parse {raw!r}")
    flush()
    return entries


def merge(fragments: list[Path]) -> dict[str, str]:
    catalog: dict[str, str] = {
        "": "Content-Type: text/plain; charset=UTF-8\nLanguage: pt_BR\n"
        "Plural-Forms: nplurals=2; plural=(n > 1);\n"
    }
    for path in fragments:
        for key, value in parse_po(path).items():
            if key == "":
                continue
            if key in catalog and catalog[key] != value:
                raise SystemExit(f"{path}: {key!r} differs from another fragment")
            catalog[key] = value
    return catalog


def to_mo(catalog: dict[str, str]) -> bytes:
    keys = sorted(catalog)
    ids = [k.encode() for k in keys]
    strs = [catalog[k].encode() for k in keys]
    n = len(keys)
    key_start = 7 * 4 + 16 * n
    offsets = []
    ids_blob = b""
    for b in ids:
        offsets.append((len(b), key_start + len(ids_blob)))
        ids_blob += b + b"\0"
    str_start = key_start + len(ids_blob)
    str_blob = b""
    for b in strs:
        offsets.append((len(b), str_start + len(str_blob)))
        str_blob += b + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, 7 * 4, 7 * 4 + 8 * n, 0, 0)
    table = b"".join(struct.pack("<2I", *o) for o in offsets[:n])
    table += b"".join(struct.pack("<2I", *o) for o in offsets[n:])
    return header + table + ids_blob + str_blob


def build() -> bytes:
    return to_mo(merge(sorted(FRAGMENTS.glob("*.po"))))


def main(argv: list[str]) -> int:
    data = build()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_bytes() != data:
            print(f"{OUTPUT} is out of date: run python tools/msgfmt.py", file=sys.stderr)
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
