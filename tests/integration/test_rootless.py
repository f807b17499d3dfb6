"""labkit without root: throwaway Unix users, each with their own engine.

Every test makes its users (``useradd`` with a unique name; Debian gives each a
65536-id range in /etc/subuid and /etc/subgid unless told not to) and removes
them in teardown with their files, processes and cgroups. Commands run as the
user through ``runuser``, with a clean environment: the engine finds its state
under ``~/.local/share/labkit``.
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from classroom_helpers import pids_of  # tests/integration/classroom_helpers.py
from requirements import require_tool, skip_here

REPO = Path(__file__).resolve().parents[2]
LABKIT = str(Path(sys.executable).parent / "labkit")
V1_DELEGATED = ("cpu", "cpuacct", "memory", "pids")


def _userns_allowed() -> bool:
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    return read("/proc/sys/user/max_user_namespaces") not in ("", "0") and \
        read("/proc/sys/kernel/unprivileged_userns_clone") != "0"


class User:
    """A throwaway account and its labkit."""

    def __init__(self, subids: bool = True) -> None:
        self.name = "lkrt" + secrets.token_hex(4)
        cmd = ["useradd", "-m", "-s", "/bin/sh"]
        if not subids:
            cmd += ["-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0"]
        subprocess.run([*cmd, self.name], check=True)
        pw = pwd.getpwnam(self.name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        os.chmod(self.home, 0o700)  # as classroom setup makes them
        self.state = self.home / ".local/share/labkit"
        self.cgroups: list[str] = []

    def env(self, **extra: str) -> list[str]:
        base = {"HOME": str(self.home), "USER": self.name, "LOGNAME": self.name,
                "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LABKIT_LANG": "pt_BR"}
        base.update(extra)
        return ["env", "-i", "-C", str(self.home), *(f"{k}={v}" for k, v in base.items())]

    def run(self, *args: str, env: dict | None = None, timeout: float = 120,
            prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", self.name, "--", *self.env(**(env or {})), *prefix, *args],
                              capture_output=True, text=True, timeout=timeout)

    def labkit(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run(LABKIT, *args, **kw)

    def subuid_start(self) -> int | None:
        for line in Path("/etc/subuid").read_text().splitlines():
            name, start, _count = line.split(":")
            if name == self.name:
                return int(start)
        return None

    def delegate(self) -> str:
        """What classroom setup does: a cgroup per controller, owned by the user (v1)."""
        parent = f"lkrt-{secrets.token_hex(3)}/{self.name}"
        for ctrl in V1_DELEGATED:
            d = Path("/sys/fs/cgroup") / ctrl / parent
            d.mkdir(parents=True)
            self.cgroups.append(str(d))
            for f in (d, d / "cgroup.procs", d / "tasks"):
                os.chown(f, self.uid, self.gid)
        (Path("/sys/fs/cgroup/memory") / parent / "memory.limit_in_bytes").write_text(str(256 << 20))
        return parent

    def engine_pid(self) -> int | None:
        for pid in pids_of(self.uid):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"labkit.engine" in cmd and Path(f"/proc/{pid}/comm").read_text().strip() != "labkit-spare":
                return pid
        return None

    def remove(self) -> None:
        self.labkit("engine", "stop", timeout=60)
        for _ in range(50):
            pids = pids_of(self.uid)
            if not pids:
                break
            for pid in pids:  # this test's own user: each of its processes, by id
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        for d in sorted(self.cgroups, key=len, reverse=True):
            for sub in sorted(Path(d).glob("**/"), key=lambda p: len(str(p)), reverse=True):
                try:
                    sub.rmdir()
                except OSError:
                    pass
            for p in (Path(d), Path(d).parent):
                try:
                    p.rmdir()
                except OSError:
                    pass
        subprocess.run(["userdel", "-r", self.name], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)


def _inspect(user: User, ref: str, env: dict | None = None) -> dict:
    import json

    r = user.labkit("inspect", ref, env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    return data[0] if isinstance(data, list) else data


@pytest.fixture
def make_user(open_to_other_users):
    require_tool("newuidmap", "uidmap")
    require_tool("runuser", "util-linux")
    if not _userns_allowed():
        skip_here("REAL: this kernel does not let ordinary users make user namespaces")
    if os.stat(LABKIT).st_mode & 0o005 != 0o005 or os.stat(REPO).st_mode & 0o005 != 0o005:
        skip_here("REAL: the worktree or its venv is not readable by other users")
    made: list[User] = []

    def make(subids: bool = True) -> User:
        user = User(subids)
        made.append(user)
        return user

    yield make
    for user in made:
        user.remove()


def test_run_echo_as_an_ordinary_user(make_user):
    ana = make_user()
    r = ana.labkit("run", "busybox", "echo", "olá")
    assert (r.returncode, r.stdout) == (0, "olá\n"), r.stderr
    # the engine is the user's, in a user namespace mapping 0 to the user and 1.. to the range
    pid = ana.engine_pid()
    assert pid is not None
    assert os.stat(f"/proc/{pid}").st_uid == ana.uid
    rows = [line.split() for line in Path(f"/proc/{pid}/uid_map").read_text().splitlines()]
    assert rows[0] == ["0", str(ana.uid), "1"]
    assert rows[1] == ["1", str(ana.subuid_start()), "65536"]
    # its state: the user's, private
    assert ana.state.is_dir() and ana.state.stat().st_uid == ana.uid
    assert ana.state.stat().st_mode & 0o777 == 0o700
    assert (ana.state / "engine.sock").stat().st_mode & 0o777 == 0o600


def test_without_a_subuid_range_one_id_is_mapped(make_user):
    bia = make_user(subids=False)
    assert bia.subuid_start() is None
    r = bia.labkit("run", "busybox", "cat", "/proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(bia.uid), "1"]
    r = bia.labkit("run", "--user", "1000", "busybox", "id")  # only 0 exists there
    assert r.returncode == 125 and "não existe no namespace de usuário" in r.stderr


def test_no_new_privs_falls_back_to_one_id(make_user):
    """newuidmap is setuid, which no_new_privs defeats (TLJH, SystemdSpawner set it)."""
    caio = make_user()
    r = caio.labkit("run", "busybox", "cat", "/proc/self/uid_map", prefix=("setpriv", "--no-new-privs"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(caio.uid), "1"]


def test_files_written_by_container_root_belong_to_the_user(make_user):
    ana = make_user()
    out = ana.home / "out"
    ana.run("mkdir", str(out))
    # --network none: no /etc/hosts, hostname, resolv.conf bound over /etc, so all of it can go
    r = ana.labkit("run", "--network", "none", "-v", f"{out}:/out", "busybox", "sh", "-c",
                   "echo x > /out/by-root && touch /tmp/f && chown 1000:1000 /tmp/f && "
                   "cp -p /tmp/f /out/by-1000 && mkdir /out/d && rm -r /bin/ls /etc && echo ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    st = (out / "by-root").stat()
    assert (st.st_uid, st.st_gid) == (ana.uid, ana.gid)
    start = ana.subuid_start()
    assert (out / "by-1000").stat().st_uid == start + 999  # uid 1000 inside: the range's 1000th id


def test_root_inside_is_not_root_outside(make_user):
    ana = make_user()
    r = ana.labkit("run", "-v", "/etc:/hostetc:ro", "busybox", "sh", "-c",
                   "id -u; cat /hostetc/shadow; echo rc=$?")
    assert r.stdout.splitlines()[0] == "0"  # root in the container...
    assert "rc=1" in r.stdout and "Permission denied" in r.stderr  # ...that cannot read the host's shadow
    r = ana.labkit("run", "busybox", "sh", "-c", "mknod /tmp/sda b 8 0; echo rc=$?")
    assert "rc=1" in r.stdout  # no device nodes in a user namespace


def test_a_user_cannot_reach_another_users_engine(make_user):
    ana, bia = make_user(), make_user()
    r = bia.labkit("run", "-d", "--name", "da-bia", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    # B's state is B's alone
    r = ana.run("ls", str(bia.state))
    assert r.returncode != 0 and "Permission denied" in r.stderr
    r = ana.labkit("ps", env={"LABKIT_HOME": str(bia.state)})
    assert r.returncode == 125 and "da-bia" not in r.stdout
    # even with every permission opened on the way, B's engine answers only B (SO_PEERCRED)
    for p in (bia.home, bia.home / ".local", bia.home / ".local/share", bia.state):
        os.chmod(p, 0o711)
    os.chmod(bia.state / "engine.sock", 0o777)
    r = ana.labkit("ps", env={"LABKIT_HOME": str(bia.state)})
    assert r.returncode == 125 and "da-bia" not in r.stdout
    assert "conexão" in r.stderr  # the engine hung up on A
    r = ana.labkit("rm", "-f", "da-bia", env={"LABKIT_HOME": str(bia.state)})
    assert r.returncode == 125
    r = bia.labkit("ps")
    assert "da-bia" in r.stdout  # still running, untouched
    # A cannot signal B's container either
    pid = _inspect(bia, "da-bia")["State"]["Pid"]
    r = ana.run("kill", "-9", str(pid))
    assert r.returncode != 0
    assert bia.labkit("rm", "-f", "da-bia").returncode == 0


def test_memory_without_a_delegated_cgroup_is_refused(make_user):
    ana = make_user()
    r = ana.labkit("run", "--memory", "32m", "busybox", "true")
    assert r.returncode == 125
    assert "--memory" in r.stderr and "cgroup delegado" in r.stderr
    r = ana.labkit("run", "--pids-limit", "20", "busybox", "true")
    assert r.returncode == 125 and "--pids-limit" in r.stderr
    r = ana.labkit("stats", "--no-stream")  # no counters either: said, not an empty table
    assert r.returncode == 125 and "sem cgroup delegado" in r.stderr
    # nothing left behind: no container, no directory
    assert ana.labkit("ps", "-a", "-q").stdout.split() == []
    pid = ana.engine_pid()
    spare = {p.name for p in (ana.state / "containers").iterdir()}
    assert len(spare) <= 1  # at most the spare's root, which the engine keeps ready
    assert pid is not None


def test_user_networks_and_low_ports_are_refused(make_user):
    ana = make_user()
    r = ana.labkit("run", "--network", "minha-rede", "busybox", "true")  # a bridge and veths: root's
    assert r.returncode == 125 and "slirp4netns" in r.stderr
    r = ana.labkit("run", "--network", "bridge", "-p", "80:80", "busybox", "true")
    assert r.returncode == 125 and "1024" in r.stderr
    assert ana.labkit("ps", "-a", "-q").stdout.split() == []
    r = ana.labkit("run", "--network", "host", "busybox", "sh", "-c", "test -e /sys/class/net/lo && echo ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr


def test_delegated_cgroup_applies_the_limits(make_user):
    ana = make_user()
    parent = ana.delegate()
    env = {"LABKIT_CGROUP_PARENT": parent}
    r = ana.labkit("run", "--memory", "32m", "--pids-limit", "50", "--cpus", "0.5", "busybox", "sh", "-c",
                   "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
                   "/sys/fs/cgroup/cpu/cpu.cfs_quota_us", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(32 << 20), "50", "50000"]
    r = ana.labkit("run", "--name", "oom", "--memory", "32m", "busybox", "sh", "-c",
                   "head -c 200m /dev/zero | tail > /dev/null", env=env)
    assert r.returncode == 137
    assert _inspect(ana, "oom", env)["State"]["OOMKilled"] is True
    assert ana.labkit("rm", "oom", env=env).returncode == 0
    # the containers' cgroups were under the user's directory, and went with them
    below = Path("/sys/fs/cgroup/memory") / parent / "labkit"
    left = [p.name for p in below.iterdir() if p.is_dir()] if below.exists() else []
    assert len(left) <= 1  # at most the spare's (the next container's PID 1, made ahead)


def test_doctor_reports_rootless_items(make_user):
    ana = make_user(subids=False)
    r = ana.labkit("doctor")
    assert r.returncode == 0, r.stdout  # root is not essential without it
    for title in ("newuidmap/newgidmap", "ids subordinados", "cgroup delegado", "rede sem root"):
        assert title in r.stdout
    assert "modo sem root" in r.stdout


def test_exec_enters_the_container(make_user):
    """exec's child is non-dumpable before it joins: in a user namespace it may not list its
    own /proc/self/ns, and once entered no namespace at all (it ran on the host)."""
    ana = make_user()
    assert ana.labkit("run", "-d", "--name", "alvo", "--hostname", "caixinha", "busybox", "sleep", "300").returncode == 0
    r = ana.labkit("exec", "alvo", "sh", "-c",
                   "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; test -e /usr/bin/python3 || echo no-host")
    assert r.stdout.splitlines() == ["caixinha", "sleep 300 ", "no-host"], r.stdout
    assert ana.labkit("rm", "-f", "alvo").returncode == 0


def test_a_new_engine_finds_the_killed_ones_containers(make_user):
    """Each rootless engine makes its user namespace; after a kill -9 the next one enters
    the old one, which owns the containers' namespaces, so exec still works."""
    ana = make_user()
    assert ana.labkit("run", "-d", "--name", "sobrevive", "busybox", "sleep", "300").returncode == 0
    old = ana.engine_pid()
    os.kill(old, signal.SIGKILL)
    for _ in range(100):
        if ana.engine_pid() != old:
            break
        time.sleep(0.05)
    assert "sobrevive" in ana.labkit("ps").stdout  # a new engine, started on demand, adopted it
    r = ana.labkit("exec", "sobrevive", "cat", "/proc/1/cmdline")
    assert (r.returncode, r.stdout) == (0, "sleep\x00300\x00"), r.stderr
    pid = _inspect(ana, "sobrevive")["State"]["Pid"]
    assert os.readlink(f"/proc/{ana.engine_pid()}/ns/user") == os.readlink(f"/proc/{pid}/ns/user")
    assert ana.labkit("rm", "-f", "sobrevive").returncode == 0


def test_no_user_namespace_gives_a_clear_message(make_user):
    """A process whose own ids are not mapped (here: inside `unshare -U`, unmapped) may not
    make a user namespace, as when the administrator forbids them."""
    ana = make_user()
    home = ana.home / "estado"
    r = ana.labkit("run", "busybox", "true", env={"LABKIT_HOME": str(home)}, prefix=("unshare", "-U"))
    assert r.returncode == 125
    assert "o kernel recusou um namespace de usuário" in r.stderr and "labkit doctor" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (home / "engine.sock").exists() and ana.engine_pid() is None
    assert "recusou" in (home / "engine.log").read_text()


def test_bridge_is_slirp4netns_with_published_ports(make_user):
    """Rootless, the default bridge network is slirp4netns's: its TAP device is the container's
    eth0 (as under root) in its own namespace, its address in inspect, a published port is a socket slirp4netns listens on (127.0.0.1 here only)."""
    require_tool("slirp4netns", "slirp4netns")
    import socket
    import urllib.request

    ana = make_user()
    r = ana.labkit("run", "--rm", "--network", "bridge", "busybox", "sh", "-c",
                   "ip -4 -o addr show eth0 | awk '{print $4}'; cat /etc/resolv.conf")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["10.0.2.100/24", "nameserver", "10.0.2.3"]
    r = ana.labkit("run", "-d", "--name", "net", "--network", "bridge", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    settings = _inspect(ana, "net")["NetworkSettings"]
    assert (settings["IPAddress"], settings["Gateway"], settings["IPPrefixLen"]) == ("10.0.2.100", "10.0.2.2", 24)
    assert ana.labkit("rm", "-f", "net").returncode == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = ana.labkit("run", "-d", "--name", "web", "--network", "bridge", "-p", f"127.0.0.1:{port}:80", "busybox",
                   "sh", "-c", "mkdir /www && echo olá > /www/index.html && httpd -f -p 80 -h /www")
    assert r.returncode == 0, r.stderr
    body = None
    for _ in range(100):  # httpd binds a moment after the start
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
            break
        except OSError:
            time.sleep(0.05)
    assert body == "olá\n".encode()
    slirp = [p for p in pids_of(ana.uid) if Path(f"/proc/{p}/comm").read_text().strip() == "slirp4netns"]
    assert len(slirp) == 1
    assert ana.labkit("rm", "-f", "web").returncode == 0
    assert not Path(f"/proc/{slirp[0]}").exists()  # it went with the container, and the port with it
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    # a host port someone else holds: refused, and nothing left (no container, no slirp4netns)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the TIME_WAIT above
        taken.bind(("127.0.0.1", port))
        taken.listen()
        r = ana.labkit("run", "--network", "bridge", "-p", f"127.0.0.1:{port}:80", "busybox", "true")
    assert r.returncode == 125 and "não pode ser publicada" in r.stderr
    assert ana.labkit("ps", "-a", "-q").stdout.split() == []
    assert not [p for p in pids_of(ana.uid) if Path(f"/proc/{p}/comm").read_text().strip() == "slirp4netns"]


def test_devices_are_the_hosts_nodes_and_privileged_is_still_the_user(make_user):
    """No mknod in a user namespace: --device and --privileged bind the host's nodes, which
    open as they would for the user (a disk: no; /dev/null: yes)."""
    import stat as st

    disks = sorted(f"/dev/{n}" for n in os.listdir("/dev")
                   if st.S_ISBLK(os.stat(f"/dev/{n}").st_mode) and not os.stat(f"/dev/{n}").st_mode & 0o004)
    assert disks, "no block device in /dev"
    ana = make_user()
    r = ana.labkit("run", "--rm", "--device", "/dev/null:/dev/nulo", "busybox", "sh", "-c",
                   "echo x > /dev/nulo && echo ok")
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
    r = ana.labkit("run", "--rm", "--privileged", "busybox", "sh", "-c", f"head -c1 {disks[0]} >/dev/null; echo rc=$?")
    assert r.returncode == 0, r.stderr
    assert "rc=1" in r.stdout and "Permission denied" in r.stderr


def test_build_diff_commit_keep_the_owners_the_image_sees(make_user):
    """The client reads a container's upper dir (files of the user's subordinate ids, some 0700)
    in the engine's user namespace: the layer records uid 1234, not the host's 100000+1233."""
    ana = make_user()
    ctx = ana.home / "ctx"
    ana.run("mkdir", str(ctx))
    ana.run("sh", "-c", f"printf 'FROM busybox\\nRUN mkdir -p /d/s && echo x > /d/s/f && "
                        f"chown -R 1234:1234 /d && chmod 700 /d/s && rm /bin/ls\\n' > {ctx}/Dockerfile")
    r = ana.labkit("build", "-q", "-t", "dono:1", str(ctx))
    assert r.returncode == 0, r.stderr
    r = ana.labkit("run", "--rm", "dono:1", "sh", "-c", "stat -c '%u:%g %a' /d/s /d/s/f; test -e /bin/ls || echo sem-ls")
    assert r.stdout.split("\n")[:3] == ["1234:1234 700", "1234:1234 644", "sem-ls"], r.stderr
    assert ana.labkit("run", "-d", "--name", "mexido", "busybox", "sh", "-c",
                      "mkdir -p /e/t && chown -R 4321 /e && chmod 700 /e/t && rm /bin/cat && sleep 300"
                      ).returncode == 0
    for _ in range(100):
        d = ana.labkit("diff", "mexido").stdout.split("\n")
        if "A /e/t" in d:
            break
        time.sleep(0.05)
    assert {"C /bin", "D /bin/cat", "A /e", "A /e/t"} <= set(d)
    assert ana.labkit("commit", "mexido", "dono:2").returncode == 0
    r = ana.labkit("run", "--rm", "dono:2", "stat", "-c", "%u %a", "/e/t")
    assert r.stdout.strip() == "4321 700", r.stderr
    assert ana.labkit("rm", "-f", "mexido").returncode == 0
    assert ana.labkit("rmi", "dono:1", "dono:2").returncode == 0
    left = [p for p in (ana.state / "layers").iterdir()]
    assert len(left) == 1  # busybox's: the layers with subordinate ids' files are gone too


def test_a_configured_parent_the_user_cannot_write_is_said_never_silent(make_user):
    """LABKIT_CGROUP_PARENT names a directory the user does not own (root's, here): the engine
    warns once when it starts, a limit is refused naming that directory, doctor says it too."""
    ana = make_user()
    parent = f"lkrt-{secrets.token_hex(3)}"
    d = Path("/sys/fs/cgroup/memory") / parent
    d.mkdir()  # root's: not delegated to ana
    ana.cgroups.append(str(d))
    env = {"LABKIT_CGROUP_PARENT": parent}
    r = ana.labkit("run", "--rm", "busybox", "echo", "olá", env=env)
    assert (r.returncode, r.stdout) == (0, "olá\n"), r.stderr
    assert r.stderr.count("aviso:") == 1 and parent in r.stderr and "sem cgroup" in r.stderr, r.stderr
    r = ana.labkit("run", "--rm", "busybox", "true", env=env)  # once: the engine runs already
    assert (r.returncode, r.stderr) == (0, "")
    r = ana.labkit("run", "--memory", "32m", "busybox", "true", env=env)
    assert r.returncode == 125 and "--memory" in r.stderr and parent in r.stderr, r.stderr
    assert "LABKIT_CGROUP_PARENT" in r.stderr
    assert ana.labkit("ps", "-a", "-q", env=env).stdout.split() == []
    r = ana.labkit("doctor", env=env)
    assert parent in r.stdout and "não é gravável" in r.stdout, r.stdout
    assert ana.labkit("engine", "stop", env=env).returncode == 0
    assert "aviso:" in (ana.state / "engine.log").read_text()


def test_an_engine_started_outside_the_slice_joins_it(make_user):
    """Started from a runuser session (not the hub's server, which root placed in the slice),
    the rootless engine moves itself into <delegated>/engine on cgroup v1, so its own work
    counts against the user's caps like the containers'. On v2 the kernel's common-ancestor
    rule forbids the move (root places the first process): the engine stays, and says nothing."""
    from labkit.kernel.cgroups.mountinfo import layout

    ana = make_user()
    parent = ana.delegate()
    env = {"LABKIT_CGROUP_PARENT": parent}
    r = ana.labkit("run", "--rm", "busybox", "true", env=env)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    pid = ana.engine_pid()
    assert pid is not None
    where = {c: line.rstrip("\n").split(":", 2)[2] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
             for c in line.split(":", 2)[1].split(",")}
    if layout().version != "v1":
        skip_here("REAL: cgroup v2 forbids the move (common-ancestor rule); root places the first process")
    for ctrl in V1_DELEGATED:
        assert where[ctrl] == f"/{parent}/engine", (ctrl, where)
    # its children (the spare container it keeps ready, a container) are below the slice too
    r = ana.labkit("run", "-d", "--name", "dormindo", "busybox", "sleep", "60", env=env)
    assert r.returncode == 0, r.stderr
    cpid = _inspect(ana, "dormindo", env)["State"]["Pid"]
    assert f"/{parent}/labkit/" in Path(f"/proc/{cpid}/cgroup").read_text()
    assert ana.labkit("rm", "-f", "dormindo", env=env).returncode == 0
    # a second engine start (after a stop) finds the leaf there and joins it again
    assert ana.labkit("engine", "stop", env=env).returncode == 0
    assert ana.labkit("run", "--rm", "busybox", "true", env=env).returncode == 0
    assert f"/{parent}/engine" in Path(f"/proc/{ana.engine_pid()}/cgroup").read_text()
