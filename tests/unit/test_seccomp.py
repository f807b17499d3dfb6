"""The seccomp filter, checked as a program: its structure, its syscall numbers, and what it
answers, by running it in a tiny classic-BPF interpreter (no root, no kernel needed), plus one
check in a forked child that the kernel accepts it."""
from __future__ import annotations

import ctypes
import errno
import os
import re
import struct
from pathlib import Path

import pytest

from labkit.kernel import seccomp as sc
from requirements import require, skipif_here

ALLOW, KILL = sc.SECCOMP_RET_ALLOW, sc.SECCOMP_RET_KILL_PROCESS
EPERM, ENOSYS = sc.SECCOMP_RET_ERRNO | errno.EPERM, sc.SECCOMP_RET_ERRNO | errno.ENOSYS
CLONE_NEW = {"NEWNS": 0x20000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000, "NEWIPC": 0x8000000,
             "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000, "NEWTIME": 0x80}
# glibc's pthread_create: VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
CLONE_THREAD_FLAGS = 0x3D0F00
CLONE_FORK_FLAGS = 0x01200011  # fork(): CHILD_SETTID | CHILD_CLEARTID | SIGCHLD


def run(prog, nr: int, arch: int = sc.AUDIT_ARCH_X86_64, args=(0,) * 6) -> int:
    """Execute ``prog`` on one ``struct seccomp_data``, as the kernel would."""
    args = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    a, pc = 0, 0
    for _ in range(len(prog) + 1):  # forward jumps only: at most len(prog) steps
        code, jt, jf, k = prog[pc]
        if code == sc.BPF_LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == sc.BPF_RET_K:
            return k
        elif code in (sc.BPF_JEQ_K, sc.BPF_JGE_K, sc.BPF_JSET_K):
            taken = {sc.BPF_JEQ_K: a == k, sc.BPF_JGE_K: a >= k, sc.BPF_JSET_K: bool(a & k)}[code]
            pc += 1 + (jt if taken else jf)
        else:
            raise AssertionError(f"unexpected opcode {code:#x} at {pc}")
    raise AssertionError("program did not return")


def header_numbers(path: str) -> dict[str, int]:
    p = Path(path)
    if not p.exists():
        require(False, path, package="Debian package linux-libc-dev")
    out = {}
    for m in re.finditer(r"#define __NR(?:3264)?_(\w+)\s+(\d+)\b", p.read_text()):
        out.setdefault(m.group(1), int(m.group(2)))
    return out


@pytest.fixture(scope="module")
def prog():
    return sc.build("default", "x86_64")


def test_program_shape(prog):
    assert 20 < len(prog) < 4096  # BPF_MAXINSNS
    code = sc.assemble(prog)
    assert len(code) == 8 * len(prog)
    assert struct.unpack_from("=HBBI", code, 0) == (sc.BPF_LD_W_ABS, 0, 0, sc.OFF_ARCH)
    # the architecture is checked first, before any syscall number is trusted
    assert prog[0] == (sc.BPF_LD_W_ABS, 0, 0, sc.OFF_ARCH)
    assert prog[1][0] == sc.BPF_JEQ_K and prog[1][3] == sc.AUDIT_ARCH_X86_64
    assert prog[2] == (sc.BPF_RET_K, 0, 0, KILL)
    assert prog[3] == (sc.BPF_LD_W_ABS, 0, 0, sc.OFF_NR)
    assert prog[-1] == (sc.BPF_RET_K, 0, 0, ALLOW)
    for pc, (code_, jt, jf, _k) in enumerate(prog):
        if code_ != sc.BPF_RET_K and code_ != sc.BPF_LD_W_ABS:
            assert pc + 1 + max(jt, jf) < len(prog), pc


def test_wrong_architecture_and_x32_are_killed(prog):
    assert run(prog, 39, arch=0x40000003) == KILL   # AUDIT_ARCH_I386 (int 0x80)
    assert run(prog, 39, arch=sc.AUDIT_ARCH_AARCH64) == KILL
    assert run(prog, 39 | sc.X32_SYSCALL_BIT) == KILL
    assert run(prog, 39) == ALLOW


def test_x86_64_numbers_match_the_kernel_headers():
    hdr = header_numbers("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
    ours = sc.numbers("x86_64")
    checked = [n for n in ours if n in hdr]
    assert len(checked) > 50
    assert {n: ours[n] for n in checked} == {n: hdr[n] for n in checked}
    assert ours["unshare"] == 272 and ours["clone"] == 56 and ours["clone3"] == 435


def test_aarch64_numbers_match_the_generic_table():
    hdr = header_numbers("/usr/include/asm-generic/unistd.h")
    ours = sc.numbers("aarch64")
    checked = [n for n in ours if n in hdr]
    assert len(checked) > 45
    assert {n: ours[n] for n in checked} == {n: hdr[n] for n in checked}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_every_denied_call_gets_its_errno(arch):
    p = sc.build("default", arch)
    nr = sc.numbers(arch)
    audit = sc.AUDIT_ARCH[arch]
    denied = sc.denied()
    for name in ("unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "fsconfig",
                 "fsmount", "fspick", "move_mount", "open_tree", "keyctl", "add_key",
                 "request_key", "bpf", "perf_event_open", "kexec_load", "kexec_file_load",
                 "init_module", "finit_module", "delete_module", "open_by_handle_at",
                 "userfaultfd", "swapon", "swapoff", "reboot", "acct", "quotactl",
                 "lookup_dcookie", "settimeofday", "clock_settime", "io_uring_setup",
                 "io_uring_enter", "io_uring_register"):
        assert denied[name] == errno.EPERM, name
        assert run(p, nr[name], audit) == EPERM, name
    assert run(p, nr["clone3"], audit) == ENOSYS
    if arch == "x86_64":
        assert run(p, nr["iopl"], audit) == EPERM and run(p, nr["ioperm"], audit) == EPERM


def test_every_group_says_why_and_every_name_has_a_number():
    for why, names in sc.DENY_EPERM:
        assert len(why) > 30 and names
        for name in names:
            assert name in sc._NR and sc._NR[name][0] is not None, name
    assert "user namespace" in sc.DENY_EPERM[0][0]


@pytest.mark.parametrize("flag", sorted(CLONE_NEW))
def test_clone_with_a_namespace_flag_is_denied(prog, flag):
    assert run(prog, 56, args=(CLONE_NEW[flag] | 0x11, 0, 0, 0, 0, 0)) == EPERM


def test_clone_for_threads_and_fork_is_allowed(prog):
    assert run(prog, 56, args=(CLONE_THREAD_FLAGS, 1, 2, 3, 4, 5)) == ALLOW
    assert run(prog, 56, args=(CLONE_FORK_FLAGS,)) == ALLOW
    # only the low 32 bits count (the kernel truncates clone's flags too)
    assert run(prog, 56, args=(0xFFFFFFFF00000000 | 0x11,)) == ALLOW


def test_ordinary_calls_are_allowed(prog):
    # read write openat execve getpid wait4 fork ptrace chroot adjtimex clock_adjtime seccomp
    for nr in (0, 1, 257, 59, 39, 61, 57, 101, 161, 159, 305, 317, 334):
        assert run(prog, nr) == ALLOW, nr


def test_personality_and_socket_arguments(prog):
    for value in sc.PERSONALITY_OK:
        assert run(prog, 135, args=(value,)) == ALLOW
    assert run(prog, 135, args=(0x0040000,)) == EPERM  # ADDR_NO_RANDOMIZE
    assert run(prog, 41, args=(2, 1, 0)) == ALLOW      # AF_INET
    assert run(prog, 41, args=(1, 1, 0)) == ALLOW      # AF_UNIX
    assert run(prog, 41, args=(sc.AF_VSOCK, 1, 0)) == EPERM


def test_unconfined_only_checks_the_abi():
    p = sc.build("unconfined", "x86_64")
    assert run(p, 272) == ALLOW and run(p, 39, arch=0x40000003) == KILL
    assert sc.denied("unconfined") == {}
    with pytest.raises(ValueError):
        sc.build("nonsense", "x86_64")


def test_disassembly_names_the_calls(prog):
    text = sc.disassemble(prog)
    assert "; unshare" in text and "ERRNO(ENOSYS)" in text and "KILL_PROCESS" in text
    assert len(text.splitlines()) == len(prog)


@skipif_here(os.uname().machine != "x86_64", reason="syscall numbers below are x86_64")
def test_the_kernel_accepts_it_and_enforces_it():
    """In a forked child (no root needed: no_new_privs first, as spawn does)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from labkit.kernel import capabilities
            from labkit.kernel.libc import libc

            capabilities.set_no_new_privs()
            sc.install()
            ok = sc.mode() == 2
            ok &= libc.syscall(272, CLONE_NEW["NEWUSER"]) == -1 and ctypes.get_errno() == errno.EPERM
            ok &= libc.syscall(435, 0, 0) == -1 and ctypes.get_errno() == errno.ENOSYS
            ok &= libc.syscall(39) == os.getpid()
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
