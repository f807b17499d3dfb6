"""Volumes: data that outlives its container, kept by the engine as plain directories.

A volume is ``$LABKIT_HOME/volumes/<name>/_data`` (what the container sees) next to
``volume.json`` (its labels and creation time), Docker's ``local`` driver without
options. An anonymous volume has a 64-hex name and Docker's label
``com.docker.volume.anonymous``; it comes from an image's ``VOLUME`` or from ``-v /path``
and goes with its container when that was ``--rm`` or is removed with ``rm -v``.

This module turns a run request's storage (``volumes``, ``mounts``, ``tmpfs``,
``volumes_from``, the image's ``VOLUME``) into the list of mounts ``rootfs.build``
makes, and keeps what ``inspect`` shows of them. The copy of the image's content
into an empty volume (Docker's copy-up) happens in the container's child, on its
own root: see :mod:`.copyup`.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from .. import paths
from ..errors import Conflict, LabkitError, NotFound
from ..i18n import _
from ..volspec import VOLUME_NAME, check_volume_name, normalize, parse_mount, parse_tmpfs, parse_volumes_from
from .state import Record, now

ANONYMOUS = "com.docker.volume.anonymous"  # Docker's label (23.0+): what `volume prune` removes


class Volumes:
    """The volume operations of :class:`~labkit.engine.server.Engine`."""

    # -- the store ---------------------------------------------------------------------
    @property
    def vdir(self) -> Path:
        return paths.volumes_dir(self.home)

    def _volume_doc(self, name: str) -> dict | None:
        try:
            with open(self.vdir / name / "volume.json") as f:
                meta = json.load(f)
        except (OSError, ValueError):
            if not (self.vdir / name / "_data").is_dir():
                return None
            meta = {}  # a volume directory without its metadata (a killed engine): still a volume
        return {"CreatedAt": meta.get("CreatedAt", ""), "Driver": "local", "Labels": meta.get("Labels") or {},
                "Mountpoint": str(self.vdir / name / "_data"), "Name": name, "Options": {}, "Scope": "local"}

    def _volume_get(self, name: str) -> dict:
        doc = self._volume_doc(name) if isinstance(name, str) and VOLUME_NAME.fullmatch(name) else None
        if doc is None:
            raise NotFound(_("no such volume: %(name)s") % {"name": name})
        return doc

    def _volume_make(self, name: str | None, labels: dict | None = None) -> tuple[dict, bool]:
        """The volume ``name`` (made if missing), and whether it was made now."""
        if name:
            check_volume_name(name)
            doc = self._volume_doc(name)
            if doc is not None:
                return doc, False
        else:
            name = secrets.token_hex(32)
            labels = {**(labels or {}), ANONYMOUS: ""}
        self.vdir.mkdir(mode=0o701, exist_ok=True)
        tmp = self.vdir / f".new-{secrets.token_hex(8)}"
        tmp.mkdir(mode=0o701)
        try:
            (tmp / "_data").mkdir(mode=0o755)
            created = now()
            created = created[:19] + "Z"
            with open(tmp / "volume.json", "w") as f:
                json.dump({"Name": name, "Labels": dict(labels or {}), "CreatedAt": created}, f)
            os.rename(tmp, self.vdir / name)  # whole or absent, even if the engine is killed
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self._volume_get(name), True

    def _volume_users(self, name: str, but: str | None = None) -> list[Record]:
        return [r for r in self.records.values() if r.id != but and any(
            m.get("Type") == "volume" and m.get("Name") == name for m in r.data.get("Mounts") or [])]

    def _volume_delete(self, name: str) -> None:
        victim = self.vdir / f".gone-{secrets.token_hex(8)}"
        os.rename(self.vdir / name, victim)  # gone from the list at once, then emptied
        shutil.rmtree(victim, ignore_errors=True)

    def recover_volumes(self) -> None:
        """What a killed engine left half-done: a volume being made or being removed.
        Whole volumes, named or anonymous, are data: never touched here."""
        if self.vdir.is_dir():
            for entry in os.listdir(self.vdir):
                if entry.startswith((".new-", ".gone-")):
                    shutil.rmtree(self.vdir / entry, ignore_errors=True)

    # -- requests ----------------------------------------------------------------------
    def op_volume_create(self, msg, fds, conn):
        labels = msg.get("labels") or {}
        if not isinstance(labels, dict):
            raise LabkitError(_("labels must be KEY=VALUE pairs"))
        doc, _made = self._volume_make(msg.get("name") or None, labels)
        return {"ok": True, "volume": doc}

    def op_volume_inspect(self, msg, fds, conn):
        return {"ok": True, "volume": self._volume_get(msg.get("name"))}

    def op_volume_list(self, msg, fds, conn):
        docs = []
        if self.vdir.is_dir():
            for entry in sorted(os.listdir(self.vdir)):
                if not entry.startswith("."):
                    doc = self._volume_doc(entry)
                    if doc is not None:
                        docs.append(doc)
        return {"ok": True, "volumes": docs}

    def op_volume_rm(self, msg, fds, conn):
        name = msg.get("name")
        self._volume_get(name)
        users = self._volume_users(name)
        if users:  # Docker refuses even with -f: the data of a container that may start again
            raise Conflict(_("remove %(name)s: volume is in use by %(containers)s; remove the "
                             "container(s) first (labkit rm)") % {
                "name": name, "containers": ", ".join(f"{r.name} ({r.id[:12]})" for r in users)})
        self._volume_delete(name)
        return {"ok": True, "name": name}

    def op_volume_prune(self, msg, fds, conn):
        """Docker 23's rule: unused anonymous volumes; with ``all``, unused named ones too."""
        removed = []
        for doc in self.op_volume_list(msg, fds, conn)["volumes"]:
            if (msg.get("all") or ANONYMOUS in doc["Labels"]) and not self._volume_users(doc["Name"]):
                self._volume_delete(doc["Name"])
                removed.append(doc["Name"])
        return {"ok": True, "removed": removed}

    # -- a container's storage ---------------------------------------------------------
    def _volumes_for(self, cfg: dict, icfg: dict) -> list[dict]:
        """The mounts of a run request, in the order they are made, volumes created on first
        use (listed in ``cfg["_volumes_made"]`` so a failed start removes them)."""
        made = cfg["_volumes_made"] = []  # the engine's own list, never the client's
        cfg["_image_volumes"] = sorted(icfg.get("Volumes") or {})
        # strings as typed (a compose file, a raw request) or the client's dicts, checked again
        user = [{**normalize(m), "origin": "v"} for m in cfg.get("volumes") or []]
        user += [{**parse_mount(m), "origin": "mount"} for m in cfg.get("mounts") or []]
        user += [{**m, "origin": "tmpfs"} for m in parse_tmpfs(cfg.get("tmpfs"))]
        seen: set[str] = set()
        for m in user:
            if m["target"] in seen:  # Docker: "Duplicate mount point"
                raise LabkitError(_("duplicate mount point: %(path)s") % {"path": m["target"]})
            seen.add(m["target"])
        inherited = []
        for ref in parse_volumes_from(cfg.get("volumes_from")):
            name, _sep, mode = ref.partition(":")
            other = self.find(name)
            for m in other.data.get("Mounts") or []:
                if m["Destination"] in seen or m.get("Type") not in ("bind", "volume"):
                    continue  # what this container mounts itself wins, as in Docker
                seen.add(m["Destination"])
                ro = not m["RW"] if not mode else mode == "ro"
                inherited.append({"type": m["Type"], "source": m.get("Name") or m["Source"],
                                  "target": m["Destination"], "readonly": ro, "nocopy": True,
                                  "options": "", "flags": [], "mode": mode or m.get("Mode", "")})
        image = [{"type": "volume", "source": "", "target": os.path.normpath(path), "readonly": False,
                  "nocopy": False, "options": "", "flags": [], "mode": "", "image": True}
                 for path in sorted(icfg.get("Volumes") or {}) if os.path.normpath(path) not in seen]
        out = []
        for m in [*inherited, *image, *user]:
            if m["type"] == "bind":
                _check_bind_source(m["source"], self.home)
            elif m["type"] == "volume":
                doc, new = self._volume_make(m["source"] or None)
                if new:
                    made.append(doc["Name"])
                m = {**m, "name": doc["Name"], "source": doc["Mountpoint"],
                     "anonymous": ANONYMOUS in doc["Labels"]}
            out.append(m)
        return out

    def _volumes_undo(self, cfg: dict) -> None:
        """A start that failed: the volumes it made go (nothing left behind)."""
        for name in cfg.pop("_volumes_made", []):
            if (self.vdir / name).is_dir() and not self._volume_users(name):
                self._volume_delete(name)

    def _volumes_into(self, rec: Record, cfg: dict) -> None:
        """What ``inspect`` shows: ``Mounts`` and the request's fields, as Docker's."""
        mounts = []
        for m in cfg.get("volumes") or []:
            if not isinstance(m, dict) or m.get("origin") == "tmpfs":
                continue  # --tmpfs shows in HostConfig.Tmpfs only, as in Docker
            entry = {"Type": m["type"]}
            if m["type"] == "volume":
                entry["Name"] = m["name"]
            entry.update({"Source": m["source"], "Destination": m["target"]})
            if m["type"] == "volume":
                entry["Driver"] = "local"
            mode = m.get("mode") or ("z" if m.get("origin") == "v" and m["type"] == "volume"
                                     and not m.get("anonymous") else "")  # Docker's default for -v NAME:DST
            entry.update({"Mode": mode, "RW": not m["readonly"],
                          "Propagation": "rprivate" if m["type"] == "bind" else ""})
            mounts.append(entry)
        rec.data["Mounts"] = mounts
        host = rec.data["HostConfig"]
        host["Binds"] = [_bind_text(m) for m in cfg.get("volumes") or []
                         if isinstance(m, dict) and m.get("origin") == "v" and not m.get("anonymous")] or None
        host["Mounts"] = [{"Type": m["type"], "Source": m.get("name", m["source"]), "Target": m["target"],
                           "ReadOnly": m["readonly"]} for m in cfg.get("volumes") or []
                          if isinstance(m, dict) and m.get("origin") == "mount"] or None
        host["Tmpfs"] = {m["target"]: m["options"] for m in cfg.get("volumes") or []
                         if isinstance(m, dict) and m.get("origin") == "tmpfs"} or None
        host["VolumesFrom"] = list(cfg.get("volumes_from") or []) or None
        anonymous = [m["target"] for m in cfg.get("volumes") or [] if isinstance(m, dict) and m.get("origin") == "v"
                     and m.get("anonymous")]  # `-v /path`: Docker lists it with the image's VOLUMEs
        rec.data["Config"]["Volumes"] = {p: {} for p in [*(cfg.get("_image_volumes") or []), *anonymous]} or None

    def _volumes_on_rm(self, rec: Record, msg: dict) -> None:
        """``rm -v`` (or a ``--rm`` container removed by hand): its anonymous volumes go too."""
        rec.data["labkitRemoveVolumes"] = bool(msg.get("volumes") or rec.data["HostConfig"].get("AutoRemove"))

    def _volumes_release(self, rec: Record) -> None:
        """The container goes: its anonymous volumes with it when it was ``--rm`` or
        ``rm -v``, unless another container still uses them (``--volumes-from``)."""
        if not rec.data.get("labkitRemoveVolumes", rec.data["HostConfig"].get("AutoRemove")):
            return
        for m in rec.data.get("Mounts") or []:
            name = m.get("Name")
            if m.get("Type") == "volume" and name and not self._volume_users(name, but=rec.id):
                doc = self._volume_doc(name)
                if doc is not None and ANONYMOUS in doc["Labels"] and not self._used_on_disk(name, rec.id):
                    self._volume_delete(name)

    def _used_on_disk(self, name: str, but: str) -> bool:
        """A container not read back yet (recovery goes one directory at a time) may use it too."""
        for entry in os.listdir(self.cdir) if self.cdir.is_dir() else ():
            if entry != but and entry not in self.records:
                other = Record.load(self.cdir / entry)
                if other is not None and any(m.get("Type") == "volume" and m.get("Name") == name
                                             for m in other.data.get("Mounts") or []):
                    return True
        return False


def _bind_text(m: dict) -> str:
    return f"{m.get('name') or m['source']}:{m['target']}{':' + m['mode'] if m.get('mode') else ''}"


def _check_bind_source(source: str, home: Path) -> None:
    """A bind's source exists, and is neither ``/`` nor the engine's state nor a parent of it:
    a container given those could rewrite every other container, image and volume."""
    if not os.path.exists(source):
        raise NotFound(_("volume source does not exist: %(path)s") % {"path": source})
    real = os.path.realpath(source)
    state = os.path.realpath(home)
    if real == "/" or state == real or state.startswith(real.rstrip("/") + "/"):
        raise LabkitError(_("refusing to mount %(path)s into a container: it is / or holds the "
                            "engine's state (%(home)s)") % {"path": source, "home": state})
