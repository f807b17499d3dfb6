#!/usr/bin/env python3
"""Build the course notebooks from their Markdown sources and store their outputs.

    .venv/bin/python tools/build_notebooks.py            # every notebooks/src/NN_*.md
    .venv/bin/python tools/build_notebooks.py 01 04      # only these
    .venv/bin/python tools/build_notebooks.py --no-exec 02   # write the .ipynb without executing it

A source is ``notebooks/src/NN_topic.md``; it becomes ``notebooks/NN_topic.ipynb``:

- every ```` ```python ```` block is a code cell; everything else is Markdown;
- Markdown is split into one cell per heading (and at a ``<!-- cell -->`` line), so
  each cell holds one idea;
- a line ``<!-- tags: nbval-ignore-output ... -->`` right before a code block puts
  those tags in the cell's metadata (words that are not tags are notes for authors);
- ``../imgs/NAME.png`` in Markdown becomes a cell attachment (the picture travels
  inside the notebook);
- other fenced blocks (```` ``` ```` for terminal commands) stay in the Markdown.

The notebook is then executed in place with nbclient (kernel ``python3`` from this
venv, working directory ``notebooks/``) so the stored outputs are the ones nbval
checks. The build stops at the first cell that raises (unless the cell is tagged
``raises-exception``), and says how long each notebook took.
"""
from __future__ import annotations

import argparse
import base64
import re
import sys
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "notebooks" / "src"
OUT = ROOT / "notebooks"

TAG_WORD = re.compile(r"\b(nbval-[a-z-]+|raises-exception|skip-execution)\b")
TAGS_LINE = re.compile(r"^<!--\s*tags:(.*)-->\s*$")
CELL_BREAK = "<!-- cell -->"
HEADING = re.compile(r"^#{1,6} ")


def _markdown_cells(lines: list[str]) -> list[str]:
    """Split a Markdown chunk at headings and explicit breaks; drop empty pieces."""
    cells: list[list[str]] = [[]]
    fence = False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        if not fence and (line.strip() == CELL_BREAK or HEADING.match(line)):
            cells.append([])
            if line.strip() == CELL_BREAK:
                continue
        cells[-1].append(line)
    return ["\n".join(c).strip("\n") for c in cells if "".join(c).strip()]


IMG_REF = re.compile(r"\.\./imgs/([\w.-]+\.png)")


def _markdown_cell(text: str):
    """A Markdown cell; pictures from imgs/ go in as attachments, so the notebook shows
    them wherever it is opened (JupyterLab serves only files under its root dir)."""
    cell = new_markdown_cell(text)
    names = IMG_REF.findall(text)
    if names:
        cell.attachments = {n: {"image/png": base64.b64encode(
            (ROOT / "imgs" / n).read_bytes()).decode()} for n in names}
        cell.source = IMG_REF.sub(r"attachment:\1", text)
    return cell


def parse(text: str) -> list:
    """Markdown source -> list of nbformat cells."""
    cells = []
    md: list[str] = []
    tags: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = TAGS_LINE.match(line.strip())
        if m:
            tags = TAG_WORD.findall(m.group(1))
            i += 1
            continue
        if line.strip() == "```python":
            cells.extend(_markdown_cell(s) for s in _markdown_cells(md))
            md = []
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            cell = new_code_cell("\n".join(lines[i + 1:j]).strip("\n"))
            if tags:
                cell.metadata["tags"] = tags
            cells.append(cell)
            tags = []
            i = j + 1
            continue
        md.append(line)
        i += 1
    cells.extend(_markdown_cell(s) for s in _markdown_cells(md))
    return cells


def build(src: Path, execute: bool = True) -> tuple[Path, float]:
    nb = new_notebook(cells=parse(src.read_text(encoding="utf-8")))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    # stable cell ids (nbformat 4.5): the diff of a rebuilt notebook shows only real changes
    for n, cell in enumerate(nb.cells):
        cell["id"] = f"{src.stem[:2]}-{n:03d}"
    out = OUT / (src.stem + ".ipynb")
    took = 0.0
    if execute:
        from nbclient import NotebookClient

        client = NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(OUT)}})
        start = time.monotonic()
        client.execute()
        took = time.monotonic() - start
    nbformat.validate(nb)
    nbformat.write(nb, out)
    return out, took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("numbers", nargs="*", help="notebook numbers (00 01 ...); default all")
    ap.add_argument("--no-exec", action="store_true", help="write without executing")
    args = ap.parse_args(argv)
    sources = sorted(SRC.glob("[0-9][0-9]_*.md"))
    if args.numbers:
        sources = [s for s in sources if s.name[:2] in args.numbers]
    if not sources:
        print("build_notebooks: no source matches", args.numbers, file=sys.stderr)
        return 1
    for src in sources:
        out, took = build(src, execute=not args.no_exec)
        print(f"{out.relative_to(ROOT)}: {len(nbformat.read(out, 4).cells)} cells"
              + (f", executed in {took:.1f} s" if not args.no_exec else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
