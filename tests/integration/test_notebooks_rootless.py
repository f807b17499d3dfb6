"""Issue 16's done criterion: as an ordinary user, the course's notebooks 00-04 pass under
strict nbval (rootless labkit, with delegated limits), against the SAME stored outputs root's
``make test-notebooks`` checks.

A throwaway student made by ``labkit classroom setup --create`` (``classroom_helpers.Class``,
no hub: the student's environment is the one the hub's spawner gives a server, HOME and
``LABKIT_CGROUP_PARENT`` = the student's own slice) runs ``python -m pytest`` with the
Makefile's nbval arguments on a copy of the notebooks in their home (the checkout is root's and
read-only to them). Then nothing of it may be left: the student's engine stopped, no process of
theirs, no cgroup under their slice, and the class torn down.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from classroom_helpers import BIN, Class, pids_of
from labkit.kernel.cgroups.mountinfo import layout
from requirements import require_module, require_tool, skipif_here

pytestmark = [
    pytest.mark.root, pytest.mark.slow,
    skipif_here(os.geteuid() != 0, "REAL: classroom setup (accounts, cgroups) needs root"),
]

require_module("nbval")
ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted(ROOT.glob("notebooks/0[0-4]_*.ipynb"))


def nbval_args() -> list[str]:
    """The Makefile's NBVAL_ARGS, read from it (one set of arguments, for root and students)."""
    text = (ROOT / "Makefile").read_text()
    m = re.search(r"^NBVAL_ARGS\s*\?=\s*((?:.*\\\n)*.*)$", text, re.M)
    assert m, "NBVAL_ARGS not found in the Makefile"
    words = m.group(1).replace("\\\n", " ").split()
    return [w.replace("$(NB_SANITIZE)", "nbval_sanitize.cfg") for w in words]


def container_cgroups(c: Class, user: str) -> list[str]:
    """Containers' cgroups below the student's slice (``<slice>/labkit/<id>``; the slice's
    ``jupyter`` leaf is classroom setup's, for the student's server)."""
    lay = layout()
    tops = ([Path(m) / c.parent / user / "labkit" for m in set(lay.v1.values())] if lay.version == "v1"
            else [Path(lay.v2) / c.parent / user / "labkit"])
    return [str(d) for top in tops if top.is_dir() for d in top.iterdir() if d.is_dir()]


def test_notebooks_00_to_04_pass_strict_nbval_as_a_student(open_to_other_users):
    require_tool("newuidmap", "uidmap")
    require_tool("runuser", "util-linux")
    assert len(NOTEBOOKS) == 5, NOTEBOOKS
    c = Class(1, cpus="1", memory="1g", pids="512")
    try:
        user = c.students[0]
        uid, home = c.uid(user), c.home(user)
        work = home / "nbval"
        work.mkdir(mode=0o700)
        for nb in NOTEBOOKS:
            shutil.copy(nb, work)
        shutil.copy(ROOT / "notebooks/nbval_sanitize.cfg", work)
        for p in [work, *work.iterdir()]:
            os.chown(p, uid, uid)
        junit = work / "junit.xml"
        started = time.monotonic()
        r = c.runuser(user, str(BIN / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                      "-q", "-rfE", "--color=no", f"--junitxml={junit}", *nbval_args(),
                      *(nb.name for nb in NOTEBOOKS),
                      env={"PYTHONPATH": str(ROOT)}, timeout=3600, cwd=work)
        took = time.monotonic() - started
        print(f"\nnotebooks 00-04 as a student (strict nbval): {took:.0f} s, rc {r.returncode}")
        failed = [line for line in r.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        assert r.returncode == 0, "\n".join(failed) + "\n" + (r.stdout + r.stderr)[-4000:]
        suite = ET.parse(junit).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        assert counts["tests"] > 50 and counts["failures"] == counts["errors"] == counts["skipped"] == 0, counts
        # the notebook suite's plugin stopped the student's engine and removed its home
        # nor anything of theirs in the shared temporary directories (the hand-made overlays
        # of notebook 04, the state of the suite's engine, a kernel's files)
        for tmp in ("/tmp", "/var/tmp", "/dev/shm"):
            mine = [e.path for e in os.scandir(tmp) if e.stat(follow_symlinks=False).st_uid == uid]
            assert mine == [], mine
        deadline = time.monotonic() + 30
        while pids_of(uid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids_of(uid) == [], "the student's processes outlived the run"
        assert container_cgroups(c, user) == [], "containers' cgroups left in the student's slice"
    finally:
        c.close()  # raises if teardown left anything (hub proxy, teardown errors)
    assert not c.base.exists()
    with pytest.raises(KeyError):
        c.uid(user)
