"""The spare: the next container's PID 1, made while the engine is idle.

Namespaces, cgroup and (once an image was run) the overlay root of that
image are made ahead, so ``run`` only has to hand the spare its command.
"""
from __future__ import annotations

import os
import secrets
import traceback

from . import spawn
from .initlayer import init_layer
from ..kernel.userns import rootless


class SparePool:
    """The spare of :class:`~labkit.engine.server.Engine`."""

    def _ensure_spare(self) -> None:
        if self.spare is not None or not self.running or os.environ.get("LABKIT_SPAWN") == "fork":
            return
        from ..kernel.cgroups import Limits

        cid = secrets.token_hex(32)
        name = f"labkit/{cid}"
        self._inventory_add(cid, name)  # listed first: a killed engine's spare is pruned
        cgroup = self.cgroups.open(name, must_exist=False)
        root = None
        if self.next_lowers:
            cdir = self.cdir / cid
            root = {"lowerdirs": self.next_lowers, "initdir": init_layer(self.home),
                    "upperdir": str(cdir / "upper"), "workdir": str(cdir / "work"),
                    "rootfs": str(cdir / "rootfs"), "volumes": []}
            if getattr(self, "next_names", False):  # the last run had a network: /etc's three name files
                root["volumes"] = name_mounts(cdir)
        try:  # the spare makes its cgroup itself; the run's limits come later
            self.spare = spawn.make_spare(cid, cgroup, lambda: self.cgroups.create(name, Limits.partial()), root)
            self.spare.layers = _identity(root["lowerdirs"]) if root else None
        except Exception:  # noqa: BLE001 - without a spare, containers start the usual way
            traceback.print_exc()
            if root is not None and root["volumes"]:  # the name files made above
                import shutil

                shutil.rmtree(self.cdir / cid, ignore_errors=True)

    def _take_spare(self, cfg: dict, lowers: list[str]) -> spawn.Spare | None:
        """The spare, if it fits this request: not ``--network host`` (it has a network
        namespace of its own, where a bridge network's veth is plugged in at claim
        time), no volumes, no ``--device`` (its cgroup and its /dev are made already),
        and the image it built the root of (if it did), with the name files mounted
        if and only if the request has a network.

        A spare's mount namespace is a copy of the host's from when it was
        made; a volume's source may be a mount made since then.
        """
        spare = self.spare
        if spare is None or cfg.get("reuse") or cfg.get("create_only") or cfg.get("volumes") or cfg.get("devices") or cfg.get("privileged") \
                or cfg.get("network") == "host" or (rootless() and cfg.get("network") != "none"):
            return None  # rootless bridge = slirp4netns, with a namespace of its own
        self.spare = None
        names = (cfg.get("network") or "bridge") != "none"
        if spare.root is not None and (spare.root["lowerdirs"] != lowers or _identity(lowers) != spare.layers
                                       or bool(spare.root["volumes"]) != names):
            # another image, or its layers were removed and unpacked again: dropped after the reply
            spare.used = True
            self.dropping.append(spare)
            self.later(0, self._drop_pending)
            return None
        return spare

    def _drop_pending(self) -> None:
        while self.dropping:
            self._discard_spare(self.dropping.pop())

    def _discard_spare(self, spare: spawn.Spare, keep_dir: bool = False, tries: int = 0) -> None:
        """Stop a spare that will not run (engine stopping, another image, a failed start):
        leave nothing. It is killed through its cgroup, which also waits until it is gone;
        its mounts go with its mount namespace.
        """
        spare.used = True
        try:  # it makes its cgroup before it says "ready": removed earlier, it would be left behind
            spare.wait_ready()
        except OSError:  # it died (what it made is removed below), or its socket is closed
            pass
        spare.sock.close()  # a spare that is still waiting sees EOF and leaves
        if not self._remove_spare_cgroup(spare.cgroup) and self.running and tries < 120:
            # still dying (on a loaded machine the kill can outlast remove()'s wait): try again
            # soon rather than leave it to the next engine's start; the directory goes after it
            self.later(0.5, lambda: self._discard_spare(spare, keep_dir, tries + 1))
            return
        if spare.root is not None and not keep_dir:
            import shutil

            shutil.rmtree(self.cdir / spare.cid, ignore_errors=True)
        try:
            os.waitpid(spare.pid, os.WNOHANG)
        except ChildProcessError:  # reaped already
            pass

    def _remove_spare_cgroup(self, cgroup) -> bool:
        try:
            cgroup.remove()  # kills what is in it first, and waits until it is empty
            return True
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            return False


def name_mounts(cdir) -> list[list]:
    """``/etc/resolv.conf``, ``/etc/hostname`` and ``/etc/hosts`` from the container's directory
    (made empty here; the engine writes them in place when the container starts, see .names)."""
    cdir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in ("resolv.conf", "hostname", "hosts"):
        (cdir / name).touch()
        out.append([str(cdir / name), f"/etc/{name}", False])
    return out


def _identity(dirs: list[str]) -> list[tuple[int, int]] | None:
    """(device, inode) of each directory: a layer removed and unpacked again is not the same."""
    try:
        return [(st.st_dev, st.st_ino) for st in map(os.stat, dirs)]
    except OSError:
        return None
