"""Integration tests run real containers: they need root, and leave nothing behind.

The autouse fixture ``no_leftovers`` compares, before and after every test,
the host's mount table, every cgroup directory named ``*labkit*``, the
processes that descend from the engine, and the state directories under
``$LABKIT_HOME/containers``. A test that creates a container must remove it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

if os.geteuid() != 0:
    pytest.skip("integration tests need root", allow_module_level=True)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(line.split()[3:5]) for line in f}


def _cgroups() -> set[str]:
    """Cgroup directories labkit made: ``labkit/<id>`` and anything named ``*labkit*``.

    The bare ``labkit`` parent is shared by every engine on the machine (other
    sessions may hold containers in it), so it is checked once, at the end of
    the session (``tests/conftest.py``), not around each test.
    """
    found = set()
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        depth = root.count("/") - 3
        for d in dirs:
            if "labkit" in d and d != "labkit":
                found.add(os.path.join(root, d))
            elif os.path.basename(root) == "labkit":
                found.add(os.path.join(root, d))
        if depth >= 3:
            dirs[:] = []
    return found


def _engine_descendants() -> set[int]:
    import psutil

    from labkit import paths

    pids: set[int] = set()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if "labkit.engine" in cmd and str(paths.home()) in cmd:
                pids.update(child.pid for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return pids


def _state_dirs() -> set[str]:
    from labkit import paths

    d = paths.containers_dir()
    return set(os.listdir(d)) if d.exists() else set()


def snapshot() -> dict:
    return {"mounts": _mounts(), "cgroups": _cgroups(), "processes": _engine_descendants(),
            "state dirs": _state_dirs()}


def leftovers(before: dict, after: dict) -> dict:
    return {k: sorted(map(str, after[k] - before[k])) for k in before if after[k] - before[k]}


@pytest.fixture(autouse=True)
def no_leftovers(labkit_home):
    import labkit

    labkit.containers()  # the engine runs before the first snapshot
    before = snapshot()
    yield
    deadline = time.monotonic() + 5
    while True:
        extra = leftovers(before, snapshot())
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"the test left these behind: {extra}"


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path
