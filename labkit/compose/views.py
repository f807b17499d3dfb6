"""What ``compose ps``, ``logs`` and ``config`` show: tables and text for a person."""
from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any, TextIO

from ..i18n import _
from . import naming


def _ports(doc: dict) -> str:
    ports = (doc.get("NetworkSettings") or {}).get("Ports") or {}
    return ", ".join(f"{b['HostIp']}:{b['HostPort']}->{key}" for key, binds in sorted(ports.items())
                     for b in binds or [])


def ps_table(containers: list) -> str:
    """``docker compose ps``: NAME, IMAGE, COMMAND, SERVICE, CREATED, STATUS, PORTS."""
    from ..cli.tables import ago, status_text, table

    rows = []
    for ctr in containers:
        d = ctr.attrs
        command = " ".join([d["Path"]] + d["Args"])
        command = command if len(command) <= 22 else command[:21] + "…"
        status = status_text(d["State"])  # "(healthy)" comes with it where the engine runs checks
        rows.append([d["Name"], d["ImageRef"], f'"{command}"', d["Config"]["Labels"].get(naming.SERVICE, ""),
                     ago(d["Created"]), status, _ports(d)])
    return table([_("NAME"), _("IMAGE"), _("COMMAND"), _("SERVICE"), _("CREATED"), _("STATUS"), _("PORTS")], rows)


def _prefix(ctr: Any, width: int) -> str:
    service = ctr.attrs["Config"]["Labels"].get(naming.SERVICE, ctr.attrs["Name"])
    return f"{service}-{ctr.attrs['Config']['Labels'].get(naming.NUMBER, '1')}".ljust(width) + "  | "


def prefixed_logs(containers: list) -> str:
    width = max((len(_prefix(c, 0)) - 4 for c in containers), default=0)
    out = []
    for ctr in containers:
        prefix = _prefix(ctr, width)
        out += [prefix + line for line in ctr.logs().splitlines()]
    return "\n".join(out) + ("\n" if out else "")


def follow(project: Any, stream: TextIO, service: str | None = None) -> None:
    """``up`` without ``-d`` / ``logs -f``: every container's lines as they come, until all have exited.
    Ctrl-C after ``up`` stops the containers, as ``docker compose up`` does."""
    containers = [c for c in project.containers(all=True)  # an exited one shows its log, then ends
                  if service is None or c.attrs["Config"]["Labels"].get(naming.SERVICE) == service]
    width = max((len(_prefix(c, 0)) - 4 for c in containers), default=0)
    lock = threading.Lock()

    def pump(ctr: Any) -> None:
        prefix = _prefix(ctr, width)
        for chunk in ctr.logs(follow=True):
            with lock:
                stream.write("".join(prefix + line + "\n" for line in chunk.splitlines()))
                stream.flush()

    threads = [threading.Thread(target=pump, args=(c,), daemon=True) for c in containers]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        project.say(_("Gracefully stopping... (press Ctrl+C again to force)"))
        for ctr in containers:
            ctr.stop()


def _long_volume(v: dict) -> dict:
    """A mount in compose's long syntax, which reads back the same."""
    out = {k: v[k] for k in ("type", "source", "target") if v.get(k)}
    if v["read_only"]:
        out["read_only"] = True
    if v.get("size"):
        out["tmpfs"] = {"size": v["size"]}
    return out


def config_yaml(project: Any) -> str:
    """``docker compose config``: the file as it was understood (interpolated, names resolved)."""
    import yaml

    model = project.model
    services = {}
    for name, svc in model.services.items():
        doc = {k: v for k, v in asdict(svc).items() if v not in (None, [], {}) and k not in ("name", "line")}
        if svc.build is not None:
            doc["build"] = {k: str(v) if k == "context" else v for k, v in svc.build.items() if v}
        if svc.volumes:
            doc["volumes"] = [_long_volume(v) for v in svc.volumes]
        if svc.depends_on:
            doc["depends_on"] = {d: {"condition": c} for d, c in svc.depends_on.items()}
        limits = {k: doc.pop(k) for k in ("cpus", "memory") if k in doc}
        if limits:
            doc["deploy"] = {"resources": {"limits": limits}}
        doc["container_name"] = naming.container_name(project.name, svc)
        doc["networks"] = {n: {k: v for k, v in spec.items() if v} or None for n, spec in svc.networks.items()} or None
        services[name] = {k: v for k, v in doc.items() if v is not None}
    doc = {"name": project.name, "services": services}
    if any(s.networks for s in model.services.values()):
        doc["networks"] = {k: {"name": project.network_name(k)} for k in model.networks}
    if model.volumes:
        doc["volumes"] = {k: {"name": project.volume_name(k)} for k in model.volumes}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
