"""The class's ``jupyterhub_config.py``, generated from what setup made.

Sizes follow what was measured on a 2-core server with 30 students (shared/notes): with
JupyterHub's default timeouts (``http_timeout`` 30 s, ``start_timeout`` 60 s) most of a class
logging in at once fails; with 300 s/120 s and about two spawns per core at a time, all are
served. Idle servers are stopped by jupyterhub-idle-culler (a hub service) after an hour.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

CULL_AFTER = 3600  # seconds without activity before the culler stops a server


@dataclass
class HubSettings:
    students: list[str]
    etc: str
    data: str                      # the hub's database and cookie secret
    parent: str                    # the class cgroup parent (+ /<user>: LABKIT_CGROUP_PARENT)
    venv: str = os.path.dirname(os.path.dirname(sys.executable))
    ip: str = "127.0.0.1"
    port: int = 8000
    proxy: str = ""                # configurable-http-proxy's path ("" = from PATH)
    teachers: tuple[str, ...] = ()
    teacher_group: str = ""        # its members log in too, as the hub's admins
    cores: int = os.cpu_count() or 1
    course_dir: str = "curso"


def _set(names) -> str:
    """A set literal in a stable order (the file does not change between two setups)."""
    return "{" + ", ".join(repr(n) for n in sorted(names)) + "}" if names else "set()"


def config_text(s: HubSettings) -> str:
    """The file's text: plain assignments a teacher can read and change."""
    bin_dir = os.path.join(s.venv, "bin")
    path = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"
    spawn_limit = max(2, 2 * s.cores)
    lines = [
        "# jupyterhub_config.py for a labkit class, written by `labkit classroom setup`.",
        "# setup rewrites it: change the options of setup rather than this file.",
        "# Run: jupyterhub -f <this file> (as root: the hub becomes each student).",
        "c = get_config()  # noqa: F821",
        "",
        "# Only on this machine; put a TLS reverse proxy in front to open it to the class.",
        f"c.JupyterHub.ip = {s.ip!r}",
        f"c.JupyterHub.port = {s.port!r}",
        "c.JupyterHub.hub_ip = '127.0.0.1'",
        f"c.JupyterHub.db_url = {'sqlite:///' + os.path.join(s.data, 'jupyterhub.sqlite')!r}",
        f"c.JupyterHub.cookie_secret_file = {os.path.join(s.data, 'jupyterhub_cookie_secret')!r}",
        f"c.ConfigurableHTTPProxy.pid_file = {os.path.join(s.data, 'proxy.pid')!r}",
    ]
    if s.proxy:
        lines.append(f"c.ConfigurableHTTPProxy.command = [{s.proxy!r}]")
    lines += [
        "",
        "# The students log in with their Unix password (PAM); only the class may.",
        "c.JupyterHub.authenticator_class = 'pam'",
        f"c.Authenticator.allowed_users = {_set(s.students)}",
        f"c.Authenticator.admin_users = {_set(s.teachers)}",
    ]
    if s.teacher_group:
        lines += [
            "# The teachers' group: may log in, and administers the hub (start/stop any server).",
            f"c.PAMAuthenticator.allowed_groups = {_set([s.teacher_group])}",
            f"c.PAMAuthenticator.admin_groups = {_set([s.teacher_group])}",
        ]
    lines += [
        "",
        "# Each server is the student's own process, placed in <parent>/<user>/jupyter",
        "# (the student's caps) by the hub before it drops root.",
        "c.JupyterHub.spawner_class = 'labkit.classroom.spawner.ClassroomSpawner'",
        f"c.ClassroomSpawner.classroom_etc = {s.etc!r}",
        f"c.Spawner.cmd = [{os.path.join(bin_dir, 'jupyterhub-singleuser')!r}]",
        "c.Spawner.notebook_dir = '~'",
        f"c.Spawner.default_url = '/lab/tree/{s.course_dir}'",
        "c.Spawner.environment = {",
        f"    'PATH': {path!r},  # labkit (rootless) and jupyter from the class venv",
        "    # the student's own slice (delegated to them), not the class's (root's)",
        f"    'LABKIT_CGROUP_PARENT': lambda spawner: {s.parent + '/'!r} + spawner.user.name,",
        "    'LABKIT_LANG': 'pt_BR',",
        "    'LANG': 'C.UTF-8',",
        "}",
        "# A whole class logging in at once on a small server: long timeouts, few at a time.",
        "c.Spawner.start_timeout = 300",
        "c.Spawner.http_timeout = 120",
        f"c.JupyterHub.concurrent_spawn_limit = {spawn_limit}",
        "# Servers survive a hub restart and are found again (LocalProcessSpawner keeps the pid).",
        "c.JupyterHub.cleanup_servers = False",
        "",
        "# Idle servers are stopped after an hour (their containers stay: labkit's engine",
        "# is the student's own process, outside the server).",
        "c.JupyterHub.services = [{",
        "    'name': 'idle-culler',",
        f"    'command': [{os.path.join(bin_dir, 'python')!r}, '-m', 'jupyterhub_idle_culler',",
        f"                '--timeout={CULL_AFTER}'],",
        "}]",
        "c.JupyterHub.load_roles = [{",
        "    'name': 'idle-culler',",
        "    'scopes': ['list:users', 'read:users:activity', 'read:servers', 'delete:servers'],",
        "    'services': ['idle-culler'],",
        "}]",
        "",
    ]
    return "\n".join(lines)
