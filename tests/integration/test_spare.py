"""The engine's spare: the next container's PID 1, made ahead of the request.

While idle, the engine clones one process into a new PID namespace; it makes
its cgroup, joins it, unshares the other namespaces and waits for a spec
(``labkit.engine.spawn.Spare``). These tests check that ``run`` really uses it,
that it is as isolated as any container's PID 1 before and after, that the
cases it cannot serve start the usual way, and that it leaves nothing behind.
"""
from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import labkit
from labkit import paths
from labkit.engine import client
from labkit.errors import LabkitError
from labkit.kernel import capabilities
from requirements import skip_here
from test_engine import alive  # noqa: E402 - a sibling test module: one definition of "alive"

pytestmark = pytest.mark.root
if os.environ.get("LABKIT_SPAWN") == "fork":
    skip_here("LABKIT_SPAWN=fork: the engine makes no spare", allow_module_level=True)

LABKIT = str(Path(sys.executable).parent / "labkit")


def until(check, what: str):
    """Wait for an event the engine brings about in its own time (a spare made, a process
    gone): ``check()``'s first true value. How long that takes is the machine's business
    (seconds in a TCG VM on a loaded host); the bound only keeps a missing event from
    hanging the suite, it measures nothing."""
    for _ in range(2400):
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(what)


def spare() -> dict:
    """The engine's current spare; a container run first makes the engine want one."""
    found = client.request({"op": "ping"}).get("spare")
    if found:
        return found
    labkit.run("busybox", ["true"])  # the engine makes the next spare after a run
    return until(lambda: client.request({"op": "ping"}).get("spare"), "the engine made no spare")


def cgroup_dirs(cid: str) -> list[str]:
    found = []
    for ctrl in os.listdir("/sys/fs/cgroup"):
        d = os.path.join("/sys/fs/cgroup", ctrl, "labkit", cid)
        if os.path.isdir(d):
            found.append(d)
    if os.path.isdir(f"/sys/fs/cgroup/labkit/{cid}"):  # cgroup v2
        found.append(f"/sys/fs/cgroup/labkit/{cid}")
    return found


def test_run_takes_the_spare_and_the_engine_makes_the_next():
    # the spare fits a run like the last one (image, network or not): a busybox run on the
    # default network first, whatever the test before this one ran
    labkit.run("busybox", ["true"])
    s = until(lambda: client.request({"op": "ping"}).get("spare"), "the engine made no spare")
    r = labkit.run("busybox", ["hostname"])
    assert r.exit_code == 0
    assert r.stdout.strip() == s["id"][:12], "the container did not start from the spare"
    nxt = spare()
    assert nxt["id"] != s["id"] and nxt["pid"] != s["pid"]


def read_status(pid: int) -> dict:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_detached_container_from_the_spare_is_isolated_like_any_other(detached):
    s = spare()
    ctr = detached("sleep 300", memory="64m", pids_limit=30, hostname="de-reserva")
    assert ctr.id == s["id"]
    assert ctr.pid == s["pid"]
    for ns in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
        assert os.readlink(f"/proc/{ctr.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), \
            f"{ns} namespace shared with the host"
    assert ctr.exec("hostname").stdout == "de-reserva\n"
    inside = ctr.exec("cat /proc/self/cgroup").stdout.splitlines()
    assert inside and all(line.endswith(":/") for line in inside), \
        f"the cgroup namespace root is not the container's cgroup: {inside}"
    status = read_status(ctr.pid)
    assert status["NSpid"].split()[-1] == "1"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    assert int(status["CapEff"], 16) == int(status["CapBnd"], 16) == capabilities.mask(capabilities.DEFAULT)
    # PID 1 holds only 0, 1 and 2: neither the engine's descriptors nor the spare's socket
    assert set(os.listdir(f"/proc/{ctr.pid}/fd")) == {"0", "1", "2"}
    # the run's limits reached the spare's cgroup
    stats = ctr.stats()
    assert stats["memory_limit"] == 64 * 1024 * 1024
    assert stats["pids_limit"] == 30


def test_a_waiting_spare_holds_no_engine_descriptor():
    s = spare()
    fds = os.listdir(f"/proc/{s['pid']}/fd")
    targets = sorted(os.readlink(f"/proc/{s['pid']}/fd/{fd}") for fd in fds)
    # 0 and 1 (/dev/null) and 2 (the engine's log) as the engine has them, and its socket
    assert len(fds) == 4, targets
    assert sum(t.startswith("socket:") for t in targets) == 1, targets
    status = read_status(s["pid"])
    assert status["Name"] == "labkit-spare"
    assert status["NSpid"].split()[-1] == "1", "the spare is not PID 1 of its own namespace"
    with open(f"/proc/{s['pid']}/cgroup") as f:
        assert f"/labkit/{s['id']}" in f.read()
    assert cgroup_dirs(s["id"]), "the spare has no cgroup"
    for ns in ("mnt", "uts", "ipc", "net", "pid", "cgroup"):
        assert os.readlink(f"/proc/{s['pid']}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")


@pytest.mark.parametrize("how", ["volume", "host network"])
def test_requests_a_spare_cannot_serve_start_the_usual_way(tmp_path, how):
    s = spare()
    kw = {"volumes": [f"{tmp_path}:/data"]} if how == "volume" else {"network": "host"}
    r = labkit.run("busybox", ["hostname"], **kw)
    assert r.exit_code == 0
    if how == "volume":
        assert r.stdout.strip() != s["id"][:12]
    assert client.request({"op": "ping"})["spare"]["id"] == s["id"], "the spare was spent"


def test_a_failed_start_from_the_spare_leaves_nothing():
    s = spare()
    with pytest.raises(LabkitError, match="nao-existe") as err:
        labkit.run("busybox", ["nao-existe"])
    assert err.value.exit_code == 127
    assert cgroup_dirs(s["id"]) == []
    assert not (Path(paths.home()) / "containers" / s["id"]).exists()
    assert not alive(s["pid"])


def test_messages_in_the_clients_language_from_a_spare_made_in_another():
    spare()
    env = {**os.environ, "LABKIT_LANG": "en"}
    r = subprocess.run([LABKIT, "run", "--rm", "-w", "/etc/passwd", "busybox", "true"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 126
    assert "cannot change to working directory /etc/passwd" in r.stderr, r.stderr
    spare()
    r = subprocess.run([LABKIT, "run", "--rm", "-w", "/etc/passwd", "busybox", "true"],
                       capture_output=True, text=True, env={**os.environ, "LABKIT_LANG": "pt_BR"})
    assert r.returncode == 126
    assert "/etc/passwd" in r.stderr and "cannot change" not in r.stderr, r.stderr


def test_engine_stop_and_sigkill_leave_no_spare_behind():
    s = spare()
    labkit.engine_stop()
    assert not alive(s["pid"])
    assert cgroup_dirs(s["id"]) == []
    s = spare()  # a new engine
    engine = client.request({"op": "ping"})["pid"]
    os.kill(engine, signal.SIGKILL)
    # it reads EOF on its socket and leaves
    until(lambda: not alive(s["pid"]), "the spare outlived a killed engine")
    labkit.containers()  # the next engine removes what the killed one left
    assert cgroup_dirs(s["id"]) == []


def spare_root_mount(s: dict) -> str:
    """The mount at "/" of spare ``s``, as its own mountinfo shows it, once it is the
    container's overlay (the spare builds it after the engine has named it; the host's own
    root may be an overlay too, as in the cgroup-v2 VM)."""
    def root() -> str:
        with open(f"/proc/{s['pid']}/mountinfo") as f:
            return next((line for line in f if line.split()[4] == "/"), "")  # none mid-pivot_root

    def overlay_root() -> str:
        r = root()
        return r if f"/containers/{s['id']}/upper" in r else ""

    try:
        return until(overlay_root, "no overlay root")
    except AssertionError:
        return root()  # the caller's assertion shows what it is instead


def _image(tmp_path: Path, tag: str, token: str):
    from labkit.images.build import build

    ctx = tmp_path / tag.replace(":", "-").replace("/", "-")
    ctx.mkdir(parents=True)
    (ctx / "t.txt").write_text(token + "\n")
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY t.txt /t.txt\nCMD ["cat", "/t.txt"]\n')
    return build(ctx, tag, quiet=True)


def test_the_spare_builds_the_root_of_the_last_image_and_another_image_starts_the_usual_way(tmp_path):
    from labkit.images.store import Store

    labkit.run("busybox", ["true"])
    s = spare()
    root = spare_root_mount(s)
    assert " overlay " in root and f"/containers/{s['id']}/upper" in root, root
    # another image: that spare is dropped (process, cgroup, directory), the run starts the usual way
    other = _image(tmp_path, "itest/spare-other:1", "outra")
    try:
        r = labkit.run(other.ref)
        assert r.stdout == "outra\n"
        assert not alive(s["pid"])
        assert cgroup_dirs(s["id"]) == []
        assert not (Path(paths.home()) / "containers" / s["id"]).exists()
        # the next spare is ready for that image, and is used by it
        s2 = spare()
        assert f"/containers/{s2['id']}/upper" in spare_root_mount(s2)
        r = labkit.run(other.ref, ["sh", "-c", "hostname; cat /t.txt"])
        assert r.stdout == f"{s2['id'][:12]}\noutra\n"
    finally:
        Store().remove(other.ref)


def test_a_layer_removed_and_unpacked_again_is_not_served_from_the_old_spare(tmp_path):
    from labkit.images.store import Store

    first = _image(tmp_path / "a", "itest/spare-again:1", "mesmo")
    first_dirs = first.layer_dirs()  # read now: the image (config included) is removed below
    labkit.run(first.ref)
    s = spare()
    Store().remove(first.ref)  # its own layer directory goes away...
    again = _image(tmp_path / "b", "itest/spare-again:1", "mesmo")
    try:
        assert again.layer_dirs() == first_dirs  # ...and comes back at the same path (same content)
        r = labkit.run(again.ref, ["sh", "-c", "hostname; cat /t.txt"])
        hostname, text = r.stdout.splitlines()
        assert text == "mesmo"
        assert hostname != s["id"][:12], "the spare built on the removed layer was used"
        # dropped after the reply, in the engine's own time
        until(lambda: not alive(s["pid"]), "the spare built on the removed layer is still there")
    finally:
        Store().remove(again.ref)


def test_prune_keeps_the_spare():
    labkit.run("busybox", ["true"])
    s = spare()  # made after a busybox run: it builds busybox's root in its directory
    assert f"/containers/{s['id']}/upper" in spare_root_mount(s)
    labkit.prune()
    assert (Path(paths.home()) / "containers" / s["id"] / "upper").is_dir()
    r = labkit.run("busybox", ["hostname"])
    assert r.stdout.strip() == s["id"][:12]


def test_a_spare_that_fails_is_removed_at_once():
    """A spare that dies while it waits (here: killed) is reaped, its cgroup and its
    directory removed.

    The engine does it all in one step of its loop (reap -> kill and remove the cgroup ->
    remove the directory) and answers requests between steps: once a ping no longer
    names this spare, the step is over and both must be gone. (Polling the cgroup instead
    races with the directory, which the same step removes after it.)"""
    s = spare()
    os.kill(s["pid"], signal.SIGKILL)
    until(lambda: (client.request({"op": "ping"}).get("spare") or {}).get("id") != s["id"],
          "the engine never reaped its killed spare")
    assert cgroup_dirs(s["id"]) == []
    assert not (Path(paths.home()) / "containers" / s["id"]).exists()
    r = labkit.run("busybox", ["echo", "ok"])  # and the next run is not bothered
    assert r.stdout == "ok\n"


def test_the_spare_serves_the_default_bridge_and_none_each_with_its_files():
    """The default network (bridge) starts from the spare: its veth is plugged into the spare's
    namespace at claim time and its name files are mounted by the spare ahead. A run with
    ``network="none"`` right after gets the image's own files and only ``lo``."""
    script = "hostname; ls /sys/class/net; cat /etc/hostname; ip -o -4 addr show eth0 2>/dev/null; true"
    labkit.run("busybox", ["true"])  # the next spare builds busybox's root with the name files
    s = spare()
    r = labkit.run("busybox", ["sh", "-c", script])
    lines = r.stdout.split()
    assert r.exit_code == 0 and lines[0] == s["id"][:12], "the bridge container did not start from the spare"
    assert lines[1:4] == ["eth0", "lo", s["id"][:12]], r.stdout  # /etc/hostname written in place
    assert ipaddress.ip_interface(r.stdout.split(" inet ")[1].split()[0]).network == \
        ipaddress.ip_network(labkit.get_network("bridge").subnet)
    s = spare()
    r = labkit.run("busybox", ["sh", "-c", script], network="none")
    assert r.exit_code == 0 and r.stdout.split()[1] == "lo" and "eth0" not in r.stdout, r.stdout
    s = until(lambda: client.request({"op": "ping"}).get("spare"), "the engine made no spare")
    # made for a run like the last one (without the name files): the next none run takes it
    r = labkit.run("busybox", ["sh", "-c", script], network="none")
    assert r.stdout.split()[:2] == [s["id"][:12], "lo"], r.stdout
