"""pytest plugin: under ``CI=true`` a skip that is not a real one is a failure.

Registered by ``tests/conftest.py`` for every suite under ``tests/``. What counts as a
real skip is decided in ``tests/requirements.py`` (its reason starts with ``REAL``);
anything else (a tool or package make setup installs, and also a plain ``pytest.skip``,
``skipif`` or ``importorskip`` that someone adds later) fails, so that no suite can
silently shrink on a CI machine.
"""
from __future__ import annotations

import pytest

import requirements

_bad_module_skips: list[str] = []


def _skip_reason(rep) -> str:
    longrepr = rep.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if requirements.CI and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = _skip_reason(rep)
        if not requirements.is_real(reason):
            rep.outcome = "failed"
            rep.longrepr = requirements.ci_message(reason.removeprefix("Skipped: "))


def pytest_collectreport(report) -> None:
    # A whole module skipped: kept as a skip (a failed collection would stop the session),
    # and the session fails at the end.
    if requirements.CI and report.skipped:
        reason = _skip_reason(report)
        if not requirements.is_real(reason):
            _bad_module_skips.append(f"{report.nodeid}: {reason}")


def pytest_terminal_summary(terminalreporter) -> None:
    for line in _bad_module_skips:
        terminalreporter.write_line(requirements.ci_message(line), red=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    if _bad_module_skips:
        session.exitstatus = 1
