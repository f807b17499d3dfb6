"""Static checks of the course notebooks (no kernel, no root): the shape issue 5 asks for.

Every notebook: objectives at the top, an "O que aconteceu?" after each experiment, a summary at
the end, stored outputs, kernelspec python3, no code cell ending with ";" (nbval shows the output
anyway), every cell that ignores its output under nbval asserts what it shows, and the notebook
is what its source in notebooks/src/ builds (tools/build_notebooks.py).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
# the notebooks this test knows; another notebook gets the same checks once it is listed here
COURSE = ["00_comece_aqui", "01_o_que_e_um_conteiner", "02_namespaces", "03_cgroups", "04_overlayfs",
          "07_vm_vs_conteiner", "08_por_que_usar"]
PRESENT = [n for n in COURSE if (NOTEBOOKS / f"{n}.ipynb").exists()]
SETUP_ONLY = re.compile(r"^(import |from |os\.environ\[)")


def load(name: str) -> dict:
    return json.loads((NOTEBOOKS / f"{name}.ipynb").read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    src = cell["source"]
    return "".join(src) if isinstance(src, list) else src


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_the_course_notebooks_exist():
    assert PRESENT == COURSE


@pytest.fixture(params=PRESENT)
def nb(request) -> tuple[str, dict]:
    return request.param, load(request.param)


def test_kernelspec_is_python3(nb):
    _, book = nb
    assert book["metadata"]["kernelspec"]["name"] == "python3"
    assert book["nbformat"] == 4


def test_objectives_first_and_summary_last(nb):
    _, book = nb
    md = [source(c) for c in book["cells"] if c["cell_type"] == "markdown"]
    assert md[0].startswith("# "), "the first cell is the title"
    assert any(s.startswith("## Objetivos") for s in md[:3]), "objectives at the top"
    assert md[-1].startswith("## Resumo"), "the summary is the last cell"


def test_every_experiment_is_followed_by_what_happened(nb):
    """A code cell that shows something (not a set-up, exercise, check or clean-up cell) is
    followed, before the next heading, by a Markdown cell starting "**O que aconteceu?**"."""
    _, book = nb
    cells = book["cells"]
    section = ""
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown" and source(cell).startswith("#"):
            section = source(cell).splitlines()[0]
        if cell["cell_type"] != "code" or "Exercícios" in section or "Limpeza" in section:
            continue
        if not cell.get("outputs"):
            continue                       # set-up cell (imports, helpers), nothing to explain
        rest = cells[i + 1:]
        following = []
        for c in rest:
            if c["cell_type"] == "markdown" and source(c).startswith("#"):
                break
            following.append(c)
        assert any(c["cell_type"] == "markdown" and "**O que aconteceu?**" in source(c)
                   for c in following), f"cell {i} ({source(cell)[:40]!r}) has no 'O que aconteceu?'"


def test_two_to_four_exercises_with_checks(nb):
    name, book = nb
    code = [source(c) for c in book["cells"] if c["cell_type"] == "code"]
    checks = set(re.findall(r'check\("(\d\d\.\d)"\)', "\n".join(code)))
    assert 2 <= len(checks) <= 4, checks
    assert all(c.startswith(name[:2] + ".") for c in checks)
    from labkit.course.solutions import SOLUTIONS
    assert checks <= set(SOLUTIONS), "every exercise has a solution kept apart"
    assert not any("solution(" in s and not s.lstrip().startswith("#") for s in code), \
        "solutions are shown only when the learner asks"


def test_no_code_cell_ends_with_semicolon(nb):
    _, book = nb
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert not source(cell).rstrip().endswith(";"), source(cell)


def test_ignored_outputs_are_asserted(nb):
    _, book = nb
    for cell in book["cells"]:
        if "nbval-ignore-output" in tags(cell):
            assert "assert" in source(cell), source(cell)
        assert "NBVAL" not in source(cell), "nbval markers are tags, not comments"


def test_outputs_are_stored(nb):
    _, book = nb
    for i, cell in enumerate(book["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell["execution_count"] is not None, f"cell {i} was never executed"
        assert not any(o.get("output_type") == "error" for o in cell["outputs"]), f"cell {i}"
        for o in cell["outputs"]:
            if o.get("output_type") == "stream":
                assert o["name"] == "stdout" or "TCP" not in "".join(o["text"]), f"cell {i}"


def test_prose_says_conteiner(nb):
    _, book = nb
    for cell in book["cells"]:
        if cell["cell_type"] == "markdown":
            text = re.sub(r"`[^`]*`", "", source(cell))
            assert not re.search(r"\bcontainers?\b", text), text[:200]


def test_pictures_travel_inside_the_notebook(nb):
    _, book = nb
    for cell in book["cells"]:
        if cell["cell_type"] == "markdown":
            assert "../imgs/" not in source(cell)
            for ref in re.findall(r"attachment:([\w.-]+)", source(cell)):
                assert ref in cell.get("attachments", {})


def test_notebook_matches_its_source(nb):
    """The cells (text, code, tags) are what notebooks/src/NN_*.md builds."""
    import sys
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import build_notebooks
    finally:
        sys.path.pop(0)
    name, book = nb
    built = build_notebooks.parse((NOTEBOOKS / "src" / f"{name}.md").read_text(encoding="utf-8"))
    assert [(c["cell_type"], source(c), tags(c)) for c in book["cells"]] == \
        [(c["cell_type"], source(c), tags(c)) for c in built], \
        f"rebuild it: tools/build_notebooks.py {name[:2]}"
