"""How -v, --mount, --tmpfs and --volumes-from are read (labkit/volspec.py): no engine, no root."""
from __future__ import annotations

import pytest

from labkit.errors import LabkitError
from labkit.volspec import (check_volume_name, normalize, parse_mount, parse_tmpfs, parse_volume,
                            parse_volumes, parse_volumes_from, tmpfs_options)


def short(m: dict) -> tuple:
    return m["type"], m["source"], m["target"], m["readonly"]


def test_v_forms(tmp_path):
    assert short(parse_volume("dados:/var/lib/db")) == ("volume", "dados", "/var/lib/db", False)
    assert parse_volume("dados:/d:ro")["mode"] == "ro"  # as given: HostConfig.Binds shows it
    assert short(parse_volume("dados:/d:ro")) == ("volume", "dados", "/d", True)
    assert parse_volume("dados:/d:nocopy")["nocopy"] is True
    assert short(parse_volume("/anonimo")) == ("volume", "", "/anonimo", False)
    assert short(parse_volume(f"{tmp_path}:/h:ro")) == ("bind", str(tmp_path), "/h", True)
    # the engine's old triple still reads
    assert short(parse_volume([str(tmp_path), "/h", True])) == ("bind", str(tmp_path), "/h", True)


def test_v_relative_host_path_is_made_absolute(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    assert short(parse_volume("./sub:/s")) == ("bind", str(tmp_path / "sub"), "/s", False)


@pytest.mark.parametrize("spec,text", [
    ("a/b:/x", "a/b"),                      # a name with / (Docker: use an absolute path)
    ("a:/x", '"a"'),                         # one character: Docker's pattern needs two
    ("dados:relativo", "absolut"),
    ("dados:/", "dados:/"),
    ("dados:/..", "dados:/.."),
    ("a:b:c:d", "a:b:c:d"),
    ("relativo", "relativo"),                # one part that is not a path
    ("/nao/existe/mesmo:/x", "/nao/existe/mesmo"),
    ("/tmp:/x:nocopy", "nocopy"),
])
def test_v_refused(spec, text):
    with pytest.raises(LabkitError) as info:
        parse_volume(spec)
    assert text in str(info.value) and info.value.exit_code == 125


@pytest.mark.parametrize("name", ["dados", "db_1", "x.y-z", "0a"])
def test_good_names(name):
    assert check_volume_name(name) == name


@pytest.mark.parametrize("name", ["", "a", "..", ".", "../etc", "a/b", "/abs", "-x", "_x", "a b", "á1"])
def test_bad_names(name):
    with pytest.raises(LabkitError):
        check_volume_name(name)


def test_mount_keys_and_aliases(tmp_path):
    m = parse_mount("type=volume,source=dados,target=/d,readonly")
    assert short(m) == ("volume", "dados", "/d", True) and m["nocopy"] is False
    m = parse_mount("type=volume,src=dados,dst=/d,ro=true,volume-nocopy")
    assert short(m) == ("volume", "dados", "/d", True) and m["nocopy"] is True
    assert short(parse_mount("target=/anon")) == ("volume", "", "/anon", False)  # type defaults to volume
    assert short(parse_mount(f"type=bind,source={tmp_path},destination=/h,readonly=false")) == \
        ("bind", str(tmp_path), "/h", False)
    m = parse_mount("type=tmpfs,target=/t,tmpfs-size=64m,tmpfs-mode=1770")
    assert short(m) == ("tmpfs", "", "/t", False)
    assert m["options"] == f"size={64 << 20},mode=1770"


@pytest.mark.parametrize("spec,text", [
    ("type=nfs,target=/x", "type"),
    ("type=volume,source=dados", "target"),
    ("type=volume,source=..,target=/x", '".."'),
    ("type=volume,source=dados,target=/x,cor=azul", "cor"),
    ("type=bind,target=/x", "source"),
    ("type=bind,source=relativo,target=/x", "absolut"),
    ("type=tmpfs,source=x,target=/t", "tmpfs"),
    ("type=tmpfs,target=/t,tmpfs-size=muito", "muito"),
    ("type=bind,source=/tmp,target=/x,volume-nocopy", "volume-nocopy"),
    ("type=volume,target=/x,tmpfs-size=1m", "tmpfs-size"),
    ("type=volume,target=/x,readonly=talvez", "talvez"),
    ("type=volume,target=/x,volume-driver=nfs", "local"),
])
def test_mount_refused(spec, text):
    with pytest.raises(LabkitError) as info:
        parse_mount(spec)
    assert text in str(info.value) and info.value.exit_code == 125


def test_tmpfs_forms():
    (m,) = parse_tmpfs(["/run:size=64m,mode=1777,noexec"])
    assert short(m) == ("tmpfs", "", "/run", False)
    assert m["options"] == f"size={64 << 20},mode=1777" and m["flags"] == ["noexec"]
    (m,) = parse_tmpfs("/t")
    assert m["options"] == "" and m["target"] == "/t"
    (m,) = parse_tmpfs({"/t": "size=1k,ro"})
    assert m["readonly"] is True and m["options"] == "size=1024"


@pytest.mark.parametrize("text,word", [("size=abc", "abc"), ("size=0", "0"), ("size=-1m", "-1m"),
                                       ("mode=999", "999"), ("cor=azul", "cor=azul"), ("rapido", "rapido")])
def test_tmpfs_options_refused(text, word):
    with pytest.raises(LabkitError) as info:
        tmpfs_options(text, f"/t:{text}")
    assert word in str(info.value)


def test_volumes_from():
    assert parse_volumes_from(["db", "web:ro", "x:rw"]) == ["db", "web:ro", "x:rw"]
    assert parse_volumes_from("db") == ["db"]
    for bad in ["db:rx", ":ro", ""]:
        with pytest.raises(LabkitError):
            parse_volumes_from([bad])


def test_parse_volumes_dict_and_string(tmp_path):
    got = parse_volumes({str(tmp_path): {"bind": "/h", "mode": "ro"}, "dados": "/d"})
    assert [short(m) for m in got] == [("bind", str(tmp_path), "/h", True), ("volume", "dados", "/d", False)]
    assert [short(m) for m in parse_volumes("dados:/d")] == [("volume", "dados", "/d", False)]


def test_normalize_checks_a_raw_request_again():
    """The engine re-reads every item: a request that skipped the client is checked the same."""
    assert short(normalize({"type": "volume", "source": "dados", "target": "/d/"})) == \
        ("volume", "dados", "/d", False)
    for bad in [{"type": "volume", "source": "../../etc", "target": "/d"},
                {"type": "bind", "source": "relativo", "target": "/d"},
                {"type": "bind", "source": "/tmp", "target": "/"},
                {"type": "tmpfs", "target": "/t", "options": "size=nada"},
                {"type": "overlay", "target": "/t"}]:
        with pytest.raises(LabkitError):
            normalize(bad)
