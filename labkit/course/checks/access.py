"""How the checks reach labkit: the API module, a container by name, its status and counters."""
from __future__ import annotations

from typing import Any

from labkit.errors import NotFound
from labkit.i18n import _

from ..verdict import Verdict, fail


def api_module() -> Any:
    """The module with ``get``/``containers`` (``labkit`` or ``labkit.api``)."""
    import labkit

    if hasattr(labkit, "get"):
        return labkit
    from labkit import api  # type: ignore[attr-defined]

    return api


def find_container(name: str) -> tuple[Any, Verdict | None]:
    """The container called ``name``, or a ✘ verdict saying it does not exist."""
    try:
        return api_module().get(name), None
    except NotFound:
        return None, fail(
            _('There is no container named "%(name)s". Create it first (see the '
              'exercise statement).') % {"name": name})


def container_status(container: Any) -> str:
    return str(getattr(container, "status", "") or "").lower()


def container_stats(container: Any) -> dict:
    """The cgroup counters of a container (``Cgroup.stats()``)."""
    cgroup = getattr(container, "cgroup", None)
    if cgroup is not None:
        return cgroup.stats()
    return container.stats()


def parse_size(value: int | str) -> int:
    from labkit.kernel.cgroups import parse_size

    return parse_size(value)
