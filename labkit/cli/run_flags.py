"""The flags of ``labkit run`` and ``labkit exec``, and a parser for ``run`` without argparse.

One table serves two readers. ``containers.register`` turns it into argparse
arguments (help, ``-h``, errors). :func:`parse_run` reads the same table to
parse the everyday ``labkit run ...`` in well under a millisecond, without
importing argparse or loading the translation catalog: those cost about
15 ms, a quarter of the command's start-up (``bench/bench_runtime.py``).
Whatever it does not fully understand (``--help``, an unknown or abbreviated
flag, a bad number, a missing value) it hands back to argparse, so the
messages and the exit codes stay argparse's.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def N_(message: str) -> str:
    """Mark a message for translation; it is translated where it is shown."""
    return message


# (flags, argparse keyword arguments). "help" holds a msgid, translated at registration.
PROCESS_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("-i", "--interactive"), {"action": "store_true", "help": N_("keep STDIN open")}),
    (("-t", "--tty"), {"action": "store_true", "help": N_("allocate a pseudo-TTY")}),
    (("-e", "--env"), {"action": "append", "default": [], "metavar": "KEY=VALUE",
                       "help": N_("set environment variables")}),
    (("-w", "--workdir"), {"help": N_("working directory inside the container")}),
    (("-u", "--user"), {"help": N_("username or UID (format: name|uid[:group|gid]), names from the image's /etc/passwd and /etc/group")}),
]

RUN_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = PROCESS_FLAGS + [
    (("-d", "--detach"), {"action": "store_true", "help": N_("run in the background and print the container ID")}),
    (("--rm",), {"action": "store_true", "help": N_("remove the container when it exits")}),
    (("--name",), {"help": N_("assign a name to the container")}),
    (("--hostname",), {"help": N_("container host name")}),
    (("-v", "--volume"), {"action": "append", "default": [], "metavar": "SRC:DST[:ro]",
                          "help": N_("mount a volume (NAME:DST, made on first use) or a host path "
                                     "(/SRC:DST); /DST alone is an anonymous volume")}),
    (("--mount",), {"action": "append", "default": [], "metavar": "type=bind|volume|tmpfs,...",
                    "help": N_("attach a filesystem mount (e.g. type=volume,source=data,target=/d,readonly)")}),
    (("--tmpfs",), {"action": "append", "default": [], "metavar": "DST[:size=64m,mode=1777]",
                    "help": N_("mount a tmpfs directory")}),
    (("--volumes-from",), {"action": "append", "default": [], "metavar": "CONTAINER[:ro|rw]",
                           "help": N_("mount the volumes of another container")}),
    (("--device",), {"action": "append", "default": [], "metavar": "HOST[:CONTAINER][:rwm]",
                      "help": N_("add a host device to the container (default permissions rwm)")}),
    (("--cap-add",), {"action": "append", "default": [], "metavar": "CAP",
                       "help": N_("add a Linux capability (e.g. NET_RAW, or ALL)")}),
    (("--cap-drop",), {"action": "append", "default": [], "metavar": "CAP",
                        "help": N_("drop a Linux capability (e.g. CHOWN, or ALL)")}),
    (("--security-opt",), {"action": "append", "default": [], "metavar": "OPT",
                            "help": N_("security option: seccomp=unconfined, seccomp=FILE.json "
                                       "(Docker's profile format) or no-new-privileges")}),
    (("--ulimit",), {"action": "append", "default": [], "metavar": "NAME=SOFT[:HARD]",
                      "help": N_("set a resource limit (e.g. nofile=1024:2048), at most the engine's hard limit")}),
    (("--privileged",), {"action": "store_true",
                         "help": N_("give the container every capability, every device and no seccomp "
                                    "(it can take over the host)")}),
    (("--read-only",), {"action": "store_true", "help": N_("mount the container's root filesystem as read only")}),
    (("--entrypoint",), {"help": N_("overwrite the default ENTRYPOINT of the image")}),
    (("--network",), {"default": "bridge", "metavar": "NETWORK",
                      "help": N_("network: bridge (default), none (its own namespace, only lo), host "
                                 "or a network made with labkit network create")}),
    (("-p", "--publish"), {"action": "append", "default": [], "metavar": "[IP:]HOST:CONTAINER[/PROTO]",
                           "help": N_("publish a container's port on the host")}),
    (("-P", "--publish-all"), {"action": "store_true",
                               "help": N_("publish every port the image exposes on a random host port")}),
    (("--ip",), {"help": N_("IPv4 address of the container on its network")}),
    (("--network-alias",), {"action": "append", "default": [], "metavar": "ALIAS",
                            "help": N_("another name of the container on its network")}),
    (("--add-host",), {"action": "append", "default": [], "metavar": "NAME:IP",
                       "help": N_("add a line to the container's /etc/hosts")}),
    (("--dns",), {"action": "append", "default": [], "metavar": "IP",
                  "help": N_("DNS server for the container's /etc/resolv.conf")}),
    (("-l", "--label"), {"action": "append", "default": [], "metavar": "KEY=VALUE",
                         "help": N_("set metadata on the container (labkit ps --filter label=KEY=VALUE)")}),
    (("--label-file",), {"action": "append", "default": [], "metavar": "FILE",
                         "help": N_("read labels from a file of KEY=VALUE lines")}),
    (("-m", "--memory"), {"help": N_("memory limit (e.g. 64m)")}),
    (("--memory-swap",), {"help": N_("memory plus swap limit; -1 for unlimited swap")}),
    (("--cpus",), {"help": N_("number of CPUs (e.g. 0.5 = half a core)")}),
    (("-c", "--cpu-shares"), {"type": int, "help": N_("CPU shares (relative weight, default 1024)")}),
    (("--cpuset-cpus",), {"help": N_("CPUs in which to allow execution (e.g. 0-1, 0)")}),
    (("--pids-limit",), {"type": int, "default": 2048,
                         "help": N_("maximum number of processes (default 2048; 0 or -1 for unlimited)")}),
    (("--restart",), {"default": "no", "metavar": "POLICY",
                      "help": N_("restart policy: no, on-failure[:N], always or unless-stopped")}),
    (("--health-cmd",), {"metavar": "CMD", "help": N_("command to run to check health (with /bin/sh -c)")}),
    (("--health-interval",), {"metavar": "DURATION", "help": N_("time between running the check (e.g. 30s)")}),
    (("--health-timeout",), {"metavar": "DURATION",
                             "help": N_("maximum time to allow one check to run (e.g. 30s)")}),
    (("--health-retries",), {"metavar": "N", "help": N_("consecutive failures needed to report unhealthy")}),
    (("--health-start-period",), {"metavar": "DURATION",
                                  "help": N_("start period for the container to initialize before "
                                             "failures count (e.g. 5s)")}),
    (("--no-healthcheck",), {"action": "store_true", "help": N_("disable any container-specified HEALTHCHECK")}),
]


def add_to(parser, table: list[tuple[tuple[str, ...], dict[str, Any]]]) -> None:
    """Add the flags of ``table`` to an argparse parser, with translated help."""
    from ..i18n import _

    for flags, kwargs in table:
        parser.add_argument(*flags, **{**kwargs, "help": _(kwargs["help"])})


def _dest(flags: tuple[str, ...]) -> str:
    return next((f for f in flags if f.startswith("--")), flags[0]).lstrip("-").replace("-", "_")


class Namespace:
    """What argparse's ``parse_args`` returns for ``run``: one attribute per flag."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def parse_run(argv: list[str]) -> Namespace | None:
    """Parse ``run``'s arguments (``argv`` without "run"), or None to let argparse do it."""
    longs: dict[str, tuple[str, dict]] = {}
    shorts: dict[str, tuple[str, dict]] = {}
    values: dict[str, Any] = {}
    for flags, kwargs in RUN_FLAGS:
        dest = _dest(flags)
        values[dest] = False if kwargs.get("action") == "store_true" else list(kwargs.get("default") or []) \
            if kwargs.get("action") == "append" else kwargs.get("default")
        for flag in flags:
            (longs if flag.startswith("--") else shorts)[flag] = (dest, kwargs)

    def take(dest: str, kwargs: dict, value: str) -> bool:
        if value.startswith("-"):  # argparse reads it as a flag: its error message, not ours
            return False
        if "type" in kwargs:
            try:
                value = kwargs["type"](value)
            except ValueError:
                return False
        if value not in kwargs.get("choices", (value,)):
            return False
        if kwargs.get("action") == "append":
            values[dest].append(value)
        else:
            values[dest] = value
        return True

    if "--" in argv:
        return None  # argparse drops one "--" in places of its own choosing: let it
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-") or arg == "-":
            break
        if arg.startswith("--"):
            name, eq, inline = arg.partition("=")
            if name not in longs:
                return None  # --help, an abbreviation, a typo: argparse explains
            dest, kwargs = longs[name]
            if kwargs.get("action") == "store_true":
                if eq:
                    return None
                values[dest] = True
            elif eq:
                if not take(dest, kwargs, inline):
                    return None
            else:
                i += 1
                if i == len(argv) or not take(dest, kwargs, argv[i]):
                    return None
            i += 1
            continue
        # short flags, possibly grouped (-it) or with the value attached (-eA=1, -m64m)
        j = 1
        while j < len(arg):
            flag = "-" + arg[j]
            if flag not in shorts:
                return None
            dest, kwargs = shorts[flag]
            if kwargs.get("action") == "store_true":
                values[dest] = True
                j += 1
                continue
            rest = arg[j + 1:].removeprefix("=")
            if rest:
                if not take(dest, kwargs, rest):
                    return None
            else:
                i += 1
                if i == len(argv) or not take(dest, kwargs, argv[i]):
                    return None
            break
        i += 1
    if i >= len(argv):
        return None  # no image: argparse's "the following arguments are required"
    return Namespace(**values, image=argv[i], cmd=argv[i + 1:], command="run")
