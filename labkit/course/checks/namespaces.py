"""Checks on namespaces: ``/proc/PID/ns`` links shared or not, network interfaces, the hostname."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from labkit.errors import LabkitError
from labkit.i18n import _

from ..verdict import Verdict, fail, ok
from .access import find_container

NAMESPACES = ("pid", "uts", "mnt", "net", "ipc", "user", "cgroup", "time")


def namespace_link(pid: int | str, ns: str, proc: Path = Path("/proc")) -> str:
    """``"pid:[4026531836]"``: the identity of a process's namespace."""
    if ns not in NAMESPACES:
        raise LabkitError(_("unknown namespace: %(ns)s") % {"ns": ns})
    return os.readlink(Path(proc) / str(pid) / "ns" / ns)


def namespaces_differ(pid: int, namespaces: Iterable[str], reference: int | str = "self",
                      proc: Path = Path("/proc")) -> Verdict:
    """Each namespace of ``pid`` differs from the reference process's (the
    notebook's own kernel by default, which labkit never puts in a container)."""
    found = []
    for ns in namespaces:
        try:
            mine = namespace_link(pid, ns, proc)
        except OSError:
            found.append(fail(_("Cannot read /proc/%(pid)s/ns/%(ns)s: is the process "
                                "still running?") % {"pid": pid, "ns": ns}))
            continue
        theirs = namespace_link(reference, ns, proc)
        if mine != theirs:
            found.append(ok(_("%(ns)s: own namespace (%(mine)s, the host has %(theirs)s).")
                            % {"ns": ns, "mine": mine, "theirs": theirs}))
        else:
            found.append(fail(_("%(ns)s: same namespace as the host (%(mine)s).")
                              % {"ns": ns, "mine": mine}))
    return Verdict(all(v.ok for v in found), "", found)


def container_namespaces_differ(name: str, namespaces: Iterable[str]) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return namespaces_differ(int(c.pid), namespaces)


def net_interfaces(pid: int | str, proc: Path = Path("/proc")) -> list[str]:
    """Network interfaces seen by a process (its network namespace)."""
    lines = (Path(proc) / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def only_loopback(pid: int, proc: Path = Path("/proc")) -> Verdict:
    names = net_interfaces(pid, proc)
    if names == ["lo"]:
        return ok(_("The only network interface it sees is lo (loopback)."))
    return fail(_("It sees these network interfaces: %(names)s; expected only lo.")
                % {"names": ", ".join(names)})


def namespaces_shared(pid: int, namespaces: Iterable[str], reference: int | str = "self",
                      proc: Path = Path("/proc")) -> Verdict:
    """Each namespace of ``pid`` is the reference process's (the host's, by default)."""
    found = []
    for ns in namespaces:
        try:
            mine = namespace_link(pid, ns, proc)
        except OSError:
            found.append(fail(_("Cannot read /proc/%(pid)s/ns/%(ns)s: is the process "
                                "still running?") % {"pid": pid, "ns": ns}))
            continue
        theirs = namespace_link(reference, ns, proc)
        if mine == theirs:
            found.append(ok(_("%(ns)s: the host's namespace (%(mine)s).")
                            % {"ns": ns, "mine": mine}))
        else:
            found.append(fail(_("%(ns)s: a namespace of its own (%(mine)s), not the "
                                "host's (%(theirs)s).")
                              % {"ns": ns, "mine": mine, "theirs": theirs}))
    return Verdict(all(v.ok for v in found), "", found)


def container_namespaces_shared(name: str, namespaces: Iterable[str]) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return namespaces_shared(int(c.pid), namespaces)


def same_interfaces_as_host(pid: int, proc: Path = Path("/proc")) -> Verdict:
    theirs, mine = net_interfaces(pid, proc), net_interfaces("self", proc)
    if theirs == mine:
        return ok(_("It sees the host's network interfaces: %(names)s.")
                  % {"names": ", ".join(theirs)})
    return fail(_("It sees %(names)s; the host has %(host)s.")
                % {"names": ", ".join(theirs), "host": ", ".join(mine)})


def container_sees_host_network(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return same_interfaces_as_host(int(c.pid))


def container_only_loopback(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return only_loopback(int(c.pid))


def container_hostname_is(name: str, expected: str) -> Verdict:
    """Asks the container itself (``hostname`` runs in its UTS namespace)."""
    c, missing = find_container(name)
    if missing is not None:
        return missing
    actual = c.exec(["hostname"]).stdout
    if isinstance(actual, bytes):
        actual = actual.decode()
    return compare_hostname(name, actual.strip(), expected)


def compare_hostname(name: str, actual: str, expected: str) -> Verdict:
    if actual == expected:
        return ok(_('Inside "%(name)s" the host name is "%(hostname)s".')
                  % {"name": name, "hostname": actual})
    return fail(_('Inside "%(name)s" the host name is "%(actual)s"; expected '
                  '"%(expected)s".') % {"name": name, "actual": actual,
                                        "expected": expected})
