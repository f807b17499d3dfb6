"""The slice a container asks for, before any hierarchy (v1 or v2) turns it into files."""
from __future__ import annotations

from dataclasses import dataclass, fields

from ...units import DEFAULT_PIDS_LIMIT


@dataclass
class Limits:
    """The slice a container gets. ``None`` means "not limited"."""

    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset_cpus: str | None = None
    memory: int | None = None
    memory_swap: int | None = None
    pids_limit: int | None = DEFAULT_PIDS_LIMIT

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def partial(cls, **changes) -> "Limits":
        """Only the given fields set, the rest None: what ``update`` passes to
        ``set_limits`` (which leaves None fields as they are)."""
        base = {f.name: None for f in fields(cls)}
        base.update(changes)
        return cls(**base)

    @classmethod
    def from_dict(cls, data: dict) -> "Limits":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
