"""The learners' map in labkit/README.md ("Mapa: do notebook ao código") stays true.

Every module a row names exists, and every name in its last column (a
syscall, a kernel file, a function) appears in that module's source. Every
notebook of the course has at least one row.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "labkit" / "README.md"
HEADING = "## Mapa: do notebook ao código"


def _rows() -> list[tuple[str, str, list[str]]]:
    text = README.read_text(encoding="utf-8")
    assert HEADING in text
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.match(r"\d\d ", cells[0]):
            continue
        modules = re.findall(r"`([^`]+\.py)`", cells[1])
        assert len(modules) == 1, line
        rows.append((cells[0], modules[0], re.findall(r"`([^`]+)`", cells[2])))
    return rows


ROWS = _rows()


def test_every_notebook_is_on_the_map():
    notebooks = sorted(p.stem[:2] for p in (ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.md"))
    assert notebooks and sorted({nb[:2] for nb, _m, _n in ROWS}) == notebooks


@pytest.mark.parametrize("notebook,module,names", ROWS, ids=[f"{r[0][:2]}-{r[1]}" for r in ROWS])
def test_each_row_names_real_code(notebook, module, names):
    path = ROOT / "labkit" / module
    assert path.is_file(), f"{notebook}: {module} does not exist"
    source = path.read_text(encoding="utf-8")
    assert names, f"{notebook}: {module} names nothing to look for"
    assert [n for n in names if n not in source] == []
