"""Shared test set-up: a private ``LABKIT_HOME`` for the whole session.

The engine started for it is stopped at the end, and the directory removed,
so a test run never touches ``/var/lib/labkit``.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import pytest

import ci_skips


def _labkit_parents() -> set[str]:
    try:
        return {d for d in (os.path.join("/sys/fs/cgroup", c, "labkit") for c in os.listdir("/sys/fs/cgroup"))
                if os.path.isdir(d)}
    except OSError:
        return set()


_PARENTS_BEFORE = _labkit_parents()  # e.g. a learner's own engine with running containers
def _private_home() -> str:
    """A new directory under the temp dir, named in lowercase hex only.

    podman names an image pulled from ``oci:PATH`` after PATH, and rejects a
    name part that ends in '_' (which mkdtemp's random suffix sometimes does).
    """
    while True:
        path = os.path.join(tempfile.gettempdir(), f"labkit-test-{secrets.token_hex(4)}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


_HOME = _private_home()
os.environ["LABKIT_HOME"] = _HOME
os.environ.setdefault("LABKIT_LANG", "pt_BR")


@pytest.fixture(scope="session")
def labkit_home() -> str:
    return _HOME


@pytest.fixture
def portuguese(monkeypatch):
    """Messages in pt-BR for one test (the course's exercises speak Portuguese)."""
    from labkit import i18n

    monkeypatch.setenv("LABKIT_LANG", "pt_BR")
    i18n.reset()
    yield
    i18n.reset()


@pytest.fixture
def english(monkeypatch):
    """Messages in English for one test, as a machine whose locale asks for it."""
    from labkit import i18n

    for var in ("LABKIT_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    i18n.reset()
    yield
    i18n.reset()


def _other_engines() -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"labkit.engine" in f.read():
                        return True
            except OSError:
                continue
    return False


def pytest_configure(config) -> None:
    # Under CI=true a skip that is not a real one fails (tests/ci_skips.py)
    config.pluginmanager.register(ci_skips, "labkit_ci_skips")


def pytest_sessionfinish(session, exitstatus) -> None:
    try:
        import labkit

        labkit.engine_stop()
    except Exception:  # noqa: BLE001 - best effort at the very end
        pass
    shutil.rmtree(_HOME, ignore_errors=True)
    # The shared parent cgroup must be gone too, unless another engine still uses it.
    if os.geteuid() == 0 and not _other_engines():
        # A parent with a child cgroup is another engine's (one in another PID namespace,
        # which _other_engines() cannot see: a container, fresh-machine): ours are checked
        # one by one by the integration tests' no_leftovers fixture.
        left = sorted(d for d in _labkit_parents() - _PARENTS_BEFORE
                      if not any(e.is_dir() for e in os.scandir(d)))
        if left:
            print(f"\nlabkit left cgroup directories behind: {left}")
            session.exitstatus = 1
