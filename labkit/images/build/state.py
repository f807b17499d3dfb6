"""The image being built in one stage, the progress lines, and the fixed timestamps."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from ...i18n import _
from ..dockerfile import Instruction

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's predefined ARGs, usable without declaring them
PREDEFINED_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                   "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
GZIP_LEVEL = 1  # layers are written once per build; speed over a few bytes


def source_date_epoch() -> int | None:
    """``SOURCE_DATE_EPOCH`` (reproducible-builds.org) when set to an integer."""
    try:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    except (KeyError, ValueError):
        return None


# The build's date, Debian's convention: SOURCE_DATE_EPOCH, else the newest input
# seen so far (the Dockerfile, the base image, the files COPY/ADD read). The same
# inputs give the same date, so the same image ID, and `labkit images` shows
# something true instead of 1970. A ContextVar keeps two builds in two threads apart.
_build_date: ContextVar[int] = ContextVar("build_date", default=0)


def start_dates(first_input: float = 0) -> Token:
    fixed = source_date_epoch()
    return _build_date.set(fixed if fixed is not None else max(0, int(first_input)))


def note_input(mtime: float) -> None:
    """An input of the build (a file read, a base image) dated ``mtime``."""
    if source_date_epoch() is None and int(mtime) > _build_date.get():
        _build_date.set(int(mtime))


def end_dates(token: Token) -> None:
    _build_date.reset(token)


def created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_build_date.get()))


# --------------------------------------------------------------------------- progress
class Progress:
    """Prints ``Passo 1/5 : FROM busybox`` lines; works in a terminal and a notebook."""

    def __init__(self, out: TextIO | Callable[[str], None] | None = None, quiet: bool = False) -> None:
        self.quiet = quiet
        self._out = out

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        if callable(self._out) and not hasattr(self._out, "write"):
            self._out(text)
            return
        stream = self._out or sys.stdout
        stream.write(text + "\n")
        with contextlib.suppress(Exception):
            stream.flush()


@dataclass
class State:
    """The image being built in one stage."""

    config: dict
    layers: list[dict] = field(default_factory=list)  # manifest descriptors
    key: str = ""                                       # cache chain key
    base_ref: str = ""
    layer_dirs: list[Path] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope (values)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False  # CMD given in this stage (a later ENTRYPOINT keeps it)

    @property
    def cfg(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.cfg.get("Env") or []:
            k, _sep, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = self.env()
        env[key] = value
        self.cfg["Env"] = [f"{k}={v}" for k, v in env.items()]

    def expand_env(self) -> dict[str, str]:
        """Variables visible to expansion: ARGs, then ENV (ENV wins, as in Docker)."""
        return {**self.args, **self.env()}

    def add_history(self, created_by: str, empty: bool) -> None:
        entry = {"created": created(), "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)

    def add_layer(self, desc: dict, diff_id: str, layer_dir: Path | None) -> None:
        self.layers.append({k: desc[k] for k in ("mediaType", "digest", "size")})
        self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        if layer_dir is not None:
            self.layer_dirs.append(layer_dir)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))


def duration_ns(instr: Instruction, text: str) -> int:
    """Go-style durations as Docker takes them: ``30s``, ``1m30s``, ``500ms``."""
    units = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise instr.error(_("invalid duration: %(v)s (use e.g. 30s, 1m30s)") % {"v": text})
    return int(sum(float(n) * units[u] for n, u in parts))


def clamp_mtimes(top: Path, when: int) -> None:
    for root, dnames, fnames in os.walk(top):
        for n in dnames + fnames:
            with contextlib.suppress(OSError):
                os.utime(os.path.join(root, n), (when, when), follow_symlinks=False)
    os.utime(top, (when, when))


def scratch_config() -> dict:
    from ..store import host_arch

    return {"architecture": host_arch(), "os": "linux", "created": created(),
            "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
