"""Build the class's single-user image (docs/classroom/Dockerfile.aluno) with labkit, and
optionally hand it to podman to show that the same OCI image runs there.

    .venv/bin/python tools/classroom_image.py [--tag curso/aluno:1] [--context DIR] [--podman]

The context gets wheels/ (labkit built from this tree plus its dependencies, downloaded by this
venv's pip: a package registry, used for installation only), curso/ (the notebooks) and
jupyter/overrides.json. RUN needs the Debian archive for apt-get: the build uses --network host.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEPENDENCIES = [  # pyproject.toml's dependencies + the extras "lab" and "classroom"
    "psutil>=5.9", "matplotlib>=3.7", "ipywidgets>=8.0", "ipython>=8.0", "dockerfile-parse>=2.0",
    "pyroute2>=0.7", "dnslib>=0.9", "jupyterlab>=4.0", "jupyterlab-language-pack-pt-br>=4.0",
    "ipykernel>=6.0", "jupyterhub>=5.0", "jupyterhub-idle-culler>=1.2",
]


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def context(ctx: Path) -> None:
    wheels = ctx / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not any(wheels.glob("labkit-*.whl")):
        run([str(BIN / "pip"), "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)])
    # wheels for the image's Python (Debian 12: CPython 3.11, x86_64)
    run([str(BIN / "pip"), "download", "-q", "-d", str(wheels), "--only-binary=:all:",
         "--python-version", "3.11", "--implementation", "cp",
         "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
         "--platform", "manylinux_2_28_x86_64", "--platform", "linux_x86_64", *DEPENDENCIES])
    shutil.copy(ROOT / "docs/classroom/Dockerfile.aluno", ctx / "Dockerfile")
    shutil.copy(ROOT / "jupyter/overrides.json", ctx / "overrides.json")
    if (ctx / "curso").exists():
        shutil.rmtree(ctx / "curso")
    (ctx / "curso").mkdir()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(nb, ctx / "curso" / nb.name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", default="curso/aluno:1")
    ap.add_argument("--context", default=None, help="build context (default: a temp dir)")
    ap.add_argument("--podman", action="store_true",
                    help="load the image into podman and run `labkit --help` and "
                         "`jupyterhub-singleuser --version` in it")
    args = ap.parse_args()
    ctx = Path(args.context or tempfile.mkdtemp(prefix="lk-aluno-"))
    context(ctx)
    run([str(BIN / "labkit"), "build", "--network", "host", "-t", args.tag, str(ctx)])
    if args.podman:
        podman_check(ctx, args.tag)
    return 0


def podman_check(ctx: Path, tag: str) -> None:
    """The image in a podman store of its own (not the machine's), run, then removed."""
    import resource

    archive = ctx / "aluno.tar"
    store = ctx / "podman"
    podman = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run")]
    # podman's default nofile and nproc are above this machine's hard limits (runc then fails
    # with "error setting rlimit"); nproc equal to the hard limit failed too, 4096 runs
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limits = ["--ulimit", "nproc=4096:4096"]
    if hard != resource.RLIM_INFINITY:
        limits += ["--ulimit", f"nofile={hard}:{hard}"]
    try:
        run([str(BIN / "labkit"), "save", "-o", str(archive), tag])
        run([*podman, "load", "-i", str(archive)])
        for cmd in (["labkit", "--help"], ["jupyterhub-singleuser", "--version"],
                    ["sh", "-c", "id -un && ls curso && grep -q pt_BR "
                                 "/opt/venv/share/jupyter/lab/settings/overrides.json"]):
            run([*podman, "run", "--runtime", "runc", "--rm", "--network", "none",
                 *limits, f"localhost/{tag}", *cmd])
    finally:
        subprocess.run([*podman, "rmi", "-af"], capture_output=True)
        subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
        archive.unlink(missing_ok=True)
        shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
