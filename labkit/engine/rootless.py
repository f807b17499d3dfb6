"""The engine of an ordinary user: its user namespace, its socket's peers, what it refuses.

Root's engine is unchanged by this module: :func:`same_user` answers root only
(as the 0600 socket already did), and the checks below return at once when the
engine is not rootless.
"""
from __future__ import annotations

import os
import signal
import socket
import struct
import sys
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _
from ..kernel import userns
from . import slirp
from .state import process_start_time

SLIRP = slirp.MODE
slirp_settings = slirp.settings


def enter(home: Path, ready_fd: int | None) -> bool:
    """Become root of a user namespace of our own, and keep the state dir private (0700).

    On failure the reason goes to the starting client through ``ready_fd``."""
    try:
        previous = surviving_namespace(home)
        if previous:  # a killed engine's containers still run: the same namespace, to reach them
            userns.join(previous)
        else:
            userns.become_root()
    except LabkitError as exc:
        sys.stderr.write(exc.message + "\n")  # engine.log, which the client names
        if ready_fd is not None:
            os.write(ready_fd, b"err:" + exc.message.encode())
            os.close(ready_fd)
        return False
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)  # other students must not read a student's state or reach the socket
    return True


def cgroup_warning() -> str | None:
    """Said once at engine start (the starting client's stderr and engine.log): a delegated
    cgroup is configured but this user cannot use it, so containers will have no limits."""
    from ..kernel import cgroups

    warn = getattr(cgroups.backend(), "warning", None)
    return warn() if warn else None


ENGINE_LEAF = "engine"  # beside labkit/ (containers) and jupyter/ (the hub's server) in the slice


def join_delegated_cgroup() -> str | None:
    """Move the engine into ``<delegated>/engine`` when it runs outside the user's slice (a
    ``runuser``/ssh session, not the hub's server), so its own work (unpacking, builds) and
    the processes it forks count against the student's caps like the containers. Returns the
    leaf joined, or None.

    Only on cgroup v1: there the kernel lets a process move one of its own (same uid) into a
    cgroup whose ``cgroup.procs`` it may write. On v2 a move needs write access to the
    ``cgroup.procs`` of the common ancestor of both cgroups (the delegation rule), here the
    root's: root must place the first process (the hub's spawner does it for the server,
    and an engine started from there inherits that leaf)."""
    from ..kernel import cgroups
    from ..kernel.cgroups import Limits

    b = cgroups.backend()
    sub = getattr(b, "delegated", None)
    if not sub or b.version != "v1":
        return None
    try:
        with open("/proc/self/cgroup") as f:
            here = {c: line.rstrip("\n").split(":", 2)[2]
                    for line in f for c in line.split(":", 2)[1].split(",")}
    except OSError:
        return None
    if all(here.get(c, "").startswith(f"/{sub}/") for c in b.roots):
        return None  # already in the slice (the hub placed our parent there)
    name = ENGINE_LEAF
    try:
        cg = b.create(name, Limits.partial())
        cg.attach(os.getpid())
    except (OSError, LabkitError) as exc:  # never stops the engine: said in engine.log
        sys.stderr.write(f"labkit: {sub}/{name}: {getattr(exc, 'message', exc)}\n")
        return None
    return f"{sub}/{name}"


def surviving_namespace(home: Path) -> str | None:
    """``/proc/PID/ns/user`` of a container this home's previous engine left running, if any.

    Each rootless engine makes its own user namespace; one started after a ``kill -9`` must
    enter the old one, or it could not ``exec`` into (nor set up anything for) those
    containers, whose namespaces that one owns."""
    import json

    mine = os.readlink("/proc/self/ns/user")
    try:
        entries = list((home / "containers").iterdir())
    except OSError:
        return None
    for entry in entries:
        try:
            state = json.loads((entry / "container.json").read_text())["State"]
            pid = int(state.get("Pid") or 0)
            if state.get("Status") != "running" or not pid or process_start_time(pid) != state.get("StartTime"):
                continue
            path = f"/proc/{pid}/ns/user"
            if os.readlink(path) != mine:  # readable: a process of ours (ptrace rules)
                return path
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end, as seen from our user namespace (SO_PEERCRED);
    a uid our namespace does not map reads as the overflow uid (65534)."""
    _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    return uid


def same_user(conn: socket.socket) -> bool:
    """Does the client run as this engine's user? Root's engine: root; a rootless engine
    (root of its user namespace): the user who started it, whom that namespace maps to 0."""
    return peer_uid(conn) == os.geteuid()


def check_run(cfg: dict, network: str, cgroups) -> str:
    """Refuse, before anything is made, what a rootless engine cannot do; return the network
    to use (rootless, the default ``bridge`` is slirp4netns's, when it is installed)."""
    if not userns.rootless():
        return network
    import platform

    if not userns.kernel_at_least(platform.release(), userns.USERXATTR_KERNEL):
        raise LabkitError(_("without root, labkit needs Linux 5.11 or newer (overlay with userxattr in a "
                            "user namespace); this kernel is %(release)s") % {"release": platform.release()})
    for p in cfg.get("ports") or ():
        if 0 < int(p.get("host_port") or 0) < 1024:
            raise LabkitError(_("without root, a published port must be 1024 or above (got %(port)s)")
                              % {"port": p["host_port"]})
    if network in ("bridge", SLIRP) and slirp.available():
        # no veth or bridge without the host's root: the default network is slirp4netns's
        if not cfg.get("dns"):
            cfg["dns"] = [slirp.DNS]
        network = SLIRP
    elif network not in ("none", "host"):
        raise LabkitError(_("without root, labkit runs containers only with --network none or "
                            "--network host (network %(net)s needs root: a bridge and veth pairs; "
                            "the Debian packages slirp4netns or passt would give a rootless network)")
                          % {"net": network})
    if not getattr(cgroups, "delegated", True):
        from ..kernel.cgroups import Limits

        cgroups.create("labkit/check", Limits.from_dict(cfg.get("limits") or {}))  # refuses any limit
    return network


def slirp_ports(ports: list[dict]) -> None:
    """``-p 80``: a free host port now, as the kernel would pick (slirp4netns needs a number)."""
    for p in ports:
        if not p.get("host_port"):
            p["host_port"] = slirp.free_port(p["proto"], p.get("host_ip") or "")


_slirps: dict = {}  # container id -> its slirp4netns process


def slirp_up(cid: str, cdir: Path, cfg: dict) -> tuple[int, int, str]:
    """A network namespace held for the container, linked by slirp4netns, its ports published;
    returns the holder, as networking.holder() does (released once PID 1 is in)."""
    from .networking import holder, release_holder

    held = holder()
    try:
        _slirps[cid] = proc = slirp.start(held[2], str(cdir))
        # for the next engine, should this one be killed: the container outlives it, and so must
        # its network, until the container exits
        (cdir / "slirp.pid").write_text(f"{proc.pid} {process_start_time(proc.pid)}\n")
        slirp.forward(str(cdir), cfg.get("ports") or [])
    except BaseException:
        slirp_down(cid, cdir)
        release_holder(held[0], held[1])
        raise
    return held


def slirp_down(cid: str, cdir: Path) -> None:
    """Stop the container's slirp4netns: ours, or the one a killed engine started."""
    proc = _slirps.pop(cid, None)
    if proc is not None:
        slirp.stop(proc)
        return
    try:
        pid, started = (cdir / "slirp.pid").read_text().split()
    except (OSError, ValueError):
        return
    if str(process_start_time(int(pid))) == started:  # still that process, not a reused pid
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def mount_cgroups(root_fd: int, cgroups, mount_on, remount_readonly) -> None:
    """``/sys/fs/cgroup`` of a rootless container: its own cgroup (its cgroup namespace's
    root) where one was delegated, read-only; nothing without one. A hierarchy the user
    namespace may not mount is left out rather than stopping the container."""
    from ..kernel import mounts
    from ..kernel.mounts import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY
    from ..kernel.openat2 import fd_path, open_in_root

    flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
    if not getattr(cgroups, "delegated", False):
        return
    if cgroups.version == "v2":
        try:
            mount_on(root_fd, "/sys/fs/cgroup", "cgroup2", "cgroup2", flags)
        except OSError:
            pass
        return
    mount_on(root_fd, "/sys/fs/cgroup", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    fd = open_in_root(root_fd, "/sys/fs/cgroup", symlinks=False)
    try:
        base = fd_path(fd)
        every = cgroups.mounts  # controller -> the host's mount point of its hierarchy
        for mountpoint in dict.fromkeys(every[c] for c in cgroups.roots):
            ctrls = sorted(c for c, m in every.items() if m == mountpoint)
            name = os.path.basename(mountpoint)
            os.mkdir(f"{base}/{name}", 0o755)
            try:
                mounts.mount("cgroup", f"{base}/{name}", "cgroup", flags, ",".join(ctrls))
            except OSError:
                os.rmdir(f"{base}/{name}")
                continue
            for ctrl in ctrls:
                if ctrl != name:
                    os.symlink(name, f"{base}/{ctrl}")
    finally:
        os.close(fd)
    remount_readonly(root_fd, "/sys/fs/cgroup", MS_NOSUID | MS_NODEV | MS_NOEXEC)
