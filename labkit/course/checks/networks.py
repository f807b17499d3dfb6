"""Checks on containers that talk and come back: their networks, the command they ran,
their restart policy and count, a published port answering HTTP."""
from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

from labkit.i18n import _

from ..verdict import Verdict, fail, ok
from .access import container_status, find_container


def on_network(name: str, networks: dict, network: str) -> Verdict:
    """Pure part of :func:`container_on_network` (``NetworkSettings.Networks``)."""
    if network in (networks or {}):
        return ok(_('The container "%(name)s" is on the network "%(network)s".')
                  % {"name": name, "network": network})
    return fail(_('The container "%(name)s" is not on the network "%(network)s" (it is on: '
                  '%(found)s).') % {"name": name, "network": network,
                                    "found": ", ".join(sorted(networks or {})) or "-"})


def container_on_network(name: str, network: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    doc = c.inspect()
    # an exited container has left its networks' bridges; HostConfig still names the first one
    networks = dict((doc.get("NetworkSettings") or {}).get("Networks") or {})
    mode = (doc.get("HostConfig") or {}).get("NetworkMode")
    if mode:
        networks.setdefault(mode, {})
    return on_network(name, networks, network)


def command_of(doc: dict) -> list[str]:
    """What a container ran: ``Path`` and ``Args`` of ``inspect()``, else ``Config.Cmd``."""
    if doc.get("Path"):
        return [doc["Path"], *(doc.get("Args") or [])]
    config = doc.get("Config") or {}
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def container_command_mentions(name: str, word: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    cmd = " ".join(command_of(c.inspect()))
    if word in cmd:
        return ok(_('The command of "%(name)s" asks for %(word)s.') % {"name": name, "word": word})
    return fail(_('The command of "%(name)s" does not mention %(word)s: %(cmd)s')
                % {"name": name, "word": word, "cmd": cmd or "-"})


def restart_policy_matches(name: str, policy: dict, expected: str, retries: int | None) -> Verdict:
    """Pure part of :func:`restart_policy_is` (``HostConfig.RestartPolicy``)."""
    found = policy.get("Name") or "no"
    count = int(policy.get("MaximumRetryCount") or 0)
    shown = f"{found}:{count}" if count else found
    if found != expected or (retries is not None and count != retries):
        want = f"{expected}:{retries}" if retries else expected
        return fail(_('The restart policy of "%(name)s" is %(found)s, not %(expected)s.')
                    % {"name": name, "found": shown, "expected": want})
    return ok(_('The restart policy of "%(name)s" is %(policy)s.') % {"name": name, "policy": shown})


def restart_policy_is(name: str, expected: str, retries: int | None = None) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    return restart_policy_matches(name, (c.inspect().get("HostConfig") or {}).get("RestartPolicy") or {},
                                  expected, retries)


def container_gave_up(name: str, restarts: int, wait: float = 10.0) -> Verdict:
    """The engine restarted ``name`` exactly ``restarts`` times and then left it exited.

    The back-off of a few restarts is under a second; the check waits for it
    (at most ``wait`` seconds) instead of failing a learner who checked too early.
    """
    c, missing = find_container(name)
    if missing is not None:
        return missing
    deadline = time.monotonic() + wait
    while container_status(c) in ("running", "restarting") and time.monotonic() < deadline:
        time.sleep(0.1)
    status = container_status(c)
    count = int(c.inspect().get("RestartCount") or 0)
    if status in ("running", "restarting"):
        return fail(_('The container "%(name)s" is still %(status)s after %(count)s restarts: '
                      'its command must end with an error.') % {"name": name, "status": status, "count": count})
    if count != restarts:
        return fail(_('The engine restarted "%(name)s" %(count)s times, not %(expected)s.')
                    % {"name": name, "count": count, "expected": restarts})
    return ok(_('The engine restarted "%(name)s" %(count)s times and then gave up.')
              % {"name": name, "count": count})


def published_ports(ports: dict) -> list[tuple[str, int]]:
    """``(host_ip, host_port)`` of every TCP binding in Docker's ``NetworkSettings.Ports``."""
    found = []
    for key, bindings in (ports or {}).items():
        if not key.endswith("/tcp"):
            continue
        for b in bindings or []:
            found.append((b.get("HostIp") or "0.0.0.0", int(b["HostPort"])))
    return found


def http_answers(host: str, port: int) -> bool:
    """A real HTTP request: any reply, even an error status, is an answer."""
    try:
        urllib.request.urlopen(f"http://{host}:{port}/", timeout=5).close()
        return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def container_port_answers(name: str) -> Verdict:
    c, missing = find_container(name)
    if missing is not None:
        return missing
    bindings = published_ports(c.ports)
    if not bindings:
        return fail(_('The container "%(name)s" publishes no TCP port: use ports=.') % {"name": name})
    for host_ip, port in bindings:
        host = "127.0.0.1" if host_ip in ("0.0.0.0", "", "::") else host_ip
        for _try in range(30):      # a server that has just started may need a moment
            if http_answers(host, port):
                return ok(_('An HTTP request to %(host)s:%(port)s reached "%(name)s".')
                          % {"host": host, "port": port, "name": name})
            time.sleep(0.1)
    return fail(_('Nothing answers HTTP on the ports of "%(name)s": %(ports)s')
                % {"name": name, "ports": ", ".join(f"{h}:{p}" for h, p in bindings)})
