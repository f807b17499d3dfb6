"""Authentication: saved credentials (``labkit login``), ``Basic``, and ``Bearer`` tokens.

A registry answers 401 with a ``WWW-Authenticate`` challenge. ``Basic``: the
user and password go with every request. ``Bearer``: ask the token server
named in the challenge (``realm``) for a token for the ``scope``, with the
user and password if there are any, and send the token with every request.
"""
from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from pathlib import Path

from ...i18n import _
from .names import RegistryError


def auth_file() -> Path:
    from ...paths import home

    return Path(os.environ.get("LABKIT_AUTH_FILE") or home() / "auth.json")


def load_credentials(host: str) -> tuple[str, str] | None:
    """User and password saved by ``labkit login`` (Docker's ``config.json`` shape)."""
    env_user = os.environ.get("LABKIT_REGISTRY_USER")
    if env_user:
        return env_user, os.environ.get("LABKIT_REGISTRY_PASSWORD", "")
    path = auth_file()
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    entry = auths.get(host)
    if not entry or "auth" not in entry:
        return None
    user, _sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, password


def save_credentials(host: str, user: str, password: str) -> Path:
    path = auth_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data.setdefault("auths", {})[host] = {
        "auth": base64.b64encode(f"{user}:{password}".encode()).decode()
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    return path


def remove_credentials(host: str) -> bool:
    path = auth_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if data.get("auths", {}).pop(host, None) is None:
        return False
    path.write_text(json.dumps(data, indent=2))
    return True


def parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _sep, rest = value.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class TokenAuth:
    """The authentication half of :class:`~labkit.images.registry.client.RegistryClient`."""

    def _auth_header(self) -> dict[str, str]:
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if self._basic and self.username is not None:
            cred = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return {"Authorization": f"Basic {cred}"}
        return {}

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self.username is None or self._basic:
                raise RegistryError(_("registry %(host)s asks for a user and password (use labkit login)")
                                    % {"host": self.host}, 125)
            self._basic = True
            return
        if scheme != "bearer" or "realm" not in params:
            raise RegistryError(_("registry %(host)s asks for an unknown authentication: %(value)s")
                                % {"host": self.host, "value": challenge})
        query = {"service": params.get("service", "")}
        want_scope = scope or params.get("scope")  # ours asks for push too, so one token serves a push
        if want_scope:
            query["scope"] = want_scope
        url = params["realm"] + ("&" if "?" in params["realm"] else "?") + urllib.parse.urlencode(query)
        headers = {"User-Agent": "labkit"}
        if self.username is not None:
            cred = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {cred}"
        parsed = urllib.parse.urlsplit(url)
        conn = self._connection(parsed.netloc, parsed.scheme == "https")
        try:
            conn.request("GET", urllib.parse.urlunsplit(("", "", parsed.path, parsed.query, "")), headers=headers)
            self.requests += 1
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise RegistryError(_("cannot reach the token server %(url)s: %(err)s")
                                % {"url": params["realm"], "err": exc}) from exc
        finally:
            conn.close()
        if resp.status != 200:
            raise RegistryError(_("registry %(host)s refused the credentials (HTTP %(status)s)")
                                % {"host": self.host, "status": resp.status})
        data = json.loads(body or b"{}")
        self._token = data.get("token") or data.get("access_token")
        if not self._token:
            raise RegistryError(_("the token server of %(host)s sent no token") % {"host": self.host})
