"""push/pull against a real registry (Debian's docker-registry) on 127.0.0.1, checked with skopeo and podman."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import textwrap
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from requirements import needs_tool, optional_tool, require_tool

REGISTRY = shutil.which("docker-registry")
SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")

pytestmark = [pytest.mark.root, needs_tool("docker-registry", package="docker-registry")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Registry:
    def __init__(self, root: Path, htpasswd: dict[str, str] | None = None, tls: bool = False,
                 token: "TokenServer | None" = None) -> None:
        self.root = root
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        auth = ""
        if htpasswd:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt
            lines = [f"{u}:{crypt.crypt(p, crypt.mksalt(crypt.METHOD_BLOWFISH))}" for u, p in htpasswd.items()]
            (root / "htpasswd").write_text("\n".join(lines) + "\n")
            auth = textwrap.dedent(f"""\
                auth:
                  htpasswd:
                    realm: labkit-test
                    path: {root / 'htpasswd'}
                """)
        tls_conf = ""
        self.ca = None
        if tls:
            key, cert = root / "key.pem", root / "cert.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                            "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
            self.ca = str(cert)
            tls_conf = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        if token is not None:
            auth = textwrap.dedent(f"""\
                auth:
                  token:
                    realm: {token.realm}
                    service: labkit-test
                    issuer: labkit-test-issuer
                    rootcertbundle: {token.cert}
                """)
        (root / "config.yml").write_text(textwrap.dedent(f"""\
            version: 0.1
            log:
              level: error
              accesslog:
                disabled: true
            storage:
              filesystem:
                rootdirectory: {root / 'data'}
              delete:
                enabled: true
            http:
              addr: {self.host}
              secret: labkit-test-secret
            """) + tls_conf + auth)
        self.log = open(root / "registry.log", "wb")
        self.proc = subprocess.Popen([REGISTRY, "serve", str(root / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        import ssl

        ctx = ssl.create_default_context(cafile=self.ca) if tls else None
        scheme = "https" if tls else "http"
        while True:
            try:
                urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=1, context=ctx)
                break
            except urllib.error.HTTPError:
                break  # 401: up, and asking for credentials
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "registry.log").read_text())
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class TokenServer:
    """A bearer-token server for docker-registry's ``auth: token``: checks a user and password,
    then signs a JWT (RS256, ``x5c`` header) with a self-signed key, using ``openssl dgst``."""

    def __init__(self, root: Path, users: dict[str, str]) -> None:
        import base64
        import json as _json
        import threading
        import urllib.parse
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.key, self.cert = root / "token-key.pem", root / "token-cert.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(self.key), "-out", str(self.cert), "-subj", "/CN=labkit-token"],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        x5c = base64.b64encode(der).decode()
        self.issued: list[str] = []
        outer = self

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
                auth = self.headers.get("Authorization", "")
                user = None
                if auth.startswith("Basic "):
                    u, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                    if users.get(u) == pw:
                        user = u
                if user is None:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                access = []
                for scope in q.get("scope", "").split():
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                header = {"alg": "RS256", "typ": "JWT", "x5c": [x5c]}
                claims = {"iss": "labkit-test-issuer", "sub": user, "aud": q.get("service", ""),
                          "exp": now + 300, "nbf": now - 10, "iat": now, "jti": os.urandom(8).hex(),
                          "access": access}
                signing = f"{b64(_json.dumps(header).encode())}.{b64(_json.dumps(claims).encode())}"
                sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(outer.key)],
                                     input=signing.encode(), check=True, capture_output=True).stdout
                tok = f"{signing}.{b64(sig)}"
                outer.issued.append(q.get("scope", ""))
                body = _json.dumps({"token": tok, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry(tmp_path):
    reg = Registry(tmp_path)
    yield reg
    reg.stop()


@pytest.fixture
def auth_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("LABKIT_REGISTRY_USER", raising=False)
    reg = Registry(tmp_path, htpasswd={"ana": "s3cr3t"})
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def small_image(tmp_path_factory):
    """A two-layer image built by labkit (busybox + COPY), no RUN needed."""
    from labkit.images.build import build

    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "a.txt").write_text("olá do labkit\n")
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY a.txt /a.txt\nCMD ["cat", "/a.txt"]\n')
    return build(ctx, "lab/registry-test:v1", quiet=True)


def _skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120)


def _podman(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """podman with private state under ``tmp`` (short: podman limits runroot to 50 characters)."""
    base = [PODMAN, "--root", str(tmp / "root"), "--runroot", str(tmp / "run"), "--tmpdir",
            str(tmp / "tmp"), "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
            "--events-backend", "none", "--runtime", "runc"]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=300, cwd=tmp)


@pytest.fixture
def podman_dir():
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="lkpm-", dir="/tmp"))
    yield d
    _podman(d, "system", "reset", "-f")
    shutil.rmtree(d, ignore_errors=True)


def test_labkit_push_skopeo_inspect_podman_run(registry, small_image, podman_dir):
    from labkit.images import registry as reg

    dest = f"{registry.host}/curso/lab:v1"
    stats = reg.push(small_image.ref, dest)
    assert stats["pushed"] == 3 and stats["skipped"] == 0
    assert stats["digest"] == small_image.digest
    # again: every blob is already there (HEAD), only the manifest is sent
    again = reg.push(small_image.ref, dest)
    assert again["pushed"] == 0 and again["skipped"] == 3
    require_tool("skopeo", package="skopeo")
    out = _skopeo("inspect", "--tls-verify=false", f"docker://{dest}")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["Digest"] == small_image.digest
    assert info["Layers"] == [d["digest"] for d in small_image.layers]
    require_tool("podman", package="podman")
    r = _podman(podman_dir, "pull", "-q", "--tls-verify=false", dest)
    assert r.returncode == 0, r.stderr
    r = _podman(podman_dir, "run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000",
                "--ulimit", "nproc=4096:4096", dest)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "olá do labkit\n"


def test_chunked_push(registry, small_image):
    from labkit.images import registry as reg

    dest = f"{registry.host}/curso/chunked:v1"
    stats = reg.push(small_image.ref, dest, chunk_size=64 * 1024)
    assert stats["pushed"] == 3
    if optional_tool("skopeo", package="skopeo"):
        out = _skopeo("inspect", "--tls-verify=false", f"docker://{dest}")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["Digest"] == small_image.digest


@needs_tool("skopeo", package="skopeo")
@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_skopeo_push_labkit_pull_run(registry, tmp_path, fmt):
    """An image made elsewhere (another labkit home), pushed by skopeo, pulled and run by labkit."""
    import uuid

    import labkit
    from labkit.images import registry as reg
    from labkit.images.build import build
    from labkit.images.store import Store

    token = uuid.uuid4().hex
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "t.txt").write_text(token + "\n")
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY t.txt /t.txt\nCMD ["cat", "/t.txt"]\n')
    other = Store(tmp_path / "other-home")
    made = build(ctx, "elsewhere:v1", quiet=True, home=other.home)
    src = f"oci:{other.layout.root}:{made.ref}"
    dest = f"{registry.host}/sk/lab-{fmt}:v1"
    out = _skopeo("copy", "--dest-tls-verify=false", "--format", fmt, src, f"docker://{dest}")
    assert out.returncode == 0, out.stderr
    lines: list[str] = []
    img = reg.pull(dest, out=lines.append)
    assert img.ref == dest
    if fmt == "v2s2":
        assert img.manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    downloaded = [line for line in lines if "downloaded" in line or "baixad" in line]
    assert len(downloaded) >= 2, lines  # the config + the COPY layer (busybox is already here)
    res = labkit.run(dest)
    assert res.exit_code == 0 and res.stdout == token + "\n"
    lines.clear()
    reg.pull(dest, out=lines.append)  # again: nothing to download
    assert not [line for line in lines if "downloaded" in line or "baixad" in line]
    Store().remove(dest)


def test_basic_auth(auth_registry, small_image):
    from labkit.errors import LabkitError
    from labkit.images import registry as reg

    dest = f"{auth_registry.host}/priv/lab:v1"
    with pytest.raises(LabkitError):
        reg.push(small_image.ref, dest)  # no credentials
    with pytest.raises(LabkitError):
        reg.login(auth_registry.host, "ana", "wrong")
    path = reg.login(auth_registry.host, "ana", "s3cr3t")
    assert path.exists() and oct(path.stat().st_mode & 0o777) == "0o600"
    stats = reg.push(small_image.ref, dest)  # credentials from the saved login
    assert stats["pushed"] == 3
    if optional_tool("skopeo", package="skopeo"):
        out = _skopeo("inspect", "--tls-verify=false", "--creds", "ana:s3cr3t", f"docker://{dest}")
        assert out.returncode == 0, out.stderr
        bad = _skopeo("inspect", "--tls-verify=false", f"docker://{dest}")
        assert bad.returncode != 0
    img = reg.pull(dest)
    assert img.digest == small_image.digest
    from labkit.images.store import Store

    Store().remove(dest)


def test_cli_push_pull(registry, small_image, capsys):
    from labkit.cli import main

    dest = f"{registry.host}/cli/lab:v2"
    assert main(["push", small_image.ref, dest]) == 0
    out = capsys.readouterr().out
    assert small_image.digest in out
    assert main(["pull", dest]) == 0
    assert dest in capsys.readouterr().out
    assert main(["pull", f"{registry.host}/cli/nao-existe:v1"]) != 0
    from labkit.images.store import Store

    Store().remove(dest)


@needs_tool("openssl", package="openssl")
def test_https_with_ca_file(tmp_path, small_image, monkeypatch):
    """HTTPS (as for any registry that is not on this machine): a self-signed CA given with ca_file."""
    from labkit.errors import LabkitError
    from labkit.images import registry as reg

    monkeypatch.delenv("LABKIT_REGISTRY_CA", raising=False)
    server = Registry(tmp_path, tls=True)
    try:
        dest = f"{server.host}/tls/lab:v1"
        with pytest.raises(LabkitError) as exc:
            reg.push(small_image.ref, dest, secure=True)  # unknown CA: refused
        assert "--ca-file" in str(exc.value)
        stats = reg.push(small_image.ref, dest, secure=True, ca_file=server.ca)
        assert stats["pushed"] == 3
        monkeypatch.setenv("LABKIT_REGISTRY_CA", server.ca)
        assert reg.pull(dest, secure=True).digest == small_image.digest
        assert reg.pull(dest, secure=True, tls_verify=False).digest == small_image.digest
        if optional_tool("skopeo", package="skopeo"):
            out = _skopeo("inspect", "--cert-dir", str(tmp_path / "nocerts"), "--tls-verify=false",
                          f"docker://{dest}")
            assert out.returncode == 0, out.stderr
        from labkit.images.store import Store

        Store().remove(dest)
    finally:
        server.stop()


@needs_tool("openssl", package="openssl")
def test_bearer_token_auth(tmp_path, small_image, monkeypatch):
    """docker-registry with ``auth: token``: labkit gets a token from the realm, with its user and password."""
    from labkit.errors import LabkitError
    from labkit.images import registry as reg

    monkeypatch.setenv("LABKIT_AUTH_FILE", str(tmp_path / "auth.json"))
    monkeypatch.delenv("LABKIT_REGISTRY_USER", raising=False)
    tokens = TokenServer(tmp_path, {"ana": "s3cr3t"})
    server = Registry(tmp_path, token=tokens)
    try:
        dest = f"{server.host}/tok/lab:v1"
        with pytest.raises(LabkitError):
            reg.push(small_image.ref, dest, username="ana", password="errada")
        stats = reg.push(small_image.ref, dest, username="ana", password="s3cr3t")
        assert stats["pushed"] == 3
        assert any("push" in s and s.startswith("repository:tok/lab:") for s in tokens.issued), tokens.issued
        assert reg.pull(dest, username="ana", password="s3cr3t").digest == small_image.digest
        if optional_tool("skopeo", package="skopeo"):
            out = _skopeo("inspect", "--tls-verify=false", "--creds", "ana:s3cr3t", f"docker://{dest}")
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["Digest"] == small_image.digest
        from labkit.images.store import Store

        Store().remove(dest)
    finally:
        server.stop()
        tokens.stop()


@needs_tool("skopeo", "podman", package="skopeo podman")
def test_whiteouts_survive_podman(registry, tmp_path, podman_dir):
    """A RUN that deletes a file and replaces a directory: podman sees the same filesystem as labkit."""
    import labkit
    from labkit.images import registry as reg
    from labkit.images.build import build
    from labkit.images.store import Store

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /opt/app && echo old > /opt/app/old\n"
        "RUN rm /etc/group && rm -rf /opt/app && mkdir /opt/app && echo new > /opt/app/new\n"
        'CMD ["sh", "-c", "ls /opt/app; test -e /etc/group || echo sem-group"]\n')
    img = build(ctx, "itest/wh:1", quiet=True)
    try:
        expected = labkit.run(img.ref).stdout
        assert expected.split() == ["new", "sem-group"]
        dest = f"{registry.host}/wh/img:1"
        reg.push(img.ref, dest)
        r = _podman(podman_dir, "pull", "-q", "--tls-verify=false", dest)
        assert r.returncode == 0, r.stderr
        r = _podman(podman_dir, "run", "--rm", "--network", "none", "--ulimit", "nofile=20000:20000",
                    "--ulimit", "nproc=4096:4096", dest)
        assert r.returncode == 0, r.stderr
        assert r.stdout == expected
    finally:
        Store().remove("itest/wh:1")
