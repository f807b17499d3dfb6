"""The compose file model: what is understood, and every refusal naming the key and its line."""
from __future__ import annotations

from pathlib import Path

import pytest

from labkit.compose import load
from labkit.compose.model import find_file
from labkit.compose.naming import config_hash, normalize, project_name
from labkit.compose.services import parse_duration
from labkit.errors import LabkitError
from labkit.labels import matches, parse_filters, parse_labels


def write(tmp_path: Path, text: str, name: str = "compose.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(LabkitError) as info:
        load(write(tmp_path, text))
    assert info.value.exit_code == 125
    return info.value.message


FULL = """\
name: loja
services:
  web:
    image: busybox
    command: httpd -f -p 80
    environment:
      - A=1
      - EMPTY=
    env_file: web.env
    ports: ["8080:80", {target: 53, published: 5353, protocol: udp, host_ip: 127.0.0.1}]
    volumes:
      - dados:/data:ro
      - ./site:/www
      - /cache
      - {type: volume, source: dados, target: /long, read_only: true}
      - {type: tmpfs, target: /run/cache, tmpfs: {size: 8m}}
    depends_on:
      db: {condition: service_healthy}
      init: {condition: service_completed_successfully}
    networks: [front, back]
    labels: {tier: frontend}
    restart: on-failure:3
    deploy: {resources: {limits: {cpus: "0.5", memory: 64m}}}
    user: "1000:1000"
    working_dir: /www
    hostname: loja-web
    expose: [80]
  db:
    build: {context: ., dockerfile: Dockerfile.db, args: {VERSION: "7"}, network: host}
    healthcheck: {test: redis-cli ping, interval: 1m30s, timeout: 500ms, retries: 5, start_period: 2s}
    networks:
      back: {aliases: [banco]}
    mem_limit: 128m
    cpus: 1
  init:
    image: busybox
    network_mode: none
    entrypoint: ["sh", "-c"]
volumes:
  dados:
networks:
  front:
  back:
    ipam: {config: [{subnet: 10.99.0.0/24, gateway: 10.99.0.1}]}
"""


def test_a_full_file_is_understood(tmp_path):
    (tmp_path / "web.env").write_text("# comment\nFROM_FILE=sim\nA=overridden-by-environment\n")
    m = load(write(tmp_path, FULL))
    assert m.name == "loja"
    assert m.order() == ["db", "init", "web"]  # dependencies first, then file order
    web, db, init = m.services["web"], m.services["db"], m.services["init"]
    assert web.command == ["httpd", "-f", "-p", "80"]
    assert web.environment == {"FROM_FILE": "sim", "A": "1", "EMPTY": ""}
    assert web.ports == ["8080:80", "127.0.0.1:5353:53/udp"]
    assert web.volumes == [
        {"type": "volume", "source": "dados", "target": "/data", "read_only": True},
        {"type": "bind", "source": str(tmp_path / "site"), "target": "/www", "read_only": False},
        {"type": "volume", "source": None, "target": "/cache", "read_only": False},
        {"type": "volume", "source": "dados", "target": "/long", "read_only": True},
        {"type": "tmpfs", "source": None, "target": "/run/cache", "read_only": False, "size": "8m"},
    ]
    assert web.depends_on == {"db": "service_healthy", "init": "service_completed_successfully"}
    assert list(web.networks) == ["front", "back"]
    assert (web.memory, web.cpus, web.restart, web.user) == ("64m", "0.5", "on-failure:3", "1000:1000")
    assert web.labels == {"tier": "frontend"} and web.expose == ["80"]
    assert db.build["context"] == tmp_path.resolve() and db.build["dockerfile"] == "Dockerfile.db"
    assert db.build["args"] == {"VERSION": "7"} and db.build["network"] == "host"
    assert db.healthcheck == {"test": ["CMD-SHELL", "redis-cli ping"], "interval": 90.0, "timeout": 0.5,
                              "retries": 5, "start_period": 2.0}
    assert db.networks["back"]["aliases"] == ["banco"]
    assert (db.memory, db.cpus) == ("128m", "1")
    assert init.network_mode == "none" and init.networks == {}
    assert init.entrypoint == ["sh", "-c"]
    assert m.networks["back"]["subnet"] == "10.99.0.0/24"
    assert "default" not in m.networks  # every service names its networks


def test_services_without_networks_share_the_default_one(tmp_path):
    m = load(write(tmp_path, "services:\n  a:\n    image: busybox\n  b:\n    image: busybox\n"))
    assert list(m.services["a"].networks) == ["default"] and list(m.services["b"].networks) == ["default"]
    assert "default" in m.networks


def test_unknown_key_names_the_key_and_its_line(tmp_path):
    msg = refused(tmp_path, "services:\n  web:\n    image: busybox\n    enviroment:\n      A: 1\n")
    assert "linha 4" in msg and "'enviroment'" in msg and "services.web" in msg


def test_unknown_key_deep_inside(tmp_path):
    msg = refused(tmp_path, "services:\n  web:\n    image: busybox\n    healthcheck:\n      test: 'true'\n"
                            "      intervall: 1s\n")
    assert "linha 6" in msg and "'intervall'" in msg and "services.web.healthcheck" in msg
    msg = refused(tmp_path, "services:\n  web:\n    image: busybox\nvolumez:\n  x:\n")
    assert "linha 4" in msg and "'volumez'" in msg


def test_not_yaml(tmp_path):
    msg = refused(tmp_path, "services:\n  web:\n    image: [busybox\n  db: {\n")
    assert "YAML" in msg and "linha" in msg
    assert "services" in refused(tmp_path, "- just\n- a list\n")
    (tmp_path / "compose.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(LabkitError, match="YAML"):
        load(tmp_path)


def test_cycle_in_depends_on(tmp_path):
    msg = refused(tmp_path, "services:\n  a:\n    image: busybox\n    depends_on: [b]\n"
                            "  b:\n    image: busybox\n    depends_on: [c]\n"
                            "  c:\n    image: busybox\n    depends_on: [a]\n")
    assert "a -> b -> c -> a" in msg and "linha 2" in msg


def test_depends_on_an_undefined_service_and_a_bad_condition(tmp_path):
    assert "'nope'" in refused(tmp_path, "services:\n  a:\n    image: busybox\n    depends_on: [nope]\n")
    msg = refused(tmp_path, "services:\n  a:\n    image: busybox\n  b:\n    image: busybox\n"
                            "    depends_on:\n      a:\n        condition: service_ready\n")
    assert "linha 8" in msg and "'service_ready'" in msg


def test_service_without_image_or_build(tmp_path):
    msg = refused(tmp_path, "services:\n  web:\n    command: echo oi\n")
    assert "'web'" in msg and "linha 2" in msg


@pytest.mark.parametrize("port", ["99999:80", "80:0", "abc", "1.2.3:80:80", "80/sctp"])
def test_bad_port(tmp_path, port):
    msg = refused(tmp_path, f"services:\n  web:\n    image: busybox\n    ports:\n      - \"{port}\"\n")
    assert "linha 5" in msg and port in msg


def test_other_refusals(tmp_path):
    assert "'dados'" in refused(tmp_path, "services:\n  w:\n    image: busybox\n    volumes: [dados:/d]\n")
    assert "'rede'" in refused(tmp_path, "services:\n  w:\n    image: busybox\n    networks: [rede]\n")
    assert "'sometimes'" in refused(tmp_path, "services:\n  w:\n    image: busybox\n    restart: sometimes\n")
    assert "linha 4" in refused(tmp_path, "services:\n  w:\n    image: busybox\n    mem_limit: lots\n")
    assert "services" in refused(tmp_path, "name: x\n")
    assert "'a b'" in refused(tmp_path, "services:\n  a b:\n    image: busybox\n")
    assert "relative" not in refused(tmp_path, "services:\n  w:\n    image: busybox\n    volumes: ['x:y']\n")
    with pytest.raises(LabkitError, match="compose.yaml"):
        load(tmp_path / "empty-dir-without-file")


def test_interpolation_and_dotenv(tmp_path, monkeypatch):
    monkeypatch.setenv("TAG", "from-shell")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    (tmp_path / ".env").write_text("TAG=from-dotenv\nPORT=9090\n")
    m = load(write(tmp_path, "services:\n  w:\n    image: busybox:${TAG}\n    ports: ['${PORT}:80']\n"
                             "    command: echo ${UNSET_VAR:-padrão} $$HOME\n"))
    w = m.services["w"]
    assert w.image == "busybox:from-shell" and w.ports == ["9090:80"]
    assert w.command == ["echo", "padrão", "$HOME"]
    with pytest.raises(LabkitError, match="UNSET_VAR"):
        load(write(tmp_path, "services:\n  w:\n    image: ${UNSET_VAR:?defina a imagem}\n"))


def test_find_file_and_project_names(tmp_path):
    write(tmp_path, "services: {}\n", "docker-compose.yml")
    assert find_file(tmp_path).name == "docker-compose.yml"
    write(tmp_path, "services: {}\n", "compose.yaml")
    assert find_file(tmp_path).name == "compose.yaml"  # compose.yaml wins, as Docker's order
    assert normalize("Minha App.2") == "minhaapp2"
    assert normalize("_-Web_Site") == "web_site"
    assert project_name(None, None, Path("/x/My_Project")) == "my_project"
    assert project_name("explicit", "declared", Path("/x/y")) == "explicit"
    assert project_name(None, "declared", Path("/x/y")) == "declared"
    with pytest.raises(LabkitError):
        project_name("Not Valid", None, Path("/x/y"))
    with pytest.raises(LabkitError, match="-p"):
        project_name(None, None, Path("/x/___"))


def test_config_hash_follows_the_service_not_its_line(tmp_path):
    a = load(write(tmp_path, "services:\n  w:\n    image: busybox\n")).services["w"]
    b = load(write(tmp_path, "# moved\n\nservices:\n  w:\n    image: busybox\n")).services["w"]
    c = load(write(tmp_path, "services:\n  w:\n    image: busybox\n    command: echo\n")).services["w"]
    assert config_hash(a, "sha256:1", {}) == config_hash(b, "sha256:1", {})
    assert config_hash(a, "sha256:1", {}) != config_hash(c, "sha256:1", {})
    assert config_hash(a, "sha256:1", {}) != config_hash(a, "sha256:2", {})  # a rebuilt image


def test_durations():
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("250ms") == 0.25
    assert parse_duration(5) == 5.0
    assert parse_duration("1h2m") == 3720.0
    assert parse_duration("soon") is None and parse_duration("") is None


def test_labels_and_filters():
    assert parse_labels({"a": 1, "b": None}) == {"a": "1", "b": ""}
    assert parse_labels(["a=1=2", "flag"]) == {"a": "1=2", "flag": ""}
    with pytest.raises(LabkitError):
        parse_labels(["=x"])
    doc = {"Name": "loja-web-1", "Id": "abc123", "State": {"Status": "running"},
           "Config": {"Labels": {"tier": "front", "com.docker.compose.project": "loja"}}}
    assert matches(doc, parse_filters(["label=tier"]))
    assert matches(doc, parse_filters(["label=tier=front", "label=com.docker.compose.project=loja"]))
    assert not matches(doc, parse_filters(["label=tier=back"]))
    assert not matches(doc, parse_filters(["label=tier", "label=other"]))  # labels: all must match
    assert matches(doc, parse_filters({"name": ["nope", "web"]}))           # names: any
    assert not matches(doc, parse_filters({"name": ["^web"]}))
    assert matches(doc, parse_filters(["status=running", "id=abc"]))
    with pytest.raises(LabkitError, match="'colour'"):
        parse_filters(["colour=red"])
    with pytest.raises(LabkitError):
        parse_filters(["label"])


def test_a_service_as_run_arguments(tmp_path):
    """What Project.up hands to labkit.run: contracts.md's names, the project's real names."""
    from labkit.compose.project import Project
    from labkit.compose.runargs import run_kwargs

    (tmp_path / "web.env").write_text("FROM_FILE=sim\n")
    proj = Project("loja", load(write(tmp_path, FULL)), out=lambda line: None)
    web = run_kwargs(proj, proj.model.services["web"], "h" * 64)
    assert web["network"] == "loja_front" and web["network_aliases"] == ["web"]
    assert web["volumes"] == ["loja_dados:/data:ro", f"{tmp_path / 'site'}:/www", "/cache", "loja_dados:/long:ro"]
    assert web["tmpfs"] == ["/run/cache:size=8m"]
    assert web["ports"] == ["8080:80", "127.0.0.1:5353:53/udp"]
    assert (web["memory"], web["cpus"], web["restart"], web["user"], web["workdir"]) == \
        ("64m", "0.5", "on-failure:3", "1000:1000", "/www")
    assert "healthcheck" not in web  # none in the file: the image's own, if any
    labels = web["labels"]
    assert labels["com.docker.compose.project"] == "loja" and labels["com.docker.compose.service"] == "web"
    assert labels["com.docker.compose.config-hash"] == "h" * 64 and labels["tier"] == "frontend"
    assert labels["com.docker.compose.project.config_files"] == str(tmp_path / "compose.yaml")
    db = run_kwargs(proj, proj.model.services["db"], "x")
    assert db["network"] == "loja_back" and db["network_aliases"] == ["db", "banco"]
    assert db["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping"] and "restart" not in db
    init = run_kwargs(proj, proj.model.services["init"], "x")
    assert init["network"] == "none" and "network_aliases" not in init
    assert init["entrypoint"] == ["sh", "-c"]


def test_config_yaml_round_trips_through_the_model(tmp_path):
    import yaml

    from labkit.compose.project import Project

    (tmp_path / "web.env").write_text("FROM_FILE=sim\n")
    proj = Project("loja", load(write(tmp_path, FULL)), out=lambda line: None)
    doc = yaml.safe_load(proj.config())
    assert doc["name"] == "loja" and list(doc["services"]) == ["web", "db", "init"]
    assert doc["services"]["web"]["depends_on"]["db"] == {"condition": "service_healthy"}
    assert doc["services"]["web"]["deploy"]["resources"]["limits"] == {"memory": "64m", "cpus": "0.5"}
    assert doc["services"]["web"]["container_name"] == "loja-web-1"
    assert doc["networks"]["back"] == {"name": "loja_back"} and doc["volumes"]["dados"] == {"name": "loja_dados"}
    # what config prints is a compose file again, with the same meaning
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "web.env").write_text("FROM_FILE=sim\n")
    again = load(write(tmp_path / "again", proj.config().replace(str(tmp_path), str(tmp_path / "again"))))
    assert again.order() == proj.model.order()
