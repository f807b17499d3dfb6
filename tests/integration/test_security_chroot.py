"""A chroot cannot host a safe container, and labkit says so instead of trying.

``pivot_root`` swaps the mount at the process's root; in a chroot (even one
onto a bind mount, where / *looks* like a mount point) the host's tree stays
above the container's root, reachable by ".." after a chroot or by ``setns``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_run_in_a_chroot_onto_a_bind_mount_is_refused():
    home = tempfile.mkdtemp(prefix="labkit-chroot-")
    rbind = tempfile.mkdtemp(prefix="labkit-rb-")  # mounted on only inside the unshared namespace
    script = (
        f"set -e; r={rbind}; mount --rbind / $r; mount --make-rprivate $r; "
        f"chroot $r sh -c 'cd {ROOT} && LABKIT_HOME={home} {sys.executable} -m labkit run --rm busybox true; "
        f"echo rc=$?; LABKIT_HOME={home} {sys.executable} -m labkit engine stop >/dev/null'"
    )
    p = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120, env={"LABKIT_LANG": "pt_BR", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    subprocess.run(["rm", "-rf", home])
    os.rmdir(rbind)  # the namespace, and its mounts, died with the unshare
    print(p.stdout, p.stderr)
    assert "rc=125" in p.stdout
    assert "não é a raiz deste namespace de montagem" in p.stderr
