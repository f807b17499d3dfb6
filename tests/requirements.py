"""What the tests need from the machine, and what a skip is allowed to mean.

Two kinds of skip, and nothing else:

- a **missing requirement** that ``make setup`` provides (a Debian package such as
  gcc or openssl, or a Python package of the venv): ``require(...)``,
  ``require_tool(...)``, ``require_module(...)`` or the ``needs_tool(...)`` mark.
  Outside CI it is a skip whose reason names the package; under ``CI=true`` it is a
  failure, because on a machine that ran ``make setup`` it means the set-up is
  incomplete, and a suite that silently skips protects nobody;
- a **real skip**: the machine cannot run the test at all whatever is installed (not
  x86_64, not root, ``LABKIT_SPAWN=fork``, a kernel without a feature):
  ``skip_here(...)`` or the ``skipif_here(...)`` mark. Its reason starts with
  ``REAL`` and it stays a skip under CI (``make test`` lists it at the end).

``tests/ci_skips.py`` (registered by ``tests/conftest.py``) enforces this: under
``CI=true`` any other skip (a bare ``pytest.skip``, ``skipif`` or ``importorskip``
added later) fails too.
"""
from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
REAL = "real skip: "
VENV = "the venv's Python packages (make setup: pip install -e '.[lab,test]')"


def missing_message(what: str, package: str) -> str:
    return f"{what} is missing; make setup installs it ({package})"


def ci_message(reason: str) -> str:
    return (f"CI=true: a skip that is not a real one fails here: {reason}. Whatever make setup "
            f"installs must be there (run `make setup` as root, see .cache/apt-install.log); a skip "
            f"that no package can fix says so with tests/requirements.py's skip_here()")


def is_real(reason: str) -> bool:
    reason = reason.removeprefix("Skipped: ")
    return reason.startswith(REAL)


def _missing(what: str, package: str, allow_module_level: bool = False) -> NoReturn:
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    if CI:
        pytest.fail(ci_message(missing_message(what, package)), pytrace=False)
    pytest.skip(missing_message(what, package), allow_module_level=allow_module_level)


def require(ok: object, what: str, package: str) -> None:
    """Skip (or, under CI, fail) unless ``ok`` is true. ``what`` says what is missing,
    ``package`` which Debian package (or "pip: name") make setup installs for it."""
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    if not ok:
        _missing(what, package)


def require_tool(tool: str, package: str) -> str:
    """The path of the command ``tool``, or a skip/failure naming its Debian package."""
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    path = shutil.which(tool)
    if path is None:
        _missing(f"the command {tool}", f"Debian package {package}")
    return path


def require_module(name: str) -> ModuleType:
    """``pytest.importorskip`` that names make setup, and fails under CI."""
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(f"the Python module {name}", VENV)


def needs_tool(*tools: str, package: str) -> pytest.MarkDecorator:
    """A mark: the test needs every command in ``tools`` (from the Debian ``package``)."""
    absent = [t for t in tools if shutil.which(t) is None]
    reason = missing_message("the command " + " and ".join(absent), f"Debian package {package}")
    return pytest.mark.skipif(bool(absent), reason=reason)  # under CI, tests/ci_skips.py fails it


def skip_here(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """A real skip: nothing make setup installs would let the test run on this machine."""
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    pytest.skip(REAL + reason, allow_module_level=allow_module_level)


def skipif_here(condition: bool, reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(condition, reason=REAL + reason)


def optional_tool(tool: str, package: str) -> str | None:
    """For a part of a test that only adds a cross-check (e.g. skopeo reads what labkit wrote):
    the command's path, or None to leave that part out. Under CI a missing one fails."""
    __tracebackhide__ = True  # -rs shows the test's line, not this helper's
    path = shutil.which(tool)
    if path is None and CI:
        _missing(f"the command {tool}", f"Debian package {package}")
    return path
