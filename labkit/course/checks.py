"""Checks that look at the real state of the machine, never at printed text.

Each helper returns a :class:`~labkit.course.verdict.Verdict`. Two kinds:

- pure helpers that read files (an overlay upper directory, ``/proc``,
  ``/proc/self/mountinfo``) given as arguments, so unit tests can point them
  at a temporary directory;
- helpers that ask labkit's API about a container or an image. They import
  labkit lazily, so importing this module costs nothing and needs no engine.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Iterable

from labkit.errors import LabkitError, NotFound
from labkit.i18n import _

from .verdict import Verdict, fail, number, ok, size

NAMESPACES = ("pid", "uts", "mnt", "net", "ipc", "user", "cgroup", "time")
PAGE = 4096


# ---------------------------------------------------------------- access to the API
def _api() -> Any:
    """The module with ``get``/``containers`` (``labkit`` or ``labkit.api``)."""
    import labkit

    if hasattr(labkit, "get"):
        return labkit
    from labkit import api  # type: ignore[attr-defined]

    return api


def _container(name: str) -> tuple[Any, Verdict | None]:
    """The container called ``name``, or a ✘ verdict saying it does not exist."""
    try:
        return _api().get(name), None
    except NotFound:
        return None, fail(
            _('There is no container named "%(name)s". Create it first (see the '
              'exercise statement).') % {"name": name})


def _status(container: Any) -> str:
    return str(getattr(container, "status", "") or "").lower()


def _stats(container: Any) -> dict:
    """The cgroup counters of a container (``Cgroup.stats()``)."""
    cgroup = getattr(container, "cgroup", None)
    if cgroup is not None:
        return cgroup.stats()
    return container.stats()


def _parse_size(value: int | str) -> int:
    from labkit.kernel.cgroups import parse_size

    return parse_size(value)


# ---------------------------------------------------------------- containers
def container_exists(name: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return ok(_('The container "%(name)s" exists.') % {"name": name})


def container_absent(name: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return ok(_('There is no container named "%(name)s" any more.') % {"name": name})
    return fail(_('The container "%(name)s" still exists (status: %(status)s). '
                  'Remove it.') % {"name": name, "status": status_word(_status(c))})


def container_running(name: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return status_is(name, _status(c), "running")


def container_exited(name: str, exit_code: int | None = None) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    verdict = status_is(name, _status(c), "exited")
    if not verdict or exit_code is None:
        return verdict
    return exit_code_is(name, getattr(c, "exit_code", None), exit_code)


def status_word(status: str) -> str:
    """A container status ("running", "exited"...) in the learner's language."""
    words = {"running": _("running"), "exited": _("exited"),
             "created": _("created"), "stopped": _("exited")}
    return words.get(status, status or "?")


def status_is(name: str, actual: str, expected: str) -> Verdict:
    """Pure comparison of a container status ("running", "exited", ...)."""
    if actual == expected or (expected == "exited" and actual == "stopped"):
        return ok(_('The container "%(name)s" is %(status)s.')
                  % {"name": name, "status": status_word(expected)})
    return fail(_('The container "%(name)s" should be %(expected)s, but it is '
                  '%(actual)s.') % {"name": name, "expected": status_word(expected),
                                    "actual": status_word(actual)})


def exit_code_is(name: str, actual: int | None, expected: int) -> Verdict:
    if actual == expected:
        return ok(_('Its main process ended with exit code %(code)s.') % {"code": actual})
    return fail(_('The container "%(name)s" ended with exit code %(actual)s; '
                  'expected %(expected)s.')
                % {"name": name, "actual": actual, "expected": expected})


def _started(container: Any) -> str:
    """When the container's process started (ISO 8601, UTC, sortable as text)."""
    state = container.inspect()["State"]
    return str(state.get("StartedAt") or "")


def container_started_after(name: str, other: str) -> Verdict:
    """``name`` started after ``other``: it was made again while ``other`` kept running."""
    c, missing = _container(name)
    if missing is not None:
        return missing
    o, missing = _container(other)
    if missing is not None:
        return missing
    return started_after(name, _started(c), other, _started(o))


def started_after(name: str, started: str, other: str, other_started: str) -> Verdict:
    """Pure comparison of two ``StartedAt`` times (same format, so text order is time order)."""
    if started and other_started and started > other_started:
        return ok(_('"%(name)s" started after "%(other)s": it is a new container.')
                  % {"name": name, "other": other})
    return fail(_('"%(name)s" started before "%(other)s": it is still the first one. '
                  'Remove it and create it again.') % {"name": name, "other": other})


def container_started_first(first: str, second: str) -> Verdict:
    """``first`` started before ``second``: the order an exercise asks for."""
    c, missing = _container(first)
    if missing is not None:
        return missing
    o, missing = _container(second)
    if missing is not None:
        return missing
    return started_first(first, _started(c), second, _started(o))


def started_first(first: str, started: str, second: str, second_started: str) -> Verdict:
    if started and second_started and started < second_started:
        return ok(_('"%(first)s" started before "%(second)s", in the order asked.')
                  % {"first": first, "second": second})
    return fail(_('"%(second)s" started before "%(first)s": start "%(first)s" first '
                  '(remove both and start them again).') % {"first": first, "second": second})


def container_oom_killed(name: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    if getattr(c, "oom_killed", False):
        return ok(_('The kernel killed "%(name)s" for going over its memory limit '
                    '(OOM kill).') % {"name": name})
    return fail(_('"%(name)s" was not killed by the OOM killer (status: %(status)s). '
                  'Did it use more memory than its limit?')
                % {"name": name, "status": status_word(_status(c))})


def container_process_is(name: str, command: str, proc: Path = Path("/proc")) -> Verdict:
    """The container's PID 1, seen from the host, runs ``command`` (its comm)."""
    c, missing = _container(name)
    if missing is not None:
        return missing
    return process_is(int(c.pid), command, proc)


def process_is(pid: int, command: str, proc: Path = Path("/proc")) -> Verdict:
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
    except OSError:
        return fail(_("No process with PID %(pid)s is running on the host.") % {"pid": pid})
    if comm == command:
        return ok(_('On the host, PID %(pid)s is the process "%(command)s": the '
                    'container is an ordinary process.') % {"pid": pid, "command": comm})
    return fail(_('On the host, PID %(pid)s runs "%(actual)s", not "%(command)s".')
                % {"pid": pid, "actual": comm, "command": command})


# ---------------------------------------------------------------- cgroup limits
def memory_limit_is(name: str, expected: int | str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return compare_memory(name, _stats(c).get("memory_limit"), _parse_size(expected))


def compare_memory(name: str, actual: int | None, expected: int) -> Verdict:
    """The kernel rounds the limit down to whole pages: allow one page."""
    if actual is not None and abs(actual - expected) < PAGE:
        return ok(_('The memory limit of "%(name)s" is %(size)s.')
                  % {"name": name, "size": size(actual)})
    return fail(_('The memory limit of "%(name)s" is %(actual)s; expected %(expected)s.')
                % {"name": name, "actual": size(actual), "expected": size(expected)})


def cpu_quota_is(name: str, cores: float) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return compare_cpus(name, _stats(c).get("cpu_quota_cores"), float(cores))


def compare_cpus(name: str, actual: float | None, expected: float) -> Verdict:
    if actual is not None and abs(actual - expected) < 0.005:
        return ok(_('The CPU quota of "%(name)s" is %(cores)s core(s).')
                  % {"name": name, "cores": number(actual)})
    shown = _("no quota") if actual is None else number(actual)
    return fail(_('The CPU quota of "%(name)s" is %(actual)s; expected %(expected)s '
                  'core(s).') % {"name": name, "actual": shown,
                                 "expected": number(expected)})


def pids_limit_is(name: str, expected: int) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    actual = _stats(c).get("pids_limit")
    if actual == expected:
        return ok(_('"%(name)s" may have at most %(n)s processes.')
                  % {"name": name, "n": actual})
    return fail(_('The process limit of "%(name)s" is %(actual)s; expected %(expected)s.')
                % {"name": name, "actual": actual if actual is not None else _("no limit"),
                   "expected": expected})


# ---------------------------------------------------------------- overlay upper dir
def _in_upper(upper: Path, path: str) -> Path:
    rel = Path(path.lstrip("/"))
    if ".." in rel.parts or not rel.parts:
        raise LabkitError(_("invalid path inside the container: %(path)s") % {"path": path})
    return Path(upper) / rel


def container_upper_dir(name: str) -> tuple[Path | None, Verdict | None]:
    c, missing = _container(name)
    if missing is not None:
        return None, missing
    return Path(c.upper_dir), None


def upper_has_file(upper: Path, path: str, contains: str | None = None) -> Verdict:
    """``path`` (as seen inside the container) is a regular file in ``upper``."""
    target = _in_upper(upper, path)
    try:
        st = target.lstat()
    except FileNotFoundError:
        return fail(_("%(path)s is not in the upper directory: the container has not "
                      "written it (yet).") % {"path": path})
    if is_whiteout_stat(st):
        return fail(_("%(path)s is a whiteout in the upper directory: it was deleted, "
                      "not written.") % {"path": path})
    if not stat.S_ISREG(st.st_mode):
        return fail(_("%(path)s is in the upper directory but is not a regular file.")
                    % {"path": path})
    if contains is not None:
        text = target.read_bytes().decode("utf-8", "replace")
        if contains not in text:
            return fail(_('%(path)s is in the upper directory but does not contain '
                          '"%(text)s".') % {"path": path, "text": contains})
    return ok(_("%(path)s is in the upper directory: the write landed in the "
                "container's own layer (copy-on-write).") % {"path": path})


def is_whiteout_stat(st: os.stat_result) -> bool:
    """An overlay whiteout is a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def upper_has_whiteout(upper: Path, path: str) -> Verdict:
    """Deleting a file of a lower layer leaves a whiteout in the upper dir."""
    target = _in_upper(upper, path)
    try:
        st = target.lstat()
    except FileNotFoundError:
        return fail(_("There is no whiteout for %(path)s in the upper directory: the "
                      "file was not deleted inside the container.") % {"path": path})
    if is_whiteout_stat(st):
        return ok(_("%(path)s is a whiteout (character device 0/0) in the upper "
                    "directory: the file of the image is hidden, not erased.")
                  % {"path": path})
    return fail(_("%(path)s is in the upper directory, but it is not a whiteout "
                  "(it is a file the container wrote).") % {"path": path})


def upper_has_opaque_dir(upper: Path, path: str) -> Verdict:
    """A directory removed and made again is marked opaque (xattr)."""
    target = _in_upper(upper, path)
    try:
        value = os.getxattr(target, "trusted.overlay.opaque", follow_symlinks=False)
    except OSError:
        value = b""
    if target.is_dir() and value == b"y":
        return ok(_("%(path)s is an opaque directory: the lower layers' contents are "
                    "hidden.") % {"path": path})
    return fail(_("%(path)s is not an opaque directory in the upper directory.")
                % {"path": path})


def _lower_file(lowers: Iterable[Path | str], path: str) -> Path | None:
    """The file ``path`` as the image has it: the topmost lower layer holding it."""
    for lower in lowers:
        candidate = _in_upper(Path(lower), path)
        if candidate.exists() or candidate.is_symlink():
            return candidate if candidate.is_file() else None
    return None


def upper_extends_lower(upper: Path, lowers: Iterable[Path | str], path: str,
                        added: str) -> Verdict:
    """``path`` was copied up whole and then changed: the upper copy holds every line
    of the image's file, plus a line containing ``added``."""
    found = upper_has_file(upper, path, added)
    if not found:
        return found
    original = _lower_file(lowers, path)
    if original is None:
        return fail(_("%(path)s is not in the image: there was nothing to copy up.")
                    % {"path": path})
    old = original.read_bytes().decode("utf-8", "replace").splitlines()
    new = set(_in_upper(upper, path).read_bytes().decode("utf-8", "replace").splitlines())
    lost = [line for line in old if line not in new]
    if lost:
        return fail(_("%(path)s in the upper directory lost %(n)s of the %(total)s lines "
                      "of the image's file (the first: \"%(line)s\"): it was replaced, "
                      "not changed. Append with >>.")
                    % {"path": path, "n": len(lost), "total": len(old), "line": lost[0]})
    return ok(_("%(path)s in the upper directory is the image's whole file (%(total)s "
                "lines) plus the new line: the file was copied up, then changed.")
              % {"path": path, "total": len(old)})


def container_lower_dirs(container: Any) -> list[Path]:
    """The image's layers under a container, topmost first (overlay's lowerdir order)."""
    data = container.inspect()["GraphDriver"]["Data"]
    return [Path(d) for d in str(data.get("LowerDir") or "").split(":") if d]


def container_file_extends_image(name: str, path: str, added: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return upper_extends_lower(Path(c.upper_dir), container_lower_dirs(c), path, added)


def container_has_file(name: str, path: str, contains: str | None = None) -> Verdict:
    upper, missing = container_upper_dir(name)
    return missing if missing is not None else upper_has_file(upper, path, contains)


def container_has_whiteout(name: str, path: str) -> Verdict:
    upper, missing = container_upper_dir(name)
    return missing if missing is not None else upper_has_whiteout(upper, path)


# ---------------------------------------------------------------- namespaces
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
    c, missing = _container(name)
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
    c, missing = _container(name)
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
    c, missing = _container(name)
    if missing is not None:
        return missing
    return same_interfaces_as_host(int(c.pid))


def container_only_loopback(name: str) -> Verdict:
    c, missing = _container(name)
    if missing is not None:
        return missing
    return only_loopback(int(c.pid))


def container_hostname_is(name: str, expected: str) -> Verdict:
    """Asks the container itself (``hostname`` runs in its UTS namespace)."""
    c, missing = _container(name)
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


# ---------------------------------------------------------------- mounts
def mount_fstype(mountpoint: str | Path, mountinfo: str | None = None) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (the last mount wins)."""
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    targets = {str(mountpoint), os.path.realpath(mountpoint)}
    found = None
    for line in mountinfo.splitlines():
        left, _sep, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and _unescape(fields[4]) in targets:
            found = right.split()[0] if right else None
    return found


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
        .replace("\\134", "\\")


def overlay_mounted(mountpoint: str | Path, mountinfo: str | None = None) -> Verdict:
    fstype = mount_fstype(mountpoint, mountinfo)
    if fstype == "overlay":
        return ok(_("An overlay is mounted at %(path)s.") % {"path": mountpoint})
    if fstype is None:
        return fail(_("Nothing is mounted at %(path)s.") % {"path": mountpoint})
    return fail(_("%(path)s is a %(fstype)s mount, not an overlay.")
                % {"path": mountpoint, "fstype": fstype})


# ---------------------------------------------------------------- images
def ref_in(ref: str, refs: Iterable[str]) -> bool:
    """Is ``ref`` (as a learner types it: ``busybox``, ``meu-app:1``) among the
    store's canonical refs (``localhost/busybox:latest``)?"""
    from labkit.images.refs import candidates, normalize

    wanted = set(candidates(ref))
    for r in refs:
        if not r:
            continue
        try:
            if normalize(r) in wanted:
                return True
        except LabkitError:
            continue
    return False


def image_exists(ref: str) -> Verdict:
    """Looks in the store's list: ``Store.resolve`` would build ``busybox`` on
    first use and so always succeed."""
    from labkit.images.store import Store

    refs = [getattr(img, "ref", "") for img in Store().list()]
    return image_in(ref, refs)


def image_in(ref: str, refs: Iterable[str]) -> Verdict:
    if ref_in(ref, refs):
        return ok(_('The image "%(ref)s" is in the store.') % {"ref": ref})
    return fail(_('The image "%(ref)s" is not in the store.') % {"ref": ref})
