"""A service as the keyword arguments of ``labkit.run`` (contracts.md's names)."""
from __future__ import annotations

from typing import Any

from . import naming


def volume_specs(project: Any, svc: Any) -> list[str]:
    """``name:/path[:ro]`` (the project's volume), ``/host:/path[:ro]`` (bind), ``/path`` (anonymous)."""
    out = []
    for v in svc.volumes:
        suffix = ":ro" if v["read_only"] else ""
        if v["type"] == "tmpfs":
            continue  # tmpfs= below
        if v["source"] is None:
            out.append(v["target"])
        elif v["type"] == "volume":
            out.append(f"{project.volume_name(v['source'])}:{v['target']}{suffix}")
        else:
            out.append(f"{v['source']}:{v['target']}{suffix}")
    return out


def run_kwargs(project: Any, svc: Any, digest: str) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "env": dict(svc.environment), "workdir": svc.working_dir, "hostname": svc.hostname,
        "user": svc.user, "entrypoint": svc.entrypoint, "memory": svc.memory, "cpus": svc.cpus,
        "ports": list(svc.ports) or None, "volumes": volume_specs(project, svc) or None,
        "labels": naming.container_labels(project.name, svc, project.model, digest),
    }
    tmpfs = [v["target"] + (f":size={v['size']}" if v.get("size") else "") for v in svc.volumes if v["type"] == "tmpfs"]
    if tmpfs:
        kwargs["tmpfs"] = tmpfs
    if svc.network_mode is not None:
        kwargs["network"] = svc.network_mode
    elif svc.networks:
        first = next(iter(svc.networks))
        kwargs["network"] = project.network_name(first)
        kwargs["network_aliases"] = [svc.name, *svc.networks[first]["aliases"]]
        kwargs["ip"] = svc.networks[first].get("ipv4_address")
    # restart and healthcheck only when the file has them: an engine without them still runs the rest
    if svc.restart is not None:
        kwargs["restart"] = svc.restart
    if svc.healthcheck is not None:
        kwargs["healthcheck"] = svc.healthcheck
    return kwargs
