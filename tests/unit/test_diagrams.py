"""The course diagrams are remade, byte for byte, by tools/draw_diagrams.py."""
from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["img_container_1.png", "img_container_2.png", "img_container_3.png"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imgs")
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "draw_diagrams.py"), "--out", str(out)],
        check=True, capture_output=True,
    )
    return out


@pytest.mark.parametrize("name", NAMES)
def test_regenerates_identical_png(regenerated: Path, name: str) -> None:
    committed = (ROOT / "imgs" / name).read_bytes()
    assert (regenerated / name).read_bytes() == committed, (
        f"imgs/{name} is stale: run tools/draw_diagrams.py and commit the result"
    )


@pytest.mark.parametrize("name", NAMES)
def test_png_has_no_software_stamp_and_fits_notebook(name: str) -> None:
    data = (ROOT / "imgs" / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 900 <= width <= 1800 and height < width * 1.2
    assert b"matplotlib" not in data.lower()
    assert b"tEXtSoftware" not in data
