"""podman for the course's comparisons: a second, real engine with all of its state private.

Notebook 08 runs the same image with podman (another engine) and times it against
labkit. Nothing of a podman the machine already has is touched: ``--root``,
``--runroot`` and ``--tmpdir`` live under one temporary directory, the containers'
cgroups under one parent of our own, and :meth:`Podman.close` removes all of it
(containers, mounts, cgroups, the directory).

Two settings this kind of host needs (machine notes): ``--runtime runc`` (crun refuses
a cgroup v1/v2 hybrid) and ``default_ulimits`` no higher than the host's hard limits
(podman's default ``nofile`` is above them and runc would fail to set it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _



def containers_conf() -> str:
    """podman's ``containers.conf``: its containers' ulimits at most our own hard limits
    (podman asks nofile=1048576 by default; runc cannot raise a limit above the hard one)."""
    import resource

    limits = []
    for name, res, cap in (("nofile", resource.RLIMIT_NOFILE, 1 << 20),
                           ("nproc", resource.RLIMIT_NPROC, 4096)):
        hard = resource.getrlimit(res)[1]
        n = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        limits.append(f'"{name}={n}:{n}"')
    return f"[containers]\ndefault_ulimits = [{', '.join(limits)}]\n"


class Podman:
    """``podman`` with its own state in a temporary directory; call it with podman's
    arguments: ``pm("images")``, ``pm.run("--rm", "busybox", "true")``."""

    def __init__(self, prefix: str = "lkpm-") -> None:
        exe = shutil.which("podman")
        if exe is None:
            raise LabkitError(_("podman not found (Debian: apt-get install podman)"))
        # short and in /tmp: podman limits the runroot's path length
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
        self.dir.chmod(0o755)
        (self.dir / "containers.conf").write_text(containers_conf())
        self.cgroup = "labkit-" + self.dir.name.lower()
        self.env = dict(os.environ, CONTAINERS_CONF=str(self.dir / "containers.conf"),
                        TMPDIR=str(self.dir))
        self.base = [exe, "--root", str(self.dir / "root"), "--runroot", str(self.dir / "run"),
                     "--tmpdir", str(self.dir / "tmp"), "--runtime", "runc",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                     "--storage-driver", "overlay"]

    def __call__(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run ``podman ARGS``; its standard output (a failure raises, with podman's message)."""
        r = subprocess.run(self.base + [str(a) for a in args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabkitError(_("podman %(args)s failed (%(code)s): %(err)s")
                              % {"args": " ".join(map(str, args)), "code": r.returncode,
                                 "err": r.stderr.strip()[-500:]})
        return r.stdout

    def run(self, *args: str) -> str:
        """``podman run`` with no network and the containers' cgroups under our own parent."""
        return self("run", "--network", "none", "--cgroup-parent", "/" + self.cgroup, *args)

    def close(self) -> None:
        """Remove every container, then podman's state, leftover mounts, our cgroups and the directory."""
        if not self.dir.exists():
            return
        self("rm", "-af", "-t", "0", check=False)
        self("system", "reset", "-f", check=False)
        prefix = str(self.dir) + "/"
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
        for point in reversed(points):
            subprocess.run(["umount", "-l", point], check=False, capture_output=True)
        cgroot = Path("/sys/fs/cgroup")
        for top in [cgroot / self.cgroup] + [h / self.cgroup for h in cgroot.iterdir() if h.is_dir()]:
            if top.is_dir():
                for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                    _rmdir(d)
                _rmdir(top)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Podman":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rmdir(path: Path) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass
