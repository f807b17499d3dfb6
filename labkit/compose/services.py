"""One service of a compose file, checked key by key and put in ``labkit.run``'s terms."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import LabkitError
from ..i18n import _
from .checks import Check, argv_of, environment_of, labels_of
from .loader import Mapping

SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "env_file", "volumes", "ports",
    "networks", "depends_on", "restart", "healthcheck", "deploy", "mem_limit", "cpus",
    "container_name", "hostname", "working_dir", "user", "labels", "expose", "network_mode",
}
BUILD_KEYS = {"context", "dockerfile", "args", "network"}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
DEPENDS_KEYS = {"condition", "required", "restart"}
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
VOLUME_LONG_KEYS = {"type", "source", "target", "read_only", "volume", "bind", "tmpfs"}
PORT_LONG_KEYS = {"target", "published", "host_ip", "protocol", "mode"}
SERVICE_NETWORK_KEYS = {"aliases", "ipv4_address"}
RESTART = re.compile(r"no|always|unless-stopped|on-failure(:[0-9]+)?")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass
class Service:
    """One service, in the terms of ``labkit.run`` (what ``Project.up`` passes on)."""

    name: str
    line: int
    image: str | None = None
    build: dict | None = None            # {"context": Path, "dockerfile": str|None, "args": {}}
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    volumes: list[dict] = field(default_factory=list)  # {"type", "source", "target", "read_only"}
    ports: list[str] = field(default_factory=list)     # -p strings
    networks: dict[str, dict] = field(default_factory=dict)  # compose name -> {"aliases", "ipv4_address"}
    network_mode: str | None = None
    depends_on: dict[str, str] = field(default_factory=dict)  # service -> condition
    restart: str | None = None
    healthcheck: dict | None = None      # contracts.md's shape, seconds as floats
    memory: str | None = None
    cpus: str | None = None
    container_name: str | None = None
    hostname: str | None = None
    working_dir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    expose: list[str] = field(default_factory=list)


def parse_duration(value: Any) -> float | None:
    """Compose's durations (Go's): ``"1m30s"``, ``"500ms"``; a bare number is seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    if not text or _DURATION.sub("", text):
        return None
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))


def service(c: Check, name: str, line: int, node: Any, base: Path, volumes: dict, networks: dict) -> Service:
    """Check ``services.<name>`` and describe it; the first problem is a LabkitError with its line."""
    where = f"services.{name}"
    c.keys(node, SERVICE_KEYS, where)
    svc = Service(name, line)
    svc.image = c.string(node, "image", where)
    if "build" in node:
        svc.build = _build(c, node, where, base)
    if svc.image is None and svc.build is None:
        raise c.fail(line, _("service %(name)s has neither an image nor a build section")
                     % {"name": repr(name)})
    svc.command = argv_of(c, node, "command", where)
    svc.entrypoint = argv_of(c, node, "entrypoint", where)
    svc.environment = environment_of(c, node, where, base)
    svc.volumes = [_volume(c, v, n, where, base, volumes) for v, n in _list(c, node, "volumes", where)]
    svc.ports = [_port(c, p, n, where) for p, n in _list(c, node, "ports", where)]
    svc.expose = [str(e) for e, _n in _list(c, node, "expose", where)]
    svc.networks = _networks(c, node, where, networks)
    svc.network_mode = c.string(node, "network_mode", where)
    if svc.network_mode is not None:
        if svc.network_mode not in ("none", "host", "bridge"):
            raise c.fail(node.line_of("network_mode"), _("%(where)s.network_mode: only none, host or bridge")
                         % {"where": where})
        if svc.networks:
            raise c.fail(node.line_of("network_mode"), _("%(where)s: network_mode and networks cannot be "
                                                         "used together") % {"where": where})
    svc.depends_on = _depends(c, node, where)
    svc.restart = c.string(node, "restart", where)
    if svc.restart is not None and not RESTART.fullmatch(svc.restart):
        raise c.fail(node.line_of("restart"), _("%(where)s.restart: %(value)s is not a restart policy "
                                                "(no, always, on-failure[:N], unless-stopped)")
                     % {"where": where, "value": repr(svc.restart)})
    if "healthcheck" in node:
        svc.healthcheck = _healthcheck(c, node["healthcheck"], where + ".healthcheck")
    svc.memory, svc.cpus = _limits(c, node, where)
    for key in ("container_name", "hostname", "working_dir", "user"):
        setattr(svc, key, c.string(node, key, where))
    svc.labels = labels_of(c, node, where)
    return svc


def _list(c: Check, node: dict, key: str, where: str) -> list[tuple[Any, int]]:
    """The items of a list, each with its line."""
    value = node.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise c.fail(node.line_of(key), _("%(where)s.%(key)s must be a list") % {"where": where, "key": key})
    return [(item, value.line_at(i) if hasattr(value, "line_at") else node.line_of(key))
            for i, item in enumerate(value)]


def _build(c: Check, node: dict, where: str, base: Path) -> dict:
    spec = node["build"]
    if isinstance(spec, str):
        spec = Mapping(context=spec)
        spec.line, spec.key_lines = node.line_of("build"), {}
    c.keys(spec, BUILD_KEYS, where + ".build")
    context = (base / str(spec.get("context") or ".")).resolve()
    if not context.is_dir():
        raise c.fail(spec.line_of("context"), _("%(where)s.build.context: %(path)s is not a directory")
                     % {"where": where, "path": context})
    args = spec.get("args") or {}
    if isinstance(args, list):
        args = dict(str(a).split("=", 1) if "=" in str(a) else (str(a), "") for a in args)
    return {"context": context, "dockerfile": c.string(spec, "dockerfile", where + ".build"),
            "args": {str(k): "" if v is None else str(v) for k, v in args.items()},
            "network": _build_network(c, spec, where)}


def _build_network(c: Check, spec: dict, where: str) -> str | None:
    """``build.network``: the RUN steps' network, "none" (labkit's default) or "host" (apt-get needs it)."""
    value = c.string(spec, "network", where + ".build")
    if value not in (None, "none", "host", "default"):
        raise c.fail(spec.line_of("network"), _("%(where)s.build.network: only none or host") % {"where": where})
    return None if value == "default" else value


def _volume(c: Check, entry: Any, line: int, where: str, base: Path, declared: dict) -> dict:
    """Short (``data:/var/lib/x:ro``, ``./dir:/x``, ``/x``) or long syntax → one mount description."""
    if isinstance(entry, dict):
        c.keys(entry, VOLUME_LONG_KEYS, where + ".volumes")
        kind = str(entry.get("type") or "volume")
        source, target = entry.get("source"), entry.get("target")
        read_only = bool(entry.get("read_only"))
        if kind not in ("volume", "bind", "tmpfs") or not target:
            raise c.fail(line, _("%(where)s.volumes: type volume, bind or tmpfs, with a target") % {"where": where})
        source = None if source is None else str(source)
        if kind == "tmpfs":
            size = (entry.get("tmpfs") or {}).get("size")
            if not str(target).startswith("/"):
                raise c.fail(line, _("%(where)s.volumes: the target %(path)s must be an absolute path other than /")
                             % {"where": where, "path": repr(str(target))})
            return {"type": "tmpfs", "source": None, "target": str(target), "read_only": read_only,
                    "size": None if size is None else str(size)}
    else:
        parts = str(entry).split(":")
        mode = parts.pop() if len(parts) == 3 or len(parts) == 2 and parts[1] in ("ro", "rw") else "rw"
        if len(parts) == 1:
            source, target = None, parts[0]
        elif len(parts) == 2:
            source, target = parts
        else:
            raise c.fail(line, _("%(where)s.volumes: invalid volume %(spec)s (use SOURCE:TARGET[:ro])")
                         % {"where": where, "spec": repr(str(entry))})
        if mode not in ("ro", "rw"):
            raise c.fail(line, _("%(where)s.volumes: invalid mode %(mode)s (ro or rw)")
                         % {"where": where, "mode": repr(mode)})
        read_only = mode == "ro"
        kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
    target = str(target)
    if not target.startswith("/") or target.rstrip("/") == "":
        raise c.fail(line, _("%(where)s.volumes: the target %(path)s must be an absolute path other than /")
                     % {"where": where, "path": repr(target)})
    if kind == "bind":
        if not source:
            raise c.fail(line, _("%(where)s.volumes: a bind mount needs a source") % {"where": where})
        source = str((base / Path(source).expanduser()).absolute()) if not source.startswith("/") else source
    elif source is not None and source not in declared:
        raise c.fail(line, _("service %(name)s refers to undefined volume %(vol)s (declare it under the "
                             "top-level volumes:)") % {"name": repr(where.split(".", 1)[1]), "vol": repr(source)})
    return {"type": kind, "source": source, "target": target, "read_only": read_only}


def _port(c: Check, entry: Any, line: int, where: str) -> str:
    from ..spec import parse_port

    if isinstance(entry, dict):
        c.keys(entry, PORT_LONG_KEYS, where + ".ports")
        text = f"{entry.get('target')}/{entry.get('protocol') or 'tcp'}"
        if entry.get("published") is not None:
            text = f"{entry['published']}:{text}"
            if entry.get("host_ip"):
                text = f"{entry['host_ip']}:{text}"
    else:
        text = str(entry)
    try:
        parse_port(text)
    except LabkitError as exc:
        raise c.fail(line, exc.message) from None
    return text


def _networks(c: Check, node: dict, where: str, declared: dict) -> dict[str, dict]:
    value = node.get("networks")
    if value is None:
        return {}
    if isinstance(value, list):
        value = {str(n): None for n in value}
    elif not isinstance(value, dict):
        raise c.fail(node.line_of("networks"), _("%(where)s.networks must be a list or a mapping") % {"where": where})
    out = {}
    for net, spec in value.items():
        if net not in declared and net != "default":
            raise c.fail(node.line_of("networks"), _("service %(name)s refers to undefined network %(net)s")
                         % {"name": repr(where.split(".", 1)[1]), "net": repr(net)})
        spec = spec or Mapping()
        c.keys(spec, SERVICE_NETWORK_KEYS, f"{where}.networks.{net}")
        out[net] = {"aliases": [str(a) for a in spec.get("aliases") or []],
                    "ipv4_address": c.string(spec, "ipv4_address", where)}
    return out


def _depends(c: Check, node: dict, where: str) -> dict[str, str]:
    value = node.get("depends_on")
    if value is None:
        return {}
    if isinstance(value, list):
        return {str(d): "service_started" for d in value}
    if not isinstance(value, dict):
        raise c.fail(node.line_of("depends_on"), _("%(where)s.depends_on must be a list or a mapping")
                     % {"where": where})
    out = {}
    for dep, spec in value.items():
        spec = spec or Mapping()
        c.keys(spec, DEPENDS_KEYS, f"{where}.depends_on.{dep}")
        condition = str(spec.get("condition") or "service_started")
        if condition not in CONDITIONS:
            raise c.fail(spec.line_of("condition"), _("%(where)s.depends_on.%(dep)s: unknown condition %(cond)s "
                                                      "(%(known)s)") % {"where": where, "dep": dep,
                                                                        "cond": repr(condition), "known": ", ".join(CONDITIONS)})
        out[str(dep)] = condition
    return out


def _healthcheck(c: Check, node: Any, where: str) -> dict:
    c.keys(node, HEALTH_KEYS, where)
    if node.get("disable"):
        return {"test": ["NONE"]}
    test = node.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    elif isinstance(test, list) and test and str(test[0]) in ("CMD", "CMD-SHELL", "NONE"):
        test = [str(t) for t in test]
    else:
        raise c.fail(node.line_of("test"), _("%(where)s.test: a string, or a list starting with CMD, CMD-SHELL "
                                             "or NONE") % {"where": where})
    out: dict = {"test": test}
    for key in ("interval", "timeout", "start_period"):
        if key in node:
            seconds = parse_duration(node[key])
            if seconds is None:
                raise c.fail(node.line_of(key), _("%(where)s.%(key)s: %(value)s is not a duration (e.g. 30s, 1m30s)")
                             % {"where": where, "key": key, "value": repr(node[key])})
            out[key] = seconds
    if "retries" in node:
        if not isinstance(node["retries"], int) or node["retries"] < 0:
            raise c.fail(node.line_of("retries"), _("%(where)s.retries must be a whole number") % {"where": where})
        out["retries"] = node["retries"]
    return out


def _limits(c: Check, node: dict, where: str) -> tuple[str | None, str | None]:
    """``deploy.resources.limits`` or the older ``mem_limit`` / ``cpus``; checked as ``run`` would."""
    from ..spec import parse_limits

    memory, cpus = c.string(node, "mem_limit", where), c.string(node, "cpus", where)
    line = node.line_of("mem_limit") if "mem_limit" in node else node.line_of("cpus")
    deploy = node.get("deploy")
    if deploy is not None:
        c.keys(deploy, {"resources"}, where + ".deploy")
        resources = deploy.get("resources") or Mapping()
        c.keys(resources, {"limits"}, where + ".deploy.resources")
        limits = resources.get("limits") or Mapping()
        c.keys(limits, {"cpus", "memory"}, where + ".deploy.resources.limits")
        memory = c.string(limits, "memory", where) or memory
        cpus = c.string(limits, "cpus", where) or cpus
        line = limits.line
    try:
        parse_limits(memory, cpus)
    except (LabkitError, ValueError) as exc:
        raise c.fail(line, getattr(exc, "message", str(exc))) from None
    return memory, cpus


def check_cycles(c: Check, services: dict[str, Service]) -> None:
    """A cycle in depends_on (a → b → a) can never start: named, with the line of its first service."""
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise c.fail(services[cycle[0]].line, _("dependency cycle in depends_on: %(cycle)s")
                         % {"cycle": " -> ".join(cycle)})
        state[name] = 1
        for dep in services[name].depends_on:
            visit(dep, path + [name])
        state[name] = 2

    for name in services:
        visit(name, [])
