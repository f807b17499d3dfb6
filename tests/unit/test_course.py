"""labkit.course: the exercise framework and its checks (pure logic, no engine).

The checks that ask labkit's API are run against a fake API here; the same
checks against real containers belong in tests/integration.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from labkit import i18n
from labkit.course import checks as c
from labkit.course import framework as ex
from labkit.course.verdict import Verdict, all_of, fail, number, ok, size
from labkit.errors import LabkitError, NotFound
from requirements import skip_here, skipif_here

pytestmark = pytest.mark.usefixtures("portuguese")


# ---------------------------------------------------------------- verdicts
def test_verdict_marks_and_nesting():
    v = all_of(ok("a"), fail("b"), message="topo")
    assert not v and str(v) == "✘ topo\n  ✔ a\n  ✘ b"
    assert repr(v) == str(v)
    assert bool(ok("x")) and str(ok("x")) == "✔ x"
    v.notes.append("nota")
    assert str(v).endswith("\n  nota")


def test_number_and_size_in_portuguese(monkeypatch):
    assert number(0.5) == "0,5" and number(2.0) == "2" and number(0.25) == "0,25"
    assert size(64 * 1024**2) == "64 MiB" and size(512) == "512 B"
    assert size(1536 * 1024**2) == "1,5 GiB"
    assert size(None) == "sem limite"
    monkeypatch.setenv("LABKIT_LANG", "en")
    i18n.reset()
    assert number(0.5) == "0.5" and size(None) == "no limit"


# ---------------------------------------------------------------- upper dir
def test_file_in_upper(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nota.txt").write_text("meu arquivo\n")
    assert c.upper_has_file(tmp_path, "/etc/nota.txt")
    assert c.upper_has_file(tmp_path, "/etc/nota.txt", contains="meu")
    v = c.upper_has_file(tmp_path, "/etc/nota.txt", contains="outro")
    assert not v and "não contém" in str(v)
    v = c.upper_has_file(tmp_path, "/etc/falta.txt")
    assert not v and str(v).startswith("✘ /etc/falta.txt não está na pasta upper")
    assert not c.upper_has_file(tmp_path, "/etc")          # a directory, not a file


def test_copy_up_keeps_every_line_of_the_image(tmp_path):
    lower_top, lower_base, upper = (tmp_path / n for n in ("top", "base", "upper"))
    for d in (lower_top, lower_base, upper):
        (d / "etc").mkdir(parents=True)
    (lower_base / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\n")
    lowers = [lower_top, lower_base]          # overlay order: topmost first
    (upper / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\n"
                                          "aluno:x:1000:1000::/home/aluno:/bin/sh\n")
    v = c.upper_extends_lower(upper, lowers, "/etc/passwd", "aluno:")
    assert v and "2 linhas" in str(v)
    # replaced instead of appended: the line is there, the image's lines are not
    (upper / "etc" / "passwd").write_text("aluno:x:1000:1000::/home/aluno:/bin/sh\n")
    v = c.upper_extends_lower(upper, lowers, "/etc/passwd", "aluno:")
    assert not v and "perdeu 2 das 2 linhas" in str(v) and ">>" in str(v)
    # the upper copy of a file the image does not have
    (upper / "etc" / "novo").write_text("aluno:\n")
    assert not c.upper_extends_lower(upper, lowers, "/etc/novo", "aluno:")
    # nothing written at all
    assert not c.upper_extends_lower(upper, lowers, "/etc/group", "aluno:")
    # the topmost layer wins: a newer passwd in the top layer is the one to keep
    (lower_top / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/ash\n")
    (upper / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/ash\naluno:x:1000:1000::/:/bin/sh\n")
    assert c.upper_extends_lower(upper, lowers, "/etc/passwd", "aluno:")


def test_started_after_compares_iso_times():
    v = c.started_after("loja-app", "2026-12-02T16:06:23.349736Z", "loja-cache",
                        "2026-12-02T16:06:22.100000Z")
    assert v and "é um contêiner novo" in str(v)
    v = c.started_after("loja-app", "2026-12-02T16:06:21.000000Z", "loja-cache",
                        "2026-12-02T16:06:22.100000Z")
    assert not v and "ainda é o primeiro" in str(v)
    assert not c.started_after("a", "", "b", "2026-12-02T16:06:22Z")
    assert c.started_first("loja-app", "2026-12-02T16:06:21.5Z", "loja-cache", "2026-12-02T16:06:22Z")
    v = c.started_first("loja-app", "2026-12-02T16:06:23Z", "loja-cache", "2026-12-02T16:06:22Z")
    assert not v and 'comece pelo "loja-app"' in str(v)


def test_path_cannot_escape_upper(tmp_path):
    with pytest.raises(LabkitError):
        c.upper_has_file(tmp_path, "/../etc/passwd")
    with pytest.raises(LabkitError):
        c.upper_has_whiteout(tmp_path, "/")


needs_root = skipif_here(os.geteuid() != 0, reason="mknod of a 0/0 device needs root")


@needs_root
def test_whiteout_in_upper(tmp_path):
    (tmp_path / "etc").mkdir()
    os.mknod(tmp_path / "etc" / "group", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    v = c.upper_has_whiteout(tmp_path, "/etc/group")
    assert v and "whiteout" in str(v) and "0/0" in str(v)
    # a whiteout is not a written file, and a written file is not a whiteout
    assert not c.upper_has_file(tmp_path, "/etc/group")
    assert not c.upper_has_whiteout(tmp_path, "/etc/passwd")
    v = c.upper_has_whiteout(tmp_path, "/etc/hosts")
    assert not v and "não foi apagado" in str(v)


@needs_root
def test_other_char_device_is_not_a_whiteout(tmp_path):
    os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert not c.upper_has_whiteout(tmp_path, "/null")


@needs_root
def test_opaque_dir(tmp_path):
    d = tmp_path / "var"
    d.mkdir()
    assert not c.upper_has_opaque_dir(tmp_path, "/var")
    try:
        os.setxattr(d, "trusted.overlay.opaque", b"y")
    except OSError as err:  # tmpfs without trusted xattrs
        skip_here(f"no trusted xattrs here: {err}")
    assert c.upper_has_opaque_dir(tmp_path, "/var")


# ---------------------------------------------------------------- /proc
def fake_proc(root: Path, pid: int | str, ns: dict[str, str], comm="sleep",
              netdev=("lo",)) -> None:
    d = root / str(pid)
    (d / "ns").mkdir(parents=True)
    for name, link in ns.items():
        os.symlink(link, d / "ns" / name)
    (d / "comm").write_text(comm + "\n")
    (d / "net").mkdir()
    rows = "".join(f"  {n}: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n" for n in netdev)
    (d / "net" / "dev").write_text(
        "Inter-|   Receive |  Transmit\n face |bytes packets|bytes packets\n" + rows)


HOST_NS = {"pid": "pid:[4026531836]", "uts": "uts:[4026531838]",
           "mnt": "mnt:[4026531841]", "net": "net:[4026531840]"}


def test_namespaces_differ(tmp_path):
    fake_proc(tmp_path, "self", HOST_NS)
    fake_proc(tmp_path, 4242, {"pid": "pid:[4026532001]", "uts": "uts:[4026532002]",
                               "mnt": "mnt:[4026531841]", "net": "net:[4026532004]"})
    v = c.namespaces_differ(4242, ["pid", "uts", "net"], proc=tmp_path)
    assert v and str(v).splitlines()[0] == \
        "✔ pid: namespace próprio (pid:[4026532001]; o hospedeiro tem pid:[4026531836])."
    v = c.namespaces_differ(4242, ["pid", "mnt"], proc=tmp_path)
    assert not v and "✘ mnt: mesmo namespace do hospedeiro (mnt:[4026531841])." in str(v)
    v = c.namespaces_differ(9999, ["pid"], proc=tmp_path)
    assert not v and "/proc/9999/ns/pid" in str(v)
    with pytest.raises(LabkitError):
        c.namespace_link(4242, "bogus", tmp_path)


def test_namespaces_shared_and_host_interfaces(tmp_path):
    fake_proc(tmp_path, "self", HOST_NS, netdev=("lo", "eth0"))
    fake_proc(tmp_path, 4243, {**HOST_NS, "pid": "pid:[4026532001]"}, netdev=("lo", "eth0"))
    fake_proc(tmp_path, 4244, {**HOST_NS, "net": "net:[4026532009]"}, netdev=("lo",))
    assert c.namespaces_shared(4243, ["net", "mnt"], proc=tmp_path)
    v = c.namespaces_shared(4243, ["net", "pid"], proc=tmp_path)
    assert not v and "✘ pid: um namespace próprio (pid:[4026532001])" in str(v)
    assert not c.namespaces_shared(4244, ["net"], proc=tmp_path)
    assert c.same_interfaces_as_host(4243, tmp_path)
    v = c.same_interfaces_as_host(4244, tmp_path)
    assert not v and "o hospedeiro tem eth0, lo" in str(v)


def test_real_proc_self_is_not_in_own_namespace():
    assert not c.namespaces_differ(os.getpid(), ["pid", "mnt"])


def test_interfaces_and_process(tmp_path):
    fake_proc(tmp_path, 10, HOST_NS, comm="sleep", netdev=("lo",))
    fake_proc(tmp_path, 11, HOST_NS, comm="python3", netdev=("lo", "eth0"))
    assert c.net_interfaces(11, tmp_path) == ["eth0", "lo"]
    assert c.only_loopback(10, tmp_path)
    v = c.only_loopback(11, tmp_path)
    assert not v and "eth0, lo" in str(v)
    assert c.process_is(10, "sleep", tmp_path)
    v = c.process_is(11, "sleep", tmp_path)
    assert not v and '"python3"' in str(v)
    assert not c.process_is(12, "sleep", tmp_path)


MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "90 22 0:50 / /tmp/meu\\040lab/merged rw,relatime - overlay overlay "
    "rw,lowerdir=/l,upperdir=/u,workdir=/w\n"
    "91 22 0:51 / /mnt/t rw - tmpfs tmpfs rw\n"
)


def test_overlay_mounted():
    assert c.overlay_mounted("/tmp/meu lab/merged", MOUNTINFO)
    v = c.overlay_mounted("/mnt/t", MOUNTINFO)
    assert not v and "tmpfs" in str(v)
    assert not c.overlay_mounted("/mnt/nada", MOUNTINFO)


# ---------------------------------------------------------------- comparisons
def test_limits_comparisons():
    assert c.compare_memory("x", 64 * 1024**2, 64 * 1024**2)
    assert c.compare_memory("x", 64 * 1024**2 - 4095 + 1, 64 * 1024**2)   # page rounding
    v = c.compare_memory("x", 128 * 1024**2, 64 * 1024**2)
    assert not v and str(v) == '✘ O limite de memória de "x" é 128 MiB; o esperado era 64 MiB.'
    assert not c.compare_memory("x", None, 1)
    assert str(c.compare_cpus("x", 0.5, 0.5)) == '✔ A cota de CPU de "x" é 0,5 núcleo(s).'
    v = c.compare_cpus("x", None, 0.5)
    assert not v and "sem cota" in str(v)
    assert c.status_is("x", "running", "running")
    assert c.status_is("x", "stopped", "exited")
    v = c.status_is("x", "exited", "running")
    assert str(v) == '✘ O contêiner "x" deveria estar rodando, mas está encerrado.'
    assert c.exit_code_is("x", 0, 0) and not c.exit_code_is("x", 1, 0)
    assert c.compare_hostname("x", "caixa", "caixa")
    assert not c.compare_hostname("x", "abc123", "caixa")


def test_image_refs():
    refs = ["localhost/busybox:latest", "localhost/meu-app:1",
            "docker.io/library/alpine:3.19"]
    assert c.ref_in("busybox", refs) and c.ref_in("busybox:latest", refs)
    assert c.ref_in("meu-app:1", refs) and not c.ref_in("meu-app", refs)
    assert c.ref_in("alpine:3.19", refs)
    assert not c.ref_in("debian", refs)
    assert c.image_in("busybox", refs) and not c.image_in("x", [])


# ---------------------------------------------------------------- checks via a fake API
class FakeCgroup:
    def __init__(self, stats):
        self._stats = stats

    def stats(self):
        return dict(self._stats)


class FakeAPI:
    def __init__(self, containers):
        self.by_name = containers
        self.removed = []

    def get(self, name):
        if name not in self.by_name:
            raise NotFound(f"no such container: {name}")
        return self.by_name[name]


def fake_container(tmp_path, name, status="running", **kw):
    stats = {"memory_limit": kw.pop("memory_limit", None),
             "cpu_quota_cores": kw.pop("cpu_quota_cores", None),
             "pids_limit": kw.pop("pids_limit", 2048)}
    upper = tmp_path / name / "upper"
    upper.mkdir(parents=True)
    obj = SimpleNamespace(name=name, status=status, exit_code=kw.pop("exit_code", None),
                          oom_killed=kw.pop("oom_killed", False), pid=os.getpid(),
                          upper_dir=upper, cgroup=FakeCgroup(stats), **kw)
    return obj


@pytest.fixture
def api(tmp_path, monkeypatch):
    fake = FakeAPI({
        "meia-cpu": fake_container(tmp_path, "meia-cpu", cpu_quota_cores=0.5),
        "pouca-memoria": fake_container(tmp_path, "pouca-memoria",
                                        memory_limit=128 * 1024**2),
        "guloso": fake_container(tmp_path, "guloso", "exited", exit_code=137,
                                 oom_killed=True),
        "primeiro": fake_container(tmp_path, "primeiro", "exited", exit_code=0),
    })
    (fake.by_name["primeiro"].upper_dir / "ola.txt").write_text("olá\n")
    monkeypatch.setattr(c.access, "api_module", lambda: fake)
    return fake


def test_exercises_against_fake_api(api):
    v = ex.check("03.1")
    assert v and str(v) == (
        "✔ Exercício 03.1 (meio núcleo): resolvido!\n"
        '  ✔ O contêiner "meia-cpu" está rodando.\n'
        '  ✔ A cota de CPU de "meia-cpu" é 0,5 núcleo(s).')
    v = ex.check("03.2")
    assert not v and "128 MiB; o esperado era 64 MiB" in str(v)
    assert str(v).splitlines()[-1] == '  Travou? Peça uma dica: hint("03.2")'
    assert ex.check("03.3")
    assert ex.check("00.1")
    v = ex.check("04.1")          # no container "cow": stops at the first step
    assert not v and len(v.details) == 1 and 'Não existe contêiner chamado "cow"' in str(v)


def test_generic_container_checks(api):
    assert c.container_exists("guloso") and not c.container_exists("nada")
    assert c.container_absent("nada") and not c.container_absent("guloso")
    assert c.container_exited("guloso") and not c.container_exited("guloso", 0)
    assert not c.container_running("guloso")
    assert not c.container_oom_killed("primeiro")
    assert c.pids_limit_is("meia-cpu", 2048) and not c.pids_limit_is("meia-cpu", 10)
    assert c.memory_limit_is("pouca-memoria", "128m")
    assert not c.cpu_quota_is("pouca-memoria", 1)
    assert c.container_has_file("primeiro", "/ola.txt", "olá")
    assert not c.container_has_file("nada", "/ola.txt")


# ---------------------------------------------------------------- the framework
def test_check_turns_errors_into_verdicts():
    def boom():
        raise RuntimeError("engine away")

    def labkit_error():
        raise NotFound("imagem não encontrada: x")

    e = ex.Exercise("99.1", "test", [boom])
    v = e.check()
    assert not v and "RuntimeError: engine away" in str(v)
    assert "hint(" not in str(v)                    # no hints, no hint line
    v = ex.Exercise("99.2", "test", [labkit_error], hints=["h"]).check()
    assert "✘ imagem não encontrada: x" in str(v) and 'hint("99.2")' in str(v)
    assert not ex.Exercise("99.3", "test", []).check()


def test_steps_stop_at_first_failure():
    calls = []

    def step(result):
        def f():
            calls.append(result)
            return ok("sim") if result else fail("não")
        return f

    v = ex.Exercise("99.4", "test", [step(True), step(False), step(True)]).check()
    assert calls == [True, False] and not v


def test_hints_progress_then_repeat():
    e = ex.Exercise("99.5", "your first container", [], hints=["h1", "h2"])
    assert e.hint() == "Dica 1 de 2: h1"
    assert e.hint() == "Dica 2 de 2: h2"
    assert e.hint() == "Dica 2 de 2: h2"
    assert repr(e.hint()) == "Dica 2 de 2: h2"
    assert ex.Exercise("99.6", "t", []).hint() == "Este exercício não tem dicas."


def test_unknown_exercise():
    with pytest.raises(NotFound) as err:
        ex.check("42.1")
    assert "03.1" in str(err.value)


def test_catalog_shape():
    from labkit.course.solutions import SOLUTIONS

    all_ex = ex.exercises()
    ids = [e.id for e in all_ex]
    assert all(re.fullmatch(r"0[0-9]\.[1-9]", i) for i in ids)
    for nb in ("01", "02", "03", "04", "05", "06", "07", "08"):
        assert 2 <= len(ex.exercises(nb)) <= 4, nb
    assert set(SOLUTIONS) == set(ids)
    for e in all_ex:
        assert e.hints and (e.containers or e.volumes or e.networks or e.images) and e.steps
        sol = e.solution()
        assert sol.startswith(f"Solução do Exercício {e.id} (")
        assert "```python" in sol._repr_markdown_()
        compile(SOLUTIONS[e.id], e.id, "exec")
        assert not ex.exercise(e.id).label().startswith("Exercise")   # translated


def test_status_words_translated(api):
    assert c.status_word("running") == "rodando" and c.status_word("") == "?"
    v = c.container_absent("guloso")
    assert str(v) == '✘ O contêiner "guloso" ainda existe (estado: encerrado). Remova-o.'


# ---------------------------------------------------------------- exercise 00.1's trap
def test_string_command_with_shell_syntax_warns():
    """A string command is split by shlex and run without a shell: '>' would reach echo
    as an argument and no file would be written, so labkit.run and exec warn."""
    import warnings

    from labkit.api import ShellSyntaxWarning, _warn_shell_string

    for cmd in ("echo olá > /ola.txt", "cat /etc/passwd | wc -l", "true && echo sim",
                "echo a >>/log", "sleep 1; echo b"):
        with pytest.warns(ShellSyntaxWarning) as caught:
            _warn_shell_string(cmd)
        assert "sh" in str(caught[0].message) and "-c" in str(caught[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cmd in ("echo olá", ["sh", "-c", "echo olá > /ola.txt"], "awk '{print $1 > \"f\"}'",
                    None, "echo 'a > b'"):
            _warn_shell_string(cmd)


# ---------------------------------------------------------------- notebook 08's image checks
def test_image_id_is(portuguese):
    v = c.image_id_is("loja", "sha256:" + "a" * 64, "loja:v1", "sha256:" + "a" * 64)
    assert v and str(v) == '✔ "loja" roda a imagem loja:v1.'
    v = c.image_id_is("loja", "sha256:" + "b" * 64, "loja:v1", "sha256:" + "a" * 64)
    assert not v and str(v) == '✘ "loja" não roda a imagem loja:v1 (roda a bbbbbbbbbbbb).'



def test_podman_ulimits_never_above_our_hard_limits():
    """runc cannot raise a limit above the hard one: podman's containers get at most ours."""
    import resource

    from labkit.course.podman import containers_conf

    text = containers_conf()
    assert text.startswith("[containers]\n")
    found = dict(re.findall(r'"(\w+)=(\d+):\d+"', text))
    for name, res in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        hard = resource.getrlimit(res)[1]
        assert hard == resource.RLIM_INFINITY or int(found[name]) <= hard
# ---------------------------------------------------------------- part 2: volumes, networks
def test_volume_file_checks(tmp_path, portuguese):
    (tmp_path / "nota.txt").write_text("sobrevivi\n")
    (tmp_path / "link.txt").symlink_to("/etc/hostname")
    assert c.dir_has_file(tmp_path, "diario", "/nota.txt", "sobrevivi")
    v = c.dir_has_file(tmp_path, "diario", "/nota.txt", "outra")
    assert not v and 'não contém "outra"' in str(v)
    assert not c.dir_has_file(tmp_path, "diario", "/falta.txt")
    assert not c.dir_has_file(tmp_path, "diario", "/link.txt")      # never followed to the host
    with pytest.raises(ValueError):
        c.file_in_dir(tmp_path, "../etc/passwd")


def test_mount_checks():
    mounts = [{"Type": "volume", "Name": "diario", "Destination": "/dados", "RW": False},
              {"Type": "bind", "Source": "/tmp/x", "Destination": "/x", "RW": True}]
    assert c.mounts_volume("so-leitura", mounts, "diario", "/dados/", read_only=True)
    assert not c.mounts_volume("so-leitura", mounts, "diario", "/dados", read_only=False)
    assert not c.mounts_volume("so-leitura", mounts, "outro", "/dados")
    assert not c.mounts_volume("so-leitura", mounts, "diario", "/x")


def test_network_and_restart_checks(portuguese):
    assert c.on_network("ping-b", {"exercicio": {}, "bridge": {}}, "exercicio")
    v = c.on_network("ping-b", {"bridge": {}}, "exercicio")
    assert not v and "ele está em: bridge" in str(v)
    assert c.command_of({"Path": "nslookup", "Args": ["ping-a"]}) == ["nslookup", "ping-a"]
    assert c.command_of({"Config": {"Entrypoint": None, "Cmd": ["sh"]}}) == ["sh"]
    policy = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert c.restart_policy_matches("teimoso", policy, "on-failure", 2)
    v = c.restart_policy_matches("teimoso", {"Name": "always"}, "on-failure", 2)
    assert not v and "always, não on-failure:2" in str(v)
    ports = {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8089"}], "53/udp": [{"HostPort": "53"}],
             "443/tcp": None}
    assert c.published_ports(ports) == [("127.0.0.1", 8089)]


def test_http_answers_on_loopback():
    import http.server
    import threading

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    t = threading.Thread(target=server.handle_request)
    t.start()
    try:
        assert c.http_answers("127.0.0.1", server.server_address[1])   # a 501 is an answer
    finally:
        t.join(10)
        server.server_close()
    assert not c.http_answers("127.0.0.1", server.server_address[1])
