"""The container's side of a start: what runs between ``fork``/``clone`` and ``execve``.

Called in a freshly forked child (no threads, no locks): bring ``lo`` up, build
the root (:mod:`.rootfs`), set the hostname, then become the command: stdio or
the pty, the user from the image's ``/etc/passwd``, capabilities and
``no_new_privs``, the working directory, the seccomp filter, ``execve``.
Errors go back to the engine as one JSON line on ``errfd`` (close-on-exec).
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import termios

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


def lookup_user(user: str) -> tuple[int, int, list[int]]:
    """``user`` is ``name|uid[:group|gid]``, looked up in the container's /etc files."""
    if user in ("", "0", "root", "0:0", "root:root"):
        return 0, 0, []  # the common case: no need to read the image's /etc files
    name, _sep, group = user.partition(":")

    def table(path: str) -> list[list[str]]:
        try:
            with open(path) as f:
                return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
        except OSError:
            return []

    passwd, groups = table("/etc/passwd"), table("/etc/group")
    if name.isdigit():
        uid = int(name)
        gid = next((int(p[3]) for p in passwd if len(p) > 3 and p[2] == name), uid)
        login = next((p[0] for p in passwd if len(p) > 3 and p[2] == name), None)
    else:
        entry = next((p for p in passwd if p[0] == name and len(p) > 3), None)
        if entry is None:
            raise LookupError(_("unable to find user %(user)s: no matching entry in the image's /etc/passwd")
                              % {"user": name})
        uid, gid, login = int(entry[2]), int(entry[3]), name
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            entry = next((g for g in groups if g[0] == group and len(g) > 2), None)
            if entry is None:
                raise LookupError(_("unable to find group %(group)s: no matching entry in the image's /etc/group")
                                  % {"group": group})
            gid = int(entry[2])
    extra = [int(g[2]) for g in groups if login and len(g) > 3 and login in g[3].split(",")]
    return uid, gid, extra


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
        uid, gid, groups = lookup_user(proc.get("user") or "0")
    except LookupError as exc:
        report(errfd, "user", str(exc), 126)
        os._exit(126)
    caps = proc.get("caps", capabilities.DEFAULT)
    capabilities.limit_bounding(caps)
    os.setgroups(groups)  # before the effective set shrinks: --cap-drop SETGID must not stop it
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
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
