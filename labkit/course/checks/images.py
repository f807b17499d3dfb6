"""Checks on images: a reference in the store."""
from __future__ import annotations

from typing import Iterable

from labkit.errors import LabkitError
from labkit.i18n import _

from ..verdict import Verdict, fail, ok


def ref_in(ref: str, refs: Iterable[str]) -> bool:
    """Is ``ref`` (as a learner types it: ``busybox``, ``meu-app:1``) among the
    store's canonical refs (``localhost/busybox:latest``)?"""
    from labkit.images.refs import candidates, normalize

    wanted = set(candidates(ref))
    for r in refs:
        if not r:
            continue
        try:
            if normalize(r) in wanted:
                return True
        except LabkitError:
            continue
    return False


def image_exists(ref: str) -> Verdict:
    """Looks in the store's list: ``Store.resolve`` would build ``busybox`` on
    first use and so always succeed."""
    from labkit.images.store import Store

    refs = [getattr(img, "ref", "") for img in Store().list()]
    return image_in(ref, refs)


def image_in(ref: str, refs: Iterable[str]) -> Verdict:
    if ref_in(ref, refs):
        return ok(_('The image "%(ref)s" is in the store.') % {"ref": ref})
    return fail(_('The image "%(ref)s" is not in the store.') % {"ref": ref})
