"""The HTTP client of the OCI distribution API: one registry host, one kept-alive connection.

``request`` answers an authentication challenge once (see :mod:`.auth`),
follows redirects, and turns error answers into :class:`RegistryError`.
Blob upload is in :mod:`.upload`.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import IO, Callable

from ...errors import NotFound
from ...i18n import _
from .auth import TokenAuth, load_credentials
from .names import MANIFEST_ACCEPT, MT_OCI_MANIFEST, RegistryError, is_loopback
from .upload import BlobUpload


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class RegistryClient(TokenAuth, BlobUpload):
    """One registry host. ``secure=None`` picks HTTP for loopback, HTTPS otherwise."""

    host: str
    username: str | None = None
    password: str | None = None
    secure: bool | None = None
    tls_verify: bool = True
    ca_file: str | None = None
    timeout: float = 60.0
    _token: str | None = field(default=None, repr=False)
    _basic: bool = field(default=False, repr=False)
    _challenge: tuple[str, dict[str, str]] | None = field(default=None, repr=False)
    _conn: http.client.HTTPConnection | None = field(default=None, repr=False)
    requests: int = 0  # how many HTTP requests were made (tests and benchmarks read it)

    def __post_init__(self) -> None:
        if self.secure is None:
            self.secure = not is_loopback(self.host)
        if self.ca_file is None:
            self.ca_file = os.environ.get("LABKIT_REGISTRY_CA") or None
        if self.username is None:
            creds = load_credentials(self.host)
            if creds:
                self.username, self.password = creds

    # ---- transport
    def _connection(self, host: str | None = None, secure: bool | None = None) -> http.client.HTTPConnection:
        host = host or self.host
        secure = self.secure if secure is None else secure
        if secure:
            ctx = ssl.create_default_context(cafile=self.ca_file)
            if not self.tls_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(host, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(host, timeout=self.timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _raw(self, method: str, url: str, headers: dict[str, str], body=None,
             stream: bool = False) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """One request; ``url`` is a path on this host or an absolute URL."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme:
            same = parsed.netloc == self.host
            secure = parsed.scheme == "https"
            path = urllib.parse.urlunsplit(("", "", parsed.path, parsed.query, ""))
            if not same or secure != self.secure:
                conn = self._connection(parsed.netloc, secure)
                conn.request(method, path, body=body, headers=headers)
                self.requests += 1
                return conn.getresponse(), conn
            url = path
        if self._conn is None:
            self._conn = self._connection()
        try:
            self._conn.request(method, url, body=body, headers=headers)
            self.requests += 1
            return self._conn.getresponse(), self._conn
        except (http.client.HTTPException, OSError):
            self.close()
            raise

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                body: bytes | Callable[[], object] | None = None, scope: str = "",
                ok: tuple[int, ...] = (200,), stream: bool = False,
                allow: tuple[int, ...] = ()) -> Response | http.client.HTTPResponse:
        """Send a request, answering an authentication challenge once.

        ``body`` may be a callable that returns a fresh body (a file object),
        so the request can be sent again after a 401. With ``stream=True`` the
        open response is returned for the caller to read.
        """
        tried_auth = False
        redirects = 0
        while True:
            hdrs = {"User-Agent": "labkit", **(headers or {})}
            parsed_host = urllib.parse.urlsplit(url).netloc
            if not parsed_host or parsed_host == self.host:
                hdrs.update(self._auth_header())
            payload = body() if callable(body) else body
            try:
                try:
                    resp, conn = self._raw(method, url, hdrs, payload, stream)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # the server closed an idle kept-alive connection: once more, on a new one
                    if hasattr(payload, "close"):
                        payload.close()
                    payload = body() if callable(body) else body
                    resp, conn = self._raw(method, url, hdrs, payload, stream)
            except ssl.SSLError as exc:
                raise RegistryError(_("TLS error talking to %(host)s: %(err)s (use --ca-file or --tls-verify=false)")
                                    % {"host": self.host, "err": exc}) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise RegistryError(_("cannot reach the registry %(host)s: %(err)s")
                                    % {"host": self.host, "err": exc}) from exc
            finally:
                if hasattr(payload, "close"):
                    payload.close()
            if resp.status == 401 and not tried_auth:
                resp.read()
                challenge = resp.getheader("WWW-Authenticate", "")
                tried_auth = True
                self._authenticate(challenge, scope)
                continue
            if resp.status in (301, 302, 303, 307, 308) and method in ("GET", "HEAD") and redirects < 5:
                resp.read()
                url = urllib.parse.urljoin(self._base() + url if url.startswith("/") else url,
                                           resp.getheader("Location", ""))
                redirects += 1
                continue
            if resp.status == 401:
                resp.read()
                raise RegistryError(_("registry %(host)s refused the credentials (HTTP %(status)s)")
                                    % {"host": self.host, "status": resp.status})
            if resp.status not in ok and resp.status not in allow:
                data = resp.read()
                raise self._error(resp.status, data, url)
            if stream:
                return resp
            data = resp.read()
            if conn is not self._conn:
                conn.close()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)

    def _base(self) -> str:
        return ("https://" if self.secure else "http://") + self.host

    def _error(self, status: int, data: bytes, url: str) -> RegistryError:
        detail = ""
        try:
            errors = json.loads(data).get("errors") or []
            detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
        except (ValueError, AttributeError):
            detail = data[:200].decode(errors="replace")
        if status == 404:
            return NotFound(_("not found in the registry %(host)s: %(url)s %(detail)s")
                            % {"host": self.host, "url": url, "detail": detail})
        return RegistryError(_("registry %(host)s answered HTTP %(status)s to %(url)s: %(detail)s")
                             % {"host": self.host, "status": status, "url": url, "detail": detail})

    # ---- API
    def ping(self) -> None:
        self.request("GET", "/v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull,push",
                            allow=(404,))
        return resp.status == 200

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        self.request("PUT", f"/v2/{repo}/manifests/{reference}", body=data, ok=(201, 200),
                     scope=f"repository:{repo}:pull,push",
                     headers={"Content-Type": media_type, "Content-Length": str(len(data))})
        return "sha256:" + hashlib.sha256(data).hexdigest()

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """Return (bytes, media type, digest) of a manifest or index."""
        resp = self.request("GET", f"/v2/{repo}/manifests/{reference}", scope=f"repository:{repo}:pull",
                            headers={"Accept": MANIFEST_ACCEPT})
        data = resp.body
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(_("manifest digest mismatch: expected %(want)s, got %(got)s")
                                % {"want": reference, "got": digest})
        media_type = resp.header("content-type").split(";")[0].strip()
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = json.loads(data).get("mediaType", MT_OCI_MANIFEST)
        return data, media_type, digest

    def fetch_blob(self, repo: str, digest: str, out: IO[bytes],
                   progress: Callable[[int], None] | None = None) -> int:
        """Stream a blob into ``out``, verifying its digest; return its size."""
        resp = self.request("GET", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull", stream=True)
        h = hashlib.sha256()
        n = 0
        try:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
                if progress:
                    progress(len(chunk))
        finally:
            if resp.will_close or resp.fp is None:
                self.close()
        got = "sha256:" + h.hexdigest()
        if got != digest:
            raise RegistryError(_("blob digest mismatch: expected %(want)s, got %(got)s")
                                % {"want": digest, "got": got})
        return n
