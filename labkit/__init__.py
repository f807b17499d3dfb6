"""labkit: containers on the real Linux kernel, for the course "Contêineres na prática".

    >>> import labkit
    >>> labkit.run("busybox", "echo olá").stdout
    'olá\\n'

Names are loaded lazily so that ``import labkit`` (and the ``labkit``
command) stays fast.
"""
from __future__ import annotations

__version__ = "0.1.0"

_EXPORTS = {
    "run": "api", "Container": "api", "Result": "api", "containers": "api", "get": "api",
    "prune": "api", "engine_stop": "api",
    "network": "networking", "networks": "networking", "Network": "networking", "get_network": "networking",
    "prune_networks": "networking",
    "LabkitError": "errors", "NotFound": "errors", "Conflict": "errors",
    "Monitor": "monitor", "live": "live",
    "build": "images.build",
    "history": "images.changes", "diff": "images.changes", "commit": "images.changes",
    "prune_images": "images.changes", "push": "images.registry", "pull": "images.registry",
    "system_check": "images.check",
    "volume": "volumes_api", "volumes": "volumes_api", "Volume": "volumes_api", "get_volume": "volumes_api",
    "prune_volumes": "volumes_api",
    "create": "api",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None and name == "compose":  # labkit.compose.up(...) without an import of its own
        import importlib

        return importlib.import_module(f"{__name__}.compose")
    if module is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_EXPORTS))
