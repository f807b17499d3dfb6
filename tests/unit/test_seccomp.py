"""The seccomp filter, checked as a program: libseccomp compiles labkit's JSON profile (Docker's
format) and the exported classic BPF runs here in a tiny interpreter (no root, no kernel needed)
against the profile itself, plus one check in a forked child that the kernel accepts it."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import struct

import pytest

from labkit.kernel import capabilities
from labkit.kernel import seccomp as sc
from requirements import skip_here

if os.uname().machine != "x86_64":
    skip_here("syscall numbers below are x86_64's", allow_module_level=True)

ALLOW, KILL = sc.SECCOMP_RET_ALLOW, sc.SECCOMP_RET_KILL_PROCESS
EPERM, ENOSYS = sc.SECCOMP_RET_ERRNO | errno.EPERM, sc.SECCOMP_RET_ERRNO | errno.ENOSYS
CLONE_NEW = {"NEWNS": 0x20000, "NEWCGROUP": 0x2000000, "NEWUTS": 0x4000000, "NEWIPC": 0x8000000,
             "NEWUSER": 0x10000000, "NEWPID": 0x20000000, "NEWNET": 0x40000000}
# glibc's pthread_create: VM FS FILES SIGHAND THREAD SYSVSEM SETTLS PARENT_SETTID CHILD_CLEARTID
CLONE_THREAD_FLAGS = 0x3D0F00
CLONE_FORK_FLAGS = 0x01200011  # fork(): CHILD_SETTID | CHILD_CLEARTID | SIGCHLD


def run(code: bytes, nr: int, arch: int = sc.AUDIT_ARCH_X86_64, args=(0,) * 6) -> int:
    """Execute the filter on one ``struct seccomp_data``, as the kernel would."""
    prog = sc.instructions(code)
    args = (tuple(args) + (0,) * 6)[:6]
    data = struct.pack("<iIQ6Q", nr, arch, 0, *[a & 0xFFFFFFFFFFFFFFFF for a in args])
    a, pc, mem = 0, 0, [0] * 16
    for _ in range(len(prog) + 1):  # forward jumps only: at most len(prog) steps
        op, jt, jf, k = prog[pc]
        if op == sc.BPF_LD_W_ABS:
            a = struct.unpack_from("<I", data, k)[0]
        elif op == sc.BPF_LD_W_MEM:
            a = mem[k]
        elif op == sc.BPF_ST:
            mem[k] = a
        elif op == sc.BPF_ALU_AND_K:
            a &= k
        elif op == sc.BPF_JMP_JA:
            pc += k
        elif op == sc.BPF_RET_K:
            return k
        elif op in (sc.BPF_JEQ_K, sc.BPF_JGT_K, sc.BPF_JGE_K, sc.BPF_JSET_K):
            taken = {sc.BPF_JEQ_K: a == k, sc.BPF_JGT_K: a > k, sc.BPF_JGE_K: a >= k,
                     sc.BPF_JSET_K: bool(a & k)}[op]
            pc += 1 + (jt if taken else jf)
            continue
        else:
            raise AssertionError(f"unexpected opcode {op:#x} at {pc}")
        pc += 1
    raise AssertionError("program did not return")


def nr(name: str) -> int:
    n = sc.syscall_number(name)
    assert n is not None, name
    return n


@pytest.fixture(scope="module")
def profile():
    return json.loads(sc.DEFAULT_PROFILE.read_text())


@pytest.fixture(scope="module")
def prog():
    return sc.program()


def test_program_shape(prog):
    insns = sc.instructions(prog)
    assert 50 < len(insns) < 4096  # BPF_MAXINSNS
    # the architecture is checked first, before any syscall number is trusted
    assert insns[0] == (sc.BPF_LD_W_ABS, 0, 0, sc.OFF_ARCH)
    assert insns[1][0] == sc.BPF_JEQ_K and insns[1][3] == sc.AUDIT_ARCH_X86_64
    for pc, (op, jt, jf, k) in enumerate(insns):
        if op in (sc.BPF_JEQ_K, sc.BPF_JGT_K, sc.BPF_JGE_K, sc.BPF_JSET_K):
            assert pc + 1 + max(jt, jf) < len(insns), pc
    assert sc.program() is prog  # compiled once per engine


def test_the_shipped_profile_is_dockers_allow_list(profile):
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO" and profile["defaultErrnoRet"] == errno.EPERM
    allowed = set(profile["syscalls"][0]["names"])
    assert {"read", "write", "openat", "execve", "futex", "epoll_wait", "chown"} <= allowed
    # what Docker's profile leaves out (EPERM unless a capability unlocks it)
    assert not {"unshare", "setns", "mount", "keyctl", "add_key", "bpf", "io_uring_setup",
                "userfaultfd", "kexec_load", "open_by_handle_at", "clone", "clone3"} & allowed
    assert 330 < len(allowed) < 400


def test_every_name_of_the_profile_gets_the_profiles_answer(prog, profile):
    """The generated filter against the JSON it came from, name by name, default capabilities."""
    allow = sc.allowed(profile, capabilities.DEFAULT)
    assert len(allow) > 300
    for name in allow:
        assert run(prog, nr(name)) == ALLOW, name
    # numbers the profile does not allow, below its highest: EPERM
    numbered = {nr(n) for n in allow}
    top = max(n for n in (sc.syscall_number(x) for r in profile["syscalls"] for x in r["names"]) if n)
    special = {nr(n) for n in ("clone", "clone3", "socket", "personality")}
    for number in set(range(top + 1)) - numbered - special:
        assert run(prog, number) == EPERM, number
    for name in ("unshare", "setns", "mount", "umount2", "pivot_root", "keyctl", "add_key",
                 "request_key", "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter",
                 "userfaultfd", "kexec_load", "init_module", "open_by_handle_at", "reboot",
                 "swapon", "acct", "settimeofday", "iopl", "kcmp", "pidfd_getfd", "mbind"):
        assert run(prog, nr(name)) == EPERM, name


def test_calls_newer_than_the_profile_get_enosys(prog, profile):
    top = max(n for n in (sc.syscall_number(x) for r in profile["syscalls"] for x in r["names"]) if n)
    assert run(prog, top + 1) == ENOSYS and run(prog, 1000) == ENOSYS
    assert run(prog, nr("clone3")) == ENOSYS  # glibc then falls back to clone


def test_wrong_architecture_and_x32_are_killed(prog):
    assert run(prog, 39, arch=0x40000003) == KILL   # AUDIT_ARCH_I386 (int 0x80)
    assert run(prog, 39, arch=sc.AUDIT_ARCH_AARCH64) == KILL
    assert run(prog, 39 | sc.X32_SYSCALL_BIT) == KILL
    assert run(prog, 39) == ALLOW


@pytest.mark.parametrize("flag", sorted(CLONE_NEW))
def test_clone_with_a_namespace_flag_is_denied(prog, flag):
    assert run(prog, nr("clone"), args=(CLONE_NEW[flag] | 0x11,)) == EPERM


def test_clone_for_threads_and_fork_is_allowed(prog):
    assert run(prog, nr("clone"), args=(CLONE_THREAD_FLAGS, 1, 2, 3, 4, 5)) == ALLOW
    assert run(prog, nr("clone"), args=(CLONE_FORK_FLAGS,)) == ALLOW


def test_personality_and_socket_arguments(prog):
    for value in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run(prog, nr("personality"), args=(value,)) == ALLOW
    assert run(prog, nr("personality"), args=(0x0040000,)) == EPERM  # ADDR_NO_RANDOMIZE
    sock = nr("socket")
    assert run(prog, sock, args=(2, 1, 0)) == ALLOW      # AF_INET
    assert run(prog, sock, args=(1, 1, 0)) == ALLOW      # AF_UNIX
    assert run(prog, sock, args=(16, 3, 0)) == ALLOW     # AF_NETLINK
    assert run(prog, sock, args=(40, 1, 0)) == EPERM     # AF_VSOCK
    assert run(prog, sock, args=(38, 5, 0)) == EPERM     # AF_ALG


@pytest.mark.parametrize("cap,names", [
    ("SYS_ADMIN", ("mount", "umount2", "unshare", "setns", "sethostname", "clone3")),
    ("SYS_PTRACE", ("kcmp", "pidfd_getfd", "process_madvise")),
    ("SYS_MODULE", ("init_module", "finit_module", "delete_module")),
    ("SYS_TIME", ("settimeofday", "clock_settime")),
    ("SYS_BOOT", ("reboot",)),
    ("SYS_NICE", ("mbind", "set_mempolicy")),
    ("DAC_READ_SEARCH", ("open_by_handle_at",)),
])
def test_capabilities_unlock_their_groups(prog, cap, names):
    unlocked = sc.program(None, list(capabilities.DEFAULT) + [cap])
    for name in names:
        assert run(prog, nr(name)) != ALLOW, name
        assert run(unlocked, nr(name)) == ALLOW, (cap, name)
    if cap == "SYS_ADMIN":  # clone with namespace flags too, and clone3 is no longer ENOSYS
        assert run(unlocked, nr("clone"), args=(CLONE_NEW["NEWUSER"] | 0x11,)) == ALLOW


def test_unknown_names_actions_and_bad_json_are_refused(tmp_path):
    bad = tmp_path / "p.json"
    cases = [("{not json", "not JSON"),
             ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "nao_existe"],'
              ' "action": "SCMP_ACT_ALLOW"}]}', "unknown syscall"),
             ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],'
              ' "action": "SCMP_ACT_SORRIR"}]}', "unknown action"),
             ('{"defaultAction": "DENY", "syscalls": []}', "unknown action"),
             ('[1, 2]', "invalid profile")]
    for text, kind in cases:
        bad.write_text(text)
        with pytest.raises(sc.ProfileError) as info:
            sc.program(bad)
        assert info.value.kind == kind, text


def test_a_users_profile_in_dockers_format(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}))
    code = sc.program(f)
    assert run(code, nr("mkdirat")) == sc.SECCOMP_RET_ERRNO | errno.EACCES
    assert run(code, nr("unshare")) == ALLOW


def test_disassembly_lists_every_instruction(prog):
    text = sc.disassemble(prog)
    assert "ERRNO(ENOSYS)" in text and "KILL_PROCESS" in text and "ERRNO(EPERM)" in text
    assert len(text.splitlines()) == len(prog) // 8


def test_the_kernel_accepts_it_and_enforces_it(prog):
    """In a forked child (no root needed: no_new_privs first, as spawn does)."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from labkit.kernel.libc import libc

            capabilities.set_no_new_privs()
            sc.install(prog)
            ok = sc.mode() == 2
            ok &= libc.syscall(272, CLONE_NEW["NEWUSER"]) == -1 and ctypes.get_errno() == errno.EPERM
            ok &= libc.syscall(435, 0, 0) == -1 and ctypes.get_errno() == errno.ENOSYS
            ok &= libc.syscall(1000) == -1 and ctypes.get_errno() == errno.ENOSYS
            ok &= libc.syscall(39) == os.getpid()
            code = 0 if ok else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
