"""``ps --format``: the part of Docker's Go templates people type, on the inspect documents.

``{{.ID}}``, ``{{.Names}}``, ``{{.Image}}``, ``{{.Command}}``, ``{{.Status}}``, ``{{.State}}``,
``{{.Ports}}``, ``{{.Labels}}`` (``k=v,k2=v2``), ``{{.Label "k"}}``, ``{{json .Labels}}``;
``table`` first prints a header row and separates the columns with tabs, as Docker's.
"""
from __future__ import annotations

import json
import re

from ..errors import LabkitError
from ..i18n import _

_FIELD = re.compile(r"\{\{\s*(json\s+)?\.(\w+)(?:\s+\"([^\"]*)\")?\s*\}\}")


def _value(doc: dict, field: str, arg: str | None, status) -> object:
    labels = (doc.get("Config") or {}).get("Labels") or {}
    values = {
        "ID": doc["Id"][:12], "Names": doc["Name"], "Image": doc.get("ImageRef", ""),
        "Command": '"' + " ".join([doc["Path"]] + doc["Args"]) + '"', "Status": status(doc["State"]),
        "State": doc["State"]["Status"], "CreatedAt": doc.get("Created", ""),
        "Ports": ", ".join(f"{b['HostIp']}:{b['HostPort']}->{k}"
                           for k, binds in sorted(((doc.get("NetworkSettings") or {}).get("Ports") or {}).items())
                           for b in binds or []),
        "Labels": labels,
    }
    if field == "Label":
        return labels.get(arg or "", "")
    if field not in values:
        raise LabkitError(_("template: can't evaluate field %(field)s (known: %(known)s)")
                          % {"field": field, "known": ", ".join(sorted([*values, "Label"]))})
    return values[field]


def render(docs: list[dict], template: str, status) -> str:
    """One line per document; ``status`` turns a State into ps's STATUS text."""
    table = template.startswith("table")
    body = template[5:].strip() if table else template
    body = body.replace("\\t", "\t")

    def line(doc: dict) -> str:
        def sub(m: re.Match) -> str:
            value = _value(doc, m.group(2), m.group(3), status)
            if m.group(1):
                return json.dumps(value, ensure_ascii=False)
            if isinstance(value, dict):
                return ",".join(f"{k}={v}" for k, v in value.items())
            return str(value)

        return _FIELD.sub(sub, body)

    out = [line(d) for d in docs]
    if table:
        out.insert(0, _FIELD.sub(lambda m: (m.group(2) if m.group(2) != "Label" else m.group(3) or "").upper(), body))
    return "\n".join(out)
