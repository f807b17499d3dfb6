"""``run``/``create``'s ``--restart`` and ``--health-*`` flags into the request, and the
health part of ``ps``'s status (kept apart from the verbs: ``containers.py`` imports it)."""
from __future__ import annotations

from ..i18n import _


def run_fields(args) -> dict:
    """The fields of the run request that come from ``--restart`` and ``--health-*``."""
    health = {"test": ["CMD-SHELL", args.health_cmd] if getattr(args, "health_cmd", None) else None,
              "interval": getattr(args, "health_interval", None),
              "timeout": getattr(args, "health_timeout", None),
              "retries": getattr(args, "health_retries", None),
              "start_period": getattr(args, "health_start_period", None)}
    health = {k: v for k, v in health.items() if v is not None}
    if getattr(args, "no_healthcheck", False):
        health["disable"] = True
    fields = {"restart": getattr(args, "restart", None) or "no", "healthcheck": health or None}
    if getattr(args, "create", False):  # `create`: its output goes to its log once started
        fields.update(create_only=True, detach=True)
    return fields


def health_suffix(state: dict) -> str:
    """`` (healthy)``, `` (unhealthy)``, `` (health: starting)``, as ``docker ps``; "" without a check."""
    status = (state.get("Health") or {}).get("Status")
    if status == "healthy":
        return " " + _("(healthy)")
    if status == "unhealthy":
        return " " + _("(unhealthy)")
    if status == "starting":
        return " " + _("(health: starting)")
    return ""
