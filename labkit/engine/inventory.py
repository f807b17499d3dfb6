"""What this home made: the inventory, recovery after a restart, prune.

``$LABKIT_HOME/inventory`` lists every container (and spare) ever made
here, so that cgroups and directories a killed engine left behind can be
found and removed; only this home's cgroups are touched.
"""
from __future__ import annotations

import os
import selectors
import traceback

from ..errors import NotFound
from ..i18n import _
from .state import Record, process_start_time


class Inventory:
    """Recovery, prune and cleanup of :class:`~labkit.engine.server.Engine`."""

    # -- start-up and recovery --------------------------------------------------
    def recover(self) -> None:
        """Read back what a previous engine left; adopt or clean it."""
        self.cdir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(self.cdir.iterdir()):
            rec = Record.load(entry)
            if rec is None:
                if entry.is_dir() and not (entry / "container.json").exists():
                    import shutil

                    shutil.rmtree(entry, ignore_errors=True)  # half-made by a killed engine
                continue
            self.records[rec.id] = rec
            st = rec.state
            if st["Status"] == "running" and rec.pid and process_start_time(rec.pid) == st.get("StartTime"):
                try:
                    fd = os.pidfd_open(rec.pid)
                except OSError:
                    fd = -1
                if fd >= 0:
                    self.pidfds[fd] = rec.id
                    self.sel.register(fd, selectors.EVENT_READ, ("pidfd", rec.id))
                    continue
            if st["Status"] in ("running", "created") and not self._is_created(rec):
                self._finish(rec, None, _("the engine stopped; the exit status was lost"))
        # cgroups of this home that no container owns: a killed engine's spare, a half-made start
        self._remove_parent_cgroups(self._inventory_ids())
        self.recover_networks()
        self.recover_volumes()  # half-made or half-removed volume directories only
        self.later(0, self._restart_on_engine_start)  # --restart always / unless-stopped (.restarts)

    def op_prune(self, msg, fds, conn):
        removed = []
        known = {entry.name for entry in self.cdir.iterdir()} | self._inventory_ids()
        inventory = self.home / "inventory"
        for rec in list(self.records.values()):
            if not rec.running and not rec.state.get("Restarting"):  # waiting to restart: kept
                removed.append(rec.id)
                self._delete(rec)
        # leftovers a killed engine may have left: directories without a record
        spare = self.spare.cid if self.spare else None
        for entry in self.cdir.iterdir():
            if entry.name not in self.records and entry.name != spare:
                import shutil

                shutil.rmtree(entry, ignore_errors=True)
        self._remove_parent_cgroups(known)
        with open(inventory.with_suffix(".tmp"), "w") as f:  # forget what is fully gone
            f.writelines(f"{r.id} {r.cgroup_name}\n" for r in self.records.values())
            if self.spare is not None:
                f.write(f"{self.spare.cid} {self.spare.cgroup.name}\n")
        os.replace(inventory.with_suffix(".tmp"), inventory)
        return {"ok": True, "removed": removed}

    def _inventory_add(self, cid: str, cgroup_name: str) -> None:
        """Every container (and spare) ever made here, for audits and for pruning after a crash."""
        with open(self.home / "inventory", "a") as inv:
            inv.write(f"{cid} {cgroup_name}\n")

    def _inventory_ids(self) -> set[str]:
        """Every container id (and spare) this home ever made, from ``$LABKIT_HOME/inventory``."""
        try:
            with open(self.home / "inventory") as f:
                return {line.split()[0] for line in f if line.strip()}
        except FileNotFoundError:
            return set()

    # -- cleanup ----------------------------------------------------------------------
    def _remove_parent_cgroups(self, known: set[str] = frozenset()) -> None:
        """Remove cgroups left by this home's containers that no longer run.

        Several engines (one per ``$LABKIT_HOME``) share ``labkit/``: only
        cgroups named after containers of *this* home are touched.
        """
        owned = {r.cgroup_name for r in self.records.values() if r.running}
        if self.spare is not None:
            owned.add(self.spare.cgroup.name)
        mine = {f"labkit/{cid}" for cid in known | set(self.records)}
        try:
            for name in self.cgroups.list("labkit"):
                if name in mine and name not in owned:
                    try:
                        self.cgroups.open(name).remove()
                    except NotFound:
                        pass
        except Exception:  # noqa: BLE001 - cleanup is best effort, reported in the log
            traceback.print_exc()
