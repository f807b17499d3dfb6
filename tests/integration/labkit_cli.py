"""The real ``labkit`` command in a subprocess, in pt-BR (the default) or English."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LABKIT = str(Path(sys.executable).parent / "labkit")


def cli(*args: str, lang: str = "pt", env: dict | None = None, input: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    if lang == "en":
        for var in ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
            e.pop(var, None)
        e["LANG"] = "en_US.UTF-8"
    else:
        e["LABKIT_LANG"] = "pt_BR"
    e.update(env or {})
    return subprocess.run([LABKIT, *args], capture_output=True, text=True, env=e, timeout=timeout,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)
