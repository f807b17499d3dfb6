"""`labkit classroom setup/teardown/top` for real, with throwaway accounts: the accounts and
their id ranges, the delegated cgroup tree (a student manages its own slice but cannot raise
its caps or reach a classmate's), an idempotent second run, a complete teardown, and bad input
that changes nothing. Each test uses its own names, cgroup parent and configuration directory,
so the machine's /etc/labkit and other classes are never touched."""
from __future__ import annotations

import grp
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time

import pytest

from labkit.kernel.cgroups.mountinfo import layout
from labkit_cli import cli
from requirements import require_tool, skipif_here

pytestmark = [
    pytest.mark.root,
    skipif_here(os.geteuid() != 0, "REAL: classroom setup creates accounts and cgroups (root)"),
]

for _tool in ("useradd", "usermod", "runuser"):
    require_tool(_tool, "passwd / util-linux")

LAY = layout()
V1 = LAY.version == "v1"
CONTROLLER_ROOTS = sorted({LAY.v1[c] for c in ("cpu", "cpuacct", "memory", "pids")}) if V1 \
    else [LAY.v2]


class Klass:
    """One throwaway class: names, paths, and a cleanup that removes whatever is left."""

    def __init__(self) -> None:
        sfx = secrets.token_hex(3)
        self.parent = f"lkc{sfx}"
        self.a, self.b = f"lkc{sfx}a", f"lkc{sfx}b"
        self.teachers = f"lkc{sfx}p"
        self.base = tempfile.mkdtemp(prefix="lkc-", dir="/var/tmp")
        os.chmod(self.base, 0o755)  # students traverse it to reach etc/
        self.etc = os.path.join(self.base, "etc")
        self.data = os.path.join(self.base, "data")

    def setup(self, *extra: str, students: str | None = None, create: bool = True):
        args = ["classroom", "setup", "--students", students or f"{self.a},{self.b}",
                "--parent", self.parent, "--etc", self.etc, "--data", self.data,
                "--teacher-group", self.teachers, "--cpus", "0.5", "--memory", "256m",
                "--pids", "64", *extra]
        if "--proc" not in extra:
            args.append("--no-hidepid")
        if create:
            args.append("--create")
        return cli(*args)

    def teardown(self):
        return cli("classroom", "teardown", "--etc", self.etc)

    def dirs(self, rel: str) -> list[str]:
        return [os.path.join(r, rel) for r in CONTROLLER_ROOTS]

    def cleanup(self) -> None:
        if os.path.exists(os.path.join(self.etc, "classroom.json")):
            self.teardown()
        for user in (self.a, self.b):
            if _exists(user):
                subprocess.run(["pkill", "-KILL", "-u", user], capture_output=True)
                subprocess.run(["userdel", "--remove", user], capture_output=True)
        subprocess.run(["groupdel", self.teachers], capture_output=True)
        for d in self.dirs(self.parent):
            for root, _dirs, _files in sorted(os.walk(d), key=lambda w: -w[0].count("/")):
                os.rmdir(root)
        shutil.rmtree(self.base, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _snapshot(k: Klass) -> dict:
    """What bad input must not change: this class's lines in the account and id files (other
    work on this machine adds and removes its own users meanwhile), its cgroups and dirs."""
    ours = (k.a + ":", k.b + ":", k.teachers + ":")

    def lines(p):
        with open(p) as f:
            return [line for line in f if line.startswith(ours) or f",{k.a}" in line
                    or f":{k.a}" in line.split(":", 3)[-1]]
    return {"passwd": lines("/etc/passwd"), "group": lines("/etc/group"),
            "subuid": lines("/etc/subuid"), "subgid": lines("/etc/subgid"),
            "cgroups": [os.path.exists(d) for d in k.dirs(k.parent)],
            "etc": os.path.exists(k.etc), "data": os.path.exists(k.data)}


def _busy_in(cgroup_dir: str, user: str) -> bool:
    """A process of ``user`` in the cgroup, on CPU (state R)."""
    with open(os.path.join(cgroup_dir, "cgroup.procs")) as f:
        pids = f.read().split()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except FileNotFoundError:
            continue
        uid = int(status.split("Uid:")[1].split()[0])
        if uid == pwd.getpwnam(user).pw_uid and "State:\tR" in status:
            return True
    return False


def as_user(user: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, cwd="/")


@pytest.fixture
def klass(open_to_other_users):
    k = Klass()
    yield k
    k.cleanup()


def test_setup_makes_accounts_ranges_and_delegated_slices(klass):
    k = klass
    r = k.setup()
    assert r.returncode == 0, r.stderr
    assert "turma pronta: 2 alunos" in r.stdout
    ranges = {}
    for user in (k.a, k.b):
        pw = pwd.getpwnam(user)
        assert os.stat(pw.pw_dir).st_mode & 0o777 == 0o700
        assert os.path.isfile(os.path.join(pw.pw_dir, "curso", "01_o_que_e_um_conteiner.ipynb"))
        for kind in ("subuid", "subgid"):
            with open(f"/etc/{kind}") as f:
                mine = [line.split(":") for line in f if line.startswith(user + ":")]
            assert len(mine) == 1 and int(mine[0][2]) == 65536
            ranges.setdefault(kind, []).append((int(mine[0][1]), int(mine[0][1]) + 65536))
        for d in k.dirs(f"{k.parent}/{user}") + k.dirs(f"{k.parent}/{user}/jupyter"):
            assert os.stat(d).st_uid == pw.pw_uid
            assert os.stat(os.path.join(d, "cgroup.procs")).st_uid == pw.pw_uid
    for kind, (x, y) in ranges.items():
        assert x[1] <= y[0] or y[1] <= x[0], kind  # no overlap between the two students
    # v1: cpuset (--cpuset-cpus, notebook 03) and freezer (pause) delegated too where mounted,
    # each new cpuset filled from its parent (an empty one takes no process)
    for ctrl in ("cpuset", "freezer") if V1 else ():
        if ctrl not in LAY.v1:
            continue
        for d in (f"{LAY.v1[ctrl]}/{k.parent}/{k.a}", f"{LAY.v1[ctrl]}/{k.parent}/{k.a}/jupyter"):
            assert os.stat(d).st_uid == pwd.getpwnam(k.a).pw_uid, d
            if ctrl == "cpuset":
                with open(f"{d}/cpuset.cpus") as f, open(f"{LAY.v1[ctrl]}/cpuset.cpus") as top:
                    assert f.read().strip() == top.read().strip() != ""
    with open(os.path.join(k.etc, "cgroup-parent")) as f:
        assert f.read() == k.parent + "\n"
    state_file = os.path.join(k.etc, "classroom.json")
    st = os.stat(state_file)
    assert st.st_mode & 0o777 == 0o640 and st.st_gid == grp.getgrnam(k.teachers).gr_gid
    with open(os.path.join(k.etc, "jupyterhub", "jupyterhub_config.py")) as f:
        config = f.read()
    compile(config, "jupyterhub_config.py", "exec")
    assert f"{{'{k.a}', '{k.b}'}}" in config and "ClassroomSpawner" in config

    # the caps are root's; below them the student is in charge of its own slice
    if V1:
        cpu = f"{LAY.v1['cpu']}/{k.parent}/{k.a}"
        mem = f"{LAY.v1['memory']}/{k.parent}/{k.a}"
        with open(f"{cpu}/cpu.cfs_quota_us") as f:
            assert f.read().strip() == "50000"
        script = f"""
            mkdir {cpu}/labkit {mem}/labkit || exit 9
            echo 25000 > {cpu}/labkit/cpu.cfs_quota_us && echo child-below-ok
            echo 100000 > {cpu}/labkit/cpu.cfs_quota_us 2>/dev/null || echo child-above-refused
            echo 100000 > {cpu}/cpu.cfs_quota_us 2>/dev/null || echo own-cap-refused
            echo max > {LAY.v1['pids']}/{k.parent}/{k.a}/pids.max 2>/dev/null || echo pids-refused
            echo $$ > {LAY.v1['cpu']}/{k.parent}/{k.b}/cgroup.procs 2>/dev/null || echo peer-refused
            echo $$ > {LAY.v1['cpu']}/{k.parent}/cgroup.procs 2>/dev/null || echo parent-refused
            echo 32m > {mem}/labkit/memory.limit_in_bytes && echo 0 > {mem}/labkit/memory.swappiness
            sh -c 'echo $$ > {mem}/labkit/cgroup.procs; exec python3 -c "x = bytearray(200 << 20)"'
            echo oom=$?
            rmdir {cpu}/labkit {mem}/labkit
        """
    else:
        top = f"{LAY.v2}/{k.parent}/{k.a}"
        with open(f"{top}/cpu.max") as f:
            assert f.read().split()[0] == "50000"
        # the common-ancestor rule: from outside its slice the student cannot pull itself in
        r = as_user(k.a, f"mkdir {top}/labkit && echo $$ > {top}/labkit/cgroup.procs "
                         f"2>/dev/null || echo join-from-outside-refused; rmdir {top}/labkit")
        assert "join-from-outside-refused" in r.stdout, (r.stdout, r.stderr)
        script = f"""
            mkdir {top}/labkit || exit 9
            echo "25000 100000" > {top}/labkit/cpu.max && echo child-below-ok
            echo "max 100000" > {top}/cpu.max 2>/dev/null || echo own-cap-refused
            echo max > {top}/pids.max 2>/dev/null || echo pids-refused
            echo $$ > {LAY.v2}/{k.parent}/{k.b}/jupyter/cgroup.procs 2>/dev/null || echo peer-refused
            echo $$ > {LAY.v2}/{k.parent}/cgroup.procs 2>/dev/null || echo parent-refused
            echo 32M > {top}/labkit/memory.max && echo 0 > {top}/labkit/memory.swap.max
            sh -c 'echo $$ > {top}/labkit/cgroup.procs && exec python3 -c "x = bytearray(200 << 20)"'
            echo oom=$?
            rmdir {top}/labkit
        """
    script_file = os.path.join(k.base, "student.sh")
    with open(script_file, "w") as f:
        f.write(script)
    os.chmod(script_file, 0o644)
    if V1:
        r = as_user(k.a, f"sh {script_file}")
    else:
        # root places the first pid in the leaf, as the hub does before dropping to the student
        r = subprocess.run(["sh", "-c", f"echo $$ > {top}/jupyter/cgroup.procs; "
                                        f"exec runuser -u {k.a} -- sh {script_file}"],
                           capture_output=True, text=True, timeout=60, cwd="/")
    words = ["child-below-ok", "own-cap-refused", "pids-refused", "peer-refused",
             "parent-refused", "oom=137"]
    if V1:  # v1 refuses a child's quota above the parent's; v2 takes it (and caps it)
        words.append("child-above-refused")
    for word in words:
        assert word in r.stdout, (word, r.stdout, r.stderr)

    # the teachers' dashboard: root sees both slices; a student is refused
    r = cli("classroom", "top", "--no-stream", "--etc", k.etc)
    assert r.returncode == 0, r.stderr
    assert k.a in r.stdout and k.b in r.stdout and f"{k.a}:jupyter" in r.stdout
    venv_labkit = cli.__globals__["LABKIT"]
    r = as_user(k.b, f"LABKIT_LANG=pt_BR {venv_labkit} classroom top --no-stream --etc {k.etc}")
    assert r.returncode == 125 and "só para o root e para o grupo" in r.stderr, r.stderr
    r = as_user(k.b, f"LABKIT_LANG=pt_BR {venv_labkit} classroom teardown --etc {k.etc}")
    assert r.returncode == 125 and "precisa rodar como root" in r.stderr

    # teardown: nothing of the class is left
    r = k.teardown()
    assert r.returncode == 0, r.stderr
    assert not _exists(k.a) and not _exists(k.b)
    for kind in ("subuid", "subgid"):
        with open(f"/etc/{kind}") as f:
            assert not any(line.startswith((k.a + ":", k.b + ":")) for line in f)
    assert not any(os.path.exists(d) for d in k.dirs(k.parent))
    assert not os.path.exists(k.etc) and not os.path.exists(k.data)
    with pytest.raises(KeyError):
        grp.getgrnam(k.teachers)


def test_second_setup_is_idempotent_and_adds_a_new_student(klass):
    k = klass
    assert k.setup(students=k.a).returncode == 0
    with open(os.path.join(k.etc, "classroom.json")) as f:
        first = json.load(f)
    with open("/etc/subuid") as f:
        lines_before = f.read().count(f"{k.a}:")
    r = k.setup(students=k.a)
    assert r.returncode == 0, r.stderr
    assert "conta nova" not in r.stdout  # nothing created the second time
    with open(os.path.join(k.etc, "classroom.json")) as f:
        assert json.load(f) == first
    with open("/etc/subuid") as f:
        assert f.read().count(f"{k.a}:") == lines_before == 1
    r = k.setup(students=f"{k.a},{k.b}")
    assert r.returncode == 0, r.stderr
    assert f"conta nova {k.b}" in r.stdout and f"conta nova {k.a}" not in r.stdout
    with open(os.path.join(k.etc, "classroom.json")) as f:
        assert sorted(json.load(f)["students"]) == [k.a, k.b]
    assert k.teardown().returncode == 0
    assert not _exists(k.a) and not _exists(k.b)


@pytest.mark.parametrize("bad", ["Ana", "1abc", "ana.b", "a" * 33])
def test_invalid_name_is_refused_and_changes_nothing(klass, bad):
    k = klass
    before = _snapshot(k)
    r = k.setup(students=f"{k.a},{bad}")
    assert r.returncode == 125
    assert "nome de aluno inválido" in r.stderr and "Traceback" not in r.stderr
    assert _snapshot(k) == before


def test_overlapping_range_is_refused_and_changes_nothing(klass):
    k = klass
    for user in (k.a, k.b):
        subprocess.run(["useradd", user], check=True)
    with open("/etc/subuid") as f:
        a_start = next(int(line.split(":")[1]) for line in f if line.startswith(k.a + ":"))
    # b gets a second range that starts inside a's
    subprocess.run(["usermod", "--add-subuids", f"{a_start + 100}-{a_start + 200}", k.b],
                   check=True)
    before = _snapshot(k)
    r = k.setup(create=False)
    assert r.returncode == 125, r.stdout
    assert "se sobrepõe" in r.stderr and "/etc/subuid" in r.stderr
    assert _snapshot(k) == before


def test_missing_account_without_create_is_refused(klass):
    k = klass
    before = _snapshot(k)
    r = k.setup(create=False)
    assert r.returncode == 125 and f"o usuário {k.a} não existe" in r.stderr
    assert _snapshot(k) == before


def test_student_cpus_above_the_class_cap_is_refused(klass):
    k = klass
    before = _snapshot(k)
    r = k.setup("--class-cpus", "0.25")
    assert r.returncode == 125 and "maior que o da turma" in r.stderr
    assert _snapshot(k) == before


def test_hidepid_hides_classmates_and_teardown_restores(klass, tmp_path):
    """On a proc instance of its own (the machine's /proc is shared with other work): with
    hidepid=invisible a student sees only its own processes, the teachers' group sees all,
    and teardown puts the old options back."""
    from labkit.classroom import procfs

    k = klass
    proc = os.path.join(k.base, "proc")
    os.mkdir(proc)
    subprocess.run(["mount", "-t", "proc", "proc", proc], check=True)
    try:
        assert procfs.options(proc) == {}
        r = k.setup("--proc", proc)
        assert r.returncode == 0, r.stderr
        gid = grp.getgrnam(k.teachers).gr_gid
        assert procfs.options(proc) == {"hidepid": "invisible", "gid": str(gid)}
        listing = f"ls {proc} | grep -c '^[0-9]'"
        mine = as_user(k.a, f"ls {proc} | grep '^[0-9]' | while read p; do "
                            f"stat -c %U {proc}/$p; done | sort -u")
        assert mine.stdout.split() == [k.a], mine.stdout  # only its own processes
        seen_by_teacher = subprocess.run(
            ["setpriv", f"--reuid={pwd.getpwnam(k.b).pw_uid}", f"--regid={gid}",
             f"--groups={gid}", "sh", "-c", listing], capture_output=True, text=True)
        assert int(seen_by_teacher.stdout) > 5  # everyone's
        assert k.teardown().returncode == 0
        assert procfs.options(proc) == {}
    finally:
        subprocess.run(["umount", proc], check=False)


def test_teachers_dashboard_shows_each_students_slice_live(klass):
    """A busy loop in A's leaf: the dashboard has a series for A (its CPU, its 0.5 CPU cap,
    its process counted) and one for B (idle)."""
    import labkit.classroom

    k = klass
    assert k.setup().returncode == 0
    leaf = k.dirs(f"{k.parent}/{k.a}/jupyter")
    busy = subprocess.Popen(
        ["sh", "-c", "".join(f"echo $$ > {d}/cgroup.procs; " for d in leaf)
         + f"exec runuser -u {k.a} -- sh -c 'while :; do :; done'"])
    try:
        deadline = time.monotonic() + 30
        while not _busy_in(leaf[0], k.a):  # runuser's PAM start-up, then the loop
            assert time.monotonic() < deadline and busy.poll() is None
            time.sleep(0.1)
        live = labkit.classroom.dashboard(duration=2.0, rate=4.0, etc=k.etc, display=False)
        live.start()
        live.wait()
        rows = live.rows()
    finally:
        busy.kill()
        busy.wait()
    by = {}
    for row in rows:
        by.setdefault(row["target"], []).append(row)
    assert {k.a, k.b} <= set(by)
    assert max(r["pids"] or 0 for r in by[k.a]) >= 1
    assert max(r["cpu_percent"] or 0 for r in by[k.a]) > 0
    assert all(r["cpu_quota_percent"] == 50.0 for r in by[k.a])  # A's cap, as the kernel has it
    # (whether the loop reaches the cap depends on what else this machine runs: not asserted)
    assert all((r["pids"] or 0) == 0 and not r["cpu_percent"] for r in by[k.b])
    assert k.teardown().returncode == 0


@pytest.mark.parametrize("args, message", [
    (["classroom", "setup"], "--students"),
    (["classroom", "setup", "--students", "x", "--cpus", "muitas"], "CPUs inválido: muitas"),
    (["classroom", "setup", "--students", "x", "--memory", "1 giga"], "1 giga"),
    (["classroom", "setup", "--students", "x", "--teacher-group", "Profs"], "nome de grupo"),
    (["classroom", "setup", "--students", "/nao/existe.txt"], "não existe"),
    (["classroom", "teardown", "--etc", "/nao/existe"], "nenhuma turma"),
    (["classroom", "top", "--no-stream", "--etc", "/nao/existe"], "nenhuma turma"),
    (["classroom"], ""),
])
def test_bad_command_lines_exit_125_in_portuguese(klass, args, message):
    before = _snapshot(klass)
    r = cli(*args, "--etc", klass.etc) if args[1:2] == ["setup"] else cli(*args)
    assert r.returncode == 125, (r.stdout, r.stderr)
    assert message in r.stderr + r.stdout and "Traceback" not in r.stderr
    assert _snapshot(klass) == before


def test_failure_half_way_undoes_what_this_run_made(klass):
    """--proc names no proc mount: found only at the last step, after the accounts, ranges and
    cgroups were made; the run undoes them all and says why."""
    k = klass
    before = _snapshot(k)
    r = k.setup("--proc", os.path.join(k.base, "nao-e-proc"))
    assert r.returncode == 125 and "nenhum sistema de arquivos proc" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert _snapshot(k) == before
    assert not _exists(k.a) and not _exists(k.b)
