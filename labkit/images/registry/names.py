"""Image names as a registry sees them: host, repository, tag or digest; the media types."""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import LabkitError
from ...i18n import _

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join((MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, MT_DOCKER_LIST))
INDEX_TYPES = (MT_OCI_INDEX, MT_DOCKER_LIST)

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
CHUNK = 4 << 20  # bytes per PATCH in a chunked upload


class RegistryError(LabkitError):
    """A registry said no, or could not be reached."""


@dataclass(frozen=True)
class Reference:
    """``registry/repository:tag`` (or ``@sha256:...``), split as Docker does."""

    registry: str  # "" when the name has no registry part
    repository: str
    tag: str = "latest"
    digest: str = ""

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag

    @property
    def local_name(self) -> str:
        """The name the image gets in the local store."""
        repo = f"{self.registry}/{self.repository}" if self.registry else self.repository
        return f"{repo}@{self.digest}" if self.digest and not self.tag else f"{repo}:{self.tag}"

    def __str__(self) -> str:
        return self.local_name


def parse_reference(name: str) -> Reference:
    """Split ``[host[:port]/]path[:tag][@digest]`` (with :mod:`labkit.images.refs`).

    A name with no registry gets ``registry=""``: the caller decides what that
    means (labkit builds ``busybox`` and ``debian:<suite>`` locally, and other
    names go to Docker Hub).
    """
    from .. import refs

    try:
        domain, path, tag, digest = refs.parse(name.strip())
    except LabkitError:
        raise LabkitError(_("invalid image name: %(name)s") % {"name": name}) from None
    if not tag and not digest:
        tag = "latest"
    return Reference(domain or "", path, tag or "", digest or "")


def api_host(ref: Reference) -> str:
    """The host:port the HTTP requests go to."""
    if not ref.registry or ref.registry in ("docker.io", "index.docker.io"):
        return DOCKER_HUB_API
    return ref.registry


def api_repository(ref: Reference) -> str:
    if (not ref.registry or ref.registry in ("docker.io", "index.docker.io")) and "/" not in ref.repository:
        return "library/" + ref.repository
    return ref.repository


def is_loopback(host: str) -> bool:
    h = host
    if h.startswith("["):
        h = h[: h.index("]") + 1]
    elif h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h in LOOPBACK
