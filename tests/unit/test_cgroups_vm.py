"""tools/cg2vm.py (the cgroup-v2 VM runner) without booting anything."""
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


def test_cpio_newc_layout():
    arc = cg2vm.cpio([("init", 0o100755, b"#!/bin/sh\n"), ("dev/console", 0o20600, None, (5, 1))])
    assert arc.startswith(b"070701") and b"TRAILER!!!" in arc
    assert len(arc) % 4 == 0 and b"#!/bin/sh\n" in arc


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


def test_module_order_puts_dependencies_first():
    vers = [v for v in os.listdir("/lib/modules")
            if os.path.exists(f"/lib/modules/{v}/modules.dep")] if os.path.isdir("/lib/modules") else []
    require(vers, "a kernel's modules.dep in /lib/modules", package="Debian package linux-image-amd64")
    names = [n.split(".ko")[0] for _, n in cg2vm.mod_order(vers[0])]
    if "9pnet_virtio" in names and "9pnet" in names:
        assert names.index("9pnet") < names.index("9pnet_virtio")
