"""pytest plugin for the notebook suite (``make test-notebooks``): a private ``$LABKIT_HOME``.

nbval's kernels inherit this process's environment, so they use a fresh state
directory with its own engine, stopped and removed at the end. A test run then
neither touches ``/var/lib/labkit`` (a teacher's real containers) nor talks to
an engine that another checkout left running there, with other code.

The stored outputs show ``/var/lib/labkit``, as a learner sees it:
``notebooks/nbval_sanitize.cfg`` writes this home's path that way.
``tests/conftest.py`` does the same for ``tests/``, which nbval's notebooks are
not under.
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

# + 8 hex digits: the pattern the sanitizer knows. On disk, like /var/lib/labkit, not in /tmp:
# where /tmp is a tmpfs (Debian 13, Fedora, a fresh container host), files a container writes
# would live in memory and count in its memory cgroup, and notebook 01's disk experiment would
# show something else than on a learner's machine.
PREFIX = "/var/tmp/labkit-nb-"


def pytest_configure(config) -> None:
    if os.environ.get("LABKIT_HOME"):  # chosen by whoever runs the suite
        return
    home = PREFIX + secrets.token_hex(4)
    os.mkdir(home, 0o700)
    os.environ["LABKIT_HOME"] = home
    config.labkit_notebooks_home = home


def pytest_unconfigure(config) -> None:
    home = getattr(config, "labkit_notebooks_home", None)
    if not home:
        return
    try:
        import labkit

        labkit.engine_stop(home=Path(home))  # stops what the notebooks left running
    except Exception:  # noqa: BLE001 - no engine was started
        pass
    try:
        from labkit.kernel import userns

        # without root (tests/integration/test_notebooks_rootless.py), a container the engine
        # left holds files of the user's subordinate ids and overlay's 000 work dir: removed
        # from a user namespace mapped like the engine's, as their owner
        userns.remove_tree(home)
    except Exception:  # noqa: BLE001
        shutil.rmtree(home, ignore_errors=True)
