"""Builds with RUN (real build containers), diff, commit, history, image prune."""
from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

import labkit
from labkit.errors import LabkitError
from labkit.images.build import build, build_result
from labkit.images.store import Store

pytestmark = pytest.mark.root


def _members(desc: dict) -> dict[str, tarfile.TarInfo]:
    data = Store().layout.read_blob(desc["digest"])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as tf:
        return {m.name: m for m in tf.getmembers()}


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, content in (files or {}).items():
        (ctx / name).write_text(content)
    return ctx


def test_run_layers_whiteouts_and_cache(tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox
ARG WHO=mundo
RUN echo "olá $WHO" > /f && mkdir -p /opt/app && echo 1 > /opt/app/old
RUN ["/bin/sh", "-c", "rm /etc/group && rm -rf /opt/app && mkdir /opt/app && echo 2 > /opt/app/new"]
WORKDIR /srv/www
RUN pwd > here && id -u > uid
USER nobody
RUN id -un > /tmp/who
COPY a.txt .
CMD ["cat", "/f"]
""", {"a.txt": "A\n"})
    lines: list[str] = []
    res = build_result(ctx, "itest/run:1", out=lines.append, build_args={"WHO": "curso"})
    img = res.image
    assert lines[0] == "Passo 1/10 : FROM busybox"
    assert any(l.startswith("Passo 3/10 : RUN echo") for l in lines)
    # busybox + 3 RUN with changes + WORKDIR (missing dir) + RUN(USER) + COPY
    assert len(img.layers) == 1 + 5 + 1
    m1 = _members(img.layers[1])
    assert {"f", "opt/app/old"} <= set(m1)
    m2 = _members(img.layers[2])
    assert "etc/.wh.group" in m2  # deleted file: a whiteout entry
    assert "opt/app/.wh..wh..opq" in m2 and "opt/app/new" in m2  # replaced dir: opaque
    assert "opt/app/old" not in m2
    out = labkit.run(img.ref, ["sh", "-c", "cat /f /srv/www/here /srv/www/uid /tmp/who; ls /opt/app; "
                                           "test -e /etc/group || echo sem-group"])
    assert out.exit_code == 0, out.stderr
    assert out.stdout.split() == ["olá", "curso", "/srv/www", "0", "nobody", "new", "sem-group"]
    assert labkit.run(img.ref).stdout == "olá curso\n"
    # the build arg is not in the image's Env
    assert not any(e.startswith("WHO=") for e in img.config["config"].get("Env", []))
    # rebuild: everything cached, no container, no layer
    res2 = build_result(ctx, "itest/run:1", quiet=True, build_args={"WHO": "curso"})
    assert res2.layers_written == 0 and res2.image.id == img.id
    # another build arg value misses the cache of the RUN steps that see it
    res3 = build_result(ctx, "itest/run:2", quiet=True, build_args={"WHO": "turma"})
    assert res3.layers_written == 6
    assert labkit.run(res3.image.ref).stdout == "olá turma\n"
    # no leftover intermediate images in the store
    assert all(i.ref for i in Store().list() if i.digest in {res.image.digest, res3.image.digest}) 
    assert not [i for i in Store().list() if i.ref is None and i.digest != img.digest]
    for ref in ("itest/run:1", "itest/run:2"):
        Store().remove(ref)


def test_reproducible_with_run(tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo hi > /f && mkdir /d && touch /d/x\nCOPY a.txt /a.txt\n",
               {"a.txt": "a\n"})
    one = build(ctx, "itest/repro:1", no_cache=True, quiet=True)
    two = build(ctx, "itest/repro:2", no_cache=True, quiet=True)
    assert one.digest == two.digest and one.layers == two.layers
    Store().remove("itest/repro:1")
    Store().remove("itest/repro:2")


def test_failing_run_names_the_line(tmp_path):
    ctx = _ctx(tmp_path, "FROM busybox\n\nRUN echo antes && exit 3\n")
    with pytest.raises(LabkitError) as exc:
        build(ctx, "itest/fail:1", quiet=True)
    msg = str(exc.value)
    assert "linha 3" in msg and "RUN" in msg and "3" in msg
    assert not [i for i in Store().list() if i.ref is None]


def test_multistage_copy_from_run_stage(tmp_path):
    ctx = _ctx(tmp_path, """\
FROM busybox AS builder
RUN mkdir /out && echo compilado > /out/app && chmod 755 /out/app
FROM scratch
COPY --from=builder /out/app /app
COPY --from=builder /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox", "cat", "/app"]
""")
    img = build(ctx, "itest/multi:1", quiet=True)
    assert len(img.layers) == 2
    assert labkit.run(img.ref).stdout == "compilado\n"
    Store().remove("itest/multi:1")


def test_diff_commit_history_prune(tmp_path, capsys):
    from labkit.cli import main
    from labkit.images.changes import commit, diff, history, prune_images

    r = labkit.run("busybox", ["sh", "-c", "echo x > /etc/novo; echo y >> /etc/passwd; rm /etc/group; "
                                          "mkdir -p /var/tmp/a/b; rm -rf /home && mkdir /home && touch /home/h"],
                   name="itest-diff", remove=False)
    try:
        assert r.exit_code == 0, r.stderr
        changes = diff("itest-diff")
        assert ("A", "/etc/novo") in changes and ("C", "/etc/passwd") in changes
        assert ("D", "/etc/group") in changes and ("C", "/etc") in changes
        assert ("A", "/var/tmp/a") in changes and ("A", "/var/tmp/a/b") in changes
        assert ("C", "/home") in changes and ("A", "/home/h") in changes
        assert main(["diff", "itest-diff"]) == 0
        assert "D /etc/group" in capsys.readouterr().out.splitlines()
        img = commit("itest-diff", "itest/committed:1", message="meu commit")
        out = labkit.run(img.ref, ["sh", "-c", "cat /etc/novo; test -e /etc/group || echo gone"])
        assert out.stdout.split() == ["x", "gone"]
        rows = history(img.ref)
        assert rows[0].comment == "meu commit" and rows[0].size > 0
        assert main(["history", img.ref]) == 0
        assert "meu commit" in capsys.readouterr().out
        # an untagged image (the tag moves away) is removed by image prune
        assert main(["commit", "itest-diff", "itest/committed:1"]) == 0
        capsys.readouterr()
        dangling = [i for i in Store().list() if i.ref is None]
        assert dangling
        gone = prune_images()
        assert {d.digest for d in dangling} <= set(gone)
        assert not [i for i in Store().list() if i.ref is None]
        Store().remove("itest/committed:1")
    finally:
        labkit.get("itest-diff").remove(force=True)


def test_cli_build_and_bad_dockerfile(tmp_path, capsys):
    from labkit.cli import main

    ctx = _ctx(tmp_path, "FROM busybox\nRUN echo cli > /c\n")
    assert main(["build", "-t", "itest/cli:1", str(ctx)]) == 0
    out = capsys.readouterr().out
    assert "Passo 2/2 : RUN echo cli > /c" in out and "Marcada como itest/cli:1" in out
    assert main(["build", "-q", "-t", "itest/cli:1", str(ctx)]) == 0
    assert capsys.readouterr().out.strip().startswith("sha256:")
    (ctx / "Dockerfile").write_text("FROM busybox\nRUNN echo\n")
    assert main(["build", str(ctx)]) == 125
    err = capsys.readouterr().err
    assert "linha 2" in err and "RUNN" in err
    Store().remove("itest/cli:1")
