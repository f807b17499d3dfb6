"""``ps --format``: Docker's Go template subset on inspect documents (no engine needed)."""
from __future__ import annotations

import pytest

from labkit.cli.formats import render
from labkit.errors import LabkitError

DOCS = [
    {"Id": "a" * 64, "Name": "web", "ImageRef": "busybox", "Path": "httpd", "Args": ["-f"],
     "State": {"Status": "running"}, "Created": "2026-01-01T00:00:00.000000Z",
     "Config": {"Labels": {"curso": "sim", "tier": "front"}},
     "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}}},
    {"Id": "b" * 64, "Name": "db", "ImageRef": "redis", "Path": "redis-server", "Args": [],
     "State": {"Status": "exited"}, "Config": {"Labels": {}}},
]


def status(state: dict) -> str:
    return state["Status"].upper()


def test_fields_labels_and_json():
    assert render(DOCS, "{{.Names}} {{.Label \"curso\"}}", status) == "web sim\ndb "
    assert render(DOCS[:1], "{{.ID}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.State}}|{{.Ports}}", status) == \
        'aaaaaaaaaaaa|busybox|"httpd -f"|RUNNING|running|127.0.0.1:8080->80/tcp'
    assert render(DOCS[:1], "{{.Labels}}", status) == "curso=sim,tier=front"
    assert render(DOCS[:1], "{{json .Labels}}", status) == '{"curso": "sim", "tier": "front"}'


def test_table_has_a_header_and_tabs():
    out = render(DOCS, "table {{.Names}}\\t{{.Label \"tier\"}}", status).splitlines()
    assert out == ["NAMES\tTIER", "web\tfront", "db\t"]


def test_an_unknown_field_is_an_error():
    with pytest.raises(LabkitError, match="Nope"):
        render(DOCS, "{{.Nope}}", status)
