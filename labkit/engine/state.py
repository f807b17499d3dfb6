"""Containers on disk: ``$LABKIT_HOME/containers/<id>/``.

Each holds ``container.json`` (what ``inspect`` shows, rewritten atomically
at every state change), the overlay ``upper/`` and ``work/`` directories, the
``rootfs/`` mount point and, for detached containers, ``container.log``.
Because the state is on disk before anything is started, an engine killed
with SIGKILL loses nothing: the next one reads it back and cleans up.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

_ADJECTIVES = ("agil", "alegre", "atento", "bravo", "calmo", "curioso", "esperto", "feliz",
               "firme", "gentil", "leve", "lucido", "manso", "nobre", "paciente", "rapido",
               "sereno", "sabio", "tenaz", "valente")
_NAMES = ("turing", "hopper", "lovelace", "torvalds", "ritchie", "thompson", "dijkstra",
          "knuth", "liskov", "hamilton", "santos_dumont", "nise", "chagas", "lattes",
          "oswaldo", "bertha", "carolina", "milton", "cesar", "jaqueline")


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def random_name(taken: set[str]) -> str:
    for _ in range(100):
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_NAMES)}"
        if name not in taken:
            return name
    return f"{name}_{random.randrange(1000)}"


class Record:
    """One container's inspect document plus where it lives."""

    def __init__(self, directory: Path, data: dict) -> None:
        self.dir = directory
        self.data = data

    @property
    def id(self) -> str:
        return self.data["Id"]

    @property
    def name(self) -> str:
        return self.data["Name"]

    @property
    def state(self) -> dict:
        return self.data["State"]

    @property
    def running(self) -> bool:
        return self.state["Status"] == "running"

    @property
    def pid(self) -> int:
        return self.state.get("Pid") or 0

    @property
    def cgroup_name(self) -> str:
        return self.data["Cgroup"]

    def save(self) -> None:
        tmp = self.dir / "container.json.tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.dir / "container.json")

    def delete(self) -> None:
        # The usual container left only the files the engine made, and empty overlay
        # directories: remove those directly, which costs a fraction of rmtree's walk.
        d = str(self.dir)
        try:
            for name in ("container.json", "container.json.tmp", "container.log", "request.json"):
                try:
                    os.unlink(os.path.join(d, name))
                except FileNotFoundError:
                    pass
            for sub in ("upper", "work/work", "work", "rootfs", "empty", ""):
                try:
                    os.rmdir(os.path.join(d, sub))
                except FileNotFoundError:
                    pass
        except OSError:  # files written in the container (upper/), or anything else
            shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> "Record | None":
        try:
            with open(directory / "container.json") as f:
                return cls(directory, json.load(f))
        except (OSError, ValueError):
            return None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])
