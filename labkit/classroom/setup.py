"""``labkit classroom setup`` and ``teardown``: one command, as root, prepares a shared server
for a class (accounts, subordinate ids, delegated cgroups with caps, /proc hidepid, the hub's
configuration) and records each thing it made in ``classroom.json``; teardown undoes exactly
those. Everything is checked before anything changes; a failure half-way undoes this run.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _
from ..kernel.cgroups import base as cgbase
from ..kernel.cgroups.mountinfo import layout
from . import accounts, procfs, subids
from .delegation import Caps, Tree
from .hub import HubSettings, config_text
from .names import Student
from .state import DATA, ETC, PARENT_FILE, State, StudentState, atomic_write, load, path, save

SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
COURSE_DIR = "curso"
# The course shipped beside the package (a git checkout or an editable install).
COURSE_SRC = str(Path(__file__).resolve().parents[2] / "notebooks")


def default_class_caps() -> Caps:
    """The class may use every core but half of one (left to the hub and the proxy)."""
    return Caps(cpus=max(1.0, (os.cpu_count() or 1) - 0.5))


@dataclass
class Options:
    students: list[Student]
    create: bool = False
    caps: Caps = field(default_factory=lambda: Caps(1.0, 1 << 30, 512))
    class_caps: Caps = field(default_factory=default_class_caps)
    teacher_group: str = "professores"
    etc: str = ETC
    data: str = DATA
    parent: str = "lkclass"
    proc: str | None = procfs.PROC       # None: leave /proc as it is
    course: str | None = COURSE_SRC      # None: copy no course
    port: int = 8000
    proxy: str = ""


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabkitError(_("labkit classroom must run as root (sudo labkit classroom ...)"))


def check(opts: Options, tree: Tree, old: State | None) -> None:
    """Every refusal, before anything changes."""
    from .names import NAME_REGEX

    if not NAME_REGEX.fullmatch(opts.teacher_group):
        raise LabkitError(_("invalid group name: %(name)r") % {"name": opts.teacher_group})
    if old is not None and old.parent != opts.parent:
        raise LabkitError(_("a class is already set up under cgroup %(old)s: run "
                            "`labkit classroom teardown` first") % {"old": old.parent})
    for caps in (opts.caps, opts.class_caps):
        if caps.cpus is not None:
            cgbase.check_cpus(caps.cpus)
    c, k = opts.caps, opts.class_caps
    if c.cpus is not None and k.cpus is not None and c.cpus > k.cpus:
        raise LabkitError(_("a student's --cpus %(s)s is above the class's %(c)s")
                          % {"s": c.cpus, "c": k.cpus})
    for target in outputs(opts):
        if os.path.exists(target) and (old is None or target not in old.files):
            raise LabkitError(_("%(path)s exists and was not written by labkit classroom setup")
                              % {"path": target})
    uids, gids = subids.read(SUBUID), subids.read(SUBGID)
    for st in opts.students:
        ids = accounts.uid_gid(st.name)
        if ids is None:
            if not opts.create:
                raise LabkitError(_("no such user: %(name)s (use --create to create the accounts)")
                                  % {"name": st.name})
            continue
        subids.check_overlaps(uids, st.name, ids[0], "subuid")
        subids.check_overlaps(gids, st.name, ids[0], "subgid")


def setup(opts: Options, mountinfo: str | None = None) -> tuple[State, dict[str, str]]:
    """Set the class up (or complete it: a second run only adds what is missing).
    Returns the state and the passwords of the accounts this run created."""
    require_root()
    tree = Tree(layout(mountinfo), opts.parent)
    old = load(opts.etc)
    check(opts, tree, old)
    new = State(cgroup=tree.version, parent=opts.parent, class_caps=asdict(opts.class_caps),
                student_caps=asdict(opts.caps), teacher_group=opts.teacher_group)
    try:
        apply(opts, tree, old, new)
        state = merge(old, new)
        save(state, opts.etc)
    except BaseException:
        # undo this run only: a student an earlier run set up keeps what it has
        if old is not None:
            new.students = {n: s for n, s in new.students.items() if n not in old.students}
            new.parent_dirs = []
        undo(new, tree)
        raise
    return state, {n: s.password for n, s in new.students.items() if s.password}


def _mkdir(d: str, new: State, mode: int = 0o755) -> None:
    if not os.path.isdir(d):
        os.makedirs(d, mode)
        new.dirs.append(d)


def _write(target: str, text: str, new: State, old: State | None, mode: int = 0o644) -> None:
    if old is None or target not in old.files:
        new.files.append(target)
    atomic_write(target, text, mode)


def outputs(opts: Options) -> list[str]:
    """The files setup writes (a file of the same name it did not write is a refusal)."""
    return [os.path.join(opts.etc, PARENT_FILE),
            os.path.join(opts.etc, "jupyterhub", "jupyterhub_config.py")]


def apply(opts: Options, tree: Tree, old: State | None, new: State) -> None:
    _mkdir(opts.etc, new)
    _mkdir(os.path.join(opts.etc, "jupyterhub"), new)
    if not os.path.isdir(opts.data):
        os.makedirs(opts.data, 0o700)
        new.data = opts.data
    gid = accounts.group_gid(opts.teacher_group)
    if gid is None:
        gid = accounts.create_group(opts.teacher_group)
        new.teacher_group_created = True
    new.teacher_gid = gid
    new.parent_dirs = tree.make_parent(opts.class_caps)
    for st in opts.students:
        _student(opts, tree, old, new, st)
    parent_file, hub_file = outputs(opts)
    _write(parent_file, opts.parent + "\n", new, old)
    hub = HubSettings(students=sorted(set(new.students) | set(old.students if old else ())),
                      etc=opts.etc, data=opts.data, parent=opts.parent, port=opts.port,
                      proxy=opts.proxy, course_dir=COURSE_DIR, teacher_group=opts.teacher_group,
                      teachers=accounts.group_members(opts.teacher_group))
    _write(hub_file, config_text(hub), new, old)
    if opts.proc and not (old and old.proc):
        new.proc_old = procfs.hide(opts.proc, gid)
        new.proc = opts.proc


def _student(opts: Options, tree: Tree, old: State | None, new: State, st: Student) -> None:
    before = old.students.get(st.name) if old else None
    s = new.students[st.name] = StudentState()
    if accounts.uid_gid(st.name) is None:
        s.password = accounts.create_user(st.name, st.password)
        s.created = True
    elif before is None:
        s.home_mode = accounts.close_home(st.name)
    uid, gid = accounts.uid_gid(st.name)  # type: ignore[misc]
    for file, kind in ((SUBUID, "subuid"), (SUBGID, "subgid")):
        ranges = subids.read(file)   # again: useradd may just have given one
        if not subids.owned(ranges, st.name, uid):
            r = subids.Range(st.name, subids.allocate(ranges), subids.RANGE)
            subids.add(st.name, r if kind == "subuid" else None, r if kind == "subgid" else None)
            setattr(s, kind, [r.start, r.count])
    tree.make_student(st.name, uid, gid, opts.caps)
    home = accounts.home(st.name)
    dest = os.path.join(home, COURSE_DIR)
    if opts.course and os.path.isdir(opts.course) and not os.path.exists(dest):
        shutil.copytree(opts.course, dest, ignore=shutil.ignore_patterns("src", ".*"))
        for d, dirs, files in os.walk(dest):
            for name in [d] + [os.path.join(d, f) for f in dirs + files]:
                os.chown(name, uid, gid)
        s.course = dest


def merge(old: State | None, new: State) -> State:
    """The state after a second run: what the first made, plus what this one added."""
    if old is None:
        return new
    old.files += [f for f in new.files if f not in old.files]
    old.dirs += [d for d in new.dirs if d not in old.dirs]
    old.data = old.data or new.data
    old.parent_dirs += [d for d in new.parent_dirs if d not in old.parent_dirs]
    old.class_caps, old.student_caps = new.class_caps, new.student_caps
    old.teacher_group_created = old.teacher_group_created or new.teacher_group_created
    if new.proc:
        old.proc, old.proc_old = new.proc, new.proc_old
    for name, s in new.students.items():
        b = old.students.get(name)
        if b is None:
            old.students[name] = s
            continue
        b.subuid = b.subuid or s.subuid
        b.subgid = b.subgid or s.subgid
        b.course = b.course or s.course
        b.created = b.created or s.created
    return old


def _range(name: str, pair: list[int] | None) -> subids.Range | None:
    return subids.Range(name, pair[0], pair[1]) if pair else None


def undo(state: State, tree: Tree, state_file: str | None = None) -> list[str]:
    """Remove what ``state`` records, in reverse order; go on past a failure, then raise
    the first one. ``state_file`` goes once the rest is gone, so that a failed teardown
    can be run again."""
    errors: list[Exception] = []

    def attempt(fn, *args) -> None:
        try:
            fn(*args)
        except (OSError, LabkitError) as exc:
            errors.append(exc)

    if state.proc:
        attempt(procfs.restore, state.proc, state.proc_old or {})
    for f in state.files:
        attempt(lambda p: os.path.exists(p) and os.unlink(p), f)
    for name, s in state.students.items():
        attempt(tree.remove, tree.student(name))
        if s.created:
            attempt(accounts.delete_user, name)
            continue
        uid_r, gid_r = _range(name, s.subuid), _range(name, s.subgid)
        if uid_r or gid_r:
            attempt(subids.remove, name, uid_r, gid_r)
        if s.home_mode is not None and accounts.uid_gid(name) is not None:
            attempt(os.chmod, accounts.home(name), s.home_mode)
    if state.parent_dirs:
        attempt(tree.remove, state.parent)
    if state.teacher_group_created:
        attempt(accounts.delete_group, state.teacher_group)
    if state.data:  # the hub's database and cookie secret, made for the class
        attempt(stop_proxy, state.data)
        attempt(shutil.rmtree, state.data)
    if not errors and state_file:
        attempt(os.unlink, state_file)
    for d in reversed(state.dirs):
        attempt(os.rmdir, d)
    if errors:
        first = errors[0]
        raise first if isinstance(first, LabkitError) else LabkitError(
            _("teardown incomplete: %(err)s") % {"err": first})
    return list(state.students)


def stop_proxy(data: str) -> None:
    """A stopped hub leaves its configurable-http-proxy running (so that a restarted hub
    finds the routes); with the class gone it would only hold the port."""
    import signal

    try:
        with open(os.path.join(data, "proxy.pid")) as f:
            pid = int(f.read().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"configurable-http-proxy" not in f.read():
                return  # the pid was reused by something else
    except (OSError, ValueError):
        return
    os.kill(pid, signal.SIGTERM)


def teardown(etc: str = ETC, mountinfo: str | None = None) -> list[str]:
    """Undo the class recorded in ``<etc>/classroom.json``; returns the students' names."""
    require_root()
    state = load(etc)
    if state is None:
        raise LabkitError(_("no class is set up here (%(path)s does not exist)")
                          % {"path": path(etc)})
    tree = Tree(layout(mountinfo), state.parent)
    return undo(state, tree, path(etc))
