"""Unix accounts for the class: students (home 0700, so no one reads another's work) and the
teachers' group (exempt from ``hidepid``, may read the dashboard). Through the shadow suite's
own commands, which lock /etc/passwd and friends while they write."""
from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess

from ..errors import LabkitError
from ..i18n import _


def uid_gid(name: str) -> tuple[int, int] | None:
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None
    return pw.pw_uid, pw.pw_gid


def home(name: str) -> str:
    return pwd.getpwnam(name).pw_dir


def group_gid(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def group_members(name: str) -> tuple[str, ...]:
    """The group's members now (the hub makes them admins at start; later members are
    admins through admin_groups once they log in)."""
    try:
        return tuple(sorted(grp.getgrnam(name).gr_mem))
    except KeyError:
        return ()


def _run(cmd: list[str], stdin: str | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabkitError(_("%(cmd)s failed: %(err)s")
                          % {"cmd": cmd[0], "err": proc.stderr.strip() or proc.returncode})


def create_user(name: str, password: str | None = None) -> str:
    """A new account with a 0700 home and bash; returns the password set (random if none)."""
    _run(["useradd", "--create-home", "--shell", "/bin/bash", "--comment", "labkit student",
          name])
    os.chmod(home(name), 0o700)
    password = password or secrets.token_urlsafe(9)
    _run(["chpasswd"], stdin=f"{name}:{password}\n")
    return password


def close_home(name: str) -> int:
    """Make an existing student's home 0700; returns the old mode (teardown puts it back)."""
    path = home(name)
    old = os.stat(path).st_mode & 0o7777
    os.chmod(path, 0o700)
    return old


def delete_user(name: str) -> None:
    """userdel -r: the home, the mail spool and (Debian) the subordinate ranges go too."""
    if uid_gid(name) is None:
        return
    # A student's leftover processes would make userdel refuse: end them first.
    subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
    _run(["userdel", "--remove", name])


def create_group(name: str) -> int:
    _run(["groupadd", name])
    gid = group_gid(name)
    assert gid is not None
    return gid


def delete_group(name: str) -> None:
    if group_gid(name) is not None:
        _run(["groupdel", name])
