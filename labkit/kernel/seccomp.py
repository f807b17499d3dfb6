"""seccomp: the list of system calls a container may not make.

Why can't I ``unshare`` in a container? Capabilities (capabilities.py) already
stop most privileged calls: without CAP_SYS_ADMIN, ``unshare -m``, ``mount``
and ``setns`` fail. But some doors need no capability at all: any process may
create a *user namespace* (``unshare -U``) and, inside it, it is "root" with
every capability again. From there it can mount tmpfs/overlay, create
netfilter rules... kernel code that was written for real root and has had many
bugs. Docker therefore adds a second layer: a **seccomp filter**, a tiny
program the kernel runs on *every* system call of the process, before the
call itself. It looks only at the call's number and arguments and answers
"allow", "fail with EPERM" or "kill the process". labkit installs one,
modelled on Docker/moby's default profile for a container without
CAP_SYS_ADMIN (``profiles/seccomp/default.json``), right before ``execve``,
after ``no_new_privs`` (which the kernel requires for an unprivileged filter).
The filter is inherited by every child and can never be removed.

The program is classic BPF (the same little machine as ``tcpdump`` filters),
written here by hand with :mod:`struct`: it reads ``struct seccomp_data``
(``nr`` at offset 0, ``arch`` at 4, ``args[i]`` at 16 + 8*i) and returns an
action. See it with ``disassemble(build())``; see it at work with
``grep Seccomp /proc/self/status`` in a container (2 = filter).

Differences from moby's profile (documented so nobody is surprised):

* moby *allows a list* and fails everything else with EPERM; labkit *denies a
  list* (the calls below) and allows the rest. A system call added to a
  future kernel is therefore allowed here until someone adds it below.
* moby also accepts 32-bit (i386) and x32 programs, with their own syscall
  tables; labkit kills a process that makes a call through another ABI than
  the machine's native one (a deny list keyed by number is only meaningful
  for one table: ``int 0x80`` with i386 numbers would bypass it).
"""
from __future__ import annotations

import ctypes
import errno
import platform
import struct

from .libc import check, libc

# -- the kernel's constants ---------------------------------------------------------------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes (linux/bpf_common.h)
BPF_LD_W_ABS = 0x20   # A = 32-bit word at offset k of seccomp_data
BPF_JEQ_K = 0x15      # pc += (A == k) ? jt : jf
BPF_JGE_K = 0x35      # pc += (A >= k) ? jt : jf
BPF_JSET_K = 0x45     # pc += (A & k) ? jt : jf
BPF_RET_K = 0x06      # return k

OFF_NR = 0
OFF_ARCH = 4
OFF_ARG0_LO = 16      # low 32 bits of args[0] (both supported arches are little-endian)

# clone(2) flags that create namespaces: the 0x7E020000 of moby's profile
# (NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET) plus CLONE_NEWTIME.
CLONE_NEW_MASK = 0x7E020000 | 0x00000080
AF_VSOCK = 40
# personality(2) values moby allows: PER_LINUX, PER_LINUX32, UNAME26,
# UNAME26|PER_LINUX32, and 0xffffffff (query only).
PERSONALITY_OK = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# -- system call numbers ------------------------------------------------------------------------------

# x86_64: arch/x86/entry/syscalls/syscall_64.tbl; aarch64: include/uapi/asm-generic/unistd.h.
# None = the call does not exist on that architecture.
_NR = {
    #                          x86_64 aarch64
    "unshare":                 (272, 97),
    "setns":                   (308, 268),
    "clone":                   (56, 220),
    "clone3":                  (435, 435),
    "mount":                   (165, 40),
    "umount2":                 (166, 39),
    "pivot_root":              (155, 41),
    "open_tree":               (428, 428),
    "move_mount":              (429, 429),
    "fsopen":                  (430, 430),
    "fsconfig":                (431, 431),
    "fsmount":                 (432, 432),
    "fspick":                  (433, 433),
    "mount_setattr":           (442, 442),
    "open_tree_attr":          (467, 467),
    "add_key":                 (248, 217),
    "request_key":             (249, 218),
    "keyctl":                  (250, 219),
    "bpf":                     (321, 280),
    "perf_event_open":         (298, 241),
    "io_uring_setup":          (425, 425),
    "io_uring_enter":          (426, 426),
    "io_uring_register":       (427, 427),
    "userfaultfd":             (323, 282),
    "kexec_load":              (246, 104),
    "kexec_file_load":         (320, 294),
    "reboot":                  (169, 142),
    "init_module":             (175, 105),
    "finit_module":            (313, 273),
    "delete_module":           (176, 106),
    "create_module":           (174, None),
    "get_kernel_syms":         (177, None),
    "query_module":            (178, None),
    "open_by_handle_at":       (304, 265),
    "swapon":                  (167, 224),
    "swapoff":                 (168, 225),
    "acct":                    (163, 89),
    "quotactl":                (179, 60),
    "quotactl_fd":             (443, 443),
    "lookup_dcookie":          (212, 18),
    "fanotify_init":           (300, 262),
    "iopl":                    (172, None),
    "ioperm":                  (173, None),
    "settimeofday":            (164, 170),
    "clock_settime":           (227, 112),
    "syslog":                  (103, 116),
    "vhangup":                 (153, 58),
    "sethostname":             (170, 161),
    "setdomainname":           (171, 162),
    "kcmp":                    (312, 272),
    "pidfd_getfd":             (438, 438),
    "process_madvise":         (440, 440),
    "mbind":                   (237, 235),
    "get_mempolicy":           (239, 236),
    "set_mempolicy":           (238, 237),
    "set_mempolicy_home_node": (450, 450),
    "migrate_pages":           (256, 238),
    "move_pages":              (279, 239),
    "nfsservctl":              (180, 42),
    "uselib":                  (134, None),
    "ustat":                   (136, None),
    "sysfs":                   (139, None),
    "_sysctl":                 (156, None),
    "personality":             (135, 92),
    "socket":                  (41, 198),
}
_ARCH_COLUMN = {"x86_64": 0, "aarch64": 1}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}

# -- the profile: (why, names) groups, all answered with EPERM -------------------------------------

DENY_EPERM: list[tuple[str, tuple[str, ...]]] = [
    ("new namespaces: a new user namespace gives back every capability inside it "
     "(P11: nested root reaches netfilter, tmpfs, overlay code); entering another container's "
     "namespaces is the engine's job, not the container's",
     ("unshare", "setns")),
    ("mounting: the container's file tree is built by the engine before exec; the new mount "
     "API (fsopen...) is the same door as mount(2)",
     ("mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
      "fsmount", "fspick", "mount_setattr", "open_tree_attr")),
    ("kernel keyrings are not namespaced: keys would be shared with the host and other containers",
     ("add_key", "request_key", "keyctl")),
    ("eBPF programs, perf counters and io_uring: large kernel attack surface, many CVEs; "
     "they also observe the whole machine (perf) or bypass the syscall filter (io_uring)",
     ("bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register")),
    ("userfaultfd lets a program pause the kernel mid-copy: a classic exploit primitive",
     ("userfaultfd",)),
    ("the machine itself: rebooting, loading another kernel or kernel modules",
     ("kexec_load", "kexec_file_load", "reboot", "init_module", "finit_module", "delete_module",
      "create_module", "get_kernel_syms", "query_module")),
    ("open_by_handle_at opens any file of a filesystem by number, escaping the container's root "
     "(the 2014 'shocker' escape)",
     ("open_by_handle_at",)),
    ("host-wide settings: swap, process accounting, disk quotas, the host's clock and kernel log, "
     "raw I/O ports, hostname (set by the engine), terminals of other sessions",
     ("swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "lookup_dcookie", "fanotify_init",
      "iopl", "ioperm", "settimeofday", "clock_settime", "syslog", "vhangup", "sethostname",
      "setdomainname")),
    ("inspecting or steering other processes' memory and files beyond ptrace's rules "
     "(moby allows these only with CAP_SYS_PTRACE)",
     ("kcmp", "pidfd_getfd", "process_madvise")),
    ("NUMA memory placement moves pages of the whole machine (moby: CAP_SYS_NICE only)",
     ("mbind", "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages",
      "move_pages")),
    ("obsolete calls nobody needs and few still review",
     ("nfsservctl", "uselib", "ustat", "sysfs", "_sysctl")),
]
# Calls judged by an argument (see build()): clone with a CLONE_NEW* flag (EPERM, like unshare),
# clone3 (ENOSYS: its flags live in memory that seccomp cannot read, so glibc is told "no
# clone3" and falls back to clone, which is checked), personality outside PERSONALITY_OK
# (EPERM; some personalities turn off ASLR or map page 0), socket(AF_VSOCK) (EPERM: talks to
# the hypervisor/host, outside the network namespace).


def denied(profile: str = "default") -> dict[str, int]:
    """``{syscall name: errno}`` of the calls the profile always fails (argument checks excluded)."""
    if profile == "unconfined":
        return {}
    out = {name: errno.EPERM for _, names in DENY_EPERM for name in names}
    out["clone3"] = errno.ENOSYS
    return out


def numbers(arch: str | None = None) -> dict[str, int]:
    """Syscall numbers of the profile's calls on ``arch`` (default: this machine)."""
    col = _ARCH_COLUMN[arch or _machine()]
    return {name: nrs[col] for name, nrs in _NR.items() if nrs[col] is not None}


def _machine() -> str:
    m = platform.machine()
    if m not in _ARCH_COLUMN:
        raise OSError(errno.ENOSYS, f"seccomp: no syscall table for {m}")
    return m


# -- assembling the program ---------------------------------------------------------------------------


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return (code, jt, jf, k)


def _ret(action: int) -> tuple[int, int, int, int]:
    return _insn(BPF_RET_K, action)


def _errno(err: int) -> int:
    return SECCOMP_RET_ERRNO | (err & 0xFFFF)


def build(profile: str = "default", arch: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter as a list of ``(code, jt, jf, k)`` instructions.

    Shape: check the ABI (arch, then x32), load ``nr``, then one small block per
    call; each block that matches ends in a ``ret``, so the accumulator always
    holds ``nr`` when the next block starts. The last instruction allows.
    """
    if profile not in ("default", "unconfined"):
        raise ValueError(f"unknown seccomp profile {profile!r}")
    arch = arch or _machine()
    nr = numbers(arch)
    kill, allow, eperm = SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ALLOW, _errno(errno.EPERM)
    prog = [
        _insn(BPF_LD_W_ABS, OFF_ARCH),
        _insn(BPF_JEQ_K, AUDIT_ARCH[arch], 1, 0),
        _ret(kill),                                   # another ABI (i386 via int 0x80...)
        _insn(BPF_LD_W_ABS, OFF_NR),
    ]
    if arch == "x86_64":
        prog += [_insn(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1), _ret(kill)]  # x32 numbers
    if profile == "unconfined":
        return prog + [_ret(allow)]
    for name, err in denied(profile).items():
        if name in nr:
            prog += [_insn(BPF_JEQ_K, nr[name], 0, 1), _ret(_errno(err))]
    # clone: EPERM when any CLONE_NEW* bit is set in flags (args[0]; s390 is not supported)
    prog += [
        _insn(BPF_JEQ_K, nr["clone"], 0, 4),
        _insn(BPF_LD_W_ABS, OFF_ARG0_LO),
        _insn(BPF_JSET_K, CLONE_NEW_MASK, 0, 1),
        _ret(eperm),
        _ret(allow),
    ]
    # socket: EPERM for AF_VSOCK
    prog += [
        _insn(BPF_JEQ_K, nr["socket"], 0, 4),
        _insn(BPF_LD_W_ABS, OFF_ARG0_LO),
        _insn(BPF_JEQ_K, AF_VSOCK, 0, 1),
        _ret(eperm),
        _ret(allow),
    ]
    # personality: only the values in PERSONALITY_OK
    n = len(PERSONALITY_OK)
    prog += [_insn(BPF_JEQ_K, nr["personality"], 0, n + 3), _insn(BPF_LD_W_ABS, OFF_ARG0_LO)]
    for i, value in enumerate(PERSONALITY_OK):
        last = i == n - 1
        prog.append(_insn(BPF_JEQ_K, value, n - 1 - i, 1 if last else 0))
    prog += [_ret(allow), _ret(eperm)]
    prog.append(_ret(allow))
    return prog


def assemble(prog: list[tuple[int, int, int, int]]) -> bytes:
    """``struct sock_filter[]``: u16 code, u8 jt, u8 jf, u32 k, native byte order."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


def disassemble(prog: list[tuple[int, int, int, int]]) -> str:
    """A readable listing, for the course (``print(disassemble(build()))``)."""
    names = {v: k for k, v in numbers().items()}
    ops = {BPF_LD_W_ABS: "ld", BPF_JEQ_K: "jeq", BPF_JGE_K: "jge", BPF_JSET_K: "jset",
           BPF_RET_K: "ret"}
    lines = []
    loaded = None
    for pc, (code, jt, jf, k) in enumerate(prog):
        op = ops.get(code, hex(code))
        if code == BPF_LD_W_ABS:
            loaded = {OFF_NR: "nr", OFF_ARCH: "arch", OFF_ARG0_LO: "args[0]"}.get(k, f"[{k}]")
            lines.append(f"{pc:3d}  ld   {loaded}")
        elif code == BPF_RET_K:
            action = {SECCOMP_RET_ALLOW: "ALLOW", SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS"}.get(k)
            if action is None and k & 0xFFFF0000 == SECCOMP_RET_ERRNO:
                action = f"ERRNO({errno.errorcode.get(k & 0xFFFF, k & 0xFFFF)})"
            lines.append(f"{pc:3d}  ret  {action or hex(k)}")
            loaded = "nr"  # every block starts with nr in A
        else:
            note = f"  ; {names[k]}" if loaded == "nr" and op == "jeq" and k in names else ""
            lines.append(f"{pc:3d}  {op:4s} {k:#x} jt {pc + 1 + jt} jf {pc + 1 + jf}{note}")
    return "\n".join(lines)


# -- installing ---------------------------------------------------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_programs: dict[str, bytes] = {}


def program(profile: str = "default") -> bytes:
    """The assembled filter, built once per process: the engine builds it, and every
    container process it copies starts with it ready."""
    if profile not in _programs:
        _programs[profile] = assemble(build(profile))
    return _programs[profile]


def install(profile: str = "default") -> None:
    """Install the filter on the calling thread; it stays for its execs and children.

    ``no_new_privs`` must already be set (or the caller have CAP_SYS_ADMIN).
    ``profile="unconfined"`` installs nothing (Docker's ``--security-opt seccomp=unconfined``).
    """
    if profile == "unconfined":
        return
    code = program(profile)
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p))
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0),
          "prctl(PR_SET_SECCOMP)")


def mode(pid: int | str = "self") -> int:
    """The ``Seccomp:`` field of /proc/PID/status: 0 none, 1 strict, 2 filter."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0
