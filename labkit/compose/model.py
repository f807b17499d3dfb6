"""A compose file, checked and turned into plain service descriptions (no engine, no I/O but reading).

The subset a course needs (issue 12): every key outside it is an error that
names the key and its line, because a key ignored in silence (``enviroment:``)
is a bug the learner never sees. Everything is checked here, before ``up``
creates anything.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..i18n import _
from .checks import Check, labels_of
from .loader import Mapping, interpolate, load_yaml, read_dotenv
from .services import Service, check_cycles, service

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")

TOP_KEYS = {"name", "services", "volumes", "networks", "version"}
TOP_VOLUME_KEYS = {"name", "driver", "labels", "external"}
TOP_NETWORK_KEYS = {"name", "driver", "labels", "external", "ipam"}


@dataclass
class Model:
    """A whole compose file: its services (in file order), volumes and networks."""

    path: Path
    name: str | None
    services: dict[str, Service]
    volumes: dict[str, dict]    # compose name -> {"name": real name or None, "labels", "external"}
    networks: dict[str, dict]   # compose name -> {"name", "labels", "external", "subnet", "gateway"}

    @property
    def directory(self) -> Path:
        return self.path.parent

    def order(self) -> list[str]:
        """Services with their dependencies first (a topological order, stable in file order)."""
        done: list[str] = []

        def visit(name: str) -> None:
            if name not in done:
                for dep in self.services[name].depends_on:
                    visit(dep)
                done.append(name)

        for name in self.services:
            visit(name)
        return done


def find_file(path: str | os.PathLike = ".", file: str | os.PathLike | None = None) -> Path:
    """``-f FILE``, or the first of compose.yaml, compose.yml, docker-compose.y[a]ml in ``path``."""
    if file is not None:
        f = Path(file)
        return (f if f.is_absolute() else Path(path) / f).absolute()
    base = Path(path)
    if base.is_file():
        return base.absolute()
    for name in FILE_NAMES:
        if (base / name).is_file():
            return (base / name).absolute()
    return (base / FILE_NAMES[0]).absolute()  # load() says it is missing


def load(path: str | os.PathLike = ".", file: str | os.PathLike | None = None) -> Model:
    """Read, interpolate and check a compose file; a LabkitError (exit 125) on the first problem."""
    fpath = find_file(path, file)
    doc = load_yaml(fpath)
    env = dict(os.environ)
    if (fpath.parent / ".env").is_file():
        env = {**read_dotenv(fpath.parent / ".env"), **os.environ}  # the shell wins, as compose
    doc = interpolate(doc, env, fpath.name)
    c = Check(fpath)
    c.keys(doc, TOP_KEYS, _("the top level"))
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        raise c.fail(doc.line_of("services") if "services" in doc else doc.line,
                     _("a compose file needs services: with at least one service"))
    volumes = _top_volumes(c, doc.get("volumes") or Mapping())
    networks = _top_networks(c, doc.get("networks") or Mapping())
    out: dict[str, Service] = {}
    for name, node in services.items():
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
            raise c.fail(services.line_of(name), _("invalid service name %(name)s: only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                                   "are allowed") % {"name": repr(name)})
        out[name] = service(c, name, services.line_of(name), node if node is not None else Mapping(), fpath.parent, volumes, networks)
        if not out[name].networks and out[name].network_mode is None:
            out[name].networks = {"default": {"aliases": [], "ipv4_address": None}}
    if any(s.networks.get("default") is not None for s in out.values()) and "default" not in networks:
        networks["default"] = {"name": None, "labels": {}, "external": False, "subnet": None, "gateway": None}
    for name, svc in out.items():
        for dep in svc.depends_on:
            if dep not in out:
                raise c.fail(svc.line, _("service %(name)s depends on undefined service %(dep)s")
                             % {"name": repr(name), "dep": repr(dep)})
    check_cycles(c, out)
    return Model(fpath, c.string(doc, "name", "name"), out, volumes, networks)


def _top_volumes(c: Check, node: Any) -> dict[str, dict]:
    if not isinstance(node, dict):
        raise c.fail(getattr(node, "line", 0), _("%(where)s must be a mapping") % {"where": "volumes"})
    out = {}
    for name, spec in node.items():
        spec = spec if spec is not None else Mapping()
        c.keys(spec, TOP_VOLUME_KEYS, f"volumes.{name}")
        if spec.get("driver") not in (None, "local"):
            raise c.fail(spec.line_of("driver"), _("volume driver %(driver)s is not supported (only local)")
                         % {"driver": repr(spec["driver"])})
        out[name] = {"name": c.string(spec, "name", f"volumes.{name}"), "external": bool(spec.get("external")),
                     "labels": labels_of(c, spec, f"volumes.{name}")}
    return out


def _top_networks(c: Check, node: Any) -> dict[str, dict]:
    if not isinstance(node, dict):
        raise c.fail(getattr(node, "line", 0), _("%(where)s must be a mapping") % {"where": "networks"})
    out = {}
    for name, spec in node.items():
        spec = spec if spec is not None else Mapping()
        where = f"networks.{name}"
        c.keys(spec, TOP_NETWORK_KEYS, where)
        if spec.get("driver") not in (None, "bridge"):
            raise c.fail(spec.line_of("driver"), _("network driver %(driver)s is not supported (only bridge)")
                         % {"driver": repr(spec["driver"])})
        subnet = gateway = None
        ipam = spec.get("ipam")
        if ipam is not None:
            c.keys(ipam, {"driver", "config"}, where + ".ipam")
            configs = ipam.get("config") or []
            if not isinstance(configs, list) or len(configs) > 1:
                raise c.fail(ipam.line_of("config"), _("%(where)s.ipam.config: one subnet at most") % {"where": where})
            for conf in configs:
                c.keys(conf, {"subnet", "gateway"}, where + ".ipam.config")
                subnet, gateway = c.string(conf, "subnet", where), c.string(conf, "gateway", where)
        out[name] = {"name": c.string(spec, "name", where), "external": bool(spec.get("external")),
                     "labels": labels_of(c, spec, where), "subnet": subnet, "gateway": gateway}
    return out
