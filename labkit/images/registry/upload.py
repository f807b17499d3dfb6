"""Uploading a blob: one PUT (monolithic), or PATCH chunks then a PUT (chunked).

``POST /v2/<repo>/blobs/uploads/`` opens an upload session (202 + Location);
each ``PATCH`` sends ``Content-Range: a-b`` and gets the next Location; the
closing ``PUT <location>?digest=<digest>`` names the blob.
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path


class BlobUpload:
    """The upload half of :class:`~labkit.images.registry.client.RegistryClient`."""

    def upload_blob(self, repo: str, digest: str, path: Path, *, chunk_size: int | None = None) -> None:
        """Upload one blob: one PUT (monolithic) or PATCH chunks then PUT (chunked)."""
        scope = f"repository:{repo}:pull,push"
        size = os.path.getsize(path)
        resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"},
                            body=b"", scope=scope, ok=(202,))
        location = resp.header("location")
        if chunk_size:
            with open(path, "rb") as fh:
                offset = 0
                while offset < size:
                    chunk = fh.read(chunk_size)
                    end = offset + len(chunk) - 1
                    resp = self.request("PATCH", location, scope=scope, ok=(202,), body=chunk, headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(chunk)),
                        "Content-Range": f"{offset}-{end}",
                    })
                    location = resp.header("location") or location
                    offset += len(chunk)
            resp = self.request("PUT", add_query(location, digest=digest), scope=scope, ok=(201,),
                                body=b"", headers={"Content-Length": "0"})
        else:
            resp = self.request("PUT", add_query(location, digest=digest), scope=scope, ok=(201,),
                                body=lambda: open(path, "rb"), headers={
                                    "Content-Type": "application/octet-stream",
                                    "Content-Length": str(size),
                                })


def add_query(location: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(location)
    query = parts.query + ("&" if parts.query else "") + urllib.parse.urlencode(params)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
