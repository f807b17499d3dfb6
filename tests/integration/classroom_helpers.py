"""A throwaway class behind a real JupyterHub on 127.0.0.1, and a kernel driven through a
student's own server (REST + the kernel's websocket), for test_classroom_isolation.py and
bench/bench_classroom.py (not a test itself).

``Class`` runs ``labkit classroom setup --create`` for N students, starts the hub with the
generated configuration on free ports, and on ``close()`` stops every student's process,
the hub and its proxy, and runs ``labkit classroom teardown`` (accounts, cgroups, proc
options). ``Kernel`` is what nbclient does, without a local kernel: execute_request on the
shell channel, outputs from iopub, until the kernel is idle again.
"""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHP = ROOT / ".cache/classroom/chp/node_modules/.bin/configurable-http-proxy"
READY_WITHIN = 300  # seconds before a server counts as failed (the hub's start_timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, method: str = "GET", token: str | None = None,
        body: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"token {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as e:
        return e.code, {}


def pids_of(uid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def hub_services(hub_pid: int) -> list[tuple[int, float]]:
    """(pid, start time) of the managed services a running hub started (the idle culler):
    its descendants that run as the hub's own user with ``JUPYTERHUB_SERVICE_NAME`` set.

    The hub starts them in sessions of their own (LocalProcessSpawner), so a ``kill -9`` of
    the hub's process group leaves them running, reparented: a test records them while the
    hub is alive and :func:`kill_recorded` stops exactly those afterwards."""
    import psutil

    try:
        hub = psutil.Process(hub_pid)
        uid = hub.uids().real
        found = []
        for p in hub.children(recursive=True):
            try:
                if p.uids().real == uid and "JUPYTERHUB_SERVICE_NAME" in p.environ():
                    found.append((p.pid, p.create_time()))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found
    except psutil.NoSuchProcess:
        return []


def kill_recorded(services: list[tuple[int, float]]) -> list[int]:
    """SIGKILL each recorded process that is still that process (same start time: not a
    reused pid); returns the pids that were still running."""
    import psutil

    killed = []
    for pid, started in services:
        try:
            p = psutil.Process(pid)
            if p.create_time() != started:
                continue
            p.kill()
            p.wait(10)
            killed.append(pid)
        except psutil.NoSuchProcess:
            continue
    return killed


class Class:
    """``n`` students (``<prefix>00``...) made by classroom setup, and their hub."""

    def __init__(self, n: int, cpus: str = "1", memory: str = "1g", pids: str = "512",
                 hidepid: bool = False, extra: tuple[str, ...] = ()) -> None:
        sfx = secrets.token_hex(3)
        self.parent = f"lki{sfx}"
        self.students = [f"lki{sfx}{i:02d}" for i in range(n)]
        self.base = Path(f"/var/tmp/lki-{sfx}")
        self.base.mkdir(mode=0o755)
        self.etc, self.data = self.base / "etc", self.base / "data"
        self.passwords = {u: secrets.token_urlsafe(12) for u in self.students}
        self.proc: Path | None = None
        self.hub: subprocess.Popen | None = None
        self.log_path = self.base / "hub.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._set_up = False
        self.services: list[tuple[int, float]] = []  # the hub's managed services (hub_services)
        students = self.base / "turma.txt"
        students.write_text("".join(f"{u}:{p}\n" for u, p in self.passwords.items()))
        cmd = [str(BIN / "labkit"), "classroom", "setup", "--students", str(students),
               "--create", "--parent", self.parent, "--etc", str(self.etc),
               "--data", str(self.data), "--cpus", cpus, "--memory", memory, "--pids", pids,
               "--port", str(self.port), "--proxy", str(CHP), *extra]
        if hidepid:
            # a proc mount of this class's own: /proc itself is every session's on this machine
            self.proc = self.base / "proc"
            self.proc.mkdir()
            subprocess.run(["mount", "-t", "proc", "proc", str(self.proc)], check=True)
            cmd += ["--proc", str(self.proc)]
        else:
            cmd += ["--no-hidepid"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        self._set_up = True
        if r.returncode != 0:
            self.close()
            raise AssertionError(r.stderr)

    def uid(self, user: str) -> int:
        return pwd.getpwnam(user).pw_uid

    def home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir)

    def start(self) -> None:
        override = self.base / "test_config.py"
        override.write_text(
            f"load_subconfig({str(self.etc / 'jupyterhub' / 'jupyterhub_config.py')!r})\n"
            f"c.JupyterHub.hub_port = {free_port()}\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LABKIT"))}
        env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
        with open(self.log_path, "a") as log:
            self.hub = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(override)],
                                        cwd=self.data, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                if api(self.url, "/hub/api/")[0] == 200:
                    self.services += hub_services(self.hub.pid)  # started before the hub answers
                    return
            except OSError:
                pass
            assert self.hub.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, self.log_tail()
            time.sleep(0.5)

    def log_tail(self) -> str:
        return self.log_path.read_text()[-3000:] if self.log_path.exists() else ""

    def login(self, user: str) -> str:
        status, body = api(self.url, f"/hub/api/users/{user}/tokens", "POST",
                           body={"auth": {"username": user, "password": self.passwords[user]},
                                 "note": "classroom test"})
        assert status in (200, 201), (user, status)
        return body["token"]

    def start_server(self, user: str, token: str, stats: dict | None = None) -> str:
        """The server's URL prefix (``/user/<name>/``) once the hub says it is ready.

        429: the hub's ``concurrent_spawn_limit`` is reached (a class logging in at once);
        the student asks again, as the hub's spawn page does (every 2 s here, not the hub's
        Retry-After of 30-60 s, so the wait measured is the machine's). ``stats["429"]``
        counts them."""
        deadline = time.monotonic() + READY_WITHIN
        while True:
            status, _ = api(self.url, f"/hub/api/users/{user}/server", "POST", token)
            if status != 429:
                break
            if stats is not None:
                stats["429"] = stats.get("429", 0) + 1
            assert time.monotonic() < deadline, (user, self.log_tail())
            time.sleep(2)
        assert status in (201, 202), (user, status)
        while True:
            status, model = api(self.url, f"/hub/api/users/{user}", token=token)
            server = (model.get("servers") or {}).get("", {})
            if server.get("ready"):
                return server["url"]
            assert time.monotonic() < deadline, (user, self.log_tail())
            time.sleep(1)

    def runuser(self, user: str, *args: str, timeout: float = 180,
                env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """A command as the student, with the environment their server gives them (in their
        home, or ``cwd``)."""
        home = self.home(user)
        base = {"HOME": str(home), "USER": user, "LOGNAME": user, "LANG": "C.UTF-8",
                "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin", "LABKIT_LANG": "pt_BR",
                "LABKIT_CGROUP_PARENT": f"{self.parent}/{user}"}
        base.update(env or {})
        return subprocess.run(["runuser", "-u", user, "--", "env", "-i", "-C", str(cwd or home),
                               *(f"{k}={v}" for k, v in base.items()), *args],
                              capture_output=True, text=True, timeout=timeout)

    def close(self) -> None:
        """Everything the class made goes: processes, hub, proxy, accounts, cgroups, mounts."""
        problems = []
        if self.hub is not None and self.hub.poll() is None:
            os.killpg(self.hub.pid, signal.SIGTERM)
            try:
                self.hub.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.hub.pid, signal.SIGKILL)
                self.hub.wait()
        kill_recorded(self.services)  # a hub killed with -9 (by a test) leaves them running
        for user in self.students:
            try:
                uid = self.uid(user)
            except KeyError:
                continue
            self.runuser(user, str(BIN / "labkit"), "engine", "stop", timeout=120)
            for _ in range(100):  # this class's own users: each of their processes, by id
                left = pids_of(uid)
                if not left:
                    break
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
        proxy = self.data / "proxy.pid"
        proxy_pid = proxy.read_text().strip() if proxy.exists() else None
        if self._set_up:
            r = subprocess.run([str(BIN / "labkit"), "classroom", "teardown",
                                "--etc", str(self.etc)], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(r.stderr)
        if proxy_pid:
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{proxy_pid}") and time.monotonic() < deadline:
                time.sleep(0.2)
            if os.path.exists(f"/proc/{proxy_pid}"):
                problems.append(f"proxy {proxy_pid} left running")
        if self.proc is not None:
            subprocess.run(["umount", str(self.proc)], capture_output=True)
        subprocess.run(["rm", "-rf", str(self.base)])
        assert not problems, problems


class Kernel:
    """A kernel in a student's server, driven over its websocket (as JupyterLab does)."""

    def __init__(self, hub_url: str, server: str, token: str) -> None:
        self.base = hub_url + server
        self.token = token
        status, model = api(self.base, "api/kernels", "POST", token, body={"name": "python3"})
        assert status in (200, 201), status
        self.id = model["id"]
        self.loop = asyncio.new_event_loop()
        self.ws = self.loop.run_until_complete(self._connect())

    async def _connect(self):
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.base.replace("http://", "ws://") + f"api/kernels/{self.id}/channels"
        req = HTTPRequest(url, headers={"Authorization": f"token {self.token}"},
                          request_timeout=120, connect_timeout=120)
        return await websocket_connect(req, max_message_size=64 << 20)

    def execute(self, code: str, timeout: float = 600) -> dict:
        """``{"status": "ok"|"error", "outputs": [...], "error": ...}`` of one cell."""
        return self.loop.run_until_complete(asyncio.wait_for(self._execute(code), timeout))

    async def _execute(self, code: str) -> dict:
        msg_id = uuid.uuid4().hex
        await self.ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "",
                       "session": self.id, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }))
        result: dict = {"status": None, "outputs": [], "error": None}
        idle = False
        while result["status"] is None or not idle:
            raw = await self.ws.read_message()
            assert raw is not None, "the kernel's websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_reply":
                result["status"] = msg["content"]["status"]
                if result["status"] == "error":
                    result["error"] = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            elif kind in ("stream", "execute_result", "display_data", "error"):
                result["outputs"].append(msg["content"])
        return result

    def text(self, code: str) -> str:
        """What a cell printed (stdout), asserting it ran without an error."""
        r = self.execute(code)
        assert r["status"] == "ok", r
        return "".join(o.get("text", "") for o in r["outputs"] if o.get("name") == "stdout")

    def close(self) -> None:
        try:
            self.loop.run_until_complete(asyncio.sleep(0))
            self.ws.close()
            api(self.base, f"api/kernels/{self.id}", "DELETE", self.token)
        finally:
            self.loop.close()


def notebook_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
