"""Shared test set-up: a private ``LABKIT_HOME`` for the whole session.

The engine started for it is stopped at the end, and the directory removed,
so a test run never touches ``/var/lib/labkit``.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="labkit-test-")
os.environ["LABKIT_HOME"] = _HOME
os.environ.setdefault("LABKIT_LANG", "pt_BR")


@pytest.fixture(scope="session")
def labkit_home() -> str:
    return _HOME


def pytest_sessionfinish(session, exitstatus) -> None:
    try:
        import labkit

        labkit.engine_stop()
    except Exception:  # noqa: BLE001 - best effort at the very end
        pass
    shutil.rmtree(_HOME, ignore_errors=True)
