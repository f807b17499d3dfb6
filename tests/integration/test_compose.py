"""Labels and ``labkit compose`` with real containers, networks and (once merged) volumes.

Compose files of several services live in ``tests/integration/compose/``; each
test copies its folder into ``tmp_path`` (the folder's name is the project's)
so that bind sources compose creates stay out of the tree. Traffic stays on
this machine: between containers on the project's bridges, and from the host's
loopback to a published port.
"""
from __future__ import annotations

import json
import shutil
import socket
import urllib.request
from pathlib import Path

import pytest

import labkit
import labkit.compose
from labkit.errors import LabkitError, NotFound
from tests.integration.labkit_cli import cli

pytestmark = pytest.mark.root

FILES = Path(__file__).parent / "compose"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def project_dir(tmp_path: Path, name: str, project: str) -> Path:
    """A copy of ``compose/<name>`` in a folder named ``project`` (Compose's project name)."""
    dest = tmp_path / project
    shutil.copytree(FILES / name, dest)
    return dest


def http_get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read().decode()


def everything(project: str) -> dict:
    """What a project has in the engine: containers (all) and networks, by Compose's labels."""
    ctrs = labkit.containers(all=True, filters={"label": [f"com.docker.compose.project={project}"]})
    nets = [n.name for n in labkit.networks()
            if (n.inspect().get("Labels") or {}).get("com.docker.compose.project") == project]
    return {"containers": sorted(c.name for c in ctrs), "networks": sorted(nets)}


# --------------------------------------------------------------------------- labels
def test_labels_on_run_inspect_and_filters():
    a = labkit.run("busybox", ["sleep", "60"], detach=True, name="rotulado-a",
                   labels={"curso": "conteineres", "aula": "12"})
    b = labkit.run("busybox", ["sleep", "60"], detach=True, name="rotulado-b", labels=["curso=outro", "solto"])
    try:
        assert a.labels == {"curso": "conteineres", "aula": "12"}
        assert a.inspect()["Config"]["Labels"]["aula"] == "12"
        assert b.labels == {"curso": "outro", "solto": ""}
        names = lambda f: sorted(c.name for c in labkit.containers(filters=f))  # noqa: E731
        assert names({"label": ["curso"]}) == ["rotulado-a", "rotulado-b"]
        assert names({"label": ["curso=conteineres"]}) == ["rotulado-a"]
        assert names({"label": ["curso", "solto"]}) == ["rotulado-b"]  # every label filter must match
        assert names({"name": ["rotulado-a", "rotulado-b"]}) == ["rotulado-a", "rotulado-b"]
        assert names({"name": ["-b$"], "label": ["curso"]}) == ["rotulado-b"]
        r = cli("ps", "-q", "--filter", "label=curso=conteineres")
        assert r.returncode == 0 and r.stdout.split() == [a.id[:12]]
        r = cli("ps", "--filter", "name=rotulado", "--filter", "label=solto")
        assert r.returncode == 0 and "rotulado-b" in r.stdout and "rotulado-a" not in r.stdout
        r = cli("ps", "--filter", "label=curso", "--format", '{{.Names}}={{.Label "curso"}}')
        assert r.returncode == 0 and sorted(r.stdout.split()) == ["rotulado-a=conteineres", "rotulado-b=outro"]
    finally:
        a.remove(force=True)
        b.remove(force=True)


def test_label_flags_and_bad_labels(tmp_path):
    lf = tmp_path / "labels"
    lf.write_text("# rótulos do arquivo\ncurso=do-arquivo\nnivel=1\n")
    r = cli("run", "-d", "--name", "rotulos-cli", "--label-file", str(lf), "-l", "curso=da-flag",
            "--label", "extra", "busybox", "sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        doc = json.loads(cli("inspect", "rotulos-cli").stdout)[0]
        assert doc["Config"]["Labels"] == {"curso": "da-flag", "nivel": "1", "extra": ""}  # the flag wins
    finally:
        cli("rm", "-f", "rotulos-cli")
    r = cli("run", "-d", "--name", "rotulo-ruim", "-l", "=semchave", "busybox", "true")
    assert r.returncode == 125 and "rótulo inválido" in r.stderr
    r = cli("ps", "--filter", "cor=azul")
    assert r.returncode == 125 and "filtro inválido" in r.stderr
    with pytest.raises(NotFound):
        labkit.get("rotulo-ruim")


# --------------------------------------------------------------------------- compose
def test_compose_up_ps_logs_exec_down(tmp_path, monkeypatch):
    port = free_port()
    d = project_dir(tmp_path, "shop", "Loja.Online")  # the folder's name, normalized: "lojaonline"
    monkeypatch.setenv("WEB_PORT", str(port))
    try:
        proj = labkit.compose.up(d, out=lambda line: None)
        assert proj.name == "lojaonline"
        assert [c.name for c in proj.containers()] == ["lojaonline-web-1", "lojaonline-api-1",
                                                       "lojaonline-client-1"]
        assert everything("lojaonline")["networks"] == ["lojaonline_back", "lojaonline_front"]
        web, client = proj.service("web"), proj.service("client")
        labels = web.labels
        assert labels["com.docker.compose.project"] == "lojaonline"
        assert labels["com.docker.compose.service"] == "web"
        assert labels["com.docker.compose.container-number"] == "1"
        assert labels["com.docker.compose.oneoff"] == "False"
        assert labels["com.docker.compose.project.working_dir"] == str(d)
        assert labels["com.docker.compose.project.config_files"] == str(d / "compose.yaml")
        assert labels["tier"] == "front" and len(labels["com.docker.compose.config-hash"]) == 64
        assert http_get(port) == "web-ok\n"  # the published port
        # by service name on each network, and by alias; the client is on both
        assert proj.exec("client", ["wget", "-qO-", "http://web/"]).stdout == "web-ok\n"
        assert client.exec(["wget", "-qO-", "http://backend/"]).stdout == "api-ok\n"
        assert proj.service("web").exec(["wget", "-T", "2", "-qO-", "http://api/"]).exit_code != 0  # not on back
        assert client.inspect()["Config"]["Hostname"] == "cliente"
        mount = client.exec(["grep", " /scratch ", "/proc/mounts"]).stdout
        assert mount.startswith("tmpfs /scratch tmpfs") and "size=8192k" in mount
        assert client.inspect()["HostConfig"]["Limits"]["memory"] == 32 * 1024 * 1024
        table = proj.ps()
        assert table.splitlines()[0].split()[:4] == ["NOME", "IMAGEM", "COMANDO", "SERVIÇO"]
        assert [line.split()[0] for line in table.splitlines()[1:]] == [c.name for c in proj.containers()]
        r = cli("compose", "--project-directory", str(d), "ps")
        assert r.returncode == 0 and r.stdout.count("lojaonline-") == 3
        r = cli("compose", "--project-directory", str(d), "exec", "api", "sh", "-c", "echo $ROLE; exit 3")
        assert r.returncode == 3 and r.stdout == "api\n"
        r = cli("compose", "-f", str(d / "compose.yaml"), "logs", "client")
        assert r.returncode == 0
        # up again: the same containers, kept (same config hash)
        ids = [c.id for c in proj.containers()]
        again = labkit.compose.up(d, out=lambda line: None)
        assert [c.id for c in again.containers()] == ids
        # a changed service is recreated, the others are kept
        text = (d / "compose.yaml").read_text().replace("ROLE: api", "ROLE: api2")
        (d / "compose.yaml").write_text(text)
        lines: list[str] = []
        again = labkit.compose.up(d, out=lines.append)
        new = [c.id for c in again.containers()]
        assert new[0] == ids[0] and new[2] == ids[2] and new[1] != ids[1]
        assert any("lojaonline-api-1" in line and "Recriado" in line for line in lines)
        assert again.service("client").exec(["wget", "-qO-", "http://backend/"]).stdout == "api2-ok\n"
    finally:
        r = cli("compose", "--project-directory", str(d), "down")
    assert r.returncode == 0, r.stderr
    assert "Removido" in r.stderr and "Removida" in r.stderr
    assert everything("lojaonline") == {"containers": [], "networks": []}


def test_depends_on_completed_successfully_and_project_name_flag(tmp_path):
    d = project_dir(tmp_path, "jobs", "tarefas")
    r = cli("compose", "-p", "lote", "--project-directory", str(d), "up", "-d")
    try:
        assert r.returncode == 0, r.stderr
        proj = labkit.compose.get_project(d, project="lote")
        assert proj.service("prepare").status == "exited" and proj.service("prepare").exit_code == 0
        assert proj.service("app").status == "running"
        assert (d / "shared" / "flag").read_text() == "preparado\n"  # compose made the bind source
        logs = proj.logs("app")
        assert logs.startswith("app-1") and logs.rstrip().endswith("| preparado")
        assert everything("lote")["networks"] == []  # network_mode: none on both
        r = cli("compose", "-p", "lote", "--project-directory", str(d), "ps", "-a")
        assert "lote-prepare-1" in r.stdout and "lote-app-1" in r.stdout
    finally:
        labkit.compose.down(d, project="lote", out=lambda line: None)
    assert everything("lote") == {"containers": [], "networks": []}


@pytest.mark.parametrize("name, words", [
    ("unknown-key.yaml", ["linha 7", "'enviroment'", "services.db"]),
    ("cycle.yaml", ["a -> c -> b -> a", "linha 2"]),
    ("no-image.yaml", ["'broken'", "linha 4", "image"]),
    ("not-yaml.yaml", ["YAML", "linha"]),
    ("bad-port.yaml", ["70000:80", "linha 6"]),
])
def test_bad_files_are_refused_and_nothing_is_made(tmp_path, name, words):
    d = project_dir(tmp_path, "bad", "ruins")
    r = cli("compose", "-f", str(d / name), "up", "-d")
    assert r.returncode == 125, r.stderr
    assert all(w in r.stderr for w in words), r.stderr
    assert "Traceback" not in r.stderr
    assert everything("ruins") == {"containers": [], "networks": []}
    with pytest.raises(LabkitError):
        labkit.compose.up(d, file=name, out=lambda line: None)


def test_a_port_in_use_refuses_the_whole_project(tmp_path):
    d = project_dir(tmp_path, "shop", "ocupado")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        r = cli("compose", "--project-directory", str(d), "up", "-d", env={"WEB_PORT": str(port)})
        assert r.returncode == 125
        assert f"{port}/tcp" in r.stderr and "já está em uso" in r.stderr
    assert everything("ocupado") == {"containers": [], "networks": []}


def test_config_prints_what_was_understood(tmp_path):
    d = project_dir(tmp_path, "shop", "loja")
    r = cli("compose", "--project-directory", str(d), "config", env={"WEB_PORT": "18181"})
    assert r.returncode == 0, r.stderr
    import yaml

    doc = yaml.safe_load(r.stdout)
    assert doc["name"] == "loja"
    assert list(doc["services"]) == ["web", "api", "client"]
    assert doc["services"]["web"]["ports"] == ["127.0.0.1:18181:80"]  # interpolated
    assert doc["services"]["client"]["deploy"]["resources"]["limits"] == {"memory": "32m", "cpus": "0.5"}
    assert doc["networks"]["back"]["name"] == "loja_back"
    assert everything("loja") == {"containers": [], "networks": []}


# --------------------------------------------------------------------------- the course's data service
APP = Path(labkit.__file__).parent / "course" / "app"


def rows(port: int, add: str | None = None) -> list[str]:
    """The app's rows (after adding one): its CGI reads and writes Redis over the project's network."""
    from urllib.parse import quote

    path = "/cgi-bin/linhas" + (f"?add={quote(add)}" if add is not None else "")
    for _attempt in range(200):  # httpd may still be starting: retry the connection, not a clock
        try:
            text = http_get(port, path)
            break
        except OSError:
            import time

            time.sleep(0.05)
    else:
        text = http_get(port, path)
    assert not text.startswith("erro"), text
    return text.splitlines()


@pytest.mark.slow
def test_course_app_rows_outlive_their_containers(monkeypatch):
    """Issue 12 item 5: rows written through the app survive `down` + `up` and the re-creation of
    the database container on the same volume; `down -v` removes them."""
    from labkit.images import debian
    from requirements import skip_here

    from labkit.images.store import Store

    if Store().find("debian:bookworm") is None:
        why = debian.reachable(debian.configured_mirror(), "bookworm")
        if why:
            skip_here(f"the Debian archive is not reachable from this machine: {why}")
    port = free_port()
    monkeypatch.setenv("APP_PORT", str(port))
    up = lambda: labkit.compose.up(APP, project="curso-teste", out=lambda line: None)  # noqa: E731
    proj = up()
    try:
        assert proj.service("db").health == "healthy"  # web waited for it (service_healthy)
        assert rows(port) == []
        for word in ("um", "dois", "três com espaço"):
            rows(port, word)
        assert rows(port) == ["um", "dois", "três com espaço"]
        vol = labkit.get_volume("curso-teste_dados")
        assert vol.labels["com.docker.compose.project"] == "curso-teste"

        proj.down()  # containers and network go, the named volume stays
        assert everything("curso-teste") == {"containers": [], "networks": []}
        assert labkit.get_volume("curso-teste_dados").name == "curso-teste_dados"
        proj = up()
        assert rows(port) == ["um", "dois", "três com espaço"]

        old = proj.service("db")
        old.remove(force=True)  # SIGKILL: Redis wrote each row to /data before replying
        proj = up()
        new = proj.service("db")
        assert new.id != old.id and new.name == "curso-teste-db-1"
        assert rows(port) == ["um", "dois", "três com espaço"]
        assert [m["Name"] for m in new.inspect()["Mounts"] if m["Destination"] == "/data"] == ["curso-teste_dados"]

        proj.down(volumes=True)
        with pytest.raises(NotFound):
            labkit.get_volume("curso-teste_dados")
        proj = up()
        assert rows(port) == []
    finally:
        proj.down(volumes=True)
    assert everything("curso-teste") == {"containers": [], "networks": []}


def test_attached_up_prints_each_service_until_all_exit(tmp_path):
    d = project_dir(tmp_path, "hello", "ola")
    r = cli("compose", "--project-directory", str(d), "up", env={"GREETING": "oi do shell"})
    try:
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert sorted(lines) == ["first-1   | primeiro", "second-1  | oi do shell", "second-1  | segundo"]
        assert lines.index("second-1  | segundo") < lines.index("second-1  | oi do shell")
        assert "Iniciado" in r.stderr
        proj = labkit.compose.get_project(d)
        assert [c.exit_code for c in proj.containers()] == [0, 0]
        assert proj.logs() == "first-1   | primeiro\nsecond-1  | segundo\nsecond-1  | oi do shell\n"
    finally:
        r = cli("compose", "--project-directory", str(d), "down")
    assert r.returncode == 0 and everything("ola") == {"containers": [], "networks": []}


def test_cli_refusals_without_a_file_or_with_a_bad_name(tmp_path):
    empty = tmp_path / "vazio"
    empty.mkdir()
    r = cli("compose", "--project-directory", str(empty), "up", "-d")
    assert r.returncode == 125 and "nenhum arquivo compose" in r.stderr
    d = project_dir(tmp_path, "hello", "ola2")
    r = cli("compose", "-p", "Nome Ruim", "--project-directory", str(d), "up", "-d")
    assert r.returncode == 125 and "nome de projeto inválido" in r.stderr
    r = cli("compose", "--project-directory", str(d), "exec", "nenhum", "true")
    assert r.returncode == 125 and "nenhum contêiner do serviço nenhum" in r.stderr
    r = cli("compose", "--project-directory", str(d), "logs", "nenhum")
    assert r.returncode == 125 and "serviço inexistente" in r.stderr
    r = cli("compose", "--project-directory", str(d), "up", "-d", "nenhum")
    assert r.returncode == 125 and "serviço inexistente" in r.stderr
    assert everything("ola2") == {"containers": [], "networks": []}


def test_service_healthy_restart_policies_and_restart_verb(tmp_path):
    d = project_dir(tmp_path, "health", "saude")
    lines: list[str] = []
    proj = labkit.compose.get_project(d, out=lines.append)
    try:
        proj.up()
        db, app = proj.service("db"), proj.service("app")
        assert db.health == "healthy"
        waited = [i for i, line in enumerate(lines) if "saude-db-1" in line and "Aguardando" in line]
        healthy = [i for i, line in enumerate(lines) if "saude-db-1" in line and "Saudável" in line]
        started = [i for i, line in enumerate(lines) if "saude-app-1" in line and "Iniciado" in line]
        assert waited and healthy and started and waited[0] < healthy[0] < started[0], lines
        policy = db.inspect()["HostConfig"]["RestartPolicy"]
        assert policy["Name"] == "unless-stopped"
        assert app.inspect()["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
        assert "(healthy)" in proj.ps() or "(saudável)" in proj.ps()
        # compose restart: the same container (id, name), a new PID 1
        pid = app.pid
        r = cli("compose", "--project-directory", str(d), "restart", "app")
        assert r.returncode == 0, r.stderr
        assert proj.service("app").id == app.id and proj.service("app").pid != pid
        # a stopped container with the same configuration is started again by up, not recreated
        app.stop(timeout=5)
        assert app.status == "exited"
        proj = labkit.compose.up(d, out=lambda line: None)
        assert proj.service("app").id == app.id and proj.service("app").status == "running"
    finally:
        proj.down()
    assert everything("saude") == {"containers": [], "networks": []}


def test_an_unhealthy_dependency_stops_up(tmp_path, monkeypatch):
    d = project_dir(tmp_path, "health", "doente")
    monkeypatch.setenv("DB_CHECK", "false")
    monkeypatch.setenv("DB_START", "0s")
    proj = labkit.compose.get_project(d, out=lambda line: None)
    try:
        with pytest.raises(LabkitError, match="doente-db-1"):
            proj.up()
        assert [c.name for c in proj.containers()] == ["doente-db-1"]  # app was never created
        assert proj.service("db").health == "unhealthy"
    finally:
        proj.down()
    assert everything("doente") == {"containers": [], "networks": []}


def test_a_restarting_service_is_kept_by_up_and_removed_by_down(tmp_path):
    d = project_dir(tmp_path, "crash", "quebra")
    proj = labkit.compose.get_project(d, out=lambda line: None)
    try:
        proj.up()
        ctr = proj.service("crash")
        for _attempt in range(400):  # the engine restarts it with a growing delay
            if ctr.restart_count >= 2:
                break
            import time

            time.sleep(0.05)
        assert ctr.restart_count >= 2
        proj.up()
        assert proj.service("crash").id == ctr.id  # the same container, still in its loop
        assert proj.logs().count("crash-1  | tentativa") >= 2  # one log across its runs
    finally:
        proj.down()
    assert everything("quebra") == {"containers": [], "networks": []}


def test_a_container_name_in_use_refuses_the_project(tmp_path):
    d = project_dir(tmp_path, "shop", "nomes")
    other = labkit.run("busybox", ["sleep", "60"], detach=True, name="nomes-api-1")
    try:
        r = cli("compose", "--project-directory", str(d), "up", "-d", env={"WEB_PORT": str(free_port())})
        assert r.returncode == 125 and '"nomes-api-1"' in r.stderr and "já está em uso" in r.stderr
        assert everything("nomes") == {"containers": [], "networks": []}
    finally:
        other.remove(force=True)
