"""Image references, normalised like Docker's: ``[domain/]path[:tag][@digest]``.

A name without a registry domain is a local image: ``busybox`` is stored as
``localhost/busybox:latest`` (podman's spelling, which podman and skopeo then
read back under the same name). When *looking up* a short name, labkit also
tries Docker Hub's spelling (``docker.io/library/busybox:latest``) so images
pulled from a registry are found by their familiar name.
"""
from __future__ import annotations

import re

from ..errors import LabkitError
from ..i18n import _

DEFAULT_TAG = "latest"
LOCAL_DOMAIN = "localhost"
HUB_DOMAIN = "docker.io"

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOMAIN = re.compile(r"^(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


def _invalid(ref: str) -> LabkitError:
    return LabkitError(_("invalid image reference: %(ref)s") % {"ref": ref})


def parse(ref: str) -> tuple[str | None, str, str | None, str | None]:
    """Split into (domain or None, path, tag or None, digest or None); validate."""
    if not ref or ref != ref.strip():
        raise _invalid(ref)
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST.match(digest):
        raise _invalid(ref)
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise _invalid(ref)
    parts = rest.split("/")
    domain = None
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == LOCAL_DOMAIN):
        domain = parts.pop(0)
        if not _DOMAIN.match(domain):
            raise _invalid(ref)
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        raise _invalid(ref)
    return domain, "/".join(parts), tag, digest or None


def normalize(ref: str, default_domain: str = LOCAL_DOMAIN) -> str:
    """``busybox`` -> ``localhost/busybox:latest``; ``a.io/x@sha256:..`` kept as is."""
    domain, path, tag, digest = parse(ref)
    name = f"{domain or default_domain}/{path}"
    if digest:
        return f"{name}:{tag}@{digest}" if tag else f"{name}@{digest}"
    return f"{name}:{tag or DEFAULT_TAG}"


def candidates(ref: str) -> list[str]:
    """Canonical names to look ``ref`` up under, most specific first."""
    domain, path, tag, digest = parse(ref)
    if domain is not None:
        return [normalize(ref)]
    out = [normalize(ref)]
    hub_path = path if "/" in path else f"library/{path}"
    suffix = f":{tag or DEFAULT_TAG}" if not digest else (f":{tag}@{digest}" if tag else f"@{digest}")
    out.append(f"{HUB_DOMAIN}/{hub_path}{suffix}")
    return out


def split(ref: str) -> tuple[str, str]:
    """(repository, tag) of a canonical ``name:tag`` (tag ``<none>`` if absent)."""
    name = ref.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "<none>"


def familiar(ref: str) -> str:
    """What Docker would print: ``localhost/busybox:latest`` -> ``busybox:latest``."""
    for prefix in (f"{LOCAL_DOMAIN}/", f"{HUB_DOMAIN}/library/", f"{HUB_DOMAIN}/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def normalize_hub(ref: str) -> str:
    """Normalise as Docker does: a name with no domain is on Docker Hub (``docker.io/library/...``)."""
    domain, path, _tag, _digest = parse(ref)
    if domain is not None:
        return normalize(ref)
    if "/" not in path:
        ref = "library/" + ref
    return normalize(ref, default_domain=HUB_DOMAIN)
