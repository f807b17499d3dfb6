"""environment.yml (conda) must describe the same environment as pyproject.toml.

Same package set (dependencies plus every extra), the same version specifiers, and the same
Python floor. Conda specs (``name>=1.0``, ``name=1.2``, ``name 1.2.*``, ``name>=1,<2``) are
converted to PEP 440 before comparing. Packages under ``pip:`` are the PyPI-only ones; a conda
package whose name differs from PyPI's is declared in pyproject.toml as
``[tool.labkit.conda] name-map = {"pypi-name" = "conda-name"}``.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from requirements import require_module  # noqa: E402

yaml = require_module("yaml")
from packaging.requirements import Requirement  # noqa: E402
from packaging.specifiers import InvalidSpecifier, SpecifierSet  # noqa: E402
from packaging.utils import canonicalize_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
ENVIRONMENT = ROOT / "environment.yml"
# Entries under pip: that are not packages but install labkit itself.
SELF_INSTALL = {"-e .", "-e ./", "."}


def conda_to_pep440(spec: str, where: str) -> tuple[str, SpecifierSet]:
    """Split a conda MatchSpec ``"name<version spec>"`` into (name, PEP 440 SpecifierSet)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*", spec)
    if not m:
        raise AssertionError(f"{where}: cannot read the conda spec {spec!r}")
    name, version = m.group(1), m.group(2).replace(" ", "")
    if "|" in version or "[" in spec:
        raise AssertionError(f"{where}: {spec!r}: keep conda specs simple (no '|' or [...])")
    parts = []
    for part in filter(None, version.split(",")):
        if re.fullmatch(r"=[^=].*", part):          # conda "=1.2" means 1.2.*
            part = "==" + part[1:] + ("" if part.endswith("*") else ".*")
        elif re.fullmatch(r"[0-9][^<>=!~]*", part):  # bare "1.2.*" or "1.2"
            part = "==" + part
        parts.append(part)
    try:
        return name, SpecifierSet(",".join(parts))
    except InvalidSpecifier as exc:
        raise AssertionError(f"{where}: {spec!r} is not a valid version spec: {exc}") from None


def pyproject_requirements() -> tuple[dict[str, SpecifierSet], SpecifierSet, dict[str, str]]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data["project"]
    reqs: dict[str, SpecifierSet] = {}
    sources = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        sources += extra
    for line in sources:
        req = Requirement(line)
        if req.name.lower() == "labkit":   # an extra that pulls another extra
            continue
        name = canonicalize_name(req.name)
        if name in reqs and reqs[name] != req.specifier:
            raise AssertionError(f"pyproject.toml: {req.name} appears twice with different versions")
        reqs[name] = req.specifier
    name_map = data.get("tool", {}).get("labkit", {}).get("conda", {}).get("name-map", {})
    name_map = {canonicalize_name(k): canonicalize_name(v) for k, v in name_map.items() if v}
    return reqs, SpecifierSet(project["requires-python"]), name_map


def environment() -> tuple[dict, dict[str, SpecifierSet], SpecifierSet | None, list[str]]:
    env = yaml.safe_load(ENVIRONMENT.read_text(encoding="utf-8"))
    assert isinstance(env, dict), "environment.yml: the top level must be a mapping"
    conda: dict[str, SpecifierSet] = {}
    pip_lines: list[str] = []
    python = None
    for item in env.get("dependencies") or []:
        if isinstance(item, dict):
            assert set(item) == {"pip"}, f"environment.yml: unexpected mapping {item!r} in dependencies"
            pip_lines += [str(x) for x in item["pip"] or []]
            continue
        name, spec = conda_to_pep440(str(item), "environment.yml dependencies")
        key = canonicalize_name(name)
        assert key not in conda, f"environment.yml: {name} is listed twice"
        if key == "python":
            python = spec
        else:
            conda[key] = spec
    return env, conda, python, pip_lines


def environment_packages() -> dict[str, tuple[SpecifierSet, str]]:
    """{pypi name: (specifier, "conda" | "pip")} for every package environment.yml installs."""
    _, _, name_map = pyproject_requirements()
    conda_to_pypi = {v: k for k, v in name_map.items()}
    _, conda, _, pip_lines = environment()
    packages: dict[str, tuple[SpecifierSet, str]] = {}
    for name, spec in conda.items():
        if name == "pip":
            continue
        packages[conda_to_pypi.get(name, name)] = (spec, "conda")
    for line in pip_lines:
        if line.strip() in SELF_INSTALL:
            continue
        assert not line.startswith("-"), f"environment.yml pip: unexpected option {line!r}"
        req = Requirement(line)
        key = canonicalize_name(req.name)
        assert key not in packages, f"environment.yml: {req.name} is both a conda and a pip package"
        packages[key] = (req.specifier, "pip")
    return packages


def test_header():
    env, conda, _, pip_lines = environment()
    assert env.get("name") == "labkit", "environment.yml: name must be 'labkit'"
    assert "conda-forge" in (env.get("channels") or []), "environment.yml: use the conda-forge channel"
    if pip_lines:
        assert "pip" in conda, "environment.yml: a pip: section needs 'pip' in the conda dependencies"


def test_same_python_floor():
    _, requires_python, _ = pyproject_requirements()
    _, _, python, _ = environment()
    assert python is not None, (
        f"environment.yml: add 'python{requires_python}' to dependencies "
        f"(pyproject.toml requires-python = {str(requires_python)!r})"
    )
    assert python == requires_python, (
        f"Python floor differs: pyproject.toml requires-python = {str(requires_python)!r}, "
        f"environment.yml has python{python}"
    )


def test_same_packages():
    wanted, _, _ = pyproject_requirements()
    have = environment_packages()
    missing = sorted(set(wanted) - set(have))
    extra = sorted(set(have) - set(wanted))
    problems = []
    if missing:
        problems.append(
            "in pyproject.toml but not in environment.yml (add them, under pip: if conda-forge "
            "lacks them): " + ", ".join(f"{n}{wanted[n]}" for n in missing)
        )
    if extra:
        problems.append(
            "in environment.yml but not in pyproject.toml (remove them or add them to pyproject): "
            + ", ".join(f"{n}{have[n][0]}" for n in extra)
        )
    assert not problems, "\n".join(problems)


def test_same_versions():
    wanted, _, _ = pyproject_requirements()
    have = environment_packages()
    diffs = [
        f"  {name}: pyproject.toml {str(wanted[name]) or '(any)'} / "
        f"environment.yml ({have[name][1]}) {str(have[name][0]) or '(any)'}"
        for name in sorted(set(wanted) & set(have))
        if wanted[name] != have[name][0]
    ]
    assert not diffs, "version specs differ between pyproject.toml and environment.yml:\n" + "\n".join(diffs)


@pytest.mark.parametrize(
    "spec, name, pep440",
    [
        ("numpy>=1.24", "numpy", ">=1.24"),
        ("python >=3.11", "python", ">=3.11"),
        ("numpy=1.26", "numpy", "==1.26.*"),
        ("numpy 1.26.*", "numpy", "==1.26.*"),
        ("numpy>=1.0,<2", "numpy", ">=1.0,<2"),
        ("pip", "pip", ""),
    ],
)
def test_conda_spec_conversion(spec, name, pep440):
    assert conda_to_pep440(spec, "test") == (name, SpecifierSet(pep440))


def test_bad_conda_spec_is_reported():
    with pytest.raises(AssertionError, match="not a valid version spec"):
        conda_to_pep440("numpy>=1.0<2", "test")
