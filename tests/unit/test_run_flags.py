"""`labkit run`'s fast parser agrees with argparse, or steps aside.

``labkit.cli.run_flags.parse_run`` parses ``run`` without argparse so the
command starts faster. For every command line it accepts, the result must be
exactly what argparse gives; for the others it must return None, so that
argparse prints its own usage and error.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from labkit.cli import build_parser
from labkit.cli.run_flags import parse_run

ACCEPTED = [
    ["busybox"],
    ["busybox", "echo", "olá"],
    ["--rm", "busybox", "/bin/true"],
    ["-d", "--name", "web", "busybox", "sleep", "100"],
    ["-it", "busybox", "sh"],
    ["-dit", "--rm", "busybox"],
    ["-e", "A=1", "-eB=2", "-e=C=3", "--env", "D=4", "--env=E=5", "busybox", "env"],
    ["-v", "/tmp:/data:ro", "--volume=/etc:/e", "busybox", "ls"],
    ["-m", "64m", "--cpus", "0.5", "--pids-limit", "20", "-c", "512", "busybox"],
    ["-m64m", "--memory-swap=128m", "--cpuset-cpus", "0", "busybox"],
    ["--pids-limit=0", "busybox"],
    ["--network", "host", "busybox", "ip", "addr"],
    ["--network=none", "--hostname", "h1", "-w", "/tmp", "-u", "1000:1000", "busybox", "id"],
    ["--entrypoint", "/bin/echo", "busybox", "a", "b"],
    ["busybox", "sh", "-c", "echo --rm -d"],          # after the image, everything is the command
]

DEFERRED = [
    [],                                # no image
    ["--rm"],                          # no image
    ["-h"],
    ["--help"],
    ["--r", "busybox"],                # an abbreviation: argparse decides
    ["--bogus", "busybox"],
    ["-x", "busybox"],
    ["-p", "busybox"],  # -p needs a value: argparse says so
    ["--pids-limit", "many", "busybox"],  # not a number
    ["-c", "1.5", "busybox"],
    ["--memory-swap", "-1", "busybox"],  # a value that looks like a flag
    ["--name"],                          # a missing value
    ["-e"],
    ["--rm=yes", "busybox"],
    ["--rm", "--", "busybox", "ls", "-l"],  # "--": argparse's own rules
    ["-i", "busybox", "--", "x"],
]


def argparse_namespace(argv: list[str]) -> dict:
    args = build_parser("run").parse_args(["run", *argv])
    values = vars(args)
    values.pop("func")
    return values


@pytest.mark.parametrize("argv", ACCEPTED, ids=" ".join)
def test_same_result_as_argparse(argv):
    fast = parse_run(argv)
    assert fast is not None, f"the fast parser should accept {argv}"
    assert vars(fast) == argparse_namespace(argv)


@pytest.mark.parametrize("argv", DEFERRED, ids=lambda a: " ".join(a) or "(empty)")
def test_defers_to_argparse(argv):
    assert parse_run(argv) is None


def test_run_does_not_import_argparse_or_gettext(tmp_path):
    """A successful `labkit run` parses and connects without argparse, gettext or pathlib.

    Each of them costs milliseconds of start-up (bench/bench_runtime.py). The
    engine socket does not exist here, so the run stops at connecting: that is
    after parsing, which is what this checks.
    """
    code = (
        "import sys, os\n"
        "from labkit.engine import client\n"
        "def stop(*a, **k): raise SystemExit(sorted(m for m in ('argparse', 'gettext', 'pathlib', 'typing')"
        " if m in sys.modules))\n"
        "client.connect = stop\n"
        "from labkit.cli import main\n"
        "main(['run', '--rm', '-e', 'A=1', 'busybox', 'true'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"LABKIT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr
