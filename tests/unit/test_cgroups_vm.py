"""tools/cg2vm.py (the cgroup-v2 VM runner) without booting anything.

Its building blocks are labkit.vm's (tests/unit/test_vm.py); here, the tool itself."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from requirements import require

TOOL = Path(__file__).resolve().parents[2] / "tools" / "cg2vm.py"
spec = importlib.util.spec_from_file_location("cg2vm", TOOL)
cg2vm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cg2vm)


def test_missing_qemu_is_skipped_loudly(tmp_path):
    env = dict(os.environ, CG2VM_QEMU="qemu-that-does-not-exist", CG2VM_CACHE=str(tmp_path), CI="")
    r = subprocess.run([sys.executable, str(TOOL), "--skip-missing", "--", "true"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "SKIPPED" in r.stderr and "qemu-that-does-not-exist" in r.stderr
    r = subprocess.run([sys.executable, str(TOOL), "--", "true"], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 127  # without --skip-missing it is an error


def test_missing_qemu_is_a_failure_under_ci(tmp_path):
    env = dict(os.environ, CG2VM_QEMU="qemu-that-does-not-exist", CG2VM_CACHE=str(tmp_path), CI="true")
    r = subprocess.run([sys.executable, str(TOOL), "--skip-missing", "--", "true"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 127 and "SKIPPED" not in r.stderr and "CI=true" in r.stderr

