"""``labkit doctor`` without root: is this account ready for a rootless engine, item by item.

The user-namespace switch itself is :mod:`labkit.doctor`'s ``userns`` check; here are
the rest of what :mod:`labkit.engine.rootless` uses: the setuid helpers of ``uidmap``,
the account's subordinate ids, ``no_new_privs`` (which defeats setuid), overlay's
``userxattr``, a rootless network helper, and a delegated cgroup.
"""
from __future__ import annotations

import os
import platform
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from .i18n import _
from .kernel.userns import SUBID_COUNT, USERXATTR_KERNEL, kernel_at_least, parse_subids


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _apt(package: str) -> str:
    return f"apt-get install -y {package}"


def helper_ok(path: str | None) -> bool:
    """``newuidmap`` works for ordinary users when it is setuid root or carries file capabilities."""
    if not path:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    if st.st_uid == 0 and st.st_mode & stat.S_ISUID:
        return True
    try:
        return bool(os.getxattr(path, "security.capability"))
    except OSError:
        return False


def no_new_privs(status: str) -> bool:
    return any(line.split(":")[0] == "NoNewPrivs" and line.split()[-1] == "1" for line in status.splitlines())


def rootless_checks(proc: Path = Path("/proc"), which: Callable[[str], str | None] = shutil.which,
                    euid: int | None = None, kernel: str | None = None, name: str | None = None,
                    etc: Path = Path("/etc"), cgroup_parent: str | None = None, *, Check) -> list:
    """The rootless items; those about an account (ids, cgroup) only for an ordinary user.
    ``Check`` is :class:`labkit.doctor.Check` (passed in: doctor imports this module)."""
    euid = os.geteuid() if euid is None else euid
    checks: list = []
    yes, no = _("yes"), _("no")

    helpers = {tool: which(tool) for tool in ("newuidmap", "newgidmap")}
    ok = all(helper_ok(p) for p in helpers.values())
    detail = ", ".join(f"{t}: {p or _('not found')}" for t, p in helpers.items())
    if all(helpers.values()) and not ok:
        detail += " (" + _("not setuid root") + ")"
    checks.append(Check("rootless-uidmap", _("newuidmap/newgidmap (rootless)"), ok, detail,
                        None if ok else _apt("uidmap"), data={k: v for k, v in helpers.items()}))

    release = kernel or platform.release()
    ux = kernel_at_least(release, USERXATTR_KERNEL)
    checks.append(Check("rootless-overlay", _("overlay in a user namespace (userxattr, kernel >= 5.11)"), ux,
                        release, None if ux else _("a kernel 5.11 or newer"), data={"release": release}))

    tools = {t: which(t) for t in ("slirp4netns", "pasta")}
    found = [p for p in tools.values() if p]
    checks.append(Check("rootless-network", _("rootless network (slirp4netns or pasta)"), bool(found),
                        ", ".join(found) if found else _("not found: only --network none and host without root"),
                        None if found else _apt("slirp4netns"), data=tools))

    if euid == 0:
        return checks
    import pwd

    try:
        name = name or pwd.getpwuid(euid).pw_name
    except KeyError:
        name = str(euid)
    ranges = {k: parse_subids(_text(etc / f"sub{k}"), name, euid) for k in ("uid", "gid")}
    have = all(ranges.values())
    big = have and all(r[0][1] >= SUBID_COUNT for r in ranges.values())
    if have:
        start, count = ranges["uid"][0]
        detail = _("%(user)s: %(start)s-%(end)s") % {"user": name, "start": start, "end": start + count - 1}
        if not big:
            detail += " (" + _("fewer than %(n)s ids") % {"n": SUBID_COUNT} + ")"
    else:
        detail = _("none for %(user)s: containers get a one-id map (0 = you; other owners show as nobody)") % {
            "user": name}
    checks.append(Check("rootless-subids", _("subordinate ids (/etc/subuid, /etc/subgid)"), big, detail,
                        None if big else "usermod --add-subuids 100000-165535 --add-subgids 100000-165535 "
                        + name, data={"ranges": ranges}))

    nnp = no_new_privs(_text(proc / "self" / "status"))
    checks.append(Check("rootless-nnp", _("no_new_privs unset (setuid helpers work)"), not nnp,
                        yes if not nnp else no + " — " + _("this session has no_new_privs: newuidmap fails, "
                                                            "containers get a one-id map"),
                        None if not nnp else _("start the session without NoNewPrivileges "
                                                "(JupyterHub: not disable_user_sudo)"),
                        data={"no_new_privs": nnp}))

    from .kernel.cgroups import delegated
    from .kernel.cgroups.mountinfo import layout

    sub = cgroup_parent if cgroup_parent is not None else delegated.parent(euid)
    backend = delegated.backend_for(layout(), sub) if sub else delegated.NoCgroups()
    ok = bool(getattr(backend, "delegated", False))
    if ok:
        detail = sub
    elif sub:
        detail = _("%(dir)s is not writable by you: --memory, --cpus, --pids-limit are refused") % {"dir": sub}
    else:
        detail = _("none: --memory, --cpus, --pids-limit are refused")
    checks.append(Check("rootless-cgroup", _("delegated cgroup (limits without root)"), ok, detail,
                        None if ok else _("as root: labkit classroom setup, or export LABKIT_CGROUP_PARENT"),
                        data={"parent": sub}))
    return checks


def rootless_root_check(root, userns_ok: bool):
    """Root (a :class:`labkit.doctor.Check`) is no longer essential for an ordinary user when
    user namespaces work."""
    if root.ok or not userns_ok:
        return root
    return type(root)(root.key, root.title, False, root.detail + " — " + _("rootless mode"), None,
                 essential=False, data=root.data)
