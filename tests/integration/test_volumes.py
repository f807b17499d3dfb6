"""Volumes on the real kernel: the data outside the container, kept by the engine.

Every verb of ``labkit volume``, ``-v NAME:/path`` made on first use and filled from the
image (copy-up), anonymous volumes (image ``VOLUME``, ``-v /path``) and when they go,
``--mount``, ``--tmpfs``, ``--volumes-from``, read-only mounts, a volume in use, bad input
(exit 125, nothing left: the leak fixture counts volume directories too) and a symlink in
a volume that must not lead to the host; and the copy-up compared with podman's.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import labkit
from labkit import paths
from labkit.engine import client
from labkit.errors import Conflict, LabkitError, NotFound
from labkit_cli import cli

pytestmark = pytest.mark.root

DOCKERFILE = """FROM busybox
RUN mkdir -p /data/sub && echo semente > /data/sub/f && chown -R 1000:1000 /data && chmod 0750 /data \\
    && chmod 0640 /data/sub/f && ln -s /etc/passwd /data/link
VOLUME /data
"""


@pytest.fixture(scope="module")
def vol_image(tmp_path_factory):
    """An image whose ``/data`` has content owned by 1000:1000 and is a ``VOLUME``."""
    ctx = tmp_path_factory.mktemp("ctx")
    labkit.build(str(ctx), tag="labkit-test-volumes:1", dockerfile=DOCKERFILE, quiet=True)
    yield "labkit-test-volumes:1"
    from labkit.images.store import Store

    try:
        Store().remove("labkit-test-volumes:1", force=True)
    except LabkitError:
        pass


@pytest.fixture
def named():
    """Volume names for one test; each is removed at the end (the leak fixture checks)."""
    made: list[str] = []

    def make(name: str) -> str:
        made.append(name)
        return name

    yield make
    for name in made:
        try:
            labkit.get_volume(name).remove()
        except NotFound:
            pass


def volume_dirs() -> set[str]:
    d = paths.volumes_dir()
    return set(os.listdir(d)) if d.exists() else set()


def sh(script: str, **kw) -> labkit.Result:
    return labkit.run("busybox", ["sh", "-c", script], **kw)


# -- the verbs ------------------------------------------------------------------------------


def test_volume_verbs_cli(named):
    name = named("dados-cli")
    r = cli("volume", "create", "--label", "curso=containers", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name
    r = cli("volume", "create", name)  # again: the same volume, as Docker
    assert r.returncode == 0 and r.stdout.strip() == name

    r = cli("volume", "ls")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["DRIVER", "NOME", "DO", "VOLUME"]
    assert f"local     {name}" in lines  # Docker's columns: at least 10 wide
    assert r.stdout == cli("volume", "ls").stdout
    assert name in cli("volume", "ls", "-q").stdout.split()
    assert cli("volume", "ls", lang="en").stdout.splitlines()[0] == "DRIVER    VOLUME NAME"

    r = cli("volume", "inspect", name)
    (doc,) = json.loads(r.stdout)
    assert doc["Name"] == name and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Labels"] == {"curso": "containers"}
    assert doc["Mountpoint"] == str(paths.volumes_dir() / name / "_data")
    assert Path(doc["Mountpoint"]).is_dir()
    assert doc["CreatedAt"].endswith("Z")

    r = cli("volume", "rm", name)
    assert r.returncode == 0 and r.stdout.strip() == name
    assert not (paths.volumes_dir() / name).exists()
    r = cli("volume", "inspect", name)
    assert r.returncode == 125 and f"volume não encontrado: {name}" in r.stderr
    r = cli("volume", "rm", name)
    assert r.returncode == 125 and name in r.stderr
    assert cli("volume", "rm", "-f", name).returncode == 0  # -f: a missing volume is no error


def test_volume_create_without_a_name_is_anonymous():
    r = cli("volume", "create")
    name = r.stdout.strip()
    try:
        assert len(name) == 64 and int(name, 16) >= 0
        assert "com.docker.volume.anonymous" in labkit.get_volume(name).labels
    finally:
        labkit.get_volume(name).remove()


def test_volume_api(named):
    vol = labkit.volume(named("dados-api"), labels={"a": "1"})
    assert isinstance(vol, labkit.Volume)
    assert vol.name == "dados-api" and vol.labels == {"a": "1"}
    assert vol.mountpoint == paths.volumes_dir() / "dados-api" / "_data"
    assert labkit.volume("dados-api") == vol  # create or get
    assert vol in labkit.volumes()
    doc = labkit.get_volume("dados-api").inspect()
    assert set(doc) >= {"Name", "Driver", "Mountpoint", "Labels", "Scope", "CreatedAt"}
    vol.remove()
    assert vol not in labkit.volumes()
    with pytest.raises(NotFound):
        labkit.get_volume("dados-api")
    vol.remove(force=True)  # gone already: force forgives it


@pytest.mark.parametrize("bad", ["a/b", "..", "../etc", "x", "-x", "a b", "a:b"])
def test_bad_volume_names_are_refused(bad):
    before = volume_dirs()
    r = cli("volume", "create", "--", bad)
    assert r.returncode == 125
    assert "nome de volume inválido" in r.stderr
    with pytest.raises(LabkitError):
        labkit.volume(bad)
    with pytest.raises(LabkitError):
        labkit.run("busybox", "true", mounts=[{"type": "volume", "source": bad, "target": "/d"}])
    assert volume_dirs() == before


def test_prune_removes_unused_anonymous_volumes_only(named):
    keep = labkit.volume(named("fica"))
    anon = labkit.volume()
    ctr = labkit.run("busybox", "sleep 300", detach=True, volumes=["/uso"])
    try:
        used = ctr.inspect()["Mounts"][0]["Name"]
        r = cli("volume", "prune", "-f")
        assert r.returncode == 0, r.stderr
        assert anon.name in r.stdout and "1 volume removido" in r.stdout
        names = {v.name for v in labkit.volumes()}
        assert keep.name in names and used in names and anon.name not in names
        assert labkit.prune_volumes() == []  # the used one stays
        empty = labkit.volume(named("vazio-sem-uso"))
        assert sorted(labkit.prune_volumes(all=True)) == sorted([keep.name, empty.name])
    finally:
        ctr.remove(force=True, volumes=True)
    assert used not in {v.name for v in labkit.volumes()}


# -- data outside the container -------------------------------------------------------------


def test_named_volume_made_on_first_use_and_data_survives_the_container(named):
    name = named("banco")
    assert name not in volume_dirs()
    r = sh("echo linha1 >> /dados/tabela; cat /dados/tabela", volumes=[f"{name}:/dados"])
    assert r.exit_code == 0 and r.stdout == "linha1\n"
    assert (paths.volumes_dir() / name / "_data" / "tabela").read_text() == "linha1\n"
    # morrer e recriar: a new container, same volume, same data
    ctr = sh("echo linha2 >> /dados/tabela; sleep 300", volumes=[f"{name}:/dados"], detach=True)
    try:
        assert _settled(ctr)
    finally:
        ctr.remove(force=True, volumes=True)  # -v removes anonymous volumes only
    assert sh("cat /dados/tabela", volumes=[f"{name}:/dados"]).stdout == "linha1\nlinha2\n"
    assert name in {v.name for v in labkit.volumes()}


def _settled(ctr) -> bool:
    """The detached shell appends before it sleeps: wait until the line is there."""
    for _ in range(200):
        out = ctr.exec("cat /dados/tabela").stdout
        if out == "linha1\nlinha2\n":
            return True
        time.sleep(0.05)
    return False


def test_mount_volume_readonly_and_ro_fail_with_erofs(named):
    name = named("so-leitura")
    sh("echo x > /d/f", volumes=[f"{name}:/d"])
    for kw in ({"volumes": [f"{name}:/d:ro"]},
               {"mounts": [f"type=volume,source={name},target=/d,readonly"]},
               {"mounts": [f"type=volume,src={name},dst=/d,ro=true"]}):
        r = sh("cat /d/f; echo y > /d/f", **kw)
        assert r.stdout == "x\n"
        assert r.exit_code != 0 and "Read-only file system" in r.stderr, kw
    assert (labkit.get_volume(name).mountpoint / "f").read_text() == "x\n"


def test_bind_mounts_through_mount_and_v(tmp_path):
    (tmp_path / "f").write_text("do host\n")
    r = sh("cat /h/f; echo novo > /h/g", mounts=[f"type=bind,source={tmp_path},target=/h"])
    assert r.exit_code == 0 and r.stdout == "do host\n"
    assert (tmp_path / "g").read_text() == "novo\n"
    r = sh("echo z > /h/f", mounts=[f"type=bind,src={tmp_path},destination=/h,readonly"])
    assert r.exit_code != 0 and "Read-only file system" in r.stderr


# -- copy-up ---------------------------------------------------------------------------------


def test_copy_up_fills_an_empty_volume_with_owners_and_modes(named, vol_image):
    name = named("semeado")
    r = labkit.run(vol_image, ["sh", "-c", "stat -c '%u:%g %a %n' /data /data/sub /data/sub/f; "
                               "cat /data/sub/f; readlink /data/link"], volumes=[f"{name}:/data"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == ["1000:1000 750 /data", "1000:1000 755 /data/sub",
                                     "1000:1000 640 /data/sub/f", "semente", "/etc/passwd"]
    data = labkit.get_volume(name).mountpoint
    assert (data / "sub" / "f").read_text() == "semente\n"
    assert os.readlink(data / "link") == "/etc/passwd"  # a symlink stays a symlink
    st = os.stat(data / "sub" / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1000, 0o640)


def test_copy_up_only_into_an_empty_volume_and_not_with_nocopy_or_bind(named, vol_image, tmp_path):
    name = named("com-dados")
    sh("echo meu > /x/meu", volumes=[f"{name}:/x"])
    r = labkit.run(vol_image, ["ls", "/data"], volumes=[f"{name}:/data"])
    assert r.stdout.split() == ["meu"]  # the volume had data: it wins
    r = labkit.run(vol_image, ["ls", "-A", "/data"], volumes=[f"{named('sem-copia')}:/data:nocopy"])
    assert r.stdout == ""
    r = labkit.run(vol_image, ["ls", "-A", "/data"],
                   mounts=[f"type=volume,source={named('sem-copia-2')},target=/data,volume-nocopy"])
    assert r.stdout == ""
    r = labkit.run(vol_image, ["ls", "-A", "/data"], volumes=[f"{tmp_path}:/data"])
    assert r.stdout == "" and list(tmp_path.iterdir()) == []  # a bind shows the host's directory


# -- anonymous volumes -------------------------------------------------------------------------


def test_image_volume_is_anonymous_and_goes_with_a_rm_container(vol_image):
    before = volume_dirs()
    r = labkit.run(vol_image, ["cat", "/data/sub/f"])  # attached: --rm
    assert r.stdout == "semente\n"
    assert volume_dirs() == before  # removed with the container, as Docker's --rm


def test_anonymous_volume_kept_by_rm_removed_by_rm_v(vol_image):
    before = volume_dirs()
    ctr = labkit.run(vol_image, ["sh", "-c", "echo mais > /data/mais; sleep 300"], detach=True)
    doc = ctr.inspect()
    (mount,) = doc["Mounts"]
    assert mount["Type"] == "volume" and len(mount["Name"]) == 64 and mount["Destination"] == "/data"
    assert doc["Config"]["Volumes"] == {"/data": {}}
    ctr.remove(force=True)  # without -v: the anonymous volume stays (dangling), as Docker's
    assert mount["Name"] in volume_dirs()
    assert mount["Name"] in labkit.prune_volumes()
    assert volume_dirs() == before

    ctr = labkit.run(vol_image, ["sleep", "300"], detach=True, volumes=["/outro"])
    names = {m["Destination"]: m["Name"] for m in ctr.inspect()["Mounts"]}
    assert set(names) == {"/data", "/outro"}
    ctr.stop(timeout=0)
    r = cli("rm", "-v", ctr.id)
    assert r.returncode == 0, r.stderr
    assert volume_dirs() == before


def test_anonymous_volumes_of_a_detached_rm_container_go_when_it_exits(vol_image):
    before = volume_dirs()
    ctr = labkit.run(vol_image, ["sleep", "300"], detach=True, remove=True)
    assert len(volume_dirs() - before) == 1
    ctr.kill()
    with pytest.raises(NotFound):
        for _ in range(400):
            labkit.get(ctr.id)
            time.sleep(0.05)
    assert volume_dirs() == before


# -- tmpfs, volumes-from ---------------------------------------------------------------------


def test_tmpfs_flag_and_mount_type_tmpfs():
    r = sh("grep -E ' /(run|t) ' /proc/mounts; stat -c '%a' /run; echo x > /run/f && cat /run/f",
           tmpfs=["/run:size=2m,mode=1770"], mounts=["type=tmpfs,target=/t,tmpfs-size=64k"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    run = next(line for line in lines if " /run " in line).split()
    t = next(line for line in lines if " /t " in line).split()
    assert run[2] == "tmpfs" and "size=2048k" in run[3] and "mode=1770" in run[3]
    assert {"nosuid", "nodev", "noexec"} <= set(run[3].split(","))  # Docker's defaults for --tmpfs
    assert t[2] == "tmpfs" and "size=64k" in t[3]
    assert lines[-2:] == ["1770", "x"]
    r = sh("echo x > /t/f", tmpfs={"/t": "size=1m,ro"})
    assert r.exit_code != 0 and "Read-only file system" in r.stderr


def test_tmpfs_size_is_enforced():
    r = sh("dd if=/dev/zero of=/t/big bs=1k count=512", tmpfs=["/t:size=128k"])
    assert r.exit_code != 0 and "No space left on device" in r.stderr


def test_volumes_from_shares_the_volumes_and_ro_makes_them_read_only(named, tmp_path):
    name = named("partilhado")
    (tmp_path / "h").write_text("host\n")
    src = sh("echo de-a > /v/f; sleep 300", detach=True, name="fonte-vol",
             volumes=[f"{name}:/v", f"{tmp_path}:/b:ro"], tmpfs=["/t"])
    try:
        for _ in range(200):
            if (labkit.get_volume(name).mountpoint / "f").exists():
                break
            time.sleep(0.05)
        r = sh("cat /v/f /b/h; grep -c ' /t ' /proc/mounts; echo de-b >> /v/f", volumes_from=["fonte-vol"])
        assert r.stdout.splitlines()[:3] == ["de-a", "host", "0"]  # a tmpfs is not shared
        assert r.exit_code == 0
        r = sh("echo nao > /v/f", volumes_from=["fonte-vol:ro"])
        assert r.exit_code != 0 and "Read-only file system" in r.stderr
        r = sh("cat /v/f", volumes_from=["fonte-vol:rw"])
        assert r.stdout == "de-a\nde-b\n"
        r = cli("run", "--rm", "--volumes-from", "fonte-vol", "busybox", "cat", "/v/f")
        assert r.returncode == 0 and r.stdout == "de-a\nde-b\n"
    finally:
        src.remove(force=True)


# -- in use ------------------------------------------------------------------------------------


def test_a_volume_in_use_cannot_be_removed_even_with_force(named):
    name = named("ocupado")
    r = sh("true", volumes=[f"{name}:/d"], remove=False, name="usa-volume")
    try:
        for args in (("volume", "rm", name), ("volume", "rm", "-f", name)):
            out = cli(*args)
            assert out.returncode == 125
            assert "em uso" in out.stderr and "usa-volume" in out.stderr
        with pytest.raises(Conflict):
            labkit.get_volume(name).remove(force=True)
        assert cli("volume", "rm", name, lang="en").stderr.count("volume is in use") == 1
        assert name not in labkit.prune_volumes(all=True)
    finally:
        labkit.get(r.id).remove()
    labkit.get_volume(name).remove()
    assert name not in volume_dirs()


# -- inspect -------------------------------------------------------------------------------------


def test_inspect_mounts_as_docker(named, tmp_path):
    name = named("visto")
    ctr = labkit.run("busybox", "sleep 300", detach=True,
                     volumes=[f"{name}:/v", f"{tmp_path}:/b:ro"],
                     mounts=["type=tmpfs,target=/t"], tmpfs={"/run": "size=1m"})
    try:
        doc = ctr.inspect()
        by_dest = {m["Destination"]: m for m in doc["Mounts"]}
        assert set(by_dest) == {"/v", "/b", "/t"}  # --tmpfs is in HostConfig.Tmpfs only
        assert by_dest["/v"] == {"Type": "volume", "Name": name,
                                 "Source": str(paths.volumes_dir() / name / "_data"),
                                 "Destination": "/v", "Driver": "local", "Mode": "z", "RW": True,
                                 "Propagation": ""}
        assert by_dest["/b"] == {"Type": "bind", "Source": str(tmp_path), "Destination": "/b",
                                 "Mode": "ro", "RW": False, "Propagation": "rprivate"}
        assert by_dest["/t"]["Type"] == "tmpfs" and by_dest["/t"]["RW"] is True
        host = doc["HostConfig"]
        assert host["Binds"] == [f"{name}:/v", f"{tmp_path}:/b:ro"]
        assert host["Tmpfs"] == {"/run": "size=1048576"}
        assert host["Mounts"] == [{"Type": "tmpfs", "Source": "", "Target": "/t", "ReadOnly": False}]
    finally:
        ctr.remove(force=True)


# -- bad input: refused, nothing left ----------------------------------------------------------


BAD = [
    (["-v", "/:/h"], "recusado montar /"),
    (["-v", "{home}:/h"], "contém o estado do motor"),
    (["-v", "{parent}:/h"], "contém o estado do motor"),
    (["--mount", "type=bind,source=/,target=/h"], "recusado montar /"),
    (["--tmpfs", "/t:size=abc"], "tamanho de tmpfs inválido abc"),
    (["--tmpfs", "/t:size=0"], "tamanho de tmpfs inválido 0"),
    (["--mount", "type=tmpfs,target=/t,tmpfs-size=muito"], "tamanho de tmpfs inválido muito"),
    (["-v", "a/b:/x"], "nome de volume inválido"),
    (["--mount", "type=volume,source=..,target=/x"], "nome de volume inválido"),
    (["--mount", "type=volume,source=novo-a,target=/x,cor=azul"], "chave desconhecida: cor"),
    (["-v", "novo-b:/x", "-v", "novo-c:/x"], "ponto de montagem repetido: /x"),
    (["--volumes-from", "nao-existe-ctr"], "nao-existe-ctr"),
    (["--volumes-from", "x:rx"], "--volumes-from inválido"),
    (["-v", "novo-d:/etc/passwd"], "não dá para montar um arquivo sobre um diretório"),
    (["-v", "/novo-e", "--tmpfs", "/etc/passwd"], "não é um diretório"),
]


# each case attached (--rm); the ones refused by the engine rather than the client, detached too
CASES = [(a, t, False) for a, t in BAD] + [(a, t, True) for a, t in BAD if a[0] in ("-v", "--volumes-from")
                                            and t not in ("nome de volume inválido", "--volumes-from inválido")]


@pytest.mark.parametrize("args,text,detach", CASES,
                         ids=[("-d " if d else "--rm ") + " ".join(a) for a, _t, d in CASES])
def test_bad_storage_is_refused_with_125_and_leaves_nothing(args, text, detach, labkit_home, container_dirs):
    home = os.path.realpath(labkit_home)
    args = [a.format(home=home, parent=os.path.dirname(home)) for a in args]
    before = (volume_dirs(), container_dirs(), cli("ps", "-aq").stdout)
    r = cli("run", *(["-d"] if detach else ["--rm"]), *args, "busybox", "true")
    assert r.returncode == 125, r.stderr
    assert text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert (volume_dirs(), container_dirs(), cli("ps", "-aq").stdout) == before


def test_volumes_made_by_a_run_that_fails_to_start_are_removed(vol_image):
    before = volume_dirs()
    r = cli("run", "--rm", "-v", "novo-f:/x", "-v", "/anonimo", vol_image, "comando-inexistente")
    assert r.returncode == 127
    assert volume_dirs() == before
    with pytest.raises(LabkitError):
        labkit.run(vol_image, "comando-inexistente", detach=True, volumes=["novo-g:/x"])
    assert volume_dirs() == before


def test_engine_refuses_bad_storage_from_a_raw_request(labkit_home, named):
    """A client that skips labkit.volspec is checked by the engine all the same."""
    keep = labkit.volume(named("nao-apague"))
    before = volume_dirs()
    for config in ({"volumes": [{"type": "volume", "source": "../../etc", "target": "/d"}]},
                   {"volumes": [{"type": "bind", "source": "/", "target": "/d"}]},
                   {"volumes": [{"type": "bind", "source": labkit_home, "target": "/d"}]},
                   {"mounts": [{"type": "tmpfs", "source": "", "target": "/t", "options": "size=nada"}]},
                   {"tmpfs": ["/t:size=nada"]},
                   {"volumes": ["novo-raw:/d"], "_volumes_made": [keep.name]}):
        with pytest.raises(LabkitError) as info:
            client.request({"op": "run", "config": {"image": "busybox", "cmd": ["comando-inexistente"],
                                                    "detach": True, **config}})
        assert info.value.exit_code in (125, 127), info.value
    assert volume_dirs() == before  # the client's own "_volumes_made" is not believed


# -- safety: a symlink in a volume stays in the container ------------------------------------------


def test_symlink_in_a_volume_does_not_expose_the_host(named):
    name = named("com-link")
    data = labkit.volume(name).mountpoint
    os.symlink("/etc", data / "etc-do-host")
    os.symlink("/etc/passwd", data / "passwd-do-host")
    r = sh("ls /v/etc-do-host; echo ===; cat /v/passwd-do-host; echo ===; cat /etc/passwd",
           volumes=[f"{name}:/v"])
    assert r.exit_code == 0, r.stderr
    listing, through_link, own = r.stdout.split("===\n")
    # read through the link, the container sees its own /etc, never the host's
    assert through_link == own
    assert through_link != Path("/etc/passwd").read_text()
    assert set(listing.split()) != set(os.listdir("/etc"))
    # writing through the link lands in the container, not on the host
    before = Path("/etc/passwd").read_text()
    r = sh("echo intruso >> /v/passwd-do-host; grep -c intruso /etc/passwd", volumes=[f"{name}:/v"])
    assert r.stdout.strip() == "1"
    assert Path("/etc/passwd").read_text() == before
    assert os.path.islink(data / "passwd-do-host")


def test_a_symlinked_target_in_the_image_is_resolved_inside_the_container(named, tmp_path):
    """``-v vol:/link`` where the image's /link points to /etc: the volume lands on the
    container's /etc (openat2 RESOLVE_IN_ROOT), the host's /etc is untouched."""
    name = named("alvo-link")
    marker = "labkit-volume-marker"
    labkit.build(str(tmp_path), tag="labkit-test-volumes:link", quiet=True,
                 dockerfile="FROM busybox\nRUN ln -s /etc /apontado\n")
    try:
        r = labkit.run("labkit-test-volumes:link", ["sh", "-c", f"touch /apontado/{marker}; ls /etc"],
                       volumes=[f"{name}:/apontado"])
        assert r.exit_code == 0, r.stderr
        assert marker in r.stdout.split()  # the volume is on the container's /etc
        assert not Path("/etc", marker).exists()
        assert (labkit.get_volume(name).mountpoint / marker).exists()
        assert (labkit.get_volume(name).mountpoint / "passwd").exists()  # copy-up of busybox's /etc
    finally:
        from labkit.images.store import Store

        Store().remove("labkit-test-volumes:link", force=True)


# -- the engine's life: spare, prune, restart ------------------------------------------------------


def test_no_spare_for_a_container_with_volumes_or_tmpfs(named):
    labkit.run("busybox", "true")  # the spare of busybox is made after a plain run
    for kw in ({"volumes": [f"{named('sem-spare')}:/v"]}, {"tmpfs": ["/t"]}):
        spare = client.request({"op": "ping"}).get("spare") or {}
        ctr = labkit.run("busybox", "sleep 300", detach=True, **kw)
        try:
            assert ctr.id != spare.get("id")
            assert ctr.exec("grep -c ' /[tv] ' /proc/mounts").stdout.strip() == "1"
        finally:
            ctr.remove(force=True)


def test_container_prune_and_engine_restarts_keep_named_volumes(named, vol_image):
    name = named("duradouro")
    sh("echo guardado > /d/f", volumes=[f"{name}:/d"])
    ctr = labkit.run(vol_image, ["sleep", "300"], detach=True, remove=True, volumes=[f"{name}:/d"])
    anon = next(m["Name"] for m in ctr.inspect()["Mounts"] if m["Destination"] == "/data")
    pid = client.request({"op": "ping"})["pid"]
    os.kill(pid, signal.SIGKILL)  # the engine dies; the container goes on
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert labkit.get(ctr.id).status == "running"  # a new engine adopted it
    labkit.prune()
    assert labkit.engine_stop()  # stops it: a --rm container goes, its anonymous volume too
    assert ctr.id not in {c.id for c in labkit.containers(all=True)}  # a new engine
    names = {v.name for v in labkit.volumes()}
    assert name in names and anon not in names
    assert sh("cat /d/f", volumes=[f"{name}:/d"]).stdout == "guardado\n"


def test_raw_run_request_with_strings_as_compose_sends_them(named, tmp_path):
    """The run request's storage fields as typed (what a compose file holds): strings read by the
    engine with the same rules as the CLI's."""
    vol = named("pedido-cru")
    reply = client.request({"op": "run", "config": {
        "image": "busybox", "cmd": ["sleep", "300"], "detach": True,
        "volumes": [f"{vol}:/v", f"{tmp_path}:/b:ro"], "mounts": [f"type=volume,source={vol},target=/m,readonly"],
        "tmpfs": ["/t:size=1m"], "volumes_from": []}})
    ctr = labkit.Container(reply["id"])
    try:
        by_dest = {m["Destination"]: (m["Type"], m.get("Name"), m["RW"]) for m in ctr.inspect()["Mounts"]}
        assert by_dest == {"/v": ("volume", vol, True), "/b": ("bind", None, False), "/m": ("volume", vol, False)}
        assert ctr.exec("grep -c ' /t tmpfs ' /proc/mounts").stdout.strip() == "1"
    finally:
        ctr.remove(force=True)


def test_a_target_with_dot_dot_stays_in_the_container(named):
    name = named("pontoponto")
    marker = f"labkit-escape-{os.getpid()}"
    r = sh(f"touch /{marker}/f && ls /{marker}", volumes=[f"{name}:/../../../{marker}"],
           tmpfs=[f"/../../{marker}-t"])
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == ["f"]
    assert not Path("/", marker).exists() and not Path("/", f"{marker}-t").exists()
    assert (labkit.get_volume(name).mountpoint / "f").exists()


def test_copy_up_and_anonymous_volumes_as_podman_does(vol_image, named):
    """The same image run by podman (runc) with the same -v: the same files, owners and modes
    in the volume, and the image's VOLUME as an anonymous volume there too."""
    from requirements import require_tool
    from test_images_interop import Podman

    from labkit.images.store import Store

    require_tool("podman", package="podman")
    require_tool("runc", package="runc")
    pod = Podman()
    try:
        image_id = pod("pull", "-q", f"oci:{Store().layout.root}:localhost/{vol_image}").stdout.strip()
        script = ("stat -c '%u:%g %a %n' /data /data/sub /data/sub/f; readlink /data/link; cat /data/sub/f; "
                  "echo novo > /data/novo && cat /data/novo")
        podman_out = pod("run", "--rm", "--network", "none", "--cgroup-parent", "/" + pod.cgroup,
                         "--pull", "never", "-v", "comparado:/data", image_id, "sh", "-c", script).stdout
        ours = labkit.run(vol_image, ["sh", "-c", script], volumes=[f"{named('comparado')}:/data"])
        assert ours.exit_code == 0, ours.stderr
        print(podman_out)
        assert ours.stdout == podman_out
        # without -v: an anonymous volume at /data in both (podman lists it while the container exists)
        cid = pod("create", "--network", "none", "--cgroup-parent", "/" + pod.cgroup, "--pull", "never",
                  image_id, "true").stdout.strip()
        (theirs,) = json.loads(pod("inspect", cid).stdout)[0]["Mounts"]
        pod("rm", cid)
        ctr = labkit.run(vol_image, ["true"], detach=True)
        try:
            ctr.wait(timeout=60)
            (mine,) = ctr.inspect()["Mounts"]
        finally:
            ctr.remove(volumes=True)
        assert (mine["Type"], mine["Destination"], mine["RW"]) == (theirs["Type"], theirs["Destination"],
                                                                    theirs["RW"])
        assert len(mine["Name"]) == len(theirs["Name"]) == 64
    finally:
        pod.cleanup()
        assert pod.leftovers() == []
