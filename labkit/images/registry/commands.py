"""``pull``, ``push`` and ``login`` over the store: what the CLI verbs and ``labkit.pull`` do.

A name without a registry: ``busybox`` is built locally, ``debian:<suite>``
is made with debootstrap (:mod:`labkit.images.debian`), anything else goes
to Docker Hub.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import LabkitError
from ...i18n import _
from ..tempfiles import disk_full_is_an_error
from .auth import save_credentials
from .client import RegistryClient
from .names import MT_OCI_MANIFEST, Reference, api_host, api_repository, parse_reference
from .transfer import pull_into_layout, push_layout


def _client_for(ref: Reference, *, username: str | None = None, password: str | None = None,
                tls_verify: bool = True, ca_file: str | None = None, secure: bool | None = None) -> RegistryClient:
    return RegistryClient(api_host(ref), username=username, password=password, tls_verify=tls_verify,
                          ca_file=ca_file, secure=secure)


def _say(out):
    if out is None:
        return None
    if hasattr(out, "write"):
        return lambda text: (out.write(text + "\n"), out.flush())
    return out


def pull(name: str, *, store=None, out=None, username: str | None = None, password: str | None = None,
         tls_verify: bool = True, ca_file: str | None = None, secure: bool | None = None):
    """``docker pull``: download ``name`` into the store; return the store ``Image``.

    ``busybox`` is built locally and ``debian:<suite>`` made with debootstrap
    (no registry needed); every other name without a registry goes to Docker Hub.
    """
    from ..store import Store

    store = store or Store()
    say = _say(out)
    ref = parse_reference(name)
    if not ref.registry:
        if ref.repository == "debian":
            from .. import debian

            return debian.ensure(ref.tag or "stable", store=store, progress=say)
        if ref.repository == "busybox" and ref.tag == "latest":
            return store.resolve("busybox")
    client = _client_for(ref, username=username, password=password, tls_verify=tls_verify,
                         ca_file=ca_file, secure=secure)
    try:
        if say:
            say(_("Pulling %(name)s from %(host)s") % {"name": name, "host": client.host})
        store.layout.ensure()
        with disk_full_is_an_error(_("the image's layers")), store.layout.writing():
            digest, data, fetched = pull_into_layout(client, store.layout.root, ref, out=say)
            doc = json.loads(data)
            desc = {"mediaType": doc.get("mediaType", MT_OCI_MANIFEST), "digest": digest, "size": len(data)}
            if ref.registry:
                local = ref.local_name
            else:
                local = f"docker.io/{api_repository(ref)}:{ref.tag}" if ref.tag else \
                    f"docker.io/{api_repository(ref)}@{ref.digest}"
            if "@" in local:
                img = store.add(desc, None)
            else:
                img = store.add(desc, local)
    finally:
        client.close()
    if say:
        say(_("Digest: %(digest)s") % {"digest": digest})
        say(_("Status: %(status)s for %(name)s") % {
            "status": _("Downloaded newer image") if fetched else _("Image is up to date"), "name": name})
    return img


def push(name: str, destination: str | None = None, *, store=None, out=None, username: str | None = None,
         password: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
         secure: bool | None = None, chunk_size: int | None = None) -> dict:
    """``docker push``: send the store image ``name`` to its registry (or to ``destination``).

    Returns ``{"pushed": n, "skipped": n, "digest": manifest digest}``.
    """
    from ..store import Store

    store = store or Store()
    say = _say(out)
    img = store.resolve(name)
    ref = parse_reference(destination or name)
    if not ref.registry:
        raise LabkitError(_("%(name)s names no registry; use a name like 127.0.0.1:5000/%(repo)s")
                          % {"name": destination or name, "repo": ref.repository})
    client = _client_for(ref, username=username, password=password, tls_verify=tls_verify,
                         ca_file=ca_file, secure=secure)
    try:
        if say:
            say(_("The push refers to repository [%(repo)s]") % {"repo": f"{ref.registry}/{ref.repository}"})
        return push_layout(client, store.layout.root, img.digest, ref, chunk_size=chunk_size, out=say)
    finally:
        client.close()


def login(registry: str, username: str, password: str, *, tls_verify: bool = True,
          ca_file: str | None = None) -> Path:
    """Check the credentials against ``registry`` and save them (``labkit login``)."""
    client = RegistryClient(registry, username=username, password=password, tls_verify=tls_verify,
                            ca_file=ca_file)
    try:
        client.ping()
    finally:
        client.close()
    return save_credentials(registry, username, password)
