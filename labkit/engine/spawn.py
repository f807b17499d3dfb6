"""Starting a container process: new namespaces, the cgroup, the root, exec.

The engine calls :func:`start` (a new container) or :func:`start_exec` (a
process in an existing container).

- A new container's PID 1 usually comes from a **spare** (:class:`Spare`,
  :func:`make_spare`, :func:`start_spare`): while idle, the engine
  ``clone()``s itself into a new PID namespace; that child makes the
  container's cgroup, joins it, ``unshare()``s the mount, UTS, IPC,
  network and cgroup namespaces and waits. ``run`` sends it the spec.
- Without a spare (the first container, ``--network host``, volumes),
  :func:`start` makes PID 1 with one ``clone(2)`` carrying every
  ``CLONE_NEW*`` flag; the child joins its cgroup, then unshares the cgroup
  namespace. ``LABKIT_SPAWN=fork`` selects the portable two-step shape that
  :func:`start_exec` always uses: ``fork()`` → child A joins the cgroup and
  ``unshare()``s (or ``setns()``s), A ``fork()``s B and exits; a new PID
  namespace applies to A's *children*, so B is PID 1.

Either way PID 1 is re-parented to, or born of, the engine (a child
subreaper), which reaps it and records its exit code. It builds the root
filesystem, drops privileges and ``execve()``s the command (all of that is
in :mod:`.child`). Until exec, errors travel back on a close-on-exec pipe:
reading EOF there means the exec succeeded.
"""
from __future__ import annotations

import gc
import json
import os
import socket

from .. import i18n
from ..kernel import namespaces, seccomp
from . import rootfs
from .child import (PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_NAME, become_process, child_b_new,
                    loopback_up, report, reset_signals)


def _fork_twice(prepare, run_b, syncfd: int, errfd: int) -> None:
    """Body of child A: ``prepare()`` (cgroup, namespaces), fork B, report its pid, exit."""
    try:
        reset_signals()
        # Non-dumpable until execve (which resets it): the container cannot open /proc/<B>/exe
        # (the host's Python) or /proc/<B>/fd/* while B, a copy of the engine, joins it
        # (runc CVE-2019-5736). B inherits the flag through fork.
        from ..kernel.libc import check, libc

        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
        prepare()
        pid = os.fork()
    except BaseException as exc:  # noqa: BLE001 - A must never return into the engine
        report(errfd, "setup", f"{type(exc).__name__}: {exc}", 125)
        os._exit(125)
    if pid == 0:
        try:
            os.close(syncfd)
            run_b()
        except BaseException as exc:  # noqa: BLE001
            report(errfd, "setup", f"{type(exc).__name__}: {exc}", 125)
        os._exit(125)
    os.write(syncfd, str(pid).encode())
    os._exit(0)


def _read_report(err_r: int) -> dict | None:
    """Read the child's error pipe to EOF and close it: None means it exec'd."""
    chunks = []
    try:
        while True:
            data = os.read(err_r, 65536)
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(err_r)
    return json.loads(b"".join(chunks)) if chunks else None


def _launch(prepare, run_b) -> tuple[int, dict | None]:
    """Run the A/B dance; return B's host pid and B's error report (None if exec'd)."""
    i18n._load()  # B translates its errors after pivot_root, when the catalog file is out of reach
    seccomp.program()
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_a = os.fork()
    if pid_a == 0:
        os.close(sync_r)
        os.close(err_r)
        _fork_twice(prepare, lambda: run_b(err_w), sync_w, err_w)
    os.close(sync_w)
    os.close(err_w)
    try:
        _, status = os.waitpid(pid_a, 0)
        pid_b = int(os.read(sync_r, 32) or 0)
    finally:
        os.close(sync_r)
    error = _read_report(err_r)
    if error is None and os.waitstatus_to_exitcode(status) != 0:
        error = {"kind": "setup", "message": "container setup failed", "code": 125}
    return pid_b, error


def start(spec: dict, cgroup) -> tuple[int, dict | None]:
    """Start a container's PID 1. ``spec``: rootfs (see rootfs.build), hostname, process.

    One ``clone(2)`` with the ``CLONE_NEW*`` flags makes PID 1 directly (no
    intermediate process: one copy of the engine fewer to create and tear
    down). The child joins its cgroup, *then* unshares the cgroup namespace so
    that this cgroup becomes its root. ``LABKIT_SPAWN=fork`` selects the
    portable fork → unshare → fork path instead.
    """
    skip = (*spec.get("share", ()), *(("net",) if spec.get("netns") else ()))
    names = [n for n in namespaces.CONTAINER_NAMESPACES if n not in skip]
    flags = namespaces.flags_for(names)
    if os.environ.get("LABKIT_SPAWN") == "fork":
        def prepare() -> None:
            cgroup.attach(os.getpid())  # before unshare(CLONE_NEWCGROUP): that cgroup becomes its root
            join_netns(spec)
            namespaces.unshare(flags)

        return _launch(prepare, lambda errfd: child_b_new(spec, errfd))
    return _clone_launch(flags & ~namespaces.CLONE_NEWCGROUP, flags & namespaces.CLONE_NEWCGROUP,
                         spec, cgroup)


def _clone_launch(flags: int, cgroup_ns: int, spec: dict, cgroup) -> tuple[int, dict | None]:
    i18n._load()  # the child translates its errors after pivot_root
    seccomp.program()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = namespaces.clone(flags)
    except OSError:
        os.close(err_r)
        os.close(err_w)
        raise
    if pid == 0:  # PID 1 of the new namespaces; never returns into the engine
        try:
            os.close(err_r)
            reset_signals()
            # non-dumpable until execve: see _fork_twice
            from ..kernel.libc import check, libc

            check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
            cgroup.attach(0)  # "0" = the writer itself; its pid here would be 1
            join_netns(spec)
            if cgroup_ns:
                namespaces.unshare(cgroup_ns)
            child_b_new(spec, err_w)
        except BaseException as exc:  # noqa: BLE001
            report(err_w, "setup", f"{type(exc).__name__}: {exc}", 125)
        os._exit(125)
    os.close(err_w)
    return pid, _read_report(err_r)


def join_netns(spec: dict) -> None:
    """Enter the network namespace the engine prepared (a bridge network's veth is already there)."""
    if spec.get("netns"):
        fd = os.open(spec["netns"], os.O_RDONLY | os.O_CLOEXEC)
        try:
            namespaces.setns(fd, namespaces.CLONE_NEWNET)
        finally:
            os.close(fd)


class Spare:
    """A container's PID 1 made ahead of time: in its namespaces and cgroup, waiting for a spec.

    The slow part of a start does not depend on the request: copying the
    engine, making the namespaces and, above all, joining the cgroup. On
    cgroup v1 a write to ``cgroup.procs`` waits for an RCU grace period,
    10-15 ms when containers start seconds apart. So while it is idle the
    engine ``clone()``s one spare into a new PID namespace (its PID 1). The
    spare makes its cgroup, joins it, ``unshare()``s the other namespaces and
    waits on a socket. ``run`` sends it the spec, with the client's stdio
    (``SCM_RIGHTS``); it builds the root, drops privileges and execs. The
    spare's id becomes the container's id.
    """

    def __init__(self, pid: int, sock: socket.socket, cid: str, cgroup, root: dict | None = None) -> None:
        self.pid, self.sock, self.cid, self.cgroup = pid, sock, cid, cgroup
        self.root = root  # the rootfs spec it has built and pivoted into, if any
        self.layers = None  # (device, inode) of root's lower directories, set by the engine
        self.ready = False
        self.used = False  # handed a spec (or discarded): the engine no longer owns it as a spare

    def wait_ready(self, timeout: float = 5.0) -> None:
        """Wait until it is in its cgroup and namespaces; OSError if it died first."""
        if not self.ready:
            self.sock.settimeout(timeout)
            if self.sock.recv(1) != b"r":
                raise ConnectionError("the spare container process exited")
            self.sock.settimeout(None)
            self.ready = True


def make_spare(cid: str, cgroup, create_cgroup, root: dict | None = None) -> Spare:
    """Clone a spare PID 1 for a container with its own namespaces (network included).

    The engine pays only for the ``clone()`` of itself into a new PID
    namespace; the spare makes its cgroup (``create_cgroup()``), joins it
    and makes the other namespaces while the engine goes on. With ``root``
    (a :func:`rootfs.build` spec, without volumes: the image the engine
    expects next) it also makes the container's directories and builds and
    enters its root filesystem; a run of another image does not use it.
    """
    from . import protocol

    flags = namespaces.flags_for(namespaces.CONTAINER_NAMESPACES)
    i18n._load()
    seccomp.program()  # assembled once, in the engine: every spare gets a copy
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        pid = namespaces.clone(flags & namespaces.CLONE_NEWPID)
    except OSError:
        mine.close()
        theirs.close()
        raise
    if pid != 0:
        theirs.close()
        return Spare(pid, mine, cid, cgroup, root)
    # PID 1 of a new PID namespace: never returns into the engine
    try:
        mine.close()
        reset_signals()
        from ..kernel.libc import check, libc

        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")  # see _fork_twice
        libc.prctl(PR_SET_NAME, b"labkit-spare", 0, 0, 0)  # what `ps -o comm` and top show
        # It may wait for minutes: the engine's listening socket and its clients' connections
        # must not stay open here. Nothing below collects garbage, so no finalizer can close
        # a descriptor number that is reused later.
        gc.disable()
        keep = theirs.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 20)
        create_cgroup()
        cgroup.attach(0)  # before unshare(CLONE_NEWCGROUP): that cgroup becomes its root
        namespaces.unshare(flags & ~namespaces.CLONE_NEWPID)
        loopback_up()
        if root:
            i18n.preload()  # after pivot_root the catalog file is out of reach
            for key in ("upperdir", "workdir", "rootfs"):
                os.makedirs(root[key])
            rootfs.build(root)
        os.write(theirs.fileno(), b"r")
    except BaseException:  # noqa: BLE001 - the engine sees the socket close and starts the usual way
        os._exit(125)
    try:
        msg, fds = protocol.recv(theirs)
    except BaseException:  # noqa: BLE001 - the engine closed the socket: nothing to run
        os._exit(0)
    errfd = fds[0] if fds else -1
    try:
        theirs.close()
        os.set_inheritable(errfd, False)  # SCM_RIGHTS gives no O_CLOEXEC: EOF there must mean "exec'd"
        if msg.get("lang") and msg["lang"] != i18n.language():
            os.environ["LABKIT_LANG"] = msg["lang"]  # before pivot_root: the catalog is still in reach
            i18n.reset()
            i18n._load()
        spec = msg["spec"]
        proc = spec["process"]
        if proc.get("console") is not None:
            proc["console"] = fds[1]
        else:
            proc["stdio"] = fds[1:4]
        child_b_new(spec, errfd, loopback=False)
    except BaseException as exc:  # noqa: BLE001
        report(errfd, "setup", f"{type(exc).__name__}: {exc}", 125)
    os._exit(125)


def start_spare(spare: Spare, spec: dict, lang: str) -> tuple[int, dict | None]:
    """Send ``spec`` to ``spare``; like :func:`start`, return its pid and error report.

    Raises OSError when the spare is gone (the caller then starts the usual way).
    """
    from . import protocol

    spare.wait_ready()
    proc = spec["process"]
    passed = [proc["console"]] if proc.get("console") is not None else list(proc["stdio"])
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        protocol.send(spare.sock, {"spec": spec, "lang": lang}, [err_w, *passed])
    except OSError:
        os.close(err_r)
        raise
    finally:
        os.close(err_w)
        spare.sock.close()
    return spare.pid, _read_report(err_r)


def start_exec(pid: int, proc: dict, cgroup) -> tuple[int, dict | None]:
    """Start ``proc`` inside the namespaces of the container whose PID 1 is ``pid``."""
    names = [n for n in namespaces.CONTAINER_NAMESPACES]
    namespaces.available()  # read here: the child, made non-dumpable, may not list /proc/self/ns

    def prepare() -> None:
        cgroup.attach(os.getpid())
        namespaces.enter(pid, names)

    return _launch(prepare, lambda errfd: become_process(proc, errfd))


def become_subreaper() -> None:
    from ..kernel.libc import check, libc

    check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")
