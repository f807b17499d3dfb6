"""The container's side of a start: what runs between ``fork``/``clone`` and ``execve``.

Called in a freshly forked child (no threads, no locks): bring ``lo`` up, build
the root (:mod:`.rootfs`), set the hostname, then become the command: stdio or
the pty, the user from the image's ``/etc/passwd``, capabilities and
``no_new_privs``, the working directory, the seccomp filter, ``execve``.
Errors go back to the engine as one JSON line on ``errfd`` (close-on-exec).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import resource
import signal
import socket
import termios
from collections.abc import Iterable

from ..i18n import _
from ..kernel import capabilities, seccomp
from . import rootfs

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15


def reset_signals() -> None:
    # Python ignores SIGPIPE and handles SIGINT; an exec'd program must start
    # with default dispositions and nothing blocked.
    for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.set_wakeup_fd(-1)


def report(fd: int, kind: str, message: str, code: int) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message, "code": code}).encode())
    except OSError:
        pass


def _table(lines: Iterable[str]) -> list[list[str]]:
    return [line.rstrip("\n").split(":") for line in lines if line.strip() and not line.startswith("#")]


def resolve_user(user: str, passwd: Iterable[str], group: Iterable[str]) -> tuple[int, int, list[int], str]:
    """``user`` (``name|uid[:group|gid]``) → uid, gid, supplementary gids, home, by Docker's rule
    (runc's ``GetExecUser``): names come from the image's passwd and group lines; a number absent
    from passwd is taken as is, with gid 0 and home ``/``; a number present in passwd gets that
    entry's gid, home and groups; the groups listing the login are the supplementary ones, unless a
    group is given (then that group alone, as runc does)."""
    name, _sep, grp = user.partition(":")
    users, groups = _table(passwd), _table(group)
    entry = next((p for p in users if len(p) > 5 and (p[2] == name if name.isdigit() else p[0] == name)),
                 None)
    if entry is None:
        if not name.isdigit():
            raise LookupError(_("unable to find user %(user)s: no matching entries in passwd file")
                              % {"user": name})
        uid, gid, home, login = int(name), 0, "/", None
    else:
        uid, gid, home, login = int(entry[2]), int(entry[3]), entry[5] or "/", entry[0]
    if grp:
        found = next((g for g in groups if len(g) > 2 and (g[2] == grp if grp.isdigit() else g[0] == grp)),
                     None)
        if found is None and not grp.isdigit():
            raise LookupError(_("unable to find group %(group)s: no matching entries in group file")
                              % {"group": grp})
        gid = int(found[2]) if found is not None else int(grp)
    # runc: supplementary groups only in the implicit form (no :group given)
    extra = [] if grp else sorted({int(g[2]) for g in groups
                                   if login and len(g) > 3 and g[2].isdigit() and login in g[3].split(",")})
    return uid, gid, extra, home


def lookup_user(user: str) -> tuple[int, int, list[int], str]:
    """:func:`resolve_user` with the container's own /etc/passwd and /etc/group (after chroot)."""
    if user in ("", "0", "root", "0:0", "root:root"):
        return 0, 0, [], "/root"  # the common case: no need to read the image's /etc files

    def lines(path: str) -> list[str]:
        try:
            with open(path) as f:
                return f.readlines()
        except OSError:
            return []

    return resolve_user(user, lines("/etc/passwd"), lines("/etc/group"))


TIOCGPTPEER = 0x5441
TIOCSPTLCK = 0x40045431


def open_console(console_fd: int, winsize: list | None) -> int:
    """A terminal from the container's own ``/dev/pts``; the master goes to the engine.

    Like runc's console socket: the pseudo-terminal is created inside the
    container, so ``tty`` names ``/dev/pts/0`` there, and the engine hands the
    master side to the client, which copies keys and screen.
    """
    import struct

    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt()
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
    if winsize:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", winsize[0], winsize[1], 0, 0))
    sock = socket.socket(fileno=console_fd)
    socket.send_fds(sock, [b"m"], [master])
    sock.close()
    os.close(master)
    return slave


def become_process(proc: dict, errfd: int) -> None:
    """Common tail of B: stdio, tty, user, privileges, cwd, exec. Never returns."""
    if proc.get("console") is not None:
        stdio = [open_console(proc["console"], proc.get("winsize"))] * 3
    else:
        stdio = proc["stdio"]
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)
    os.setsid()  # its own session: signals to the engine's group never reach it
    if proc.get("tty"):
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # Only 0, 1 and 2 may reach the program (errfd is close-on-exec).
    os.closerange(3, errfd)
    os.closerange(errfd + 1, 1 << 20)
    env = proc["env"]
    try:
        uid, gid, groups, home = lookup_user(proc.get("user") or "0")
    except LookupError as exc:
        report(errfd, "user", str(exc), 125)  # Docker: the run fails, the command never ran
        os._exit(125)
    env.setdefault("HOME", home)  # Docker: the user's home from the image's passwd
    try:
        for name, soft, hard in proc.get("ulimits") or ():
            resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (soft, hard))
    except (OSError, ValueError, AttributeError) as exc:
        report(errfd, "ulimit", _("cannot set the limit %(name)s: %(err)s")
               % {"name": name, "err": getattr(exc, "strerror", None) or exc}, 125)
        os._exit(125)
    caps = proc.get("caps", capabilities.DEFAULT)
    capabilities.limit_bounding(caps)
    try:
        os.setgroups(groups)  # before the effective set shrinks: --cap-drop SETGID must not stop it
    except PermissionError:
        if groups:
            raise
        # a rootless engine with a one-id map: setgroups is denied there, and there is nothing to drop
    try:
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # only a rootless engine's user namespace lacks ids: a one-id map has 0 alone
        report(errfd, "user", _("user %(uid)s:%(gid)s does not exist in this rootless engine's user namespace "
                                "(it maps only the ids of your /etc/subuid and /etc/subgid ranges; see labkit "
                                "doctor)") % {"uid": uid, "gid": gid}, 125)
        os._exit(125)
    if uid == 0:  # another uid lost every capability in setresuid already
        capabilities.set_process_caps(caps)
    capabilities.set_no_new_privs()
    workdir = proc.get("workdir") or "/"
    try:
        os.chdir(workdir)
    except OSError as exc:
        report(errfd, "workdir", _("cannot change to working directory %(dir)s: %(err)s")
                % {"dir": workdir, "err": exc.strerror}, 126)
        os._exit(126)
    try:  # last: from here on only write (the error pipe), execve and _exit are needed
        # bytes compiled by the engine (libseccomp is not called after the fork); no key: the
        # default filter, compiled before the fork too (spawn calls seccomp.program())
        code = proc.get("seccomp")
        seccomp.install(bytes.fromhex(code) if code is not None else seccomp.program())
    except OSError as exc:
        report(errfd, "seccomp", _("cannot install the seccomp filter: %(err)s") % {"err": exc.strerror}, 125)
        os._exit(125)
    argv = proc["argv"]
    try:
        os.execvpe(argv[0], argv, env)
    except (FileNotFoundError, ValueError):  # ValueError: an empty name, or a NUL in it (Docker: 127)
        report(errfd, "notfound", f"{argv[0]}: executable file not found in $PATH", 127)
        os._exit(127)
    except PermissionError:
        report(errfd, "permission", f"{argv[0]}: permission denied", 126)
        os._exit(126)
    except OSError as exc:
        report(errfd, "exec", f"{argv[0]}: {exc.strerror}", 126)
        os._exit(126)


def loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (as Docker/podman do)."""
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, 0x8913, req))[1]  # SIOCGIFFLAGS
        if flags & 0x1:  # up already (--network host): a rootless container may not touch the host's lo
            return
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 0x1))  # SIOCSIFFLAGS, IFF_UP


def child_b_new(spec: dict, errfd: int, loopback: bool = True) -> None:
    try:
        if loopback:
            loopback_up()
        if spec.get("rootfs"):  # a spare may have built it already
            rootfs.build(spec["rootfs"])
        if spec.get("readonly"):  # --read-only, also on a root a spare built before it knew
            rootfs.make_readonly()
        if spec.get("hostname"):
            socket.sethostname(spec["hostname"])
    except (OSError, rootfs.RootfsError) as exc:
        report(errfd, "rootfs", str(exc), 125)
        os._exit(125)
    become_process(spec["process"], errfd)
