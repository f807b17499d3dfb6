"""Device control: which device nodes a container may create (``m``), read and write.

A file system mounted without ``nodev`` lets a process open any device node it finds
(a volume, a layer, or one it ``mknod``s itself). The devices controller is the kernel's
answer: every ``open()`` and ``mknod()`` of a device is checked against the cgroup's rules.

- **v1**: the ``devices`` hierarchy has two files. Writing ``a`` to ``devices.deny``
  denies everything; each line written to ``devices.allow`` (``c 1:3 rwm``) opens one hole.
- **v2**: there is no file. The kernel runs a small eBPF program of type
  ``BPF_PROG_TYPE_CGROUP_DEVICE`` attached to the cgroup; it gets the device's type,
  major, minor and the access asked for, and returns 1 (allow) or 0 (deny).
  :func:`program` writes that program instruction by instruction (runc's
  ``libcontainer/cgroups/devices/devicefilter.go`` does the same in Go), :func:`load`
  hands it to the kernel's verifier with ``bpf(BPF_PROG_LOAD)`` and :func:`attach`
  puts it on the cgroup with ``bpf(BPF_PROG_ATTACH)``.

Both start from Docker's default set (:data:`DEFAULT_RULES`).
"""
from __future__ import annotations

import ctypes
import os
import platform
import stat
import struct
from dataclasses import dataclass

from ..libc import check, libc


@dataclass(frozen=True)
class Rule:
    """One allowed device: ``type`` ``c`` (char), ``b`` (block) or ``a`` (both);
    ``major``/``minor`` None for ``*``; ``access`` a subset of ``rwm``."""

    type: str
    major: int | None
    minor: int | None
    access: str = "rwm"

    def __str__(self) -> str:
        """The v1 ``devices.allow`` line: ``c 136:* rwm``."""
        num = lambda n: "*" if n is None else str(n)  # noqa: E731
        return f"{self.type} {num(self.major)}:{num(self.minor)} {self.access}"


# Docker's default (moby oci/defaults.go and runc's specconv): any node may be *created*
# (mknod), but only these may be opened.
DEFAULT_RULES = (
    Rule("c", None, None, "m"),
    Rule("b", None, None, "m"),
    Rule("c", 1, 3),      # /dev/null
    Rule("c", 1, 5),      # /dev/zero
    Rule("c", 1, 7),      # /dev/full
    Rule("c", 1, 8),      # /dev/random
    Rule("c", 1, 9),      # /dev/urandom
    Rule("c", 5, 0),      # /dev/tty
    Rule("c", 5, 1),      # /dev/console
    Rule("c", 5, 2),      # /dev/ptmx
    Rule("c", 136, None),  # /dev/pts/*
)


def rule_for(path: str, access: str = "rwm") -> Rule:
    """The rule allowing the device node at ``path`` (OSError if there is none;
    ValueError if it is not a device)."""
    st = os.stat(path)
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        raise ValueError(path)
    return Rule(kind, os.major(st.st_rdev), os.minor(st.st_rdev), access)


# -- v1 ------------------------------------------------------------------------------------

def write_v1(directory: str, rules: tuple[Rule, ...] | list[Rule]) -> None:
    """Deny all, then allow ``rules``, in the ``devices`` cgroup ``directory``."""
    from .base import write

    write(os.path.join(directory, "devices.deny"), "a")
    for rule in rules:
        write(os.path.join(directory, "devices.allow"), str(rule))


# -- v2: the eBPF program ---------------------------------------------------------------------

# The program's input (include/uapi/linux/bpf.h, struct bpf_cgroup_dev_ctx):
#   u32 access_type  (access << 16 | type);  u32 major;  u32 minor
DEVCG_DEV_BLOCK, DEVCG_DEV_CHAR = 1, 2
DEVCG_ACC_MKNOD, DEVCG_ACC_READ, DEVCG_ACC_WRITE = 1, 2, 4
_TYPES = {"b": DEVCG_DEV_BLOCK, "c": DEVCG_DEV_CHAR}
_ACCESS = {"m": DEVCG_ACC_MKNOD, "r": DEVCG_ACC_READ, "w": DEVCG_ACC_WRITE}

# Opcodes (include/uapi/linux/bpf_common.h, bpf.h): class | operation | source.
LDX_MEM_W = 0x61   # BPF_LDX | BPF_MEM | BPF_W:  dst = *(u32 *)(src + off)
AND32_K = 0x54     # BPF_ALU | BPF_AND | BPF_K:   dst &= imm (32 bits)
RSH32_K = 0x74     # BPF_ALU | BPF_RSH | BPF_K:   dst >>= imm
MOV32_X = 0xBC     # BPF_ALU | BPF_MOV | BPF_X:   dst = src
MOV64_K = 0xB7     # BPF_ALU64 | BPF_MOV | BPF_K: dst = imm
JNE_K = 0x55       # BPF_JMP | BPF_JNE | BPF_K:   if dst != imm: pc += off
JNE_X = 0x5D       # BPF_JMP | BPF_JNE | BPF_X:   if dst != src: pc += off
EXIT = 0x95        # return r0
R0, R1, R2, R3, R4, R5 = range(6)


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte eBPF instruction: opcode, dst and src registers (4 bits each), a
    16-bit offset, a 32-bit immediate."""
    return struct.pack("<BBhi", op, (src << 4) | dst, off, imm)


def _rule_block(rule: Rule) -> list[tuple]:
    """Instructions that return 1 when the request matches ``rule``; each test jumps to
    the next rule's block on mismatch (offset ``None``, filled in by :func:`program`)."""
    out: list[tuple] = []
    if rule.type != "a":
        out.append((JNE_K, R2, 0, None, _TYPES[rule.type]))
    mask = sum(_ACCESS[a] for a in set(rule.access))
    if mask != DEVCG_ACC_MKNOD | DEVCG_ACC_READ | DEVCG_ACC_WRITE:
        # the access asked for must be a subset of the rule's: (asked & mask) == asked
        out += [(MOV32_X, R1, R3, 0, 0), (AND32_K, R1, 0, 0, mask), (JNE_X, R1, R3, None, 0)]
    if rule.major is not None:
        out.append((JNE_K, R4, 0, None, rule.major))
    if rule.minor is not None:
        out.append((JNE_K, R5, 0, None, rule.minor))
    out += [(MOV64_K, R0, 0, 0, 1), (EXIT, 0, 0, 0, 0)]
    return out


def program(rules: tuple[Rule, ...] | list[Rule]) -> bytes:
    """The ``BPF_PROG_TYPE_CGROUP_DEVICE`` program allowing ``rules`` and nothing else."""
    code = [
        (LDX_MEM_W, R2, R1, 0, 0),   # r2 = ctx->access_type
        (AND32_K, R2, 0, 0, 0xFFFF),  # r2 = type
        (LDX_MEM_W, R3, R1, 0, 0),
        (RSH32_K, R3, 0, 0, 16),      # r3 = access
        (LDX_MEM_W, R4, R1, 4, 0),   # r4 = major
        (LDX_MEM_W, R5, R1, 8, 0),   # r5 = minor
    ]
    for rule in rules:
        block = _rule_block(rule)
        # a jump's offset counts from the instruction after it to the first of the next block
        code += [(op, d, s, len(block) - i - 1 if off is None else off, imm)
                 for i, (op, d, s, off, imm) in enumerate(block)]
        if len(block) == 2:  # "a *:* rwm" allows everything: what follows would be unreachable,
            break            # which the verifier refuses
    else:
        code += [(MOV64_K, R0, 0, 0, 0), (EXIT, 0, 0, 0, 0)]  # nothing matched: deny
    return b"".join(insn(op, d, s, off, imm) for op, d, s, off, imm in code)


_BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_QUERY = 5, 8, 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # the attach type


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    buf = ctypes.create_string_buffer(attr, 128)  # the kernel wants the unused tail zeroed
    return check(libc.syscall(_BPF_SYSCALL, cmd, buf, ctypes.c_uint(128)), what)


def load(code: bytes) -> int:
    """``bpf(BPF_PROG_LOAD)``: the kernel's verifier checks the program; returns its fd."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    # union bpf_attr, the PROG_LOAD part: prog_type, insn_cnt, insns, license,
    # log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16]
    attr = struct.pack("<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                       ctypes.addressof(insns), ctypes.addressof(license_), 1, len(log),
                       ctypes.addressof(log), 0, 0, b"labkit_devices")
    try:
        return _bpf(BPF_PROG_LOAD, attr, "bpf(BPF_PROG_LOAD)")
    except OSError as exc:
        text = log.value.decode(errors="replace").strip()
        raise OSError(exc.errno, f"{exc.strerror}\n{text}" if text else exc.strerror) from None


def attach(cgroup_dir: str, prog_fd: int) -> None:
    """``bpf(BPF_PROG_ATTACH)`` without flags: the cgroup's one device program, which a
    later attach replaces (a ``--device`` added to the defaults)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # target_fd, attach_bpf_fd, attach_type, attach_flags
        attr = struct.pack("<IIII", fd, prog_fd, BPF_CGROUP_DEVICE, 0)
        _bpf(BPF_PROG_ATTACH, attr, "bpf(BPF_PROG_ATTACH)")
    finally:
        os.close(fd)


def attached(cgroup_dir: str) -> int:
    """How many device programs are attached to ``cgroup_dir`` itself (BPF_PROG_QUERY)."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = struct.pack("<IIIIQI", fd, BPF_CGROUP_DEVICE, 0, 0, 0, 0)
        buf = ctypes.create_string_buffer(attr, 128)
        check(libc.syscall(_BPF_SYSCALL, BPF_PROG_QUERY, buf, ctypes.c_uint(128)), "bpf(BPF_PROG_QUERY)")
        return struct.unpack_from("<I", buf.raw, 24)[0]
    finally:
        os.close(fd)


def write_v2(directory: str, rules: tuple[Rule, ...] | list[Rule]) -> None:
    """Load the program for ``rules`` and attach it to the cgroup ``directory``. The
    attachment holds the program; the fd is not needed afterwards."""
    prog = load(program(rules))
    try:
        attach(directory, prog)
    finally:
        os.close(prog)
