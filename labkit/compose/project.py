"""A compose project: its containers, networks and volumes, made and found through the public API.

Like ``docker compose``, this is a client of the engine: every container is a
``labkit.run(..., detach=True)`` with Compose's labels, and the labels are the
only state (``ps``, ``down`` and a second ``up`` find the project by them).
``up`` checks everything it can before it creates anything: the file
(:mod:`.model`), the images (built or found) and the host ports.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .. import api, networking
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from . import naming
from .model import Model, load
from .services import Service


# A container in its restart back-off is the service's, alive: kept by up, stopped by down.
ALIVE = ("running", "restarting")


class Project:
    """One compose project (``labkit.compose.up(path)`` returns it)."""

    def __init__(self, name: str, model: Model | None, home: Path | None = None,
                 out: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.model = model
        self.home = home
        self.say = out if out is not None else (lambda text: print(text, flush=True))

    def __repr__(self) -> str:
        return f"<Project {self.name}: {', '.join(self.model.services) if self.model else ''}>"

    # --- what exists -------------------------------------------------------------------------
    def containers(self, all: bool = True) -> list[api.Container]:
        """The project's containers (by label), in the order of the file's services."""
        found = api.containers(all=all, home=self.home, filters={"label": [f"{naming.PROJECT}={self.name}"]})
        order = list(self.model.order()) if self.model else []
        return sorted(found, key=lambda c: (order.index(_service_of(c)) if _service_of(c) in order
                                            else len(order), c.attrs["Name"]))

    def service(self, name: str) -> api.Container:
        """The container of one service; NotFound when it has none."""
        for ctr in self.containers():
            if _service_of(ctr) == name:
                return ctr
        raise NotFound(_("no container for service %(service)s in project %(project)s")
                       % {"service": name, "project": self.name})

    def network_name(self, key: str) -> str:
        return naming.resource_name(self.name, key, self.model.networks.get(key, {}))

    def volume_name(self, key: str) -> str:
        return naming.resource_name(self.name, key, self.model.volumes.get(key, {}))

    # --- up ----------------------------------------------------------------------------------
    def up(self, services: list[str] | None = None) -> "Project":
        """Create what is missing, recreate what changed, keep what matches (Docker's ``up -d``)."""
        model = self._need_model()
        names = _with_dependencies(model, services)
        images = {n: self._image(model.services[n]) for n in names}  # built or found first
        existing = {_service_of(c): c for c in self.containers()}  # one listing for the whole plan
        plan = {n: (naming.config_hash(model.services[n], images[n], self._resolved(model.services[n])),
                    existing.get(n)) for n in names}
        self._check_ports(model, plan)
        self._check_names(plan)
        self._check_external(names)
        self._make_networks(names)
        self._make_volumes(names)
        for n in names:
            self._wait_dependencies(model.services[n])
            digest, old = plan[n]
            self._up_one(model.services[n], images[n], digest, old)
        return self

    def _need_model(self) -> Model:
        if self.model is None:
            raise LabkitError(_("no compose file for project %(name)s") % {"name": self.name})
        return self.model

    def _image(self, svc: Service) -> str:
        """The image id of a service: built (its ``build:``) or found in the store, pulled if missing."""
        from ..images.store import Store

        if svc.build is not None:
            from ..images.build import build

            tag = svc.image or f"{self.name}-{svc.name}"
            self.say(_("Building %(service)s") % {"service": svc.name})
            img = build(str(svc.build["context"]), tag, dockerfile=svc.build["dockerfile"] and
                        str(Path(svc.build["context"]) / svc.build["dockerfile"]),
                        build_args=svc.build["args"], network=svc.build.get("network") or "none",
                        quiet=True, home=self.home)
            return img.id
        store = Store(self.home)
        try:
            return store.resolve(svc.image).id
        except NotFound:
            from ..images.registry import pull

            self.say(_("Pulling %(image)s") % {"image": svc.image})
            return pull(svc.image, out=lambda _line: None).id

    def _resolved(self, svc: Service) -> dict:
        return {"networks": sorted(self.network_name(n) for n in svc.networks),
                "volumes": sorted(self.volume_name(v["source"]) for v in svc.volumes
                                  if v["type"] == "volume" and v["source"])}

    def _check_ports(self, model: Model, plan: dict) -> None:
        """A host port another process (or container) holds: refused before anything is made."""
        for n, (digest, old) in plan.items():
            if old is not None and old.attrs["Config"]["Labels"].get(naming.CONFIG_HASH) == digest \
                    and old.attrs["State"]["Status"] in ALIVE:
                continue  # kept as it is: its ports are its own
            held = set()
            if old is not None and old.attrs["State"]["Status"] in ALIVE:
                held = {int(b["HostPort"]) for binds in (old.attrs["NetworkSettings"].get("Ports") or {}).values()
                        for b in binds or [] if b.get("HostPort")}
            from ..spec import parse_port

            for text in model.services[n].ports:
                p = parse_port(text)
                if p["host_port"] and p["host_port"] not in held:
                    _port_free(p, n)

    def _check_names(self, plan: dict) -> None:
        """A container name another container already has (not this project's): refused up front."""
        taken = {c.attrs["Name"]: c for c in api.containers(all=True, home=self.home)}
        for n, (_digest, old) in plan.items():
            name = naming.container_name(self.name, self.model.services[n])
            other = taken.get(name)
            if other is not None and (old is None or other.id != old.id):
                raise Conflict(_('the container name "%(name)s" is already in use by container %(id)s; '
                                 'remove it (labkit rm) or choose another name') % {"name": name, "id": other.id[:12]})

    def _check_external(self, names: list[str]) -> None:
        """``external: true`` networks and volumes must exist already: checked before anything is made."""
        nets = {k for n in names for k in self.model.services[n].networks if self.model.networks[k].get("external")}
        existing = {net.name for net in networking.networks(home=self.home)}
        for key in sorted(nets):
            if self.network_name(key) not in existing:
                raise NotFound(_("network %(name)s declared as external, but could not be found")
                               % {"name": self.network_name(key)})
        get_volume = _volume_api("get_volume")
        for key in sorted({v["source"] for n in names for v in self.model.services[n].volumes
                           if v["type"] == "volume" and v["source"]}):
            if self.model.volumes[key].get("external") and get_volume is not None:
                try:
                    get_volume(self.volume_name(key), home=self.home)
                except NotFound:
                    raise NotFound(_("volume %(name)s declared as external, but could not be found")
                                   % {"name": self.volume_name(key)}) from None

    def _make_networks(self, names: list[str]) -> None:
        wanted = {k for n in names for k in self.model.services[n].networks}
        existing = {net.name for net in networking.networks(home=self.home)}
        for key in sorted(wanted):
            spec, name = self.model.networks[key], self.network_name(key)
            if name in existing or spec.get("external"):
                continue
            networking.network(name, spec.get("subnet"), spec.get("gateway"), home=self.home,
                               labels={**spec.get("labels", {}), naming.PROJECT: self.name, naming.NETWORK: key})
            self.say(_(" Network %(name)s  Created") % {"name": name})

    def _make_volumes(self, names: list[str]) -> None:
        wanted = {v["source"] for n in names for v in self.model.services[n].volumes
                  if v["type"] == "volume" and v["source"]}
        make, listing = _volume_api("volume"), _volume_api("volumes")
        existing = {v.name for v in listing(home=self.home)} if listing and wanted else set()
        for key in sorted(wanted):
            spec, name = self.model.volumes[key], self.volume_name(key)
            if make is None or spec.get("external") or name in existing:
                continue  # an external one exists (_check_external); an existing one is reused as it is
            make(name, labels={**spec.get("labels", {}), naming.PROJECT: self.name, naming.VOLUME: key},
                 home=self.home)
            self.say(_(" Volume %(name)s  Created") % {"name": name})
        for n in names:  # compose creates a missing bind source (create_host_path)
            for v in self.model.services[n].volumes:
                if v["type"] == "bind" and not os.path.exists(v["source"]):
                    os.makedirs(v["source"], exist_ok=True)

    def _wait_dependencies(self, svc: Service) -> None:
        for dep, condition in svc.depends_on.items():
            if condition == "service_started":
                continue
            ctr = self.service(dep)
            if condition == "service_completed_successfully":
                code = ctr.wait()
                if code != 0:
                    raise LabkitError(_("service %(dep)s didn't complete successfully: exit %(code)d")
                                      % {"dep": dep, "code": code})
                continue
            self.say(_(" Container %(name)s  Waiting") % {"name": ctr.attrs["Name"]})
            while True:  # service_healthy: the engine runs the checks; wait for their verdict
                health = getattr(ctr, "health", None)
                if health == "healthy" or health is None and not hasattr(api.Container, "health"):
                    break
                if health == "unhealthy" or ctr.status != "running" and health != "starting":
                    raise LabkitError(_("dependency failed to start: container %(name)s is %(state)s")
                                      % {"name": ctr.attrs["Name"], "state": health or ctr.status})
                if health is None:
                    raise LabkitError(_("service %(dep)s has no healthcheck: condition service_healthy "
                                        "cannot be met") % {"dep": dep})
                time.sleep(0.2)
            self.say(_(" Container %(name)s  Healthy") % {"name": ctr.attrs["Name"]})

    def _up_one(self, svc: Service, image_id: str, digest: str, old: api.Container | None) -> None:
        name = naming.container_name(self.name, svc)
        if old is not None:
            same = old.attrs["Config"]["Labels"].get(naming.CONFIG_HASH) == digest
            if same and old.attrs["State"]["Status"] in ALIVE:
                self.say(_(" Container %(name)s  Running") % {"name": name})
                return
            if same and hasattr(old, "start"):
                old.start()
                self.say(_(" Container %(name)s  Started") % {"name": name})
                return
            _remove(old)
            self.say(_(" Container %(name)s  Recreated") % {"name": name})
        from .runargs import run_kwargs

        kwargs = run_kwargs(self, svc, digest)
        image = svc.image or f"{self.name}-{svc.name}"
        ctr = api.run(image, svc.command, name=name, detach=True, remove=False, home=self.home, **kwargs)
        for key in list(svc.networks)[1:]:  # run joins one network; compose's others are connected after
            networking.get_network(self.network_name(key), home=self.home).connect(
                ctr, ip=svc.networks[key].get("ipv4_address"), aliases=[svc.name, *svc.networks[key]["aliases"]])
        self.say(_(" Container %(name)s  Started") % {"name": name})

    # --- the other verbs ---------------------------------------------------------------------
    def down(self, volumes: bool = False, timeout: float = 10) -> None:
        """Stop and remove the containers and networks; ``volumes=True`` also the named volumes."""
        containers = list(reversed(self.containers()))
        _stop_all(containers, timeout)
        for ctr in containers:
            _remove(ctr, timeout, anonymous=volumes)
            self.say(_(" Container %(name)s  Removed") % {"name": ctr.attrs["Name"]})
        for net in networking.networks(home=self.home):
            if (net.inspect().get("Labels") or {}).get(naming.PROJECT) == self.name:
                net.remove()
                self.say(_(" Network %(name)s  Removed") % {"name": net.name})
        if volumes:
            self._remove_volumes()

    def _remove_volumes(self) -> None:
        listing = _volume_api("volumes")
        if listing is None:
            return
        for vol in listing(home=self.home):
            if (vol.labels or {}).get(naming.PROJECT) == self.name:
                vol.remove()
                self.say(_(" Volume %(name)s  Removed") % {"name": vol.name})

    def restart(self, service: str | None = None, timeout: float = 10) -> None:
        for ctr in self.containers():
            if service is None or _service_of(ctr) == service:
                if not hasattr(ctr, "restart"):
                    raise LabkitError(_("restart is not available in this engine"))
                ctr.restart(timeout=timeout)
                self.say(_(" Container %(name)s  Restarted") % {"name": ctr.attrs["Name"]})

    def exec(self, service: str, cmd: Any, **kwargs: Any) -> api.Result:
        return self.service(service).exec(cmd, **kwargs)

    def ps(self, all: bool = False) -> str:
        """``docker compose ps``: a table of the project's containers."""
        from .views import ps_table

        return ps_table(self.containers(all=all))

    def logs(self, service: str | None = None) -> str:
        """Each container's log, every line prefixed with its service (``web-1  | ...``)."""
        from .views import prefixed_logs

        return prefixed_logs([c for c in self.containers() if service is None or _service_of(c) == service])

    def config(self) -> str:
        from .views import config_yaml

        return config_yaml(self)


def _volume_api(name: str) -> Any:
    """``labkit.volume`` / ``labkit.volumes`` (labkit/volumes_api.py), None in an engine without them."""
    import labkit

    return getattr(labkit, name, None)


def _service_of(ctr: api.Container) -> str:
    return (ctr.attrs["Config"].get("Labels") or {}).get(naming.SERVICE, "")


def _with_dependencies(model: Model, services: list[str] | None) -> list[str]:
    if not services:
        return model.order()
    for name in services:
        if name not in model.services:
            raise NotFound(_("no such service: %(name)s") % {"name": name})
    wanted: set[str] = set()

    def add(name: str) -> None:
        wanted.add(name)
        for dep in model.services[name].depends_on:
            add(dep)

    for name in services:
        add(name)
    return [n for n in model.order() if n in wanted]


def _port_free(p: dict, service: str) -> None:
    kind = socket.SOCK_STREAM if p["proto"] == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((p["host_ip"] or "0.0.0.0", p["host_port"]))
        except OSError:
            raise LabkitError(_("service %(service)s: port %(port)s/%(proto)s is already in use on the host; "
                                "nothing was created") % {"service": service, "port": p["host_port"],
                                                          "proto": p["proto"]}) from None


def _stop_all(containers: list[api.Container], timeout: float) -> None:
    """SIGTERM to all at once, as compose does: a shell that ignores it costs ``timeout`` once, not per container."""
    from concurrent.futures import ThreadPoolExecutor

    running = [c for c in containers if c.attrs["State"]["Status"] in ALIVE]
    if running:
        with ThreadPoolExecutor(max_workers=len(running)) as pool:
            list(pool.map(lambda c: c.stop(timeout=timeout), running))


def _remove(ctr: api.Container, timeout: float = 10, anonymous: bool = False) -> None:
    if ctr.status in ALIVE:
        ctr.stop(timeout=timeout)
    try:
        ctr.remove(force=True, volumes=anonymous)
    except TypeError:  # an engine without volumes (before the "vol" work)
        ctr.remove(force=True)


def get_project(path: str | os.PathLike = ".", *, project: str | None = None, file: Any = None,
                home: Path | None = None, out: Callable[[str], None] | None = None) -> Project:
    """The project of a compose file (read and checked), without changing anything."""
    model = load(path, file)
    return Project(naming.project_name(project, model.name, model.directory), model, home, out)


def up(path: str | os.PathLike = ".", *, project: str | None = None, detach: bool = True, file: Any = None,
       services: list[str] | None = None, home: Path | None = None,
       out: Callable[[str], None] | None = None) -> Project:
    """``docker compose up -d``: create or update the project of ``path``'s compose file; returns it."""
    proj = get_project(path, project=project, file=file, home=home, out=out)
    proj.up(services)
    if not detach:
        from .views import follow

        follow(proj, sys.stdout)
    return proj


def down(path: str | os.PathLike = ".", *, project: str | None = None, volumes: bool = False,
         file: Any = None, home: Path | None = None, out: Callable[[str], None] | None = None) -> None:
    get_project(path, project=project, file=file, home=home, out=out).down(volumes=volumes)
