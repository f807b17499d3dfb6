"""The class set-up without root: names, subordinate id ranges, the hub's configuration, and
the cgroup delegation on a fake cgroupfs (plain files in a temp dir) for v1 and v2."""
from __future__ import annotations

import os
import shutil

import pytest

from labkit.classroom import delegation, hub, names, procfs, subids
from labkit.classroom.delegation import Caps, Tree
from labkit.classroom.state import State, StudentState
from labkit.errors import LabkitError
from labkit.kernel.cgroups.mountinfo import Layout
from requirements import require_module


# -- names ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["ana", "bruno-2", "c_d", "a" * 32])
def test_valid_names(name):
    assert names.check_name(name) == name


@pytest.mark.parametrize("name", ["Ana", "1ana", "-x", "ana.b", "ana b", "", "a" * 33, "ção",
                                  "root;rm", "../etc"])
def test_invalid_names_are_refused_in_portuguese(name, portuguese):
    with pytest.raises(LabkitError) as e:
        names.check_name(name)
    assert "nome de aluno inválido" in e.value.message and e.value.exit_code == 125


def test_students_from_text_and_list(tmp_path):
    got = names.parse_students("# turma A\nana\nbruno:segredo\n\n  carla  # monitora\n")
    assert [(s.name, s.password) for s in got] == [("ana", None), ("bruno", "segredo"),
                                                   ("carla", None)]
    assert [s.name for s in names.read_students("ana,bruno")] == ["ana", "bruno"]
    f = tmp_path / "turma.txt"
    f.write_text("dora\neva\n")
    assert [s.name for s in names.read_students(str(f))] == ["dora", "eva"]


def test_student_lists_refused(portuguese, tmp_path):
    with pytest.raises(LabkitError, match="duas vezes"):
        names.parse_students("ana,ana")
    with pytest.raises(LabkitError, match="nenhum aluno"):
        names.parse_students("# ninguém\n")
    with pytest.raises(LabkitError, match="não existe"):
        names.read_students(str(tmp_path / "falta.txt"))


# -- subordinate ids ----------------------------------------------------------------------

SUBUID = """\
root:100000:65536
ana:165536:65536
# a comment
broken line
1005:300000:65536
"""


def test_parse_and_owned():
    ranges = subids.parse(SUBUID)
    assert [(r.owner, r.start, r.count) for r in ranges] == [
        ("root", 100000, 65536), ("ana", 165536, 65536), ("1005", 300000, 65536)]
    assert subids.owned(ranges, "bia", 1005)[0].start == 300000
    assert subids.owned(ranges, "ana")[0].text() == "165536-231071"


def test_allocate_takes_the_first_gap_that_fits():
    ranges = subids.parse(SUBUID)
    start = subids.allocate(ranges)
    assert start == 231072  # right after ana's, before 300000: 68928 free ids fit 65536
    new = subids.Range("bia", start, subids.RANGE)
    assert not any(new.overlaps(r) for r in ranges)
    ranges.append(new)
    after = subids.allocate(ranges)
    assert after == 365536 and not any(subids.Range("c", after, 65536).overlaps(r) for r in ranges)


def test_allocate_from_empty_and_a_full_space(portuguese):
    assert subids.allocate([]) == subids.FLOOR
    full = [subids.Range("x", subids.FLOOR, subids.CEILING - subids.FLOOR)]
    with pytest.raises(LabkitError, match="não há uma faixa livre"):
        subids.allocate(full)


def test_overlapping_ranges_are_refused(portuguese):
    ranges = subids.parse("ana:100000:65536\nbia:150000:65536\n")
    with pytest.raises(LabkitError) as e:
        subids.check_overlaps(ranges, "bia", None, "subuid")
    assert "sobrepõe" in e.value.message and "ana" in e.value.message
    subids.check_overlaps(subids.parse("ana:100000:65536\nbia:165536:65536\n"), "bia", None,
                          "subuid")  # adjacent ranges do not overlap


# -- hub configuration ---------------------------------------------------------------------

def test_hub_config_is_valid_python_with_the_class_settings(tmp_path):
    traitlets = require_module("traitlets.config")
    s = hub.HubSettings(students=["bia", "ana"], etc="/etc/labkit", data="/var/lib/x",
                        parent="lkclass", venv="/opt/venv", cores=2, teachers=("prof",),
                        proxy="/opt/chp/bin/configurable-http-proxy", teacher_group="profs")
    text = hub.config_text(s)
    assert text == hub.config_text(s)  # stable: a second setup writes the same bytes
    c = traitlets.Config()
    exec(compile(text, "jupyterhub_config.py", "exec"), {"get_config": lambda: c})
    assert c.JupyterHub.ip == "127.0.0.1"
    assert c.JupyterHub.spawner_class == "labkit.classroom.spawner.ClassroomSpawner"
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.Authenticator.allowed_users == {"ana", "bia"}
    assert c.Authenticator.admin_users == {"prof"}
    assert c.PAMAuthenticator.allowed_groups == {"profs"} == c.PAMAuthenticator.admin_groups
    assert c.Spawner.start_timeout >= 300 and c.Spawner.http_timeout >= 120
    assert c.JupyterHub.concurrent_spawn_limit == 4
    assert c.Spawner.cmd == ["/opt/venv/bin/jupyterhub-singleuser"]
    assert c.Spawner.default_url == "/lab/tree/curso"
    assert c.Spawner.environment["PATH"].startswith("/opt/venv/bin:")
    # each student's labkit gets their own slice (the class's is root's: not delegated)
    spawner = type("S", (), {"user": type("U", (), {"name": "ana"})()})()
    assert c.Spawner.environment["LABKIT_CGROUP_PARENT"](spawner) == "lkclass/ana"
    assert c.ConfigurableHTTPProxy.command == ["/opt/chp/bin/configurable-http-proxy"]
    culler = c.JupyterHub.services[0]
    assert culler["name"] == "idle-culler" and "jupyterhub_idle_culler" in culler["command"]
    assert "delete:servers" in c.JupyterHub.load_roles[0]["scopes"]
    assert c.JupyterHub.db_url == "sqlite:////var/lib/x/jupyterhub.sqlite"


# -- state ------------------------------------------------------------------------------------

def test_state_round_trip_never_stores_passwords():
    st = State(cgroup="v1", parent="lkclass", files=["/etc/labkit/cgroup-parent"],
               students={"ana": StudentState(created=True, subuid=[100000, 65536],
                                             password="segredo")})
    text = st.to_json()
    assert "segredo" not in text
    back = State.from_json(text)
    assert back.students["ana"].created and back.students["ana"].subuid == [100000, 65536]
    assert back.files == ["/etc/labkit/cgroup-parent"]


# -- /proc options -----------------------------------------------------------------------------

def test_proc_options_read_from_mountinfo(portuguese):
    info = ("22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
            "99 1 0:50 / /tmp/p rw,relatime - proc proc rw,hidepid=invisible,gid=1001\n")
    assert procfs.options("/proc", info) == {}
    assert procfs.options("/tmp/p", info) == {"hidepid": "invisible", "gid": "1001"}
    with pytest.raises(LabkitError, match="nenhum sistema de arquivos proc"):
        procfs.options("/nada", info)


# -- delegation on a fake cgroupfs ----------------------------------------------------------

V1_FILES = {
    "cpu": ("cgroup.procs", "tasks", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.shares"),
    "cpuacct": ("cgroup.procs", "tasks", "cpuacct.usage"),
    "memory": ("cgroup.procs", "tasks", "memory.limit_in_bytes", "memory.usage_in_bytes"),
    "pids": ("cgroup.procs", "tasks", "pids.max", "pids.current"),
}
V2_FILES = ("cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "cgroup.controllers",
            "cpu.max", "memory.max", "pids.max")


class FakeFS:
    """A cgroupfs made of plain files: mkdir makes the kernel's files; chowns are recorded."""

    def __init__(self, root, version):
        self.root = root
        self.version = version
        self.owners: dict[str, tuple[int, int]] = {}
        if version == "v1":
            self.layout = Layout(v1={c: str(root / c) for c in V1_FILES})
            for c in V1_FILES:
                (root / c).mkdir()
                self.populate(str(root / c))
        else:
            self.layout = Layout(v2=str(root))
            self.populate(str(root))

    def populate(self, d, version=None):
        if self.version == "v1":
            ctrl = os.path.relpath(d, self.root).split(os.sep)[0]
            names_ = V1_FILES[ctrl]
        else:
            names_ = V2_FILES
        for n in names_:
            with open(os.path.join(d, n), "w") as f:
                f.write("")

    def chown(self, path, uid, gid):
        assert os.path.exists(path), path
        self.owners[os.path.relpath(path, self.root)] = (uid, gid)

    def tree(self, parent="lkclass"):
        return Tree(self.layout, parent, chown=self.chown, rmdir=shutil.rmtree,
                    on_mkdir=self.populate)


def read(p):
    with open(p) as f:
        return f.read()


def test_v1_delegation_caps_are_roots_and_procs_are_the_students(tmp_path):
    fs = FakeFS(tmp_path, "v1")
    tree = fs.tree()
    made = tree.make_parent(Caps(cpus=1.5))
    assert sorted(os.path.relpath(d, tmp_path) for d in made) == [
        "cpu/lkclass", "cpuacct/lkclass", "memory/lkclass", "pids/lkclass"]
    assert read(tmp_path / "cpu/lkclass/cpu.cfs_quota_us") == "150000"
    tree.make_student("ana", 1001, 1001, Caps(cpus=1.0, memory=1 << 30, pids=512))
    assert read(tmp_path / "cpu/lkclass/ana/cpu.cfs_quota_us") == "100000"
    assert read(tmp_path / "cpu/lkclass/ana/cpu.cfs_period_us") == "100000"
    assert read(tmp_path / "memory/lkclass/ana/memory.limit_in_bytes") == str(1 << 30)
    assert read(tmp_path / "pids/lkclass/ana/pids.max") == "512"
    owned = {p for p, ids in fs.owners.items() if ids == (1001, 1001)}
    for c in V1_FILES:
        for rel in ("lkclass/ana", "lkclass/ana/jupyter"):
            assert {f"{c}/{rel}", f"{c}/{rel}/cgroup.procs", f"{c}/{rel}/tasks"} <= owned
    # the caps stay root's: an owner could otherwise raise them
    assert not any(p.endswith(("quota_us", "period_us", "limit_in_bytes", "pids.max"))
                   for p in owned)
    assert tree.leaf_procs("ana") == [str(tmp_path / c / "lkclass/ana/jupyter/cgroup.procs")
                                      for c in V1_FILES]
    # a second run changes nothing it made, makes nothing new
    assert tree.make_parent(Caps(cpus=1.5)) == []
    assert tree.make_student("ana", 1001, 1001, Caps(cpus=1.0, memory=1 << 30, pids=512)) == []
    tree.remove("lkclass/ana")
    assert not any((tmp_path / c / "lkclass/ana").exists() for c in V1_FILES)
    tree.remove("lkclass")
    assert not any((tmp_path / c / "lkclass").exists() for c in V1_FILES)


def test_v1_joined_cpu_cpuacct_is_made_once(tmp_path):
    (tmp_path / "cpu,cpuacct").mkdir()
    lay = Layout(v1={"cpu": str(tmp_path / "cpu,cpuacct"), "cpuacct": str(tmp_path / "cpu,cpuacct"),
                     "memory": str(tmp_path / "memory"), "pids": str(tmp_path / "pids")})
    (tmp_path / "memory").mkdir()
    (tmp_path / "pids").mkdir()

    def populate(d, _v):
        for n in ("cgroup.procs", "tasks", "cpu.cfs_period_us", "cpu.cfs_quota_us",
                  "memory.limit_in_bytes", "pids.max"):
            open(os.path.join(d, n), "w").close()

    tree = Tree(lay, "lkclass", chown=lambda *a: None, rmdir=shutil.rmtree, on_mkdir=populate)
    assert len(tree.make_parent(Caps())) == 3
    assert read(tmp_path / "cpu,cpuacct/lkclass/cpu.cfs_quota_us") == "-1"


def test_v2_delegation_enables_controllers_and_chowns_the_delegation_files(tmp_path):
    fs = FakeFS(tmp_path, "v2")
    tree = fs.tree()
    tree.make_parent(Caps(cpus=1.5, memory=8 << 30))
    assert read(tmp_path / "cgroup.subtree_control") == "+cpu +memory +pids"
    assert read(tmp_path / "lkclass/cpu.max") == "150000 100000"
    assert read(tmp_path / "lkclass/memory.max") == str(8 << 30)
    assert read(tmp_path / "lkclass/pids.max") == "max"
    assert read(tmp_path / "lkclass/cgroup.subtree_control") == "+cpu +memory +pids"
    tree.make_student("ana", 1001, 1001, Caps(cpus=1.0, memory=1 << 30, pids=512))
    assert read(tmp_path / "lkclass/ana/cpu.max") == "100000 100000"
    assert read(tmp_path / "lkclass/ana/memory.max") == str(1 << 30)
    assert read(tmp_path / "lkclass/ana/pids.max") == "512"
    assert read(tmp_path / "lkclass/ana/cgroup.subtree_control") == "+cpu +memory +pids"
    owned = {p for p, ids in fs.owners.items() if ids == (1001, 1001)}
    assert owned == {f"{rel}{f}" for rel in ("lkclass/ana", "lkclass/ana/jupyter")
                     for f in ("", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads")}
    assert tree.leaf_procs("ana") == [str(tmp_path / "lkclass/ana/jupyter/cgroup.procs")]
    # already enabled: not written again (a write of "+cpu" to a busy parent can fail)
    (tmp_path / "cgroup.subtree_control").write_text("cpu memory pids")
    tree.make_parent(Caps(cpus=1.5))
    assert read(tmp_path / "cgroup.subtree_control") == "cpu memory pids"


def test_no_cgroups_or_missing_controllers(portuguese, tmp_path):
    with pytest.raises(LabkitError):
        Tree(Layout(), "lkclass")
    with pytest.raises(LabkitError, match="pids"):
        Tree(Layout(v1={"cpu": "/x", "cpuacct": "/y", "memory": "/z"}), "lkclass")
    with pytest.raises(LabkitError):
        Tree(Layout(v2=str(tmp_path)), "../etc")


def test_placement_writes_the_pid(tmp_path):
    from labkit.classroom.placement import place
    files = [tmp_path / "a", tmp_path / "b"]
    for f in files:
        f.write_text("")
    place([str(f) for f in files])
    assert [f.read_text() for f in files] == [str(os.getpid())] * 2


def test_delegation_module_names_the_files_it_chowns():
    assert delegation.V2_DELEGATED == ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
    assert set(delegation.V1_DELEGATED) == {"cgroup.procs", "tasks"}


# -- the dashboard's slices and table -----------------------------------------------------------

V2_INFO = "26 25 0:24 / {root} rw,relatime shared:8 - cgroup2 cgroup2 rw\n"


def test_dashboard_slices_are_students_then_their_leaves(tmp_path):
    from labkit.classroom.dashboard import slices

    cg = tmp_path / "cg"
    for d in ("lkclass/ana/jupyter", "lkclass/ana/labkit/3f2a", "lkclass/ana/labkit/9b1c",
              "lkclass/bia/jupyter"):
        (cg / d).mkdir(parents=True)
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "cgroup-parent").write_text("lkclass\n")
    got = slices(str(etc), mountinfo=V2_INFO.format(root=cg))
    assert [s.name for s in got] == ["ana", "ana:jupyter", "ana:labkit/3f2a", "ana:labkit/9b1c",
                                     "bia", "bia:jupyter"]
    assert got[0].paths() == [str(cg / "lkclass/ana")]
    assert [s.name for s in slices(str(etc), per_container=False,
                                   mountinfo=V2_INFO.format(root=cg))] == ["ana", "bia"]


def test_dashboard_without_a_class_is_a_clear_error(tmp_path, portuguese):
    from labkit.classroom.dashboard import class_parent

    with pytest.raises(LabkitError, match="nenhuma turma"):
        class_parent(str(tmp_path))


def test_dashboard_table_in_portuguese(portuguese):
    from labkit.classroom.dashboard import table

    text = table([{"name": "ana", "cpu_percent": 49.5, "memory_bytes": 200 << 20,
                   "memory_limit": 1 << 30, "pids": 14, "pids_limit": 512, "oom_kills": 1},
                  {"name": "bia:jupyter", "cpu_percent": 0.0, "memory_bytes": 0,
                   "memory_limit": None, "pids": 0, "pids_limit": None, "oom_kills": 0}])
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["FATIA", "CPU"]
    assert lines[1].split() == ["ana", "49,50%", "200MiB", "/", "1GiB", "14", "/", "512", "1"]
    assert lines[2].split()[0] == "bia:jupyter" and "--" in lines[2]
