"""notebooks/nbval_sanitize.cfg: what varies is replaced, what the course shows stays."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CFG = ROOT / "notebooks" / "nbval_sanitize.cfg"


def patterns() -> list[tuple[str, str]]:
    text = CFG.read_text(encoding="utf-8")
    try:
        from nbval.plugin import get_sanitize_patterns
    except ImportError:  # same parsing as nbval 0.10/0.11
        def get_sanitize_patterns(string):
            return re.findall("^regex: (.*)$\n^replace: (.*)$", string, flags=re.MULTILINE)
    return get_sanitize_patterns(text)


def sanitize(s: str) -> str:
    for regex, replace in dict(patterns()).items():   # nbval keeps them in an OrderedDict
        s = re.sub(regex, replace, s)
    return s


def test_every_pair_is_read_and_compiles():
    pairs = patterns()
    text = CFG.read_text(encoding="utf-8")
    assert len(pairs) == len(re.findall(r"^regex: ", text, flags=re.M)) >= 20
    assert len({r for r, _ in pairs}) == len(pairs), "duplicate regex: nbval would keep one"
    for regex, replace in pairs:
        re.compile(regex)
        assert regex == regex.rstrip() and replace == replace.rstrip(), regex
    assert pairs[0][0].startswith("data:image"), "the data-URL pattern must come first"


VARIES = [
    # (machine A, machine B): both sides must sanitize to the same text
    ("3f2a9c1b7d4e8a5f6b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a",
     "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c"),
    ("<Container 3f2a9c1b7d4e web running>", "<Container 9d0e1f2a3b4c web running>"),
    ("root@3f2a9c1b7d4e:/# ", "root@a0b1c2d3e4f5:/# "),
    ("sha256:" + "ab" * 32, "sha256:" + "cd" * 32),
    ("digest sha256:ab12cd34ef56", "digest sha256:0099aabbccdd"),
    ("pid pid:[4026532254] (host pid:[4026531836])", "pid pid:[4026532301] (host pid:[4026531836])"),
    ("No hospedeiro, o PID 20116 é o processo", "No hospedeiro, o PID 731 é o processo"),
    ("Process(pid=20116, name='sleep')", "Process(pid=99, name='sleep')"),
    ("{'Pid': 20116, 'Running': True}", "{'Pid': 4242, 'Running': True}"),
    ("uso: 3,4 MiB de 64 MiB", "uso: 12,9 MiB de 64 MiB"),
    ("CPU: 49,8 % (meta: 50 %)", "CPU: 51,2 % (meta: 50 %)"),
    ("levou 0,52 s", "levou 1,07 s"),
    ("em 12 ms", "em 340 ms"),
    ("1.23 ms ± 4.5 µs per loop (mean ± std. dev. of 7 runs, 1,000 loops each)",
     "880 µs ± 12.1 µs per loop (mean ± std. dev. of 7 runs, 1 loop each)"),
    ("real\t0m0,003s", "real\t0m1,250s"),
    ("criado em 2026-11-28T10:04:27.123456+00:00", "criado em 2027-01-02T23:59:01Z"),
    ("Sat Nov 28 10:04:27 UTC 2026", "Mon Jan  5 09:00:00 -03 2027"),
    ("há 3 segundos", "há 45 segundos"),
    ("há menos de um segundo", "há 1 segundo"),
    ("Up Less than a second", "Up About a minute"),
    ("Less than a second ago", "2 minutes ago"),
    # a cell that varies moves the columns after it (compose ps in notebook 06)
    ("web   há 1 segundo             Ativo há 1 segundo (saudável)",
     "web   há menos de um segundo   Ativo há menos de um segundo (saudável)"),
    ("NAME          CREATED\ncurso-web-1   há 1 segundo", "NAME          CREATED\ncurso-web-1   há menos de um segundo"),
    ("<object object at 0x7f3a2c1d5e90>", "<object object at 0x7fab00112233>"),
    ("dentro: 6.18.44-fc-v857\nfora: 6.18.44-fc-v857",
     "dentro: 6.1.0-18-amd64\nfora: 6.1.0-18-amd64"),
    ("6.18.44\n", "6.9.3\n"),
    ("Linux minha-caixa 6.18.44-fc-v857 #1 SMP PREEMPT_DYNAMIC Fri Nov 27 2026 x86_64 GNU/Linux",
     "Linux minha-caixa 6.1.0-18-amd64 #1 SMP Debian 6.1.76-1 (2024-02-01) x86_64 GNU/Linux"),
    ("/tmp/tmpab12_x9z/merged", "/tmp/tmp0q9w8e7r/merged"),
    ("LABKIT_HOME=/tmp/labkit-test-ab12cd34", "LABKIT_HOME=/tmp/labkit-test-zz99yy88"),
    # root's engine / a student's (a delegated cgroup below lkclass/<user>), v1 and v2
    ("  /sys/fs/cgroup/cpu/labkit/" + "ab" * 32, "  /sys/fs/cgroup/cpu/lkclass/ana/labkit/" + "cd" * 32),
    ("/sys/fs/cgroup/cpuacct/labkit/x", "/sys/fs/cgroup/cpuacct/lki29c18b/lki29c18b00/labkit/x"),
    ("/sys/fs/cgroup/labkit/" + "ab" * 32, "/sys/fs/cgroup/lkclass/ana/labkit/" + "cd" * 32),
    ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==",
     "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFklEQVR4nGNkYPj/n4GBgYGJgYEBAAkTAQcqd8xQAAAAAElFTkSuQmCC"),
]


@pytest.mark.parametrize("a,b", VARIES)
def test_varying_output_compares_equal(a, b):
    assert a != b
    assert sanitize(a) == sanitize(b)


KEPT = [
    # figures the notebooks show on purpose: a change here must fail nbval
    'O limite de memória de "pouca-memoria" é 64 MiB.',
    'A cota de CPU de "meia-cpu" é 0,5 núcleo(s).',
    "cpu.max: 50000 100000",
    "memory.max 67108864",
    "pids.max 10",
    "100 % = um núcleo inteiro",
    "PID   USER     TIME  COMMAND\n    1 root      0:00 sleep 600",
    "dentro do contêiner o sleep é o PID 1",
    "CLONE_NEWPID = 0x20000000",
    "código de saída 137",
    "Python 3.11.2",
    "BusyBox v1.36.1 (Debian 1:1.36.1-9) multi-call binary.",
    "localhost/busybox:latest",
    "['etc', 'nota.txt']",
    "minha-caixa",
    "stop espera 10 s",
    "Dica 1 de 2: O parâmetro é cpus= e recebe um número de núcleos.",
    "decade 1234567890",
    "feedface",
    "/sys/fs/cgroup/cpu/labkit/x",       # root's paths are the reference: left as they are
    "/sys/fs/cgroup/labkit/x",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
]


@pytest.mark.parametrize("text", KEPT)
def test_figures_shown_on_purpose_stay(text):
    # every word and figure stays, and so does each line's indentation; only the padding
    # between columns may read differently (29-column-padding)
    out = sanitize(text)
    assert out.split() == text.split()
    assert [ln[:len(ln) - len(ln.lstrip())] for ln in out.splitlines()] == \
        [ln[:len(ln) - len(ln.lstrip())] for ln in text.splitlines()]


def test_kernel_and_busybox_versions():
    # the kernel version is replaced, busybox's own version line is not
    assert sanitize("6.18.44-fc-v857") == "KERNEL"
    assert "v1.36.1" in sanitize("BusyBox v1.36.1 multi-call binary.")
