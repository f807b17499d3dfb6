"""update: new limits for a running container, written to its cgroup.
"""
from __future__ import annotations

from ..errors import Conflict
from ..i18n import _


class Update:
    """``labkit update``, for :class:`~labkit.engine.server.Engine`."""

    def op_update(self, msg, fds, conn):
        rec = self.find(msg["ref"])
        if not rec.running:
            raise Conflict(_("container %(name)s is not running") % {"name": rec.name})
        from ..kernel.cgroups import Limits

        merged = dict(rec.data["HostConfig"]["Limits"])
        merged.update({k: v for k, v in msg["limits"].items() if v is not None})
        limits = Limits.from_dict(merged)
        self.cgroups.open(rec.cgroup_name).set_limits(limits)
        rec.data["HostConfig"]["Limits"] = limits.as_dict()
        rec.save()
        return {"ok": True, "id": rec.id, "limits": limits.as_dict()}
