"""The Python API: ``labkit.run(...)`` and :class:`Container`, as a notebook uses them.

Everything goes through the engine (:mod:`labkit.engine`), which owns the
containers; this module only sends requests and hands the engine the ends of
pipes the container writes into.
"""
from __future__ import annotations

import signal as _signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from .attach import attached
from .engine import client, protocol
from .spec import client_env as _client_env, command_argv as _argv  # noqa: F401 - re-exported
from .spec import parse_devices, security_opts  # noqa: F401
from .spec import parse_limits as _limits, parse_volume, parse_volumes as _volumes  # noqa: F401
from .spec import parse_add_hosts, parse_ports
from .errors import LabkitError
from .i18n import _
from .labels import parse_labels as _parse_labels, select as _select


class ShellSyntaxWarning(UserWarning):
    """A command given as one string holds shell syntax that no shell will read."""


# Words that mean something only to a shell. A string command is split by shlex and
# run without a shell, so these reach the program as plain arguments.
_SHELL_WORDS = {">", ">>", "<", "<<", "|", "||", "&&", ";", "&", "2>", "2>>", "2>&1", "&>"}


def _warn_shell_string(cmd: Any) -> None:
    """Warn when a string command looks like shell syntax: ``"echo oi > /f"`` runs echo
    with the arguments ``oi``, ``>`` and ``/f``, and writes no file, silently."""
    if not isinstance(cmd, str):
        return
    import shlex

    try:
        words = shlex.split(cmd)
    except ValueError:
        return  # _argv reports the unbalanced quote
    found = [w for w in words
             if w in _SHELL_WORDS or w.startswith((">", "|", "&&", ";", "2>")) or w.endswith(";")]
    if found:
        import warnings

        warnings.warn(
            _("the command %(cmd)s is split into words and run without a shell; the program "
              "gets these as plain arguments: %(words)s. For redirections, pipes or &&, use "
              "[\"sh\", \"-c\", %(cmd)s]") % {"cmd": repr(cmd), "words": " ".join(found)},
            ShellSyntaxWarning, stacklevel=3)


@dataclass
class Result:
    """What an attached run gives back."""

    exit_code: int
    stdout: str
    stderr: str
    id: str = ""
    name: str = ""
    oom_killed: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout and stderr together (stderr last)."""
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return self.output

    def _repr_pretty_(self, p, cycle) -> None:  # IPython: show the output, then the code
        text = self.output.rstrip("\n")
        if text:
            p.text(text + "\n")
        p.text(_("[exit code %(code)d]") % {"code": self.exit_code})


def _ulimits(ulimits: Any) -> list[str]:
    """``{"nofile": (soft, hard)}`` or ``{"nofile": n}`` or ``["nofile=soft:hard"]`` → the flag's strings."""
    if isinstance(ulimits, dict):
        return [f"{k}={v[0]}:{v[1]}" if isinstance(v, (tuple, list)) else f"{k}={v}" for k, v in ulimits.items()]
    if isinstance(ulimits, str):
        return [ulimits]
    return [str(u) for u in ulimits or []]


def run(image: str, cmd: str | Iterable[str] | None = None, *, name: str | None = None,
        env: dict | Iterable[str] | None = None, workdir: str | None = None,
        hostname: str | None = None, volumes: Any = None, user: str | None = None,
        entrypoint: str | Iterable[str] | None = None, memory: Any = None, cpus: Any = None,
        cpu_shares: int | None = None, cpuset_cpus: str | None = None, memory_swap: Any = None,
        pids_limit: Any = "default", detach: bool = False, remove: bool | None = None,
        stdin: bytes | str | None = None, timeout: float | None = None, network: str = "bridge",
        stdout: Any = None, stderr: Any = None, home: Path | None = None,
        devices: Any = None, cap_add: Iterable[str] | None = None,
        cap_drop: Iterable[str] | None = None, read_only: bool = False, ports: Any = None,
        publish_all: bool = False, ip: str | None = None, network_aliases: Iterable[str] | None = None,
        add_hosts: Any = None, dns: Iterable[str] | None = None,
        security_opt: Iterable[str] | None = None, ulimits: Any = None,
        privileged: bool = False, mounts: Any = None, tmpfs: Any = None,
        volumes_from: Iterable[str] | None = None, restart: str | None = None,
        healthcheck: dict | None = None, labels: Any = None, _create: bool = False) -> "Result | Container":
    """Run ``cmd`` in a new container of ``image``.

    Attached (the default) it waits and returns a :class:`Result` with the
    exit code and the output; the container is removed afterwards unless
    ``remove=False``. With ``detach=True`` it returns a running
    :class:`Container` at once (kept after exit unless ``remove=True``).
    ``network`` is ``"bridge"`` (the default, as Docker's: ``eth0`` on the engine's
    default bridge), ``"none"`` (its own network namespace with only ``lo``),
    ``"host"`` or a network made with :func:`labkit.network`;
    ``ports`` (``["8080:80"]`` or ``{"80/tcp": 8080}``), ``publish_all``, ``ip``,
    ``network_aliases``, ``add_hosts`` (``["db:10.0.0.5"]``) and ``dns`` as
    ``docker run``'s ``-p``, ``-P``, ``--ip``, ``--network-alias``, ``--add-host``, ``--dns``.
    ``stdout``/``stderr`` (streams or fds) show the output live instead of capturing it.
    ``devices``: ``["/dev/X[:/dev/Y][:rwm]"]``, as ``--device``; ``cap_add``/``cap_drop``:
    capability names, as ``--cap-add``/``--cap-drop``; ``read_only``: as ``--read-only``;
    ``security_opt``: as ``--security-opt`` (``["seccomp=unconfined"]``, ``["seccomp=perfil.json"]``);
    ``user``: as ``--user`` (``"1000:1000"``, ``"nobody"``, names from the image's /etc/passwd);
    ``ulimits``: as ``--ulimit`` (``["nofile=256:512"]`` or ``{"nofile": (256, 512)}``);
    ``privileged``: as ``--privileged`` (a warning on stderr says what it gives away).
    ``volumes``: ``["dados:/d", "/host/dir:/d:ro", "/anon"]`` (``-v``: a volume's name, made on
    first use and filled from the image, or a host path); ``mounts``: ``--mount`` strings
    (``"type=volume,source=dados,target=/d,readonly"``); ``tmpfs``: ``["/run:size=64m"]`` or
    ``{"/run": "size=64m"}``; ``volumes_from``: ``["ctr[:ro|rw]"]``.
    ``labels``: as ``--label`` (``{"k": "v"}`` or ``["k=v"]``), in ``inspect()["Config"]["Labels"]``.
    ``restart``: as ``--restart`` (``"no"``, ``"on-failure[:N]"``, ``"always"``, ``"unless-stopped"``);
    ``healthcheck``: ``{"test": ["CMD-SHELL", "cmd"], "interval": 30.0, "timeout": 30.0,
    "retries": 3, "start_period": 0.0}`` (seconds; ``["NONE"]`` turns the image's off).
    """
    _warn_shell_string(cmd)
    if isinstance(env, dict):
        env = [f"{k}={v}" for k, v in env.items()]
    config = {
        "image": image, "cmd": _argv(cmd), "entrypoint": _argv(entrypoint), "name": name,
        "env": _client_env(env), "workdir": workdir, "hostname": hostname, "user": user,
        "volumes": _volumes(volumes), "devices": parse_devices(devices),
        "limits": _limits(memory, cpus, cpu_shares, cpuset_cpus, memory_swap, pids_limit),
        "detach": detach, "remove": (not detach and (restart or "no") == "no") if remove is None else remove,
        "network": network, "cap_add": list(cap_add or []), "cap_drop": list(cap_drop or []),
        "read_only": read_only, "ports": parse_ports(ports), "publish_all": publish_all, "ip": ip,
        "aliases": list(network_aliases or []), "add_hosts": parse_add_hosts(add_hosts), "dns": list(dns or []),
        "security_opt": security_opts(security_opt or []), "ulimits": _ulimits(ulimits),
        "privileged": bool(privileged), **_storage(mounts, tmpfs, volumes_from),
        "restart": restart, "healthcheck": healthcheck, "create_only": bool(_create),
        "labels": _parse_labels(labels),
    }
    if privileged:
        from .spec import warn_privileged

        warn_privileged()
    if detach or _create:
        reply = client.request({"op": "run", "config": config}, home=home)
        return Container(reply["id"], home=home)
    start, end, out, err = attached({"op": "run", "config": config}, stdin, timeout, home, stdout, stderr)
    return Result(end["exit_code"], out, err, start.get("id", ""), start.get("name", ""),
                  bool(end.get("oom_killed")))


def _storage(mounts: Any, tmpfs: Any, volumes_from: Any) -> dict:
    """``--mount``, ``--tmpfs`` and ``--volumes-from``, checked here (see labkit.volspec)."""
    from .volspec import parse_mounts, parse_tmpfs, parse_volumes_from

    if isinstance(tmpfs, str):
        tmpfs = [tmpfs]
    parse_tmpfs(tmpfs)  # a bad size is refused before the request
    return {"mounts": parse_mounts(mounts), "tmpfs": tmpfs if isinstance(tmpfs, dict) else list(tmpfs or []),
            "volumes_from": parse_volumes_from(volumes_from)}


class Container:
    """A container the engine knows, by id. Properties read fresh state."""

    def __init__(self, id: str, home: Path | None = None, data: dict | None = None) -> None:
        self.id = id
        self.home = home
        self._data = data

    def __repr__(self) -> str:
        data = self._data or {}
        return f"<Container {self.id[:12]} {data.get('Name', '')} {data.get('State', {}).get('Status', '')}>"

    def _request(self, op: str, **fields) -> dict:
        return client.request({"op": op, "ref": self.id, **fields}, home=self.home)

    def inspect(self) -> dict:
        """Docker-style inspect document (State, Config, HostConfig, GraphDriver...)."""
        self._data = self._request("inspect")["container"]
        return self._data

    reload = inspect

    @property
    def attrs(self) -> dict:
        return self._data if self._data is not None else self.inspect()

    @property
    def name(self) -> str:
        return self.attrs["Name"]

    @property
    def labels(self) -> dict:
        """Its labels (``--label``, the image's ``LABEL``s, compose's), as ``Config.Labels``."""
        return dict(self.inspect()["Config"].get("Labels") or {})

    @property
    def status(self) -> str:
        return self.inspect()["State"]["Status"]

    @property
    def pid(self) -> int:
        return self.inspect()["State"]["Pid"]

    @property
    def ip(self) -> str | None:
        """Its address on its first network (``NetworkSettings``), None without one."""
        settings = self.inspect().get("NetworkSettings") or {}
        nets = settings.get("Networks") or {}
        # rootless slirp4netns: no network record, its fixed address at the top (as Docker's bridge)
        return next((ep["IPAddress"] for ep in nets.values() if ep.get("IPAddress")),
                    settings.get("IPAddress") or None)

    @property
    def ports(self) -> dict:
        """Docker's ``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}``."""
        return (self.inspect().get("NetworkSettings") or {}).get("Ports") or {}

    @property
    def exit_code(self) -> int | None:
        state = self.inspect()["State"]
        return None if state["Running"] else state["ExitCode"]

    @property
    def oom_killed(self) -> bool:
        return bool(self.inspect()["State"]["OOMKilled"])

    @property
    def image(self) -> str:
        return self.attrs["ImageRef"]

    @property
    def upper_dir(self) -> Path:
        """The OverlayFS upper directory: every change the container made."""
        return Path(self.attrs["GraphDriver"]["Data"]["UpperDir"])

    @property
    def cgroup(self):
        from .kernel import cgroups

        return cgroups.backend().open(self.attrs["Cgroup"])

    def logs(self, follow: bool = False) -> str | Iterator[str]:
        path = self.attrs.get("LogPath")
        if not path:
            return iter(()) if follow else ""
        if follow:
            return self._follow(path)
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _follow(self, path: str) -> Iterator[str]:
        with open(path, errors="replace") as f:
            while True:
                line = f.readline()
                if line:
                    yield line
                    continue
                if self.inspect()["State"]["Status"] != "running":
                    rest = f.read()
                    if rest:
                        yield rest
                    return
                time.sleep(0.1)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the container exits; returns its exit code."""
        sock = client.connect(self.home)
        try:
            sock.settimeout(timeout)
            protocol.send(sock, {"op": "wait", "ref": self.id})
            try:
                reply, _fds = protocol.recv(sock)
            except TimeoutError:
                raise LabkitError(_("timed out waiting for container %(id)s") % {"id": self.id[:12]},
                                  exit_code=124) from None
        finally:
            sock.close()
        return client.check(reply)["exit_code"]

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds (as ``docker stop``)."""
        self._request("stop", timeout=timeout)

    def kill(self, signal: int | str = _signal.SIGKILL) -> None:
        if isinstance(signal, str):
            name = signal.upper()
            signal = getattr(_signal, name if name.startswith("SIG") else "SIG" + name)
        self._request("kill", signal=int(signal))

    def remove(self, force: bool = False, volumes: bool = False) -> None:
        """As ``docker rm [-f] [-v]``: ``volumes`` removes its anonymous volumes too."""
        self._request("rm", force=force, volumes=volumes)

    @property
    def restart_count(self) -> int:
        """How many times the engine started it again by its restart policy (``RestartCount``)."""
        return int(self.inspect().get("RestartCount") or 0)

    @property
    def health(self) -> str | None:
        """``"starting"``, ``"healthy"``, ``"unhealthy"``, or None without a healthcheck."""
        return (self.inspect()["State"].get("Health") or {}).get("Status")

    def start(self) -> None:
        """Start it again (created or exited): the same container, a new PID 1 (``docker start``)."""
        self._request("start")

    def restart(self, timeout: float = 10) -> None:
        """Stop (SIGTERM, SIGKILL after ``timeout`` s), then start (``docker restart``)."""
        self._request("restart", timeout=timeout)

    def update(self, *, cpus: Any = None, memory: Any = None, pids_limit: Any = None,
               cpu_shares: int | None = None, cpuset_cpus: str | None = None,
               memory_swap: Any = None) -> dict:
        """Change the running container's slice (as ``docker update``)."""
        limits = _limits(memory, cpus, cpu_shares, cpuset_cpus, memory_swap, pids_limit)
        if pids_limit is None:
            limits.pop("pids_limit", None)
        return self._request("update", limits=limits)["limits"]

    def exec(self, cmd: str | Iterable[str], *, env: dict | Iterable[str] | None = None,
             workdir: str | None = None, user: str | None = None, stdin: bytes | str | None = None,
             timeout: float | None = None) -> Result:
        """Run another process inside this container (as ``docker exec``)."""
        _warn_shell_string(cmd)
        if isinstance(env, dict):
            env = [f"{k}={v}" for k, v in env.items()]
        message = {"op": "exec", "ref": self.id, "cmd": _argv(cmd), "env": _client_env(env),
                   "workdir": workdir, "user": user}
        _start, end, out, err = attached(message, stdin, timeout, self.home)
        return Result(end["exit_code"], out, err, self.id, self.attrs["Name"])

    def stats(self) -> dict:
        """One reading of the slice: CPU %, memory, pids (see labkit.monitor)."""
        from .monitor import snapshot

        return snapshot(self.cgroup)


def create(image: str, cmd: str | Iterable[str] | None = None, **kwargs: Any) -> Container:
    """A new container in state ``"created"``, started later with :meth:`Container.start`
    (``docker create``); the same arguments as :func:`run`."""
    kwargs["detach"] = True
    kwargs.setdefault("remove", False)
    return run(image, cmd, _create=True, **kwargs)  # type: ignore[return-value]


def containers(all: bool = False, home: Path | None = None, filters: Any = None) -> list[Container]:
    """As ``labkit ps``; ``filters``: ``{"label": ["k=v", "k"], "name": ["web"]}`` (Docker's ``--filter``)."""
    reply = client.request({"op": "list", "all": all}, home=home)
    return [Container(d["Id"], home=home, data=d) for d in _select(reply["containers"], filters)]


def get(ref: str, home: Path | None = None) -> Container:
    data = client.request({"op": "inspect", "ref": ref}, home=home)["container"]
    return Container(data["Id"], home=home, data=data)


def prune(home: Path | None = None) -> list[str]:
    """Remove every stopped container and what a killed engine left behind."""
    return client.request({"op": "prune"}, home=home)["removed"]


def engine_stop(home: Path | None = None) -> bool:
    if not client.is_running(home):
        return False
    client.request({"op": "shutdown"}, home=home)
    # wait until the socket is gone so the next call starts a fresh engine
    from . import paths

    sock = paths.engine_socket(home)
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return True
