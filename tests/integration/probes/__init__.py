"""Small static C programs run inside containers by the security tests.

``build(dest)`` compiles every ``*.c`` here with ``gcc -static`` into
``dest`` (a host directory the tests then mount as a volume) and returns
``{name: path}``. The tests skip when gcc or a static libc is missing.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).parent


def build(dest: Path) -> dict[str, Path]:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("gcc not found")
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(0o755)
    built = {}
    for src in sorted(HERE.glob("*.c")):
        out = dest / src.stem
        subprocess.run([gcc, "-static", "-O1", "-o", str(out), str(src)], check=True,
                       capture_output=True, text=True)
        out.chmod(0o755)
        built[src.stem] = out
    return built
