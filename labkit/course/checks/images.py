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


def _find_image(ref: str):
    """The store's image ``ref`` (None when absent): ``find``, never ``resolve`` (which would
    build ``busybox`` on first use)."""
    from labkit.images.store import Store

    return Store().find(ref)


def image_has_file(ref: str, path: str, contains: str | None = None) -> Verdict:
    """The image's top layer (the one ``commit`` wrote) has ``path``, with ``contains`` in it."""
    img = _find_image(ref)
    if img is None:
        return fail(_('The image "%(ref)s" is not in the store.') % {"ref": ref})
    layers = img.layer_dirs()
    target = (layers[-1] / path.lstrip("/")) if layers else None
    if target is None or not target.is_file():
        return fail(_('The top layer of "%(ref)s" has no %(path)s: was the file written '
                      'before the commit?') % {"ref": ref, "path": path})
    if contains is not None and contains not in target.read_text(errors="replace"):
        return fail(_('%(path)s in "%(ref)s" does not contain "%(text)s".')
                    % {"path": path, "ref": ref, "text": contains})
    return ok(_('The top layer of "%(ref)s" has %(path)s.') % {"ref": ref, "path": path})


def container_image_is(name: str, ref: str) -> Verdict:
    """The container ``name`` was created from the image ``ref`` (same image ID)."""
    from .access import find_container

    c, missing = find_container(name)
    if missing is not None:
        return missing
    img = _find_image(ref)
    if img is None:
        return fail(_('The image "%(ref)s" is not in the store.') % {"ref": ref})
    return image_id_is(name, str(c.inspect().get("Image", "")), ref, img.id)


def image_id_is(name: str, actual: str, ref: str, expected: str) -> Verdict:
    if actual == expected:
        return ok(_('"%(name)s" runs the image %(ref)s.') % {"name": name, "ref": ref})
    return fail(_('"%(name)s" does not run the image %(ref)s (it runs %(id)s).')
                % {"name": name, "ref": ref, "id": actual.split(":")[-1][:12]})
