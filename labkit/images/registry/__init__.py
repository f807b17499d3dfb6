"""Push and pull images over the OCI distribution API (what Docker Hub speaks).

Only the standard library: ``http.client`` for the requests, ``ssl`` for HTTPS.
A registry on ``localhost``/``127.0.0.1``/``::1`` is spoken to over plain HTTP,
every other one over HTTPS (verify with the system CAs, or ``ca_file``).

The protocol, in the order a push uses it::

    GET  /v2/                                   -> 200, or 401 + WWW-Authenticate
    HEAD /v2/<repo>/blobs/<digest>              -> 200: the blob is already there, skip it
    POST /v2/<repo>/blobs/uploads/              -> 202 + Location (an upload session)
    PATCH <location>  (Content-Range: a-b)      -> 202 + Location   (chunked upload)
    PUT  <location>?digest=<digest>             -> 201              (closes the upload)
    PUT  /v2/<repo>/manifests/<tag>             -> 201

and a pull: ``GET /v2/<repo>/manifests/<tag>`` (an index is resolved to the
``linux/amd64`` manifest), then ``GET /v2/<repo>/blobs/<digest>`` for the
config and every layer, each checked against its digest.

Authentication: anonymous, ``Basic`` (user and password on every request) and
``Bearer`` (ask the token server named in the 401 challenge for a token, with
the user and password if there are an

The package: :mod:`.names` splits an image name into registry, repository
and tag; :mod:`.client` is the HTTP client of the distribution API, with
:mod:`.auth` (saved credentials, Basic, Bearer tokens) and :mod:`.upload`
(monolithic or chunked blob upload) mixed in; :mod:`.transfer` moves an
image between a registry and an OCI layout; :mod:`.commands` is ``pull``,
``push`` and ``login`` over the store (``debian:<suite>`` and ``busybox``
are made locally, see :mod:`labkit.images.debian`).
"""
from __future__ import annotations

from .auth import auth_file, load_credentials, remove_credentials, save_credentials
from .client import RegistryClient, RegistryError, Response
from .commands import login, pull, push
from .names import (CHUNK, DEFAULT_REGISTRY, DOCKER_HUB_API, INDEX_TYPES, LOOPBACK, MANIFEST_ACCEPT,
                    MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST, Reference,
                    api_host, api_repository, is_loopback, parse_reference)
from .transfer import human_size, iter_descriptors, pick_platform, pull_into_layout, push_layout

__all__ = ["CHUNK", "DEFAULT_REGISTRY", "DOCKER_HUB_API", "INDEX_TYPES", "LOOPBACK", "MANIFEST_ACCEPT",
           "MT_DOCKER_LIST", "MT_DOCKER_MANIFEST", "MT_OCI_INDEX", "MT_OCI_MANIFEST", "Reference",
           "RegistryClient", "RegistryError", "Response", "api_host", "api_repository", "auth_file",
           "human_size", "is_loopback", "iter_descriptors", "load_credentials", "login",
           "parse_reference", "pick_platform", "pull", "pull_into_layout", "push", "push_layout",
           "remove_credentials", "save_credentials"]
