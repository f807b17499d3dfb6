"""A real image registry on 127.0.0.1 for the course: Debian's ``docker-registry``
(the CNCF Distribution server), its storage in a temporary directory.

Notebook 08 pushes an image to it and pulls it into another ``$LABKIT_HOME`` (another
"machine"). Loopback only: no packet leaves the host. :meth:`LocalRegistry.close`
stops the server and removes its storage.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import LabkitError
from ..i18n import _

CONFIG = """version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {addr}
  secret: labkit-course
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRegistry:
    """``docker-registry serve`` on ``127.0.0.1:<a free port>``; ``.host`` is that address."""

    def __init__(self, start_timeout: float = 15) -> None:
        exe = shutil.which("docker-registry")
        if exe is None:
            raise LabkitError(_("docker-registry not found (Debian: apt-get install docker-registry)"))
        self.dir = Path(tempfile.mkdtemp(prefix="labkit-registry-"))
        self.host = f"127.0.0.1:{free_port()}"
        conf = self.dir / "config.yml"
        conf.write_text(CONFIG.format(data=self.dir / "data", addr=self.host))
        self._log = open(self.dir / "registry.log", "wb")
        self.proc = subprocess.Popen([exe, "serve", str(conf)], stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        while True:  # up when /v2/ answers
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1).close()
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "registry.log").read_text(errors="replace")
                    self.close()
                    raise LabkitError(_("docker-registry did not start: %(log)s")
                                      % {"log": log.strip()[-500:]}) from None
                time.sleep(0.05)

    def tags(self, repository: str) -> list[str]:
        """The tags the registry has for ``repository`` (its ``/v2/<name>/tags/list``)."""
        import json

        with urllib.request.urlopen(f"http://{self.host}/v2/{repository}/tags/list", timeout=5) as r:
            return sorted(json.load(r).get("tags") or [])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalRegistry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
