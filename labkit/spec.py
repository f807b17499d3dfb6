"""Turning what a person typed into a container's configuration (no engine, no I/O).

Kept apart from :mod:`labkit.api` so that the ``labkit`` command can use it
without importing the whole API: every millisecond of start-up shows in
``labkit run``.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Iterable

from .errors import LabkitError
from .i18n import _


def command_argv(cmd: str | Iterable[str] | None) -> list[str] | None:
    if cmd is None:
        return None
    if isinstance(cmd, str):
        import shlex

        return shlex.split(cmd)
    return [str(c) for c in cmd]


def client_env(env: Iterable[str] | None) -> list[str]:
    """``NAME`` alone takes its value from the caller's environment, as ``docker run -e NAME``
    (left out when unset there); the engine's own environment never reaches a container."""
    return [e if "=" in e else f"{e}={os.environ[e]}" for e in env or [] if "=" in e or e in os.environ]


def parse_volume(spec: str | tuple | list) -> dict:
    """``-v`` (see :mod:`labkit.volspec`): a bind, a named or an anonymous volume."""
    from .volspec import parse_volume as parse

    return parse(spec)


def parse_device(spec: str | tuple | list) -> list:
    """Docker's ``--device HOST[:CONTAINER][:PERMISSIONS]`` → [HOST, CONTAINER, "rwm"]."""
    parts = [str(p) for p in spec] if isinstance(spec, (tuple, list)) else str(spec).split(":")
    perms = "rwm"
    if len(parts) > 1 and parts[-1] and not parts[-1].startswith("/"):
        perms = parts.pop()
    if not 1 <= len(parts) <= 2 or not perms or set(perms) - set("rwm") \
            or not all(p.startswith("/") for p in parts):
        raise LabkitError(_("invalid device specification: %(spec)s (use /dev/HOST[:/dev/CONTAINER][:rwm])")
                          % {"spec": spec}, exit_code=125)
    return [parts[0], parts[-1], perms]


def parse_devices(devices: Any) -> list:
    if not devices:
        return []
    if isinstance(devices, str):
        devices = [devices]
    return [parse_device(d) for d in devices]


def parse_volumes(volumes: Any) -> list:
    if not volumes:
        return []
    from .volspec import parse_volumes as parse

    return parse(volumes)


def parse_limits(memory=None, cpus=None, cpu_shares=None, cpuset_cpus=None, memory_swap=None,
            pids_limit: Any = "default") -> dict:
    from .units import DEFAULT_PIDS_LIMIT, parse_cpus, parse_size

    limits: dict[str, Any] = {}
    if memory is not None:
        limits["memory"] = parse_size(memory)
    if memory_swap is not None:
        limits["memory_swap"] = -1 if str(memory_swap) == "-1" else parse_size(memory_swap)
    if cpus is not None:
        limits["cpus"] = parse_cpus(cpus)
    if cpu_shares is not None:
        limits["cpu_shares"] = int(cpu_shares)
    if cpuset_cpus is not None:
        limits["cpuset_cpus"] = str(cpuset_cpus)
    if pids_limit == "default":
        limits["pids_limit"] = DEFAULT_PIDS_LIMIT
    elif pids_limit is not None:
        value = int(pids_limit)
        limits["pids_limit"] = None if value <= 0 else value
    else:
        limits["pids_limit"] = None
    return limits


def parse_port(spec: str | int) -> dict:
    """``-p [IP:][HOST:]CONTAINER[/tcp|udp]`` as Docker reads it; host port 0 = one the kernel picks."""
    text = str(spec)
    body, _sep, proto = text.partition("/")
    proto = proto or "tcp"
    parts = body.split(":")
    if len(parts) == 1:
        host_ip, host, ctr = "", "", parts[0]
    elif len(parts) == 2:
        host_ip, (host, ctr) = "", parts
    elif len(parts) == 3:
        host_ip, host, ctr = parts
    else:
        host_ip = host = ctr = ""

    def number(value: str, allow_empty: bool) -> int | None:
        if value == "" and allow_empty:
            return 0
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            return None
        return int(value)

    port, host_port = number(ctr, False), number(host, True)
    if proto not in ("tcp", "udp") or port is None or host_port is None:
        raise LabkitError(_("invalid port specification: %(spec)s (use [IP:]HOST:CONTAINER[/tcp|udp], "
                            "ports from 1 to 65535)") % {"spec": text})
    if host_ip:
        import ipaddress

        try:
            ipaddress.IPv4Address(host_ip)
        except ValueError:
            raise LabkitError(_("invalid port specification: %(spec)s (use [IP:]HOST:CONTAINER[/tcp|udp], "
                                "ports from 1 to 65535)") % {"spec": text}) from None
    return {"proto": proto, "host_ip": host_ip, "host_port": host_port, "port": port}


def parse_ports(ports: Any) -> list[dict]:
    """``ports``: a list of ``-p`` strings, or a dict ``{"80/tcp": 8080}`` (docker-py's shape)."""
    if not ports:
        return []
    if isinstance(ports, dict):
        ports = [f"{host}:{ctr}" if host else str(ctr) for ctr, host in ports.items()]
    return [parse_port(p) for p in ports]


def parse_add_hosts(entries: Iterable[str] | dict | None) -> list[str]:
    """``--add-host NAME:IP`` entries, checked."""
    if isinstance(entries, dict):
        entries = [f"{k}:{v}" for k, v in entries.items()]
    out = []
    for entry in entries or ():
        name, sep, addr = str(entry).partition(":")
        import ipaddress

        try:
            ipaddress.ip_address(addr)
        except ValueError:
            addr = ""
        if not sep or not name or not addr:
            raise LabkitError(_("invalid --add-host: %(spec)s (use NAME:IP)") % {"spec": entry})
        out.append(f"{name}:{addr}")
    return out


def security_opts(opts: Any) -> list[str]:
    """``--security-opt`` values as the engine takes them: a profile file's path made absolute
    here, since the engine reads it from its own working directory."""
    if isinstance(opts, str):
        opts = [opts]
    out = []
    for opt in opts:
        key, sep, value = opt.partition("=") if "=" in opt else opt.partition(":")
        if key == "seccomp" and sep and value and value != "unconfined":
            opt = f"seccomp={os.path.abspath(value)}"
        out.append(opt)
    return out


def warn_privileged(stream: Any = None) -> None:
    """``--privileged`` gives the container most of what the host's root has: say so, loudly,
    on stderr, before the container starts (Docker says nothing; a course should)."""
    import sys

    print(_("ATTENTION: --privileged turns off the container's protections: every capability the "
            "engine has (CAP_SYS_ADMIN, CAP_SYS_MODULE, ...), no seccomp filter, every host device "
            "(disks included) readable and writable, /proc and /sys neither masked nor read-only. "
            "A process in it can take over the host: use it only for what really needs it."),
          file=stream or sys.stderr, flush=True)
