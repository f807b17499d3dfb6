"""tests/ci_skips.py and tests/requirements.py: under CI=true only a real skip stays a skip.

Each case runs pytest in a subprocess on a small test file, with the plugin loaded the way
tests/conftest.py loads it, once without CI and once with CI=true.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

SAMPLE = '''
import pytest
from requirements import needs_tool, require_module, require_tool, skip_here, skipif_here

def test_plain_skip():
    pytest.skip("ad hoc")

def test_real_skip():
    skip_here("not this machine")

@skipif_here(True, reason="not this architecture")
def test_real_skipif():
    pass

def test_missing_tool():
    require_tool("labkit-tool-that-does-not-exist", package="nenhum")

@needs_tool("labkit-tool-that-does-not-exist", package="nenhum")
def test_missing_tool_mark():
    pass

def test_missing_module():
    require_module("labkit_module_that_does_not_exist")

def test_present_tool():
    assert require_tool("sh", package="dash")
'''

MODULE_SKIP = '''
import pytest
pytest.skip("a whole module, ad hoc", allow_module_level=True)
'''


def run(tmp_path: Path, ci: bool, *files: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(TESTS), CI="true" if ci else "")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider",
                           "-rA", "-q", *files], cwd=tmp_path, env=env, capture_output=True, text=True)


def outcomes(out: str) -> dict[str, str]:
    """{test name: PASSED | FAILED | ERROR} from pytest's -rA summary."""
    found = {}
    for line in out.splitlines():
        word = line.split(" ", 1)[0]
        if word in ("PASSED", "FAILED", "ERROR") and "::" in line:
            found[line.split("::")[1].split()[0]] = word
    return found


def test_without_ci_every_skip_is_a_skip(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    r = run(tmp_path, False, "test_sample.py")
    print(r.stdout)
    assert r.returncode == 0
    assert "6 skipped" in r.stdout and "1 passed" in r.stdout
    assert "make setup installs it (Debian package nenhum)" in r.stdout


def test_under_ci_only_real_skips_stay(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    r = run(tmp_path, True, "test_sample.py")
    print(r.stdout)
    got = outcomes(r.stdout)
    skipped = [line for line in r.stdout.splitlines() if line.startswith("SKIPPED")]
    assert r.returncode == 1
    assert len(skipped) == 2 and all("real skip: not this" in line for line in skipped)
    assert got["test_present_tool"] == "PASSED"
    for name in ("test_plain_skip", "test_missing_tool", "test_missing_module"):
        assert got[name] == "FAILED", name
    assert got["test_missing_tool_mark"] in ("FAILED", "ERROR")  # a skipif mark fails at set-up
    assert "CI=true" in r.stdout and "Debian package nenhum" in r.stdout


def test_under_ci_a_module_skip_fails_the_session(tmp_path):
    (tmp_path / "test_module.py").write_text(MODULE_SKIP)
    (tmp_path / "test_fine.py").write_text("def test_ok():\n    assert True\n")
    r = run(tmp_path, True, "test_module.py", "test_fine.py")
    print(r.stdout)
    assert r.returncode == 1 and "1 passed" in r.stdout  # the rest of the session still ran
    assert "a whole module, ad hoc" in r.stdout and "CI=true" in r.stdout
    assert run(tmp_path, False, "test_module.py", "test_fine.py").returncode == 0
