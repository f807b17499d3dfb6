"""tools/wait_idle.py (make record's quiet-machine rule) and tools/test_summary.py (the end of
make test), run as make runs them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / name), *args], capture_output=True,
                          text=True, **kw)


def test_wait_idle_lets_a_quiet_machine_record():
    r = tool("wait_idle.py", "--max", "100000", "--wait", "0", "--window", "0.2")
    assert r.returncode == 0 and r.stderr == ""


def test_wait_idle_refuses_a_busy_machine_and_says_how_to_force():
    # no machine uses less than nothing: "busy" by construction, and no time to wait
    r = tool("wait_idle.py", "--max", "-1", "--wait", "0", "--window", "0.2")
    print(r.stderr)
    assert r.returncode == 1
    assert "RECUSADO (refused)" in r.stderr and "FORCE=1" in r.stderr and "limite -1 %" in r.stderr


JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.unit.test_a" name="test_ok" />
<testcase classname="tests.unit.test_a" name="test_bad"><failure message="boom" /></testcase>
<testcase classname="tests.unit.test_a" name="test_real"><skipped type="pytest.skip"
  message="real skip: not x86_64" /></testcase>
<testcase classname="tests.unit.test_a" name="test_xf"><skipped type="pytest.xfail" message="x" /></testcase>
<testcase classname="" name="tests.unit.test_b"><skipped message="collection skipped">('/p/test_b.py', 3, 'Skipped: real skip: no KVM, here')</skipped></testcase>
</testsuite></testsuites>"""


def test_summary_counts_each_suite_and_lists_every_skip(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "junit-unit.xml").write_text(JUNIT)
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "test_summary.py").write_text((ROOT / "tools" / "test_summary.py").read_text())
    r = subprocess.run([sys.executable, str(tmp_path / "tools" / "test_summary.py"), "unit", "e2e"],
                       capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert any(line.split()[:2] == ["unit", "3"] and "1 falharam" in line and "2 pulados" in line
               for line in lines)  # 5 cases: 2 skipped, 3 ran (the xfail ran)
    assert any(line.split()[:3] == ["e2e", "não", "rodou"] for line in lines)
    assert "  [unit] tests.unit.test_a::test_real: real skip: not x86_64" in lines
    assert "  [unit] tests.unit.test_b: real skip: no KVM, here" in lines
