"""The seccomp filter on real containers (baseline P11 and moby's default profile).

What a Docker container may not do even as root, and what it still must be able to do. The
probe ``scprobe`` (C, static, compiled here) makes each interesting system call directly and
prints ``name=<errno>`` (0 = it worked). It also runs on the host as a control: there, without
the filter, the same calls do not fail with the filter's errno, so the container's answers come
from the filter, not from a kernel that lacks the feature.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import labkit
from requirements import require, require_tool, skip_here

pytestmark = pytest.mark.root

if os.uname().machine != "x86_64":
    skip_here("the probe's raw syscalls are written for x86_64", allow_module_level=True)

LABKIT = str(Path(sys.executable).parent / "labkit")

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *name, long rc) {
    printf("%s=%d\n", name, rc < 0 ? errno : 0);
}

/* Run fn in a forked child; report how the child ended: exitN or sigN. */
static void in_child(const char *name, void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { fn(); _exit(0); }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) printf("%s=sig%d\n", name, WTERMSIG(st));
    else printf("%s=exit%d\n", name, WEXITSTATUS(st));
}

static void i386_getpid(void) {          /* the 32-bit ABI: int 0x80, eax=20 (getpid) */
    long rc;
    __asm__ volatile ("int $0x80" : "=a"(rc) : "a"(20L) : "memory");
    _exit(rc > 0 ? 0 : 3);
}

static void x32_getpid(void) {           /* the x32 ABI: nr | 0x40000000 */
    long rc = syscall(0x40000000 | SYS_getpid);
    _exit(rc > 0 ? 0 : 4);
}

static void *thread_fn(void *arg) { return arg; }

static long child_of_clone(long rc) {    /* raw clone()/clone3(): the child exits at once */
    if (rc == 0) _exit(0);
    if (rc > 0) waitpid(rc, NULL, 0);
    return rc;
}

int main(void) {
    long rc;
    setvbuf(stdout, NULL, _IOLBF, 0);

    rc = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -4 /* USER_KEYRING */, 0);
    say("keyctl", rc);

    uint32_t attr[30]; memset(attr, 0, sizeof attr);
    attr[0] = 2 /* BPF_MAP_TYPE_ARRAY */; attr[1] = 4; attr[2] = 4; attr[3] = 1;
    rc = syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, attr, sizeof attr);
    say("bpf", rc); if (rc >= 0) close(rc);

    struct perf_event_attr pe; memset(&pe, 0, sizeof pe);
    pe.type = PERF_TYPE_SOFTWARE; pe.size = sizeof pe; pe.config = PERF_COUNT_SW_TASK_CLOCK;
    pe.disabled = 1; pe.exclude_kernel = 1; pe.exclude_hv = 1;
    rc = syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
    say("perf_event_open", rc); if (rc >= 0) close(rc);

    unsigned char params[120]; memset(params, 0, sizeof params);
    rc = syscall(SYS_io_uring_setup, 4, params);
    say("io_uring_setup", rc); if (rc >= 0) close(rc);

    errno = 0;
    rc = child_of_clone(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    say("clone_newuser", rc);

    rc = child_of_clone(syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    say("clone_newnet", rc);

    uint64_t cargs[8]; memset(cargs, 0, sizeof cargs);
    cargs[4] = SIGCHLD;                   /* exit_signal */
    rc = child_of_clone(syscall(SYS_clone3, cargs, sizeof cargs));
    say("clone3", rc);

    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(syscall(SYS_unshare, CLONE_NEWUSER) == 0 ? 0 : errno);
    int st = 0; waitpid(pid, &st, 0);
    printf("unshare_user=%d\n", WEXITSTATUS(st));

    rc = child_of_clone(syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
    say("clone_plain", rc);

    pthread_t t; int err = pthread_create(&t, NULL, thread_fn, NULL);
    if (!err) err = pthread_join(t, NULL);
    printf("pthread=%d\n", err);

    in_child("i386", i386_getpid);
    in_child("x32", x32_getpid);
    return 0;
}
"""


@pytest.fixture(scope="module")
def scprobe():
    """``scprobe`` compiled with ``gcc -static`` into a world-readable temp dir."""
    gcc = require_tool("gcc", package="gcc")
    d = Path(tempfile.mkdtemp(prefix="labkit-scprobe-"))
    d.chmod(0o755)
    try:
        (d / "scprobe.c").write_text(PROBE_C)
        r = subprocess.run([gcc, "-static", "-O1", "-pthread", "-o", str(d / "scprobe"),
                            str(d / "scprobe.c")], capture_output=True, text=True)
        require(r.returncode == 0, f"a static libc to build the probe ({r.stderr[-500:]})",
                package="Debian package libc6-dev")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def sh(script: str, **kw) -> labkit.Result:
    return labkit.run("busybox", ["sh", "-c", script], **kw)



# -- the filter is there, for run and exec --------------------------------------------------------------

STATUS = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status"


def test_run_gets_the_filter_and_no_new_privs():
    r = sh(STATUS)
    fields = dict(ln.split(":\t") for ln in r.stdout.splitlines())
    assert fields == {"Seccomp": "2", "NoNewPrivs": "1"}, r.stdout


def test_exec_gets_the_filter_too(detached):
    ctr = detached()
    r = ctr.exec(["sh", "-c", f"{STATUS}; unshare -U true; echo rc=$?"])
    print(r.stdout, r.stderr)
    assert "Seccomp:\t2" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert "rc=0" not in r.stdout and "Operation not permitted" in r.stderr


def test_labkit_exec_cli_gets_the_filter(detached):
    ctr = detached()
    r = subprocess.run([LABKIT, "exec", ctr.id, "sh", "-c", f"{STATUS}; unshare -U true; echo rc=$?"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    assert "Seccomp:\t2" in r.stdout and "rc=1" in r.stdout


# -- what it denies, from a shell -----------------------------------------------------------------------


@pytest.mark.parametrize("script", [
    "unshare -U true",                      # no capability needed on the host: only seccomp stops it
    "unshare -Ur true",
    "unshare -m true",
    "mkdir -p /mnt && mount -t tmpfs x /mnt",
    "nsenter -t 1 -m true",                 # setns
    "nsenter -t 1 -n true",
])
def test_shell_namespace_and_mount_calls_fail(script):
    r = sh(f"{script}; echo rc=$?")
    print(script, "->", r.stdout.strip(), r.stderr.strip())
    assert "rc=0" not in r.stdout and "rc=" in r.stdout
    err = r.stderr.lower()
    assert "operation not permitted" in err or "permission denied" in err


def test_host_control_unshare_user_works_without_the_filter():
    """Control for the tests above: the same command on the host (no filter) succeeds."""
    require_tool("unshare", package="util-linux")
    assert subprocess.run(["unshare", "-U", "true"]).returncode == 0


# -- what it denies, call by call (probe) -------------------------------------------------------------


def test_probe_calls_in_a_container(scprobe: Path):
    r = labkit.run("busybox", ["/p/scprobe"], volumes=[f"{scprobe}:/p:ro"])
    print(r.stdout, r.stderr)
    got = parse(r.stdout)
    eperm, enosys = str(errno.EPERM), str(errno.ENOSYS)
    for name in ("keyctl", "bpf", "perf_event_open", "io_uring_setup", "clone_newuser",
                 "clone_newnet", "unshare_user"):
        assert got.get(name) == eperm, (name, got)
    assert got.get("clone3") == enosys, got          # glibc then falls back to clone
    # ordinary process and thread creation still work
    assert got.get("clone_plain") == "0" and got.get("pthread") == "0", got
    # another ABI than x86_64's: the process is killed (SIGSYS)
    assert got.get("i386") == f"sig{signal.SIGSYS}", got
    assert got.get("x32") == f"sig{signal.SIGSYS}", got


def test_probe_on_the_host_control(scprobe: Path):
    """Without the filter the kernel does not answer with the filter's errno or signal."""
    r = subprocess.run([str(scprobe / "scprobe")], capture_output=True, text=True, timeout=60)
    print(r.stdout, r.stderr)
    got = parse(r.stdout)
    for name in ("keyctl", "bpf", "perf_event_open", "clone_newuser", "clone_newnet",
                 "unshare_user", "clone3", "clone_plain", "pthread"):
        assert got.get(name) == "0", (name, got)
    knob = Path("/proc/sys/kernel/io_uring_disabled")  # since 6.6; older kernels always allow it
    if not knob.exists() or knob.read_text().strip() == "0":
        assert got.get("io_uring_setup") == "0", got
    assert got.get("i386") != f"sig{signal.SIGSYS}" and got.get("x32") != f"sig{signal.SIGSYS}", got


# -- what must keep working ------------------------------------------------------------------------------


def test_pipelines_fork_exec_and_sleep():
    r = sh("seq 1 100 | grep 7 | wc -l; sh -c 'sh -c \"echo nested\"'; sleep 0.1 & wait $!; "
           "echo slept=$?; (exit 5); echo sub=$?")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == ["19", "nested", "slept=0", "sub=5"], r.stdout


def test_ps_sees_the_container_processes():
    r = sh("sleep 5 & ps; kill $!")
    print(r.stdout)
    assert r.exit_code == 0, r.stderr
    assert "sleep 5" in r.stdout and "ps" in r.stdout


def test_loopback_tcp_with_nc():
    r = sh("nc -l -p 7070 > /tmp/got & sleep 0.5; echo ola-seccomp | nc -w 2 127.0.0.1 7070; "
           "wait; cat /tmp/got")
    print(r.stdout, r.stderr)
    assert "ola-seccomp" in r.stdout


def test_allowed_identity_and_file_calls():
    # chown/chroot keep working (the container keeps CHOWN and SYS_CHROOT), as do setuid calls
    r = sh("touch /tmp/f && chown 1000:1000 /tmp/f && stat -c %u /tmp/f; "
           "chroot / true && echo chroot=ok; su -s /bin/sh -c 'id -u' nobody")
    print(r.stdout, r.stderr)
    assert r.stdout.split() == ["1000", "chroot=ok", "65534"], r.stdout


def test_errors_before_exec_still_reach_the_engine():
    """The filter is installed before execvpe: a missing program is still reported (127)."""
    with pytest.raises(labkit.errors.LabkitError) as info:
        labkit.run("busybox", ["/nao/existe"])
    assert info.value.exit_code == 127


# -- --security-opt and the capability groups ------------------------------------------------------


def test_unconfined_has_no_filter_and_inspect_shows_it(detached):
    ctr = detached(security_opt=["seccomp=unconfined", "no-new-privileges"])
    r = ctr.exec(["sh", "-c", STATUS])
    print(r.stdout)
    assert "Seccomp:\t0" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert ctr.inspect()["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined", "no-new-privileges"]
    assert labkit.run("busybox", ["true"]).exit_code == 0


def test_default_inspect_has_an_empty_security_opt(detached):
    assert detached().inspect()["HostConfig"]["SecurityOpt"] == []


def test_a_profile_file_in_dockers_format(tmp_path, detached):
    # relative to the client's directory, as Docker reads it: the CLI makes it absolute
    prof = tmp_path / "sem-mkdir.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES}]}))
    r = subprocess.run([LABKIT, "run", "--rm", "--security-opt", f"seccomp={prof.name}", "busybox",
                        "sh", "-c", "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touch=ok"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path,
                       stdin=subprocess.DEVNULL)
    print(r.stdout, r.stderr)
    assert r.stdout.split() == ["rc=1", "touch=ok"] and "Permission denied" in r.stderr
    ctr = detached(security_opt=[f"seccomp={prof}"])
    assert ctr.inspect()["HostConfig"]["SecurityOpt"] == [f"seccomp={prof}"]
    r = ctr.exec(["sh", "-c", "mkdir /tmp/e; echo rc=$?"])  # exec gets the run's filter
    assert r.stdout.strip() == "rc=1"


def test_cap_add_sys_admin_unlocks_the_namespace_calls(scprobe: Path):
    r = labkit.run("busybox", ["/p/scprobe"], volumes=[f"{scprobe}:/p:ro"], cap_add=["SYS_ADMIN"])
    got = parse(r.stdout)
    print(r.stdout, r.stderr)
    # with CAP_SYS_ADMIN Docker's profile allows namespaces: unshare/clone(NEWUSER) and clone3
    assert got.get("unshare_user") == "0" and got.get("clone_newuser") == "0", got
    assert got.get("clone3") == "0", got
    assert got.get("keyctl") == str(errno.EPERM), got   # not in any group


@pytest.mark.parametrize("text, pt", [
    ("{isto não é json", "não é um JSON válido"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["chamada_inventada"], '
     '"action": "SCMP_ACT_ALLOW"}]}', "chamada de sistema desconhecida: chamada_inventada"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], '
     '"action": "SCMP_ACT_TALVEZ"}]}', "ação desconhecida: SCMP_ACT_TALVEZ"),
])
def test_bad_profile_file_is_refused_and_leaves_nothing(tmp_path, container_dirs, text, pt):
    prof = tmp_path / "perfil.json"
    prof.write_text(text)
    before = (subprocess.run([LABKIT, "ps", "-a", "-q"], capture_output=True, text=True).stdout,
              container_dirs())
    r = subprocess.run([LABKIT, "run", "--rm", "--security-opt", f"seccomp={prof}", "busybox", "true"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    print(r.stderr)
    assert r.returncode == 125 and r.stdout == ""
    assert pt in r.stderr and str(prof) in r.stderr
    after = (subprocess.run([LABKIT, "ps", "-a", "-q"], capture_output=True, text=True).stdout,
             container_dirs())
    assert after == before


def test_unknown_security_opt_is_refused():
    r = subprocess.run([LABKIT, "run", "--rm", "--security-opt", "apparmor=x", "busybox", "true"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 125 and "--security-opt inválida: apparmor=x" in r.stderr


def test_many_processes_at_once_work():
    # busybox has no threads: the probe's pthread check covers a multi-threaded program
    r = sh("for i in 1 2 3 4 5 6 7 8; do (echo $i | md5sum >/dev/null) & done; wait; "
           "date +%Y >/dev/null && echo ok; grep -c '^Seccomp:' /proc/self/status")
    assert r.exit_code == 0 and r.stdout.split() == ["ok", "1"], (r.stdout, r.stderr)


def test_a_multithreaded_python_program_works():
    """The host's Python (no Debian image in the store here), bind-mounted read-only: threads,
    a subprocess, a socketpair, sqlite, under the allow-list."""
    if not Path("/usr/bin/python3").exists() or not Path("/usr/lib64").is_dir():
        skip_here("needs the host's /usr/bin/python3 and a merged /usr")
    code = ("import concurrent.futures as cf, os, socket, sqlite3, subprocess\n"
            "with cf.ThreadPoolExecutor(8) as ex: print(sum(ex.map(lambda i: i * i, range(100))))\n"
            "a, b = socket.socketpair(); a.send(b'ok'); print(b.recv(2).decode())\n"
            "print(subprocess.run(['/bin/echo', 'sub'], capture_output=True, text=True).stdout.strip())\n"
            "print(sqlite3.connect(':memory:').execute('select 2 + 2').fetchone()[0])\n")
    r = labkit.run("busybox", ["/usr/bin/python3", "-c", code],
                   volumes=["/usr:/usr:ro", "/usr/lib:/lib:ro", "/usr/lib64:/lib64:ro"])
    print(r.stdout, r.stderr)
    assert r.exit_code == 0 and r.stdout.split() == ["328350", "ok", "sub", "4"], r.stderr
