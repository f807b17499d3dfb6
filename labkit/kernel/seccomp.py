"""seccomp: the list of system calls a container may make.

Why can't I ``unshare`` in a container? Capabilities (capabilities.py) already
stop most privileged calls: without CAP_SYS_ADMIN, ``unshare -m``, ``mount``
and ``setns`` fail. But some doors need no capability at all: any process may
create a *user namespace* (``unshare -U``) and, inside it, it is "root" with
every capability again. Docker therefore adds a second layer: a **seccomp
filter**, a tiny program the kernel runs on *every* system call of the
process, before the call itself. It looks only at the call's number and
arguments and answers "allow", "fail with EPERM" or "kill the process".

labkit uses Docker's default profile, an **allow-list**: about 370 calls are
allowed, everything else fails with EPERM. The profile is a JSON file in
Docker's format (``seccomp_default.json`` next to this module, written from
moby's ``profiles/seccomp/default.json``); ``--security-opt seccomp=FILE``
loads another one. Some rules depend on the container's capabilities:
with ``--cap-add SYS_ADMIN`` the profile also allows ``mount``, ``unshare``,
``setns``, ``clone`` with namespace flags...; with ``SYS_PTRACE``, ``kcmp``
and ``pidfd_getfd``; and so on (the ``includes``/``excludes`` of each rule).

The program itself is classic BPF (the little machine of ``tcpdump``
filters). **libseccomp**, the C library runc, crun and podman use, compiles
the profile into it: it knows each architecture's syscall numbers and how to
compare 64-bit arguments with 32-bit instructions. labkit reaches it with
:mod:`ctypes`, in the engine, once per (profile, capabilities) pair, and
hands the exported bytes to the container's process, which loads them with
``prctl(PR_SET_SECCOMP)`` right before ``execve`` (no library call after the
fork). See the program with ``print(disassemble(program()))`` and at work
with ``grep Seccomp /proc/self/status`` in a container (2 = filter).

Two details copied from Docker (runc):

* a call whose number is *higher* than every call the profile names (one the
  kernel added after the profile was written) fails with **ENOSYS** rather
  than EPERM, so that programs fall back to the older call, as they do on an
  older kernel: a short prefix before libseccomp's program does that.
* ``clone3`` fails with ENOSYS without CAP_SYS_ADMIN: its flags live in
  memory that seccomp cannot read, so glibc is told "no clone3" and falls
  back to ``clone``, whose flags the filter checks.

One difference: Docker also accepts the 32-bit (i386) and x32 ABIs of x86_64;
labkit allows only the native ABI and kills a process that uses another
(``int 0x80`` with i386 numbers), so one syscall table is enough to read it.
"""
from __future__ import annotations

import ctypes
import errno
import json
import os
import platform
import struct
from collections.abc import Iterable
from pathlib import Path

from .libc import check, libc

DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")

# -- the kernel's constants ---------------------------------------------------------------------------

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}
X32_SYSCALL_BIT = 0x40000000

# classic BPF opcodes (linux/bpf_common.h): the ones libseccomp and the prefix emit
BPF_LD_W_ABS = 0x20   # A = 32-bit word at offset k of seccomp_data
BPF_LD_W_MEM = 0x60   # A = M[k]
BPF_ST = 0x02         # M[k] = A
BPF_ALU_AND_K = 0x54  # A &= k
BPF_JMP_JA = 0x05     # pc += k
BPF_JEQ_K = 0x15      # pc += (A == k) ? jt : jf
BPF_JGT_K = 0x25
BPF_JGE_K = 0x35
BPF_JSET_K = 0x45     # pc += (A & k) ? jt : jf
BPF_RET_K = 0x06      # return k

OFF_NR = 0
OFF_ARCH = 4

# -- libseccomp, through ctypes ----------------------------------------------------------------------

# SCMP_ARCH_* are the AUDIT_ARCH_* values; SCMP_FLTATR_* and SCMP_CMP_* from seccomp.h
_FLTATR_ACT_BADARCH = 2
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_OPTIMIZE = 8
_NR_SCMP_ERROR = -1
COMPARE = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
           "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ACTIONS = {"SCMP_ACT_KILL": SECCOMP_RET_KILL_THREAD, "SCMP_ACT_KILL_THREAD": SECCOMP_RET_KILL_THREAD,
           "SCMP_ACT_KILL_PROCESS": SECCOMP_RET_KILL_PROCESS, "SCMP_ACT_TRAP": SECCOMP_RET_TRAP,
           "SCMP_ACT_ERRNO": SECCOMP_RET_ERRNO, "SCMP_ACT_TRACE": SECCOMP_RET_TRACE,
           "SCMP_ACT_LOG": SECCOMP_RET_LOG, "SCMP_ACT_ALLOW": SECCOMP_RET_ALLOW}
# Docker's names for the architectures (runtime.GOARCH) in includes/excludes.arches
GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}

# x86_64 numbers of calls newer than the libseccomp this machine has (2.5.4 stops at 450):
# the kernel's arch/x86/entry/syscalls/syscall_64.tbl. None = known, not on x86_64.
NEWER_X86_64 = {
    "uretprobe": 335, "cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453,
    "futex_wake": 454, "futex_wait": 455, "futex_requeue": 456, "statmount": 457,
    "listmount": 458, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
    "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463, "getxattrat": 464,
    "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468,
    "file_setattr": 469, "riscv_hwprobe": None,
}


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


_lib = None


def _libseccomp():
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        _lib = lib
    return _lib


class ProfileError(ValueError):
    """A profile that is not Docker's JSON format or names what libseccomp does not know.
    ``args[0]`` is a msgid-shaped English key; ``detail`` what was wrong."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


def syscall_number(name: str) -> int | None:
    """The native number of ``name``; None for a call of another architecture only
    (``chown32`` on x86_64). ProfileError for a name no table knows."""
    nr = _libseccomp().seccomp_syscall_resolve_name(name.encode())
    if nr >= 0:
        return nr
    if nr != _NR_SCMP_ERROR:  # libseccomp's pseudo number: exists elsewhere, not here
        return None
    if name in NEWER_X86_64 and _machine() == "x86_64":
        return NEWER_X86_64[name]
    raise ProfileError("unknown syscall", name)


def _machine() -> str:
    m = platform.machine()
    if m not in AUDIT_ARCH:
        raise OSError(errno.ENOSYS, f"seccomp: no syscall table for {m}")
    return m


# -- the profile ---------------------------------------------------------------------------------------


def load(path: str | os.PathLike | None = None) -> dict:
    """Read and check a profile in Docker's JSON format (default: labkit's own).

    ProfileError("not JSON"...) / ("unknown action"...) / ("unknown syscall"...) /
    ("invalid profile"...) for what a filter cannot be built from.
    """
    try:
        text = Path(path or DEFAULT_PROFILE).read_text()
    except UnicodeDecodeError as exc:
        raise ProfileError("not JSON", str(exc)) from None
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError("not JSON", f"{exc.msg} ({exc.lineno}:{exc.colno})") from None
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls", []), list):
        raise ProfileError("invalid profile", "expected an object with a 'syscalls' list")
    _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    for rule in profile.get("syscalls") or []:
        if not isinstance(rule, dict):
            raise ProfileError("invalid profile", repr(rule)[:80])
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not names or not all(isinstance(n, str) for n in names):
            raise ProfileError("invalid profile", f"a rule without names: {json.dumps(rule)[:80]}")
        _action(rule.get("action"), rule.get("errnoRet"))
        for arg in rule.get("args") or []:
            if arg.get("op") not in COMPARE or not 0 <= int(arg.get("index", -1)) < 6:
                raise ProfileError("invalid profile", f"argument rule {json.dumps(arg)[:80]}")
        for name in names:
            syscall_number(name)
    return profile


def _action(name, errno_ret=None) -> int:
    if name not in ACTIONS:
        raise ProfileError("unknown action", str(name))
    action = ACTIONS[name]
    if action in (SECCOMP_RET_ERRNO, SECCOMP_RET_TRACE):
        action |= int(errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF
    return action


def _kernel_at_least(version: str) -> bool:
    def nums(v: str) -> tuple[int, ...]:
        return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in v.split(".")[:2])
    return nums(os.uname().release) >= nums(version)


def _applies(rule: dict, caps: set[str], arch: str) -> bool:
    """moby's setupSeccomp filter: includes must all hold, excludes none."""
    goarch = GOARCH[arch]
    exc, inc = rule.get("excludes") or {}, rule.get("includes") or {}
    if goarch in (exc.get("arches") or ()) or any(c in caps for c in exc.get("caps") or ()):
        return False
    if exc.get("minKernel") and _kernel_at_least(exc["minKernel"]):
        return False
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if any(c not in caps for c in inc.get("caps") or ()):
        return False
    if inc.get("minKernel") and not _kernel_at_least(inc["minKernel"]):
        return False
    return True


def rules(profile: dict, caps: Iterable[str], arch: str | None = None) -> list[tuple[str, int, list]]:
    """``(name, action, args)`` for every rule of ``profile`` that applies to a container with
    ``caps`` (names as ``SYS_ADMIN`` or ``CAP_SYS_ADMIN``) on ``arch``."""
    arch = arch or _machine()
    have = {"CAP_" + c.upper().removeprefix("CAP_") for c in caps}
    out = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, have, arch):
            continue
        action = _action(rule["action"], rule.get("errnoRet"))
        for name in rule.get("names") or [rule["name"]]:
            out.append((name, action, list(rule.get("args") or [])))
    return out


def allowed(profile: dict, caps: Iterable[str], arch: str | None = None) -> set[str]:
    """Names the profile allows without looking at arguments, on this architecture."""
    return {n for n, a, args in rules(profile, caps, arch)
            if a == SECCOMP_RET_ALLOW and not args and syscall_number(n) is not None}


# -- compiling ----------------------------------------------------------------------------------------


def compile_profile(profile: dict, caps: Iterable[str]) -> bytes:
    """The filter for a container with ``caps``, as ``struct sock_filter[]`` bytes."""
    arch = _machine()
    lib = _libseccomp()
    default = _action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(errno.EINVAL, "seccomp_init")
    try:
        # another ABI (i386 with int 0x80, x32): the numbers would mean other calls
        lib.seccomp_attr_set(ctx, _FLTATR_ACT_BADARCH, SECCOMP_RET_KILL_PROCESS)
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)  # the child sets no_new_privs itself
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)  # a binary tree of numbers, not a list
        for name, action, args in rules(profile, caps, arch):
            nr = syscall_number(name)
            if nr is None or action == default:  # libseccomp refuses a rule equal to the default
                continue
            # moby/runc: conditions on distinct arguments AND together in one rule; several on
            # the same argument become one rule each (OR), since libseccomp cannot AND them
            indexes = [a["index"] for a in args]
            groups = [args] if len(set(indexes)) == len(indexes) else [[a] for a in args]
            for group in groups:
                cmps = (_ArgCmp * max(1, len(group)))()
                for i, a in enumerate(group):
                    cmps[i] = _ArgCmp(a["index"], COMPARE[a["op"]], int(a.get("value", 0)),
                                      int(a.get("valueTwo", 0)))
                rc = lib.seccomp_rule_add_array(ctx, action, nr, len(group), cmps)
                if rc < 0:
                    raise OSError(-rc, f"seccomp_rule_add({name}): {os.strerror(-rc)}")
        fd = os.memfd_create("labkit-seccomp", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {os.strerror(-rc)}")
            code = os.pread(fd, 1 << 20, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    return _enosys_prefix(profile, arch) + code


def _enosys_prefix(profile: dict, arch: str) -> bytes:
    """runc's patch: a native call numbered above every call the profile names -> ENOSYS
    (not for a profile that allows by default: there a new call is simply allowed)."""
    if _action(profile.get("defaultAction")) in (SECCOMP_RET_ALLOW, SECCOMP_RET_LOG):
        return b""
    nrs = []
    for rule in profile.get("syscalls") or []:
        for name in rule.get("names") or [rule.get("name")]:
            nr = syscall_number(name)
            if nr is not None:
                nrs.append(nr)
    if not nrs:
        return b""
    prog = [
        (BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        (BPF_JEQ_K, 0, 4, AUDIT_ARCH[arch]),          # another ABI: libseccomp's program decides
        (BPF_LD_W_ABS, 0, 0, OFF_NR),
        (BPF_JGE_K, 2, 0, X32_SYSCALL_BIT),           # x32 numbers: same
        (BPF_JGT_K, 0, 1, max(nrs)),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
    ]
    return assemble(prog)


def assemble(prog: list[tuple[int, int, int, int]]) -> bytes:
    """``struct sock_filter[]``: u16 code, u8 jt, u8 jf, u32 k, native byte order."""
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in prog)


def instructions(code: bytes) -> list[tuple[int, int, int, int]]:
    """Back from bytes to ``(code, jt, jf, k)`` tuples."""
    return [struct.unpack_from("=HBBI", code, i) for i in range(0, len(code), 8)]


def disassemble(code: bytes) -> str:
    """A readable listing, for the course (``print(disassemble(program()))``)."""
    ops = {BPF_JEQ_K: "jeq", BPF_JGT_K: "jgt", BPF_JGE_K: "jge", BPF_JSET_K: "jset"}
    lines = []
    for pc, (op, jt, jf, k) in enumerate(instructions(code)):
        if op == BPF_LD_W_ABS:
            what = {OFF_NR: "nr", OFF_ARCH: "arch"}.get(k) or f"args[{(k - 16) // 8}]" \
                + (".hi" if (k - 16) % 8 else ".lo")
            lines.append(f"{pc:4d}  ld   {what}")
        elif op == BPF_RET_K:
            action = {SECCOMP_RET_ALLOW: "ALLOW", SECCOMP_RET_KILL_PROCESS: "KILL_PROCESS",
                      SECCOMP_RET_KILL_THREAD: "KILL_THREAD"}.get(k)
            if action is None and k & 0xFFFF0000 == SECCOMP_RET_ERRNO:
                action = f"ERRNO({errno.errorcode.get(k & 0xFFFF, k & 0xFFFF)})"
            lines.append(f"{pc:4d}  ret  {action or hex(k)}")
        elif op in ops:
            lines.append(f"{pc:4d}  {ops[op]:4s} {k:#x} jt {pc + 1 + jt} jf {pc + 1 + jf}")
        elif op == BPF_JMP_JA:
            lines.append(f"{pc:4d}  ja   {pc + 1 + k}")
        elif op == BPF_ALU_AND_K:
            lines.append(f"{pc:4d}  and  {k:#x}")
        elif op == BPF_ST:
            lines.append(f"{pc:4d}  st   M[{k}]")
        elif op == BPF_LD_W_MEM:
            lines.append(f"{pc:4d}  ld   M[{k}]")
        else:
            lines.append(f"{pc:4d}  {op:#06x} {jt} {jf} {k:#x}")
    return "\n".join(lines)


# -- in the engine: one compile per (profile, capabilities) --------------------------------------------

_programs: dict[tuple, bytes] = {}
_default: dict | None = None


def program(path: str | os.PathLike | None = None, caps: Iterable[str] | None = None) -> bytes:
    """The filter for profile ``path`` (None: labkit's default) and ``caps`` (None: the
    default set). The default profile's filters are compiled once per engine and kept: a
    later container with the same capabilities gets the same bytes without libseccomp.
    ProfileError for a file that cannot be used."""
    global _default
    from .capabilities import DEFAULT

    caps = tuple(sorted(caps if caps is not None else DEFAULT))
    if path is not None:
        return compile_profile(load(path), caps)
    if caps not in _programs:
        if _default is None:
            _default = load()
        _programs[caps] = compile_profile(_default, caps)
    return _programs[caps]


# -- in the container's process: load the bytes -------------------------------------------------------


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(code: bytes | None) -> None:
    """Load ``code`` (from :func:`program`) on the calling thread; it stays for its execs
    and children. None or empty: no filter (``--security-opt seccomp=unconfined``).

    ``no_new_privs`` must already be set (or the caller have CAP_SYS_ADMIN).
    """
    if not code:
        return
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
