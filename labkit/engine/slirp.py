"""A rootless container's network: its own namespace, linked to the host by slirp4netns.

Without the host's root there is no bridge and no veth pair. slirp4netns (Debian
package ``slirp4netns``) instead opens a TAP device, named ``eth0`` as a container's first
interface is under root (and in Docker's rootless mode), inside the container's
network namespace and carries its packets as ordinary sockets of the user on the host:
a small user-space TCP/IP stack, the one QEMU's "user" network uses. The container gets
10.0.2.100/24, the gateway 10.0.2.2 and a DNS forwarder at 10.0.2.3. A published port
is a socket slirp4netns listens on, on the host, asked for through its API socket
(``add_hostfwd``). ``--disable-host-loopback`` keeps the container away from the
host's 127.0.0.1.

The engine makes the namespace first (a holder process, as for a bridge network),
starts slirp4netns on it and waits for ``--ready-fd``, so the network is up before
the container's command runs.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess

from ..errors import LabkitError
from ..i18n import _

MODE = "slirp4netns"
DNS = "10.0.2.3"
GUEST = "10.0.2.100"
GATEWAY = "10.0.2.2"
PREFIX = 24
DEVICE = "eth0"


def settings() -> dict:
    """What ``inspect``'s ``NetworkSettings`` shows of a slirp4netns container (its fixed address)."""
    return {"IPAddress": GUEST, "Gateway": GATEWAY, "IPPrefixLen": PREFIX}


def available() -> str | None:
    return shutil.which("slirp4netns")


API = "slirp.sock"  # in the container's directory; a relative path: a Unix socket's is short (108)


def start(netns: str, cdir: str) -> subprocess.Popen:
    """slirp4netns for the namespace at ``netns``, its API socket in ``cdir``; returns once
    its ``eth0`` is configured."""
    ready_r, ready_w = os.pipe()
    try:
        proc = subprocess.Popen(
            [available() or "slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
             "--netns-type=path", f"--ready-fd={ready_w}", f"--api-socket={API}", netns, DEVICE],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cdir,
            pass_fds=(ready_w,), start_new_session=True)
    except OSError as exc:
        os.close(ready_r)
        os.close(ready_w)
        raise LabkitError(_("slirp4netns could not start: %(err)s") % {"err": exc.strerror}) from None
    os.close(ready_w)
    try:
        ok = os.read(ready_r, 1) == b"1"
    finally:
        os.close(ready_r)
    if not ok:
        stop(proc)
        err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        raise LabkitError(_("slirp4netns could not configure the container's network: %(err)s")
                          % {"err": err or "?"})
    return proc


def forward(cdir: str, ports: list[dict]) -> None:
    """Publish ``ports`` (labkit's list: proto, host_ip, host_port, port) through slirp4netns."""
    if not ports:
        return
    dir_fd = os.open(cdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _forward(f"/proc/self/fd/{dir_fd}/{API}", ports)  # short, whatever cdir's length
    finally:
        os.close(dir_fd)


def _forward(api_socket: str, ports: list[dict]) -> None:
    for p in ports:
        request = {"execute": "add_hostfwd", "arguments": {
            "proto": p["proto"], "host_addr": p.get("host_ip") or "0.0.0.0",
            "host_port": int(p["host_port"]), "guest_addr": GUEST, "guest_port": int(p["port"])}}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            s.connect(api_socket)
            s.sendall(json.dumps(request).encode())
            s.shutdown(socket.SHUT_WR)
            reply = json.loads(s.recv(65536) or b"{}")
        if "error" in reply or "return" not in reply:
            raise LabkitError(_("port %(port)s/%(proto)s cannot be published: %(err)s")
                              % {"port": p["host_port"], "proto": p["proto"],
                                 "err": (reply.get("error") or {}).get("desc", "?")})


def free_port(proto: str, host_ip: str) -> int:
    """A free host port for ``-p 80`` (no host port given), as the kernel picks one."""
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host_ip or "0.0.0.0", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except (ChildProcessError, subprocess.TimeoutExpired):
        pass  # the engine's reaper may have collected it first
