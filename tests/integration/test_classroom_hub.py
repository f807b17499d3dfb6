"""A real JupyterHub on 127.0.0.1 with the configuration `labkit classroom setup` writes: two
students log in through the REST API (PAM, their Unix passwords), each gets a JupyterLab server
running as themselves inside their own leaf cgroup, and A's token can neither read B's
account nor stop B's server. The hub is stopped and the class torn down at the end."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from classroom_helpers import hub_services, kill_recorded
from labkit.kernel.cgroups.mountinfo import layout
from requirements import require, require_module, skipif_here

pytestmark = [
    pytest.mark.root, pytest.mark.slow,
    skipif_here(os.geteuid() != 0, "REAL: the hub runs as root and becomes each student"),
]

require_module("jupyterhub")
require_module("jupyterhub_idle_culler")
ROOT = Path(__file__).resolve().parents[2]
CHP = ROOT / ".cache/classroom/chp/node_modules/.bin/configurable-http-proxy"
require(CHP.exists(), "configurable-http-proxy 4.6 (npm)", "make setup: npm install, nodejs")
BIN = Path(sys.executable).parent
READY_WITHIN = 240  # seconds before the test gives up on a server (a failure, not a measure)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, method: str = "GET", token: str | None = None,
        body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(base + "/hub/api" + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    if token:
        req.add_header("Authorization", f"token {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            text = r.read()
            return r.status, json.loads(text) if text else {}
    except urllib.error.HTTPError as e:
        return e.code, {}


def get_json(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def leaf_of(pid: int) -> set[str]:
    with open(f"/proc/{pid}/cgroup") as f:
        return {line.strip().split(":", 2)[2] for line in f if line.strip()}


@pytest.fixture
def hub(tmp_path, open_to_other_users):
    sfx = secrets.token_hex(3)
    parent, a, b, teachers = f"lkh{sfx}", f"lkh{sfx}a", f"lkh{sfx}b", f"lkh{sfx}p"
    base = Path(f"/var/tmp/lkh-{sfx}")
    base.mkdir(mode=0o755)
    etc, data = base / "etc", base / "data"
    passwords = {a: secrets.token_urlsafe(12), b: secrets.token_urlsafe(12)}
    students = base / "turma.txt"
    students.write_text("".join(f"{u}:{p}\n" for u, p in passwords.items()))  # before the teacher
    # a teacher, in the teachers' group (the hub's admins), there before setup
    teacher = f"lkh{sfx}t"
    passwords[teacher] = secrets.token_urlsafe(12)
    subprocess.run(["groupadd", teachers], check=True)
    subprocess.run(["useradd", "-G", teachers, teacher], check=True)
    subprocess.run(["chpasswd"], input=f"{teacher}:{passwords[teacher]}\n", text=True, check=True)
    port = free_port()
    r = subprocess.run([str(BIN / "labkit"), "classroom", "setup", "--students", str(students),
                        "--create", "--parent", parent, "--etc", str(etc), "--data", str(data),
                        "--teacher-group", teachers, "--no-hidepid", "--cpus", "1",
                        "--memory", "1g", "--port", str(port), "--proxy", str(CHP)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # the generated file, plus this test's own ports (other hubs may run on this machine)
    override = base / "test_config.py"
    override.write_text(
        f"load_subconfig({str(etc / 'jupyterhub' / 'jupyterhub_config.py')!r})\n"
        f"c.JupyterHub.hub_port = {free_port()}\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{free_port()}'\n")
    log = open(base / "hub.log", "a")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "LABKIT"))}
    env["PATH"] = f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    url = f"http://127.0.0.1:{port}"
    procs = []
    services: list = []  # each hub's managed services (the idle culler), recorded while it runs

    def start() -> subprocess.Popen:
        proc = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(override)], cwd=data,
                                stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 120
        while True:
            try:
                if api(url, "/")[0] == 200:
                    services.extend(hub_services(proc.pid))
                    return proc
            except OSError:
                pass
            assert proc.poll() is None, (base / "hub.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (base / "hub.log").read_text()[-3000:]
            time.sleep(0.5)

    try:
        start()
        yield {"url": url, "a": a, "b": b, "teacher": teacher, "passwords": passwords,
               "parent": parent,
               "log": base / "hub.log", "procs": procs, "start": start, "services": services}
    finally:
        for user in (a, b, teacher):
            subprocess.run(["pkill", "-TERM", "-u", user], capture_output=True)
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        kill_recorded(services)  # the ones a hub killed with -9 left running (their own sessions)
        log.close()
        proxy_pid = (data / "proxy.pid").read_text().strip() if (data / "proxy.pid").exists() \
            else None
        r = subprocess.run([str(BIN / "labkit"), "classroom", "teardown", "--etc", str(etc)],
                           capture_output=True, text=True)
        subprocess.run(["rm", "-rf", str(base)])
        subprocess.run(["userdel", "--remove", teacher], capture_output=True)
        subprocess.run(["groupdel", teachers], capture_output=True)
        assert r.returncode == 0, r.stderr
        assert kill_recorded(services) == [], "a hub service outlived the teardown"
        if proxy_pid:  # teardown stops the proxy the hub left running
            deadline = time.monotonic() + 30
            while os.path.exists(f"/proc/{proxy_pid}") and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not os.path.exists(f"/proc/{proxy_pid}")


def login(h: dict, user: str) -> str:
    status, body = api(h["url"], f"/users/{user}/tokens", "POST",
                       body={"auth": {"username": user, "password": h["passwords"][user]},
                             "note": "test"})
    assert status in (200, 201), status
    return body["token"]


def start_and_wait(h: dict, user: str, token: str) -> dict:
    status, _ = api(h["url"], f"/users/{user}/server", "POST", token)
    assert status in (201, 202), status
    deadline = time.monotonic() + READY_WITHIN
    while True:
        status, model = api(h["url"], f"/users/{user}", token=token)
        server = (model.get("servers") or {}).get("", {})
        if server.get("ready"):
            return server
        assert time.monotonic() < deadline, h["log"].read_text()[-3000:]
        time.sleep(1)


def test_two_students_log_in_each_server_in_its_own_slice_and_a_cannot_stop_b(hub):
    h = hub
    wrong = api(h["url"], f"/users/{h['a']}/tokens", "POST",
                body={"auth": {"username": h["a"], "password": "errada"}})[0]
    assert wrong == 403
    ta, tb = login(h, h["a"]), login(h, h["b"])
    start_and_wait(h, h["a"], ta)
    start_and_wait(h, h["b"], tb)
    # the servers run as the students, each in its own leaf cgroup under the class parent
    import psutil
    servers = {p.username(): p for p in psutil.process_iter(["username", "cmdline"])
               if p.info["cmdline"] and any("jupyterhub-singleuser" in c
                                            for c in p.info["cmdline"])
               and p.info["username"] in (h["a"], h["b"])}
    assert set(servers) == {h["a"], h["b"]}
    lay = layout()
    for user, p in servers.items():
        leaf = f"/{h['parent']}/{user}/jupyter"
        paths = leaf_of(p.pid)
        assert leaf in paths, paths
        if lay.version == "v1":  # one line per hierarchy: cpu, cpuacct, memory and pids
            with open(f"/proc/{p.pid}/cgroup") as f:
                lines = [ln for ln in f.read().splitlines() if ln.endswith(leaf)]
            assert len(lines) >= 3
    # A's token against B: no account, no server to stop, no list of users
    assert api(h["url"], f"/users/{h['b']}", token=ta)[0] in (403, 404)
    assert api(h["url"], f"/users/{h['b']}/server", "DELETE", ta)[0] in (403, 404)
    status, listed = api(h["url"], "/users", token=ta)
    # JupyterHub >= 5 answers a user's list with only what the token may see: itself
    assert status == 403 or {u["name"] for u in listed} <= {h["a"]}
    status, model = api(h["url"], f"/users/{h['b']}", token=tb)
    assert status == 200 and model["servers"][""]["ready"]  # B's server still up
    assert servers[h["b"]].is_running()
    # A's JupyterLab: in Portuguese (the language pack, locale from overrides.json), on the course
    srv = api(h["url"], f"/users/{h['a']}", token=ta)[1]["servers"][""]["url"]
    lab = h["url"] + srv + "lab/api/"
    packs = get_json(lab + "translations/", ta)["data"]
    assert "pt_BR" in packs
    schema = get_json(lab + "settings/@jupyterlab/translation-extension:plugin", ta)["schema"]
    assert schema["properties"]["locale"]["default"] == "pt_BR"
    req = urllib.request.Request(h["url"] + srv, headers={"Authorization": f"token {ta}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.url.endswith(srv + "lab/tree/curso")
    # the teacher (the teachers' group: the hub's admins) sees the class and may stop a server
    tt = login(h, h["teacher"])
    status, listed = api(h["url"], "/users", token=tt)
    assert status == 200 and {h["a"], h["b"]} <= {u["name"] for u in listed}
    assert api(h["url"], f"/users/{h['a']}/server", "DELETE", tt)[0] in (202, 204)
    # B stops its own server
    assert api(h["url"], f"/users/{h['b']}/server", "DELETE", tb)[0] in (202, 204)


def test_hub_killed_servers_keep_running_and_are_found_again(hub):
    """kill -9 of the hub (and of its whole process group): each student's server is the
    student's own process and goes on; the next hub finds it (cleanup_servers = False)."""
    import psutil

    h = hub
    ta = login(h, h["a"])
    start_and_wait(h, h["a"], ta)
    server = next(p for p in psutil.process_iter(["username", "cmdline"])
                  if p.info["username"] == h["a"] and p.info["cmdline"]
                  and any("jupyterhub-singleuser" in c for c in p.info["cmdline"]))
    first = h["procs"][-1]
    culler = [pid for pid, _t in h["services"] if psutil.pid_exists(pid)]
    assert culler, "the idle culler was not found among the hub's services"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert server.is_running()
    # the hub's services live in sessions of their own: the group kill does not reach them,
    # only the fixture's teardown (by the pids recorded here) does
    assert all(psutil.pid_exists(pid) for pid in culler)
    h["start"]()
    status, model = api(h["url"], f"/users/{h['a']}", token=ta)  # the token survived too
    assert status == 200 and model["servers"][""]["ready"], model
    assert server.is_running()
    # and the student reaches it through the new hub's proxy
    req = urllib.request.Request(h["url"] + model["servers"][""]["url"] + "api/status",
                                 headers={"Authorization": f"token {ta}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
