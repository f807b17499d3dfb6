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

import requirements


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


def _skip_reason(rep) -> str:
    longrepr = rep.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true a skip that is not a real one (tests/requirements.py) is a failure,
    whoever wrote it: a plain pytest.skip, skipif or importorskip added later included."""
    outcome = yield
    rep = outcome.get_result()
    if requirements.CI and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = _skip_reason(rep)
        if not requirements.is_real(reason):
            rep.outcome = "failed"
            rep.longrepr = requirements.ci_message(reason.removeprefix("Skipped: "))


_BAD_MODULE_SKIPS: list[str] = []


def pytest_collectreport(report) -> None:
    # A whole module skipped: kept as a skip (a failed collection would stop the session),
    # and the session fails at the end under CI.
    if requirements.CI and report.skipped:
        reason = _skip_reason(report)
        if not requirements.is_real(reason):
            _BAD_MODULE_SKIPS.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _BAD_MODULE_SKIPS:
        terminalreporter.write_line(requirements.ci_message(line), red=True)


def pytest_sessionfinish(session, exitstatus) -> None:
    if _BAD_MODULE_SKIPS:
        session.exitstatus = 1
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
