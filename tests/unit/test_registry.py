"""Registry client against a small in-process fake registry (bearer tokens, chunked uploads)."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labkit.errors import LabkitError, NotFound
from labkit.images import registry as reg
from labkit.images.layout import MT_CONFIG, MT_LAYER_GZIP, MT_MANIFEST, Layout


class FakeRegistry:
    """Just enough of the distribution API, with a token server on the same port."""

    def __init__(self, users: dict[str, str] | None = None, bearer: bool = True) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.users = users
        self.bearer = bearer
        self.tokens: set[str] = set()
        self.log: list[tuple[str, str]] = []
        self.scopes: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                if outer.users is None:
                    return True
                if outer.bearer:
                    return auth.startswith("Bearer ") and auth[7:] in outer.tokens
                if auth.startswith("Basic "):
                    user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    return outer.users.get(user) == pw
                return False

            def _challenge(self):
                host = self.headers["Host"]
                if outer.bearer:
                    value = f'Bearer realm="http://{host}/token",service="fake"'
                else:
                    value = 'Basic realm="fake"'
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"no"}]}',
                           {"WWW-Authenticate": value})

            def handle_one(self):
                body = self._body() if self.command in ("PUT", "POST", "PATCH") else b""
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                outer.log.append((self.command, url.path))
                if url.path == "/token":
                    auth = self.headers.get("Authorization", "")
                    ok = auth.startswith("Basic ")
                    if ok:
                        user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                        ok = outer.users.get(user) == pw
                    if not ok:
                        return self._send(401, b"{}")
                    outer.scopes.append(q.get("scope", ""))
                    tok = uuid.uuid4().hex
                    outer.tokens.add(tok)
                    return self._send(200, json.dumps({"token": tok}).encode())
                if not self._authorized():
                    return self._challenge()
                parts = url.path.split("/")
                if url.path == "/v2/":
                    return self._send(200, b"{}")
                if "blobs" in parts and "uploads" not in parts:
                    digest = parts[-1]
                    if digest not in outer.blobs:
                        return self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}')
                    data = outer.blobs[digest]
                    return self._send(200, data, {"Docker-Content-Digest": digest})
                if "uploads" in parts:
                    if self.command == "POST":
                        uid = uuid.uuid4().hex
                        outer.uploads[uid] = bytearray()
                        loc = url.path + uid
                        return self._send(202, b"", {"Location": loc, "Range": "0-0"})
                    uid = parts[-1]
                    buf = outer.uploads[uid]
                    if self.command == "PATCH":
                        start = int(self.headers["Content-Range"].split("-")[0])
                        assert start == len(buf)
                        buf += body
                        return self._send(202, b"", {"Location": url.path, "Range": f"0-{len(buf)-1}"})
                    if self.command == "PUT":
                        buf += body
                        digest = q["digest"]
                        if "sha256:" + hashlib.sha256(buf).hexdigest() != digest:
                            return self._send(400, b'{"errors":[{"code":"DIGEST_INVALID","message":"x"}]}')
                        outer.blobs[digest] = bytes(buf)
                        return self._send(201, b"", {"Location": f"/v2/x/blobs/{digest}"})
                if "manifests" in parts:
                    repo = "/".join(parts[2:-2])
                    ref = parts[-1]
                    if self.command == "PUT":
                        digest = "sha256:" + hashlib.sha256(body).hexdigest()
                        ct = self.headers["Content-Type"]
                        outer.manifests[(repo, ref)] = (body, ct)
                        outer.manifests[(repo, digest)] = (body, ct)
                        return self._send(201, b"", {"Docker-Content-Digest": digest})
                    if (repo, ref) not in outer.manifests:
                        return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}')
                    data, ct = outer.manifests[(repo, ref)]
                    return self._send(200, data, {"Content-Type": ct})
                return self._send(404, b"{}")

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def layout(tmp_path):
    lay = Layout(tmp_path / "src").ensure()
    layer = lay.put_blob(b"\x1f\x8b" + b"layer-bytes" * 1000)
    config = lay.put_json({"architecture": "amd64", "os": "linux",
                           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}, MT_CONFIG)
    manifest = lay.put_json({"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": config,
                             "layers": [{"mediaType": MT_LAYER_GZIP, **layer}]}, MT_MANIFEST)
    return lay, manifest


def test_parse_reference():
    r = reg.parse_reference("127.0.0.1:5000/lab/img:v1")
    assert (r.registry, r.repository, r.tag) == ("127.0.0.1:5000", "lab/img", "v1")
    r = reg.parse_reference("busybox")
    assert (r.registry, r.repository, r.tag) == ("", "busybox", "latest")
    assert reg.api_repository(r) == "library/busybox" and reg.api_host(r) == "registry-1.docker.io"
    r = reg.parse_reference("localhost/a@sha256:" + "a" * 64)
    assert r.registry == "localhost" and r.reference == "sha256:" + "a" * 64
    r = reg.parse_reference("localhost:5000/a")
    assert r.registry == "localhost:5000" and r.tag == "latest"
    for bad in ("UPPER/x", "a b", "x:", "a@sha256:zz"):
        with pytest.raises(LabkitError):
            reg.parse_reference(bad)
    assert reg.is_loopback("127.0.0.1:5000") and reg.is_loopback("localhost")
    assert reg.is_loopback("[::1]:5000") and not reg.is_loopback("example.com:5000")


@pytest.mark.parametrize("chunk", [None, 4096])
def test_push_pull_bearer(layout, tmp_path, chunk):
    lay, manifest = layout
    fake = FakeRegistry(users={"ana": "s3cret"}, bearer=True)
    try:
        ref = reg.parse_reference(f"{fake.host}/curso/img:v1")
        client = reg.RegistryClient(fake.host, username="ana", password="s3cret")
        stats = reg.push_layout(client, lay.root, manifest["digest"], ref, chunk_size=chunk)
        assert stats == {"pushed": 2, "skipped": 0, "digest": manifest["digest"]}
        assert "repository:curso/img:pull,push" in fake.scopes
        if chunk:
            assert sum(1 for m, p in fake.log if m == "PATCH") >= 3
        # second push: blobs exist, only HEADs and the manifest
        stats = reg.push_layout(client, lay.root, manifest["digest"], ref, chunk_size=chunk)
        assert stats["pushed"] == 0 and stats["skipped"] == 2
        # pull into an empty layout with a fresh client
        dst = Layout(tmp_path / "dst").ensure()
        client2 = reg.RegistryClient(fake.host, username="ana", password="s3cret")
        digest, data, fetched = reg.pull_into_layout(client2, dst.root, ref)
        assert digest == manifest["digest"] and fetched == 2
        for d in (manifest["digest"], json.loads(data)["config"]["digest"]):
            assert dst.read_blob(d, verify=True)
        # wrong password: the token server refuses
        bad = reg.RegistryClient(fake.host, username="ana", password="nope")
        with pytest.raises(reg.RegistryError):
            bad.ping()
        anon = reg.RegistryClient(fake.host, username=None)
        anon.username = None
        with pytest.raises(reg.RegistryError):
            reg.pull_into_layout(anon, dst.root, ref)
    finally:
        fake.close()


def test_basic_auth_and_missing(layout, tmp_path):
    lay, manifest = layout
    fake = FakeRegistry(users={"ana": "pw"}, bearer=False)
    try:
        ref = reg.parse_reference(f"{fake.host}/img")
        client = reg.RegistryClient(fake.host, username="ana", password="pw")
        reg.push_layout(client, lay.root, manifest["digest"], ref)
        with pytest.raises(NotFound):
            reg.pull_into_layout(client, Layout(tmp_path / "d").ensure().root,
                                 reg.parse_reference(f"{fake.host}/img:nope"))
    finally:
        fake.close()


def test_credentials_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("LABKIT_REGISTRY_USER", raising=False)
    assert reg.load_credentials("h:1") is None
    path = reg.save_credentials("h:1", "ana", "pw:x")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert reg.load_credentials("h:1") == ("ana", "pw:x")
    assert reg.remove_credentials("h:1") and reg.load_credentials("h:1") is None


def test_index_picks_amd64():
    idx = {"manifests": [{"digest": "a", "platform": {"os": "linux", "architecture": "arm64"}},
                         {"digest": "b", "platform": {"os": "linux", "architecture": "amd64"}}]}
    assert reg.pick_platform(idx)["digest"] == "b"
