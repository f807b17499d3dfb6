"""Issue 16 item 4: two students of a real class (classroom setup, JupyterHub on 127.0.0.1, each
logged in through the REST API with a server of their own) cannot reach each other.

Each student's labkit is the rootless one, run as the student (``runuser``) with the
environment the hub gives their server (``LABKIT_CGROUP_PARENT``: containers go into the
student's delegated slice). B's notebook is driven through B's own Jupyter server (a kernel
over its websocket), as B's browser would. The class has its own proc mount with
``hidepid=invisible`` (``/proc`` itself is every session's on this machine). Everything is
torn down at the end: servers, engines, containers, hub, proxy, accounts, cgroups, the mount.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import time
from pathlib import Path

import pytest

from classroom_helpers import BIN, CHP, Class, Kernel
from labkit.kernel.cgroups.mountinfo import layout
from requirements import require, require_module, require_tool, skipif_here

pytestmark = [
    pytest.mark.root, pytest.mark.slow,
    skipif_here(os.geteuid() != 0, "REAL: the hub runs as root and becomes each student"),
]

require_module("jupyterhub")
require_module("jupyterhub_idle_culler")
require(CHP.exists(), "configurable-http-proxy 4.6 (npm)", "make setup: npm install, nodejs")
LABKIT = str(BIN / "labkit")
ROUND_TRIPS = 15  # cells B runs for each measure (the median is printed)


@pytest.fixture(scope="module")
def klass(open_to_other_users):
    require_tool("newuidmap", "uidmap")
    require_tool("runuser", "util-linux")
    c = Class(2, cpus="1", memory="1g", pids="512", hidepid=True)
    try:
        c.start()
        a, b = c.students
        c.tokens = {u: c.login(u) for u in (a, b)}
        c.servers = {u: c.start_server(u, c.tokens[u]) for u in (a, b)}
        yield c
    finally:
        c.close()


def lk(c: Class, user: str, *args: str, **env: str):
    return c.runuser(user, LABKIT, *args, env=env or None)


def state_of(c: Class, user: str) -> Path:
    return c.home(user) / ".local/share/labkit"


def slice_dir(c: Class, user: str, controller: str) -> Path:
    if layout().version == "v1":
        return Path("/sys/fs/cgroup") / controller / c.parent / user
    return Path("/sys/fs/cgroup") / c.parent / user


def test_a_cannot_list_inspect_exec_stop_or_remove_bs_containers(klass):
    c = klass
    a, b = c.students
    r = lk(c, b, "run", "-d", "--name", "de-b", "busybox", "sleep", "600")
    assert r.returncode == 0, r.stderr
    b_state = state_of(c, b)
    sock = b_state / "engine.sock"
    assert sock.exists()
    # B's home is 0700: A reads nothing of B's state, nor reaches the socket
    assert c.home(b).stat().st_mode & 0o777 == 0o700
    r = c.runuser(a, "ls", str(b_state))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = c.runuser(a, str(BIN / "python"), "-c",
                  "import socket, sys; s = socket.socket(socket.AF_UNIX)\n"
                  f"try: s.connect({str(sock)!r})\n"
                  "except PermissionError: print('recusado')")
    assert r.stdout.strip() == "recusado", r.stderr
    verbs = [("ps", "-a"), ("inspect", "de-b"), ("exec", "de-b", "true"), ("stop", "de-b"),
             ("rm", "-f", "de-b")]
    for verb in verbs:
        r = lk(c, a, *verb, LABKIT_HOME=str(b_state))
        assert r.returncode == 125 and "de-b" not in r.stdout, (verb, r.stdout, r.stderr)
    # with every directory on the way opened and the socket 0777, B's engine still answers
    # only B: it reads A's uid with SO_PEERCRED and hangs up
    opened = [c.home(b), c.home(b) / ".local", c.home(b) / ".local/share", b_state, sock]
    modes = {p: p.stat().st_mode & 0o7777 for p in opened}
    try:
        for p in opened:
            os.chmod(p, 0o777 if p == sock else 0o711)
        for verb in verbs:
            r = lk(c, a, *verb, LABKIT_HOME=str(b_state))
            assert r.returncode == 125 and "de-b" not in r.stdout, (verb, r.stdout, r.stderr)
            assert "conexão" in r.stderr, (verb, r.stderr)
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)
    # B's container went through all that untouched
    r = lk(c, b, "inspect", "de-b")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    info = info[0] if isinstance(info, list) else info
    assert info["State"]["Running"]
    # and A cannot signal it from the host either (it is B's uid there)
    r = c.runuser(a, "kill", "-9", str(info["State"]["Pid"]))
    assert r.returncode != 0
    assert lk(c, b, "rm", "-f", "de-b").returncode == 0


def test_as_container_sees_neither_bs_processes_nor_bs_files(klass):
    c = klass
    a, b = c.students
    b_server = {p for p in _pids_of_user(c.uid(b))}
    assert b_server, "B's server runs as B"
    # inside A's container: its own pid namespace, a handful of processes, none of B's
    r = lk(c, a, "run", "--rm", "busybox", "sh", "-c", "ls /proc | grep -E '^[0-9]+$'")
    assert r.returncode == 0, r.stderr
    inside = {int(x) for x in r.stdout.split()}
    assert inside and len(inside) < 10 and 1 in inside, inside
    r = lk(c, a, "run", "--rm", "busybox", "ps", "-o", "user,comm")
    assert r.returncode == 0, r.stderr
    assert "jupyterhub" not in r.stdout and "python" not in r.stdout, r.stdout
    # B's home bound into A's container: root there is A, and B's 0700 home stays closed
    r = lk(c, a, "run", "--rm", "-v", f"{c.home(b)}:/b", "busybox", "sh", "-c",
           "ls /b; echo rc=$?")
    assert r.returncode != 0 or "rc=0" not in r.stdout, (r.stdout, r.stderr)
    assert "jupyter" not in r.stdout and "curso" not in r.stdout
    # on the host, the class's proc mount (hidepid=invisible): A sees A's processes only
    assert "hidepid=invisible" in _mount_options(c.proc) or "hidepid=2" in _mount_options(c.proc)
    r = c.runuser(a, "ls", str(c.proc))
    visible = {int(x) for x in r.stdout.split() if x.isdigit()}
    assert visible and not (visible & b_server), visible & b_server
    assert b_server & {int(x) for x in os.listdir(c.proc) if x.isdigit()}  # root sees them


def test_a_cpu_hog_and_fork_bomb_stay_in_as_slice_and_b_answers(klass):
    c = klass
    a, b = c.students
    kb = Kernel(c.url, c.servers[b], c.tokens[b])
    cgroup = None
    try:
        assert kb.text("print(1 + 1)") == "2\n"
        quiet = _round_trips(kb)
        # A's container waits for /go: the load starts only once the container is known to be
        # inside A's slice. --pids-limit is refused where no cgroup could be made, so a bomb
        # never runs unbounded.
        r = lk(c, a, "run", "-d", "--name", "carga", "--pids-limit", "512", "busybox", "sh", "-c",
               "while [ ! -e /go ]; do sleep 0.1; done; "
               "for i in 1 2; do (while :; do :; done) & done; "
               "b() { b | b & }; b; sleep 600")
        assert r.returncode == 0, r.stderr
        found = _container_cgroup(c, a, "carga")
        slice_pids = slice_dir(c, a, "pids")
        assert found is not None and slice_pids in found.parents, found  # in A's delegated slice
        cgroup = found
        cpu = slice_dir(c, a, "cpu")
        where = Path(f"/proc/{_container_pid(c, a, 'carga')}/cgroup").read_text()
        before = _throttled(cpu)
        assert lk(c, a, "exec", "carga", "touch", "/go").returncode == 0
        deadline = time.monotonic() + 60  # the bomb reaches the cap (a failure past that)
        while _pids_usage(slice_pids)["refused"] + _pids_usage(cgroup)["refused"] == 0:
            assert time.monotonic() < deadline, _pids_usage(slice_pids)
            time.sleep(0.5)
        while _throttled(cpu) == before:  # two hogs against a 1-CPU quota: the kernel throttles
            assert time.monotonic() < deadline, where
            time.sleep(0.5)
        loaded = _round_trips(kb)
        after = _throttled(cpu)
        usage = _pids_usage(slice_pids)
        print(f"\nB: volta de uma célula, mediana de {ROUND_TRIPS}: "
              f"{quiet * 1e3:.1f} ms sem carga, {loaded * 1e3:.1f} ms com A em carga "
              f"(razão {loaded / quiet:.2f}); fatia de A: {usage}, throttled {before} -> {after}")
        # A's slice at its caps: 1 CPU (the quota, and the kernel throttled A), 512 pids
        if layout().version == "v1":
            quota = int((cpu / "cpu.cfs_quota_us").read_text())
            period = int((cpu / "cpu.cfs_period_us").read_text())
            assert quota == period  # 1 CPU
        else:
            quota, period = (cpu / "cpu.max").read_text().split()
            assert int(quota) == int(period)
        assert after > before, where
        assert usage["max"] == "512" and usage["current"] <= 512, usage
        # B's cells answered, with their results, all along
        assert kb.text("print(sum(range(10)))") == "45\n"
    finally:
        kb.close()
        _stop_load(c, a, cgroup)
    # A's slice is back under its cap and A's labkit works again
    assert _pids_usage(slice_dir(c, a, "pids"))["current"] < 100
    assert lk(c, a, "run", "--rm", "busybox", "true").returncode == 0


def test_a_file_as_container_writes_as_root_belongs_to_a_on_the_host(klass):
    c = klass
    a, _ = c.students
    out = c.home(a) / "saida"
    assert c.runuser(a, "mkdir", str(out)).returncode == 0
    r = lk(c, a, "run", "--rm", "-v", f"{out}:/saida", "busybox", "sh", "-c",
           "id -u && echo x > /saida/de-root")
    assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr  # root in the container
    st = (out / "de-root").stat()
    assert (st.st_uid, st.st_gid) == (c.uid(a), os.stat(c.home(a)).st_gid)
    assert st.st_uid != 0


# helpers -------------------------------------------------------------------------------

def _pids_of_user(uid: int) -> set[int]:
    from classroom_helpers import pids_of
    return set(pids_of(uid))


def _mount_options(path: Path) -> str:
    found = ""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path):
            found = line
    return found


def _round_trips(k: Kernel) -> float:
    times = []
    for i in range(ROUND_TRIPS):
        start = time.perf_counter()
        assert k.text(f"print({i} * 2)") == f"{i * 2}\n"
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _throttled(cpu: Path) -> int:
    for line in (cpu / "cpu.stat").read_text().splitlines():
        key, value = line.split()
        if key == "nr_throttled":
            return int(value)
    raise AssertionError("no nr_throttled in cpu.stat")


def _pids_usage(pids: Path) -> dict:
    events = (pids / "pids.events").read_text().split()
    return {"current": int((pids / "pids.current").read_text()),
            "max": (pids / "pids.max").read_text().strip(),
            "refused": int(events[events.index("max") + 1])}


def _container_pid(c: Class, user: str, name: str) -> int:
    r = lk(c, user, "inspect", name)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    return (info[0] if isinstance(info, list) else info)["State"]["Pid"]


def _container_cgroup(c: Class, user: str, name: str) -> Path | None:
    """The container's pids cgroup directory, or None when it has none (NoCgroups)."""
    pid = _container_pid(c, user, name)
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _id, ctrls, path = line.split(":", 2)
        v1 = "pids" in ctrls.split(",")
        if v1 or (ctrls == "" and layout().version == "v2"):
            if path.strip("/") == "":
                return None
            return Path("/sys/fs/cgroup/pids" if v1 else "/sys/fs/cgroup") / path.lstrip("/")
    return None


def _stop_load(c: Class, user: str, cgroup: Path | None) -> None:
    """`labkit rm -f` kills the container's init (its pid namespace goes with it); what a
    bomb still forks meanwhile is killed by id, and only from the container's own cgroup,
    below the student's slice, and only the student's own uid."""
    r = lk(c, user, "rm", "-f", "carga")
    slice_pids = slice_dir(c, user, "pids")
    if cgroup is not None and slice_pids in cgroup.parents:
        uid = c.uid(user)
        for _ in range(50):
            alive = [int(p) for sub in [cgroup, *cgroup.glob("**/")]
                     if (sub / "cgroup.procs").exists()
                     for p in (sub / "cgroup.procs").read_text().split()]
            alive = [p for p in alive if _uid_of(p) == uid]
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
    if r.returncode != 0:
        r = lk(c, user, "rm", "-f", "carga")
    assert r.returncode == 0, r.stderr


def _uid_of(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None
