"""``debian:<suite>`` without a registry: debootstrap a minimal Debian from the archive.

``labkit pull debian:bookworm`` and ``FROM debian:bookworm`` land here. The
root filesystem is made by ``debootstrap --variant=minbase`` from the Debian
mirror this machine already uses (``/etc/apt/sources.list*``, or
``LABKIT_DEBIAN_MIRROR``), turned into one layer and kept in the store as
``debian:<suite>``, so it is done once. Without the archive (no network) the
message says so and what to use instead.
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from ..errors import LabkitError
from ..i18n import _

DEFAULT_MIRROR = "http://deb.debian.org/debian"
ALIASES = {"12": "bookworm", "11": "bullseye", "13": "trixie", "10": "buster", "latest": "stable"}
_PHASES = {
    "Retrieving": lambda: _("debootstrap: downloading packages"),
    "Extracting": lambda: _("debootstrap: extracting packages"),
    "Unpacking": lambda: _("debootstrap: installing packages"),
    "Configuring": lambda: _("debootstrap: configuring packages"),
}
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def configured_mirror() -> str:
    """The Debian archive URI apt uses here (not the security one)."""
    env = os.environ.get("LABKIT_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.iterdir())
    for f in files:
        try:
            text = f.read_text(errors="replace")
        except OSError:
            continue
        uris = re.findall(r"^\s*URIs:\s*(\S+)", text, re.M)  # deb822 .sources
        uris += re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)  # one-line .list
        for uri in uris:
            if uri.rstrip("/").endswith("/debian") and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def reachable(mirror: str, suite: str, timeout: float = 10.0) -> str | None:
    """None if ``dists/<suite>/Release`` can be fetched, else the reason."""
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            resp.read(64)
        return None
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} ({url})"
    except (OSError, ValueError) as exc:
        return f"{getattr(exc, 'reason', exc)} ({url})"


class _Bar:
    """One line that fills up in a terminal (``\\r``), a line per stage elsewhere."""

    def __init__(self, say: Callable[[str], None] | None, stream=None) -> None:
        self.say = say
        self.stream = stream
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.last = ""

    def stage(self, text: str) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
        self.last = ""
        if self.say:
            self.say(text)

    def count(self, label: str, n: int, total: int) -> None:
        if not total:
            text = "  " + _("%(n)d packages (%(last)s)") % {"n": n, "last": label}
            if self.tty:
                self.stream.write("\r" + text.ljust(60))
                self.stream.flush()
                self.last = text
            elif self.say and n % 10 == 0:
                self.say(text)
            return
        width = 30
        done = int(width * n / total)
        text = f"  [{'#' * done}{'.' * (width - done)}] {n}/{total} {label}"
        if self.tty:
            self.stream.write("\r" + text)
            self.stream.flush()
            self.last = text
        elif self.say and (n == total or n % max(1, total // 5) == 0):
            self.say(text)

    def end(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
        self.last = ""


def _umount_below(path: Path) -> None:
    """debootstrap mounts /proc and /sys in the target; make sure nothing stays mounted."""
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4].replace("\\040", " ") for line in f]
    for t in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], check=False)


def _clean_rootfs(root: Path) -> None:
    """What a Docker base image leaves out: device nodes, apt caches and lists, logs of the install."""
    for rel in ("dev", "proc", "sys", "run", "tmp"):
        d = root / rel
        if d.is_dir() and not d.is_symlink():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
                    "var/log/*.log", "var/log/apt/*", "debootstrap"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    # a container must not keep the build machine's name servers or host name
    for rel in ("etc/resolv.conf", "etc/hostname"):
        p = root / rel
        if p.is_file() and not p.is_symlink():
            p.write_text("")


def ensure(suite: str = "stable", *, store=None, progress: Callable[[str], None] | None = None,
           stream=None, mirror: str | None = None):
    """The image ``debian:<suite>``, made with debootstrap the first time; returns the store Image."""
    from .store import Store, host_arch

    store = store or Store()
    tag = suite
    name = f"debian:{tag}"
    img = store.find(name)
    if img is not None:
        return img
    suite = ALIASES.get(suite, suite)
    say = progress or (lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush()))
    if stream is None and progress is None:
        stream = sys.stdout
    if shutil.which("debootstrap") is None:
        raise LabkitError(_("debootstrap is not installed: as root, run apt-get install -y debootstrap "
                            "(needed to create debian:%(suite)s)") % {"suite": tag})
    if os.geteuid() != 0:
        raise LabkitError(_("creating debian:%(suite)s with debootstrap needs root") % {"suite": tag}, 126)
    mirror = (mirror or configured_mirror()).rstrip("/")
    why = reachable(mirror, suite)
    if why is not None:
        raise LabkitError(_("cannot reach the Debian archive %(mirror)s to create debian:%(suite)s: %(why)s. "
                            "Without network access use busybox, or load a saved image with labkit load.")
                          % {"mirror": mirror, "suite": tag, "why": why})
    store.layout.ensure()
    lock_fd = os.open(store.layout.root / f".debian-{suite}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        img = store.find(name)
        if img is not None:
            return img
        return _bootstrap(store, name, tag, suite, mirror, host_arch(), _Bar(say, stream))
    finally:
        os.close(lock_fd)


def _bootstrap(store, name: str, tag: str, suite: str, mirror: str, arch: str, bar: _Bar):
    started = time.monotonic()
    work = store.home / "tmp"
    work.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix=f"debian-{suite}-", dir=work))
    os.chmod(target, 0o755)
    # In a private mount namespace: the /proc and /sys debootstrap mounts in the target are
    # never seen by the host, and vanish with it even if it is killed.
    cmd = ["unshare", "--mount", "--propagation", "private",
           "debootstrap", "--variant=minbase", f"--arch={arch}", suite, str(target), mirror]
    bar.stage(_("Creating debian:%(suite)s with debootstrap from %(mirror)s (a few minutes, only once)")
              % {"suite": tag, "mirror": mirror})
    log: list[str] = []
    counts: dict[str, int] = {}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"})
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            log.append(line)
            m = re.match(r"I: (Retrieving|Validating|Extracting|Unpacking|Configuring) (\S+)", line)
            if m and m.group(2) not in ("required", "the", "base", "Release", "Packages", "InRelease"):
                verb, pkg = m.group(1), m.group(2)
                if verb == "Validating":
                    continue  # one per package, right after its download
                if verb not in counts:
                    bar.end()
                    bar.stage(_PHASES[verb]())
                    counts[verb] = 0
                counts[verb] += 1
                total = counts.get("Retrieving", 0) if verb != "Retrieving" else 0
                bar.count(pkg, min(counts[verb], total) if total else counts[verb], total)
                continue
            if line.startswith("I: Found packages in base already in required") or \
                    line.startswith("I: Resolving dependencies of base packages"):
                continue
            if line.startswith("I: Retrieving Packages") or line.startswith("I: Retrieving Release"):
                continue
            if line.startswith("I: Base system installed successfully"):
                bar.end()
                bar.stage(_("debootstrap: base system installed"))
        rc = proc.wait()
        if rc != 0:
            tail = "\n".join(log[-15:])
            raise LabkitError(_("debootstrap failed (exit code %(rc)d):\n%(log)s") % {"rc": rc, "log": tail})
        _umount_below(target)
        _clean_rootfs(target)
        bar.stage(_("Writing the layer of debian:%(suite)s") % {"suite": tag})
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with store.layout.writing():
            desc = store.add_layer_from_dir(target, move=True, owner=None, mtime=None, level=6)
            diff_id = desc.pop("diff_id")
            desc.pop("uncompressed_size", None)
            version = ""
            try:
                version = (store.layer_dir(diff_id) / "etc/debian_version").read_text().strip()
            except OSError:
                pass
            config = {
                "architecture": arch, "os": "linux", "created": now,
                "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": now, "created_by": " ".join(cmd[:-2] + ["ROOTFS", mirror]),
                             "comment": f"Debian {version}".strip()}],
            }
            if version:
                config["config"]["Labels"] = {"org.debian.version": version}
            img = store.write_image(config, [desc], name)
        bar.stage(_("debian:%(suite)s ready (%(version)s) in %(secs).0f s")
                  % {"suite": tag, "version": version or suite, "secs": time.monotonic() - started})
        return img
    finally:
        if target.exists():
            _umount_below(target)
            shutil.rmtree(target, ignore_errors=True)
