"""Push and pull images over the OCI distribution API (what Docker Hub speaks).

Only the standard library: ``http.client`` for the requests, ``ssl`` for HTTPS.
A registry on ``localhost``/``127.0.0.1``/``::1`` is spoken to over plain HTTP,
every other one over HTTPS (verify with the system CAs, or ``ca_file``).

The protocol, in the order a push uses it::

    GET  /v2/                                   -> 200, or 401 + WWW-Authenticate
    HEAD /v2/<repo>/blobs/<digest>              -> 200: the blob is already there, skip it
    POST /v2/<repo>/blobs/uploads/              -> 202 + Location (an upload session)
    PATCH <location>  (Content-Range: a-b)      -> 202 + Location   (chunked upload)
    PUT  <location>?digest=<digest>             -> 201              (closes the upload)
    PUT  /v2/<repo>/manifests/<tag>             -> 201

and a pull: ``GET /v2/<repo>/manifests/<tag>`` (an index is resolved to the
``linux/amd64`` manifest), then ``GET /v2/<repo>/blobs/<digest>`` for the
config and every layer, each checked against its digest.

Authentication: anonymous, ``Basic`` (user and password on every request) and
``Bearer`` (ask the token server named in the 401 challenge for a token, with
the user and password if there are any).
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterator

from ..errors import LabkitError, NotFound
from ..i18n import _

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST))
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
CHUNK = 4 << 20  # bytes per PATCH in a chunked upload


# --------------------------------------------------------------------------- names
@dataclass(frozen=True)
class Reference:
    """``registry/repository:tag`` (or ``@sha256:...``), split as Docker does."""

    registry: str  # "" when the name has no registry part
    repository: str
    tag: str = "latest"
    digest: str = ""

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag

    @property
    def local_name(self) -> str:
        """The name the image gets in the local store."""
        repo = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return f"{repo}@{self.digest}" if self.digest and not self.tag else f"{repo}:{self.tag}"

    def __str__(self) -> str:
        return self.local_name


def parse_reference(name: str) -> Reference:
    """Split ``[host[:port]/]path[:tag][@digest]`` (with :mod:`labkit.images.refs`).

    A name with no registry gets ``registry=""``: the caller decides what that
    means (labkit builds ``busybox`` and ``debian:<suite>`` locally, and other
    names go to Docker Hub).
    """
    from . import refs

    try:
        domain, path, tag, digest = refs.parse(name.strip())
    except LabkitError:
        raise LabkitError(_("invalid image name: %(name)s") % {"name": name}) from None
    if not tag and not digest:
        tag = "latest"
    return Reference(domain or "", path, tag or "", digest or "")


def api_host(ref: Reference) -> str:
    """The host:port the HTTP requests go to."""
    if not ref.registry or ref.registry in ("docker.io", "index.docker.io"):
        return DOCKER_HUB_API
    return ref.registry


def api_repository(ref: Reference) -> str:
    if (not ref.registry or ref.registry in ("docker.io", "index.docker.io")) and "/" not in ref.repository:
        return "library/" + ref.repository
    return ref.repository


def is_loopback(host: str) -> bool:
    h = host
    if h.startswith("["):
        h = h[: h.index("]") + 1]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h in LOOPBACK


# --------------------------------------------------------------------------- credentials
def auth_file() -> Path:
    from ..paths import home

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


# --------------------------------------------------------------------------- client
class RegistryError(LabkitError):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


def _parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    scheme, _sep, rest = value.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


@dataclass
class RegistryClient:
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

    def _auth_header(self) -> dict[str, str]:
        if self._token:
            return {"Authorization": f"Bearer {self._token}"}
        if self._basic and self.username is not None:
            cred = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return {"Authorization": f"Basic {cred}"}
        return {}

    def _authenticate(self, challenge: str, scope: str) -> None:
        scheme, params = _parse_challenge(challenge)
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

    def upload_blob(self, repo: str, digest: str, path: Path, *, chunk_size: int | None = None) -> None:
        """Upload one blob: one PUT (monolithic) or PATCH chunks then PUT (chunked)."""
        scope = f"repository:{repo}:pull,push"
        size = os.path.getsize(path)
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"},
                            body=b"", scope=scope, ok=(202,))
        location = resp.header("location")
        if chunk_size:
            with open(path, "rb") as fh:
                offset = 0
                while offset < size:
                    chunk = fh.read(chunk_size)
                    end = offset + len(chunk) - 1
                    resp = self.request("PATCH", location, scope=scope, ok=(202,), body=chunk, headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(chunk)),
                        "Content-Range": f"{offset}-{end}",
                    })
                    location = resp.header("location") or location
                    offset += len(chunk)
            resp = self.request("PUT", _add_query(location, digest=digest), scope=scope, ok=(201,),
                                body=b"", headers={"Content-Length": "0"})
        else:
            resp = self.request("PUT", _add_query(location, digest=digest), scope=scope, ok=(201,),
                                body=lambda: open(path, "rb"), headers={
                                    "Content-Type": "application/octet-stream",
                                    "Content-Length": str(size),
                                })

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


def _add_query(location: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(location)
    query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def pick_platform(index: dict, os_name: str = "linux", arch: str = "amd64") -> dict:
    """The manifest descriptor for ``os/arch`` in an image index."""
    for desc in index.get("manifests", []):
        plat = desc.get("platform") or {}
        if plat.get("os") == os_name and plat.get("architecture") == arch:
            return desc
    raise NotFound(_("the image has no variant for %(platform)s") % {"platform": f"{os_name}/{arch}"})


# --------------------------------------------------------------------------- push / pull over an OCI layout
def _blob_path(layout: Path, digest: str) -> Path:
    algo, _sep, hexd = digest.partition(":")
    return layout / "blobs" / algo / hexd


def push_layout(client: RegistryClient, layout: Path, manifest_digest: str, ref: Reference, *,
                chunk_size: int | None = None, out: Callable[[str], None] | None = None) -> dict:
    """Send the manifest ``manifest_digest`` of the OCI layout ``layout`` and its blobs.

    Returns counters: ``{"pushed": n, "skipped": n, "digest": manifest digest}``.
    """
    repo = api_repository(ref)
    manifest_bytes = _blob_path(layout, manifest_digest).read_bytes()
    manifest = json.loads(manifest_bytes)
    media_type = manifest.get("mediaType", MT_OCI_MANIFEST)
    descs = [manifest["config"], *manifest.get("layers", [])]
    pushed = skipped = 0
    for desc in descs:
        digest = desc["digest"]
        short = digest.split(":", 1)[1][:12]
        if client.blob_exists(repo, digest):
            skipped += 1
            if out:
                out(_("%(id)s: already in the registry") % {"id": short})
            continue
        client.upload_blob(repo, digest, _blob_path(layout, digest), chunk_size=chunk_size)
        pushed += 1
        if out:
            out(_("%(id)s: sent (%(size)s)") % {"id": short, "size": human_size(desc.get("size", 0))})
    digest = client.put_manifest(repo, ref.reference, manifest_bytes, media_type)
    if out:
        out(_("%(tag)s: digest: %(digest)s size: %(size)d")
            % {"tag": ref.tag or ref.digest, "digest": digest, "size": len(manifest_bytes)})
    return {"pushed": pushed, "skipped": skipped, "digest": digest}


def pull_into_layout(client: RegistryClient, layout: Path, ref: Reference, *,
                     out: Callable[[str], None] | None = None) -> tuple[str, bytes, int]:
    """Download the image ``ref`` into the blobs of the OCI layout ``layout``.

    Blobs already present are not downloaded again. Returns
    ``(manifest digest, manifest bytes, number of blobs downloaded)``; the
    caller records the manifest in ``index.json`` (the store does that).
    Docker schema-2 manifests are kept as they are (skopeo and podman read them).
    """
    repo = api_repository(ref)
    data, media_type, digest = client.get_manifest(repo, ref.reference)
    doc = json.loads(data)
    if media_type in INDEX_TYPES or "manifests" in doc:
        desc = pick_platform(doc)
        data, media_type, digest = client.get_manifest(repo, desc["digest"])
        doc = json.loads(data)
    if media_type not in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST) or "config" not in doc:
        raise RegistryError(_("unsupported manifest type: %(type)s") % {"type": media_type})
    fetched = 0
    for desc in [doc["config"], *doc.get("layers", [])]:
        d = desc["digest"]
        dest = _blob_path(layout, d)
        short = d.split(":", 1)[1][:12]
        if dest.exists():
            if out:
                out(_("%(id)s: already here") % {"id": short})
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        try:
            with open(tmp, "wb") as fh:
                client.fetch_blob(repo, d, fh)
            os.replace(tmp, dest)
        finally:
            if tmp.exists():
                tmp.unlink()
        fetched += 1
        if out:
            out(_("%(id)s: downloaded (%(size)s)") % {"id": short, "size": human_size(desc.get("size", 0))})
    mpath = _blob_path(layout, digest)
    if not mpath.exists():
        mpath.parent.mkdir(parents=True, exist_ok=True)
        tmp = mpath.with_name(f".{mpath.name}.{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, mpath)
    return digest, data, fetched


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1000
    return f"{n}B"


def iter_descriptors(manifest: dict) -> Iterator[dict]:
    yield manifest["config"]
    yield from manifest.get("layers", [])


# --------------------------------------------------------------------------- store level
def _client_for(ref: Reference, *, username: str | None = None, password: str | None = None,
                tls_verify: bool = True, ca_file: str | None = None, secure: bool | None = None) -> RegistryClient:
    return RegistryClient(api_host(ref), username=username, password=password, tls_verify=tls_verify,
                          ca_file=ca_file, secure=secure)


def _say(out):
    if out is None:
        return None
    if hasattr(out, "write"):
        return lambda text: (out.write(text + "\n"), out.flush())
    return out


def pull(name: str, *, store=None, out=None, username: str | None = None, password: str | None = None,
         tls_verify: bool = True, ca_file: str | None = None, secure: bool | None = None):
    """``docker pull``: download ``name`` into the store; return the store ``Image``.

    ``busybox`` is built locally and ``debian:<suite>`` made with debootstrap
    (no registry needed); every other name without a registry goes to Docker Hub.
    """
    from .store import Store

    store = store or Store()
    say = _say(out)
    ref = parse_reference(name)
    if not ref.registry:
        if ref.repository == "debian":
            from . import debian

            return debian.ensure(ref.tag or "stable", store=store, progress=say)
        if ref.repository == "busybox" and ref.tag == "latest":
            return store.resolve("busybox")
    client = _client_for(ref, username=username, password=password, tls_verify=tls_verify,
                         ca_file=ca_file, secure=secure)
    try:
        if say:
            say(_("Pulling %(name)s from %(host)s") % {"name": name, "host": client.host})
        store.layout.ensure()
        with store.layout.writing():
            digest, data, fetched = pull_into_layout(client, store.layout.root, ref, out=say)
            doc = json.loads(data)
            desc = {"mediaType": doc.get("mediaType", MT_OCI_MANIFEST), "digest": digest, "size": len(data)}
            if ref.registry:
                local = ref.local_name
            else:
                local = f"docker.io/{api_repository(ref)}:{ref.tag}" if ref.tag else \
                    f"docker.io/{api_repository(ref)}@{ref.digest}"
            if "@" in local:
                img = store.add(desc, None)
            else:
                img = store.add(desc, local)
    finally:
        client.close()
    if say:
        say(_("Digest: %(digest)s") % {"digest": digest})
        say(_("Status: %(status)s for %(name)s") % {
            "status": _("Downloaded newer image") if fetched else _("Image is up to date"), "name": name})
    return img


def push(name: str, destination: str | None = None, *, store=None, out=None, username: str | None = None,
         password: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
         secure: bool | None = None, chunk_size: int | None = None) -> dict:
    """``docker push``: send the store image ``name`` to its registry (or to ``destination``).

    Returns ``{"pushed": n, "skipped": n, "digest": manifest digest}``.
    """
    from .store import Store

    store = store or Store()
    say = _say(out)
    img = store.resolve(name)
    ref = parse_reference(destination or name)
    if not ref.registry:
        raise LabkitError(_("%(name)s names no registry; use a name like 127.0.0.1:5000/%(repo)s")
                          % {"name": destination or name, "repo": ref.repository})
    client = _client_for(ref, username=username, password=password, tls_verify=tls_verify,
                         ca_file=ca_file, secure=secure)
    try:
        if say:
            say(_("The push refers to repository [%(repo)s]") % {"repo": f"{ref.registry}/{ref.repository}"})
        return push_layout(client, store.layout.root, img.digest, ref, chunk_size=chunk_size, out=say)
    finally:
        client.close()


def login(registry: str, username: str, password: str, *, tls_verify: bool = True,
          ca_file: str | None = None) -> Path:
    """Check the credentials against ``registry`` and save them (``labkit login``)."""
    client = RegistryClient(registry, username=username, password=password, tls_verify=tls_verify,
                            ca_file=ca_file)
    try:
        client.ping()
    finally:
        client.close()
    return save_credentials(registry, username, password)
