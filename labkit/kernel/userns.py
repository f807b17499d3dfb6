"""User namespaces: how an ordinary user's engine becomes "root" without being root.

A rootless engine does what podman does: it enters one user namespace of its own
before anything else, maps uid 0 there to the user and 1..65536 to the user's
range in ``/etc/subuid`` and ``/etc/subgid`` (written by the setuid helpers
``newuidmap``/``newgidmap`` of Debian's ``uidmap`` package), and from then on
runs as root *of that namespace*: it may make the other namespaces, mount an
overlay (with ``userxattr``), chown a layer's files into the range. Every
container it starts lives in namespaces owned by that user namespace, so its
root is the user on the host and can never be more. Without a range (or when
the helpers fail, e.g. under ``no_new_privs``, which forbids setuid) the map
has one id: 0 → the user.

The maps are written before anything sets ``no_new_privs`` (the container's
child sets it just before ``execve``, as today).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess

from ..errors import LabkitError
from ..i18n import _

CLONE_NEWUSER = 0x10000000
SUBID_COUNT = 65536
FULL_MAP = "0 0 4294967295"

_rootless: bool | None = None


def rootless() -> bool:
    """True when this process cannot act as the host's root: not uid 0, or uid 0 of a
    user namespace other than the host's (the rootless engine and its containers)."""
    global _rootless
    if _rootless is None:
        if os.geteuid() != 0:
            _rootless = True
        else:
            try:
                with open("/proc/self/uid_map") as f:
                    _rootless = f.read().split() != FULL_MAP.split()
            except OSError:
                _rootless = False
    return _rootless


def kernel_at_least(release: str, want: tuple[int, int]) -> bool:
    """``uname -r`` at least ``want`` (major, minor)."""
    import re

    m = re.match(r"(\d+)\.(\d+)", release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= want


USERXATTR_KERNEL = (5, 11)  # overlay's userxattr: the first kernel that mounts it in a user namespace


def parse_subids(text: str, name: str, uid: int) -> list[tuple[int, int]]:
    """The ranges ``(start, count)`` of ``name`` (or its uid, as shadow accepts) in a
    ``/etc/subuid``-style text."""
    ranges = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or line.startswith("#"):
            continue
        owner, start, count = parts
        if owner in (name, str(uid)) and start.isdigit() and count.isdigit() and int(count) > 0:
            ranges.append((int(start), int(count)))
    return ranges


def subids(kind: str, name: str | None = None, uid: int | None = None) -> list[tuple[int, int]]:
    """The user's ranges in ``/etc/sub<kind>`` (``kind``: "uid" or "gid")."""
    uid = os.getuid() if uid is None else uid
    if name is None:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
    try:
        with open(f"/etc/sub{kind}") as f:
            return parse_subids(f.read(), name, uid)
    except OSError:
        return []


def map_args(own: int, ranges: list[tuple[int, int]]) -> list[str]:
    """``newuidmap`` arguments: 0 → ``own``, then 1.. → the first range (at most 65536 ids)."""
    args = ["0", str(own), "1"]
    if ranges:
        start, count = ranges[0]
        args += ["1", str(start), str(min(count, SUBID_COUNT))]
    return args


def _unshare() -> None:
    from .libc import check, libc

    check(libc.unshare(CLONE_NEWUSER), "unshare(CLONE_NEWUSER)")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def become_root() -> str:
    """Enter a new user namespace and become its root; return the kind of map made
    (``"subid"`` with the user's ranges, ``"single"`` with one id).

    A helper forked *before* the unshare stays in the host's namespace and runs
    ``newuidmap``/``newgidmap`` on us: a process cannot map ids it does not own by itself.
    """
    uid, gid = os.getuid(), os.getgid()
    uranges, granges = subids("uid"), subids("gid")
    helpers = shutil.which("newuidmap"), shutil.which("newgidmap")
    use_helpers = bool(uranges and granges and all(helpers))
    go_r, go_w = os.pipe()
    done_r, done_w = os.pipe()
    helper = 0
    if use_helpers:
        me = os.getpid()
        helper = os.fork()
        if helper == 0:  # still in the host's user namespace
            os.close(go_w)
            os.close(done_r)
            code = 1
            try:
                if os.read(go_r, 1) == b"g":
                    ok = all(subprocess.run([tool, str(me), *map_args(own, ranges)], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
                             for tool, own, ranges in ((helpers[0], uid, uranges), (helpers[1], gid, granges)))
                    code = 0 if ok else 1
            finally:
                os.write(done_w, b"0" if code == 0 else b"1")
                os._exit(code)
    os.close(go_r)
    os.close(done_w)
    try:
        _unshare()
    except OSError as exc:
        os.close(go_w)
        os.close(done_r)
        if helper:
            os.waitpid(helper, 0)
        raise LabkitError(unavailable_message(exc.strerror or str(exc))) from None
    kind = "single"
    if helper:
        os.write(go_w, b"g")
        mapped = os.read(done_r, 1) == b"0"
        os.waitpid(helper, 0)
        if mapped:
            kind = "subid"
    os.close(go_w)
    os.close(done_r)
    if kind == "single":
        try:  # the kernel lets a process map its own ids, once, and setgroups must be denied first
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1\n")
            _write("/proc/self/gid_map", f"0 {gid} 1\n")
        except OSError as exc:
            raise LabkitError(unavailable_message(exc.strerror or str(exc))) from None
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    global _rootless
    _rootless = True
    return kind


def unavailable_message(err: str) -> str:
    return _("labkit cannot run containers without root here: the kernel refused a user namespace "
             "(%(err)s). Ask the administrator to allow them (sysctl kernel.unprivileged_userns_clone=1 "
             "and user.max_user_namespaces > 0), or run labkit as root; see labkit doctor") % {"err": err}


def remove_tree(path: str) -> None:
    """``rm -rf`` that also works on a rootless engine's files: an unpacked layer holds files
    owned by the user's subordinate ids (a layer's uid 1000 is, say, 100999 on the host),
    which the user may not delete. A child enters a user namespace with the same map as
    the engine's and removes them there, as their owner."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if os.geteuid() == 0 or not os.path.lexists(path):
        return
    pid = os.fork()
    if pid == 0:
        try:
            become_root()
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def as_root(fn, *args):
    """``fn(*args)`` as root of a user namespace mapped like the rootless engine's (a child
    process; the result travels back as JSON). For the work a rootless client does on the
    engine's files: a ``RUN`` step's upper directory holds files of the user's subordinate
    ids, which the user can neither read (mode 0700 as another uid) nor tar with the right
    owners (101233 on the host is 1234 in the image). As root, or inside such a namespace
    already, it is a plain call."""
    import json

    if os.geteuid() == 0:
        return fn(*args)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            become_root()
            out = {"ok": fn(*args)}
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = {"error": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                   "code": getattr(exc, "exit_code", 125)}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        data = os.read(r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(r)
    os.waitpid(pid, 0)
    out = json.loads(b"".join(chunks) or b'{"error": "?", "code": 125}')
    if "error" in out:
        raise LabkitError(out["error"], exit_code=out["code"])
    return out["ok"]


def join(path: str) -> None:
    """Enter the user namespace at ``path`` (``/proc/PID/ns/user`` of a process in it) and
    become its root. Its owner, in the parent namespace, holds every capability there."""
    from .namespaces import setns

    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd, CLONE_NEWUSER)
    finally:
        os.close(fd)
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    global _rootless
    _rootless = True
