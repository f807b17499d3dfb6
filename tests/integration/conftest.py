"""Integration tests run real containers: they need root, and leave nothing behind.

The autouse fixture ``no_leftovers`` compares, before and after every test,
the host's mount table, every cgroup directory named ``*labkit*``, the
processes that descend from the engine, the state directories under
``$LABKIT_HOME/containers``, what a VM (``labkit.vm``) may leave: a QEMU
started by this test session (a descendant of it, or booting a disk or an
initramfs of its own), a temporary initramfs or half-made root disk; and the
network plumbing: labkit's links (bridges ``lkbr-*``, veths ``lkv*``), the chains of
nftables' ``inet labkit`` table and the address leases; and the volume directories under
``$LABKIT_HOME/volumes`` (an anonymous volume of a ``--rm`` container must go with it). This home's default ``bridge``
network, made on first use and kept like Docker's, is not a leftover.
A test that creates a container must remove it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from requirements import skip_here

if os.geteuid() != 0:
    skip_here("integration tests need root", allow_module_level=True)


def _mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {" ".join(line.split()[3:5]) for line in f}


def _spare() -> dict:
    """The engine's spare (the next container's PID 1, made ahead): not a leftover."""
    from labkit.engine import client

    try:
        return client.request({"op": "ping"}).get("spare") or {}
    except Exception:  # noqa: BLE001 - no engine: no spare
        return {}


def _cgroups(spare: dict) -> set[str]:
    """Cgroup directories of this home's containers (the engine's ``inventory``)
    that exist although their container is not running, plus anything else named
    ``*labkit*`` except the ``labkit`` parent that every engine on the machine shares
    (checked once at the end of the session, in ``tests/conftest.py``).
    """
    from labkit import paths

    found = set()
    for root, dirs, _files in os.walk("/sys/fs/cgroup"):
        depth = root.count("/") - 3
        for d in dirs:
            if "labkit" in d and d != "labkit":
                found.add(os.path.join(root, d))
        if spare and root.endswith("/labkit"):
            found.discard(os.path.join(root, spare["id"]))
        if depth >= 3:
            dirs[:] = []
    try:
        with open(paths.home() / "inventory") as f:
            names = {line.split()[1] for line in f if line.strip()}
    except FileNotFoundError:
        names = set()
    running = set()
    cdir = paths.containers_dir()
    for name in names:
        cid = name.rsplit("/", 1)[-1]
        try:
            with open(cdir / cid / "container.json") as f:
                if '"Status": "running"' in f.read():
                    running.add(name)
        except OSError:
            pass
    if spare:
        running.add(f"labkit/{spare['id']}")
    for ctrl in os.listdir("/sys/fs/cgroup"):
        for name in names - running:
            if os.path.isdir(os.path.join("/sys/fs/cgroup", ctrl, name)):
                found.add(os.path.join("/sys/fs/cgroup", ctrl, name))
    return found


def _engine_descendants(spare: dict) -> set[int]:
    import psutil

    from labkit import paths

    pids: set[int] = set()
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if "labkit.engine" in cmd and str(paths.home()) in cmd:
                pids.update(child.pid for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    return pids - {spare.get("pid")}


def _state_dirs(spare: dict) -> set[str]:
    from labkit import paths

    d = paths.containers_dir()
    return (set(os.listdir(d)) if d.exists() else set()) - {spare.get("id")}


def _qemus() -> set[str]:
    """QEMU processes of this session: descendants of pytest, or orphans whose command line
    names this ``$LABKIT_HOME`` (the root disk) or one of our temporary initramfs files."""
    import psutil

    from labkit import paths

    ours = {p.pid for p in psutil.Process().children(recursive=True)}
    mine = (str(paths.home()), *_vm_temp_files())
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if not (proc.info["name"] or "").startswith("qemu"):
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.pid in ours or any(m in cmd for m in mine):
                found.add(f"{proc.pid} {cmd[:120]}")
        except psutil.Error:
            continue
    return found


def _vm_temp_files() -> set[str]:
    import glob
    import tempfile

    from labkit import paths

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "labkit-vm-*.cpio"))
               + glob.glob(os.path.join(tempfile.gettempdir(), "labkit-machine-*"))
               + glob.glob(str(paths.home() / "vm" / "disks" / ".*")))
def _default_network() -> tuple[str, str]:
    """(bridge name, chain prefix) of this home's ``bridge`` network, if it was made."""
    import json

    from labkit import paths

    for doc in (paths.home() / "networks").glob("*/network.json"):
        net = json.loads(doc.read_text())
        if net["Name"] == "bridge":
            return net["Options"]["com.docker.network.bridge.name"], net["Id"][:12] + "-"
    return "", "-"


def _links() -> set[str]:
    import subprocess

    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    return {n for n in names if n.startswith(("lkbr-", "lkv", "lkp"))} - {_default_network()[0]}


def _nft_chains() -> set[str]:
    from labkit.kernel.net import nat

    prefix = _default_network()[1]
    return {c["chain"]["name"] for c in nat.ruleset().get("nftables", [])
            if "chain" in c and not c["chain"]["name"].startswith(prefix)}


def _leases() -> set[str]:
    from labkit import paths

    return {str(p.relative_to(paths.home())) for p in (paths.home() / "networks").glob("*/leases/*")}


def _volumes() -> set[str]:
    """Volume directories (named, anonymous, half-made): a test removes the ones it made."""
    from labkit import paths

    d = paths.volumes_dir()
    return set(os.listdir(d)) if d.exists() else set()


def snapshot() -> dict:
    spare = _spare()
    return {"mounts": _mounts(), "cgroups": _cgroups(spare), "processes": _engine_descendants(spare),
            "state dirs": _state_dirs(spare), "qemu": _qemus(), "vm files": _vm_temp_files(),
            "links": _links(), "nft chains": _nft_chains(), "leases": _leases(), "volumes": _volumes()}


def leftovers(before: dict, after: dict) -> dict:
    return {k: sorted(map(str, after[k] - before[k])) for k in before if after[k] - before[k]}


@pytest.fixture(autouse=True)
def no_leftovers(labkit_home):
    import labkit

    labkit.containers()  # the engine runs before the first snapshot
    before = snapshot()
    yield
    # Removal is asynchronous (the engine reaps, the kernel frees cgroups): wait for the state
    # to settle. The bound only turns a real leftover into a failure instead of a hang; on a
    # loaded machine or a TCG VM settling takes longer than on an idle one.
    deadline = time.monotonic() + 60
    while True:
        extra = leftovers(before, snapshot())
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not extra, f"the test left these behind: {extra}"


@pytest.fixture
def container_dirs():
    """A function: the names in ``$LABKIT_HOME/containers``, without the engine's spare
    (which may have made its directory for the next container)."""
    return lambda: _state_dirs(_spare())


@pytest.fixture
def tmp_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def detached():
    """Start detached busybox containers running ``sh -c SCRIPT``; force-remove them at the end."""
    import labkit
    from labkit.errors import NotFound

    made = []

    def start(script: str = "sleep 300", **kw):
        ctr = labkit.run("busybox", ["sh", "-c", script], detach=True, **kw)
        made.append(ctr)
        return ctr

    yield start
    for ctr in made:
        try:
            ctr.remove(force=True)
        except NotFound:
            pass


@pytest.fixture(scope="session")
def open_to_other_users():
    """Other users (rootless engines, classroom students) run this checkout's ``.venv``.

    A clone under ``/root`` (0700, a CI machine's usual place) does not let them through:
    every directory above the checkout gets o+x, and the checkout itself o+rx (Python lists
    it to import labkit), for the session; every mode is put back at the end.
    """
    repo = Path(__file__).resolve().parents[2]
    changed = []
    for d, need in [(repo, 0o005), *((p, 0o001) for p in repo.parents)]:
        mode = d.stat().st_mode & 0o7777
        if mode & need != need:
            os.chmod(d, mode | need)
            changed.append((d, mode))
    yield repo
    for d, mode in reversed(changed):
        os.chmod(d, mode)
