"""Capabilities and ``no_new_privs``: what root inside a container may still do.

Root's power is split into ~41 capabilities. A container keeps podman's 11
(chown, kill, setuid, ...) and loses the rest (mounting, loading modules,
changing the clock...): each is removed from the *bounding set*, so nothing
the container execs can ever get it back, and ``no_new_privs`` stops setuid
binaries from raising privileges.
"""
from __future__ import annotations

import ctypes

from .libc import SYS, check, libc

PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO",
    "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE",
    "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM",
    "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
]

# podman's default set (containers/common DefaultCapabilities).
DEFAULT = (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)


def normalize(name: str) -> str:
    """Docker's spellings (``NET_ADMIN``, ``CAP_NET_ADMIN``, ``net_admin``) -> ``NET_ADMIN``;
    ``ALL`` stays. ValueError for a name the kernel does not have."""
    cap = name.strip().upper().removeprefix("CAP_")
    if cap != "ALL" and (cap not in NAMES or NAMES.index(cap) > last_cap()):
        raise ValueError(name)
    return cap


def resolve(add: list[str] | tuple = (), drop: list[str] | tuple = ()) -> list[str]:
    """The set a container gets from ``--cap-add``/``--cap-drop``, by Docker's rule
    (moby ``TweakCapabilities``): ``--cap-add ALL`` is every capability but the dropped
    ones; ``--cap-drop ALL`` keeps only the added ones; otherwise the defaults minus the
    dropped ones, plus the added ones (an added one wins)."""
    add, drop = [normalize(n) for n in add], [normalize(n) for n in drop]
    if "ALL" in add:
        caps = [n for n in NAMES[:last_cap() + 1] if n not in drop]
    elif "ALL" in drop:
        caps = add
    else:
        caps = [n for n in DEFAULT if n not in drop] + add
    return sorted(set(caps), key=NAMES.index)


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def mask(names: tuple[str, ...] | list[str]) -> int:
    return sum(1 << NAMES.index(n) for n in names)


def limit_to(names: tuple[str, ...] | list[str] = DEFAULT) -> None:
    """Keep only ``names``: bounding, effective and permitted sets; no inheritable, no ambient."""
    limit_bounding(names)
    set_process_caps(names)


def limit_bounding(names: tuple[str, ...] | list[str] = DEFAULT) -> None:
    """Drop every capability but ``names`` from the bounding set (no exec can get it back)
    and clear the ambient set. The process's own effective set is left as it is, so it
    may still switch user (CAP_SETUID/SETGID) before :func:`set_process_caps`."""
    keep = mask(names)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(last_cap() + 1):
        if not keep & (1 << cap):
            check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl(PR_CAPBSET_DROP)")


def set_process_caps(names: tuple[str, ...] | list[str] = DEFAULT) -> None:
    """Effective and permitted = ``names``, inheritable empty (``capset``)."""
    keep = mask(names)
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        word = (keep >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = word
        data[i].permitted = word
        data[i].inheritable = 0
    check(libc.syscall(SYS["capset"], ctypes.byref(header), ctypes.byref(data)), "capset")


def set_no_new_privs() -> None:
    """After this, exec never grants privileges (setuid bits, file caps)."""
    check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def from_status(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, from /proc/PID/status."""
    caps = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Cap"):
                key, value = line.split(":")
                caps[key] = int(value, 16)
    return caps


def names_of(value: int) -> list[str]:
    return [n for i, n in enumerate(NAMES) if value & (1 << i)]
