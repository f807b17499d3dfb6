"""RUN: the command runs in a build container of the image so far.

The builder writes the state so far as an *untagged* image, runs
``labkit.run(<digest>, argv, remove=False)``, and the container's OverlayFS
upper directory *is* the change: it is moved into ``$LABKIT_HOME/layers/``
as the unpacked layer (whiteouts as ``.wh.`` entries), then tarred.
"""
from __future__ import annotations

import contextlib
import copy
import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import LabkitError
from ...i18n import _
from ...kernel.userns import as_root
from ..dockerfile import Instruction
from ..tempfiles import SCRATCH_ANNOTATION, build_container_name
from .cache import chain_key
from .state import GZIP_LEVEL, State, clamp_mtimes

if TYPE_CHECKING:
    from .builder import Builder


def run_step(b: Builder, state: State, instr: Instruction) -> None:
    form = instr.json_list()
    argv = form if form is not None else [*state.shell, instr.args.strip()]
    shown = "RUN " + (json.dumps(argv) if form is not None else instr.args.strip())
    b.announce(instr, shown)
    # build args are in the environment of RUN (and so in its cache key), not in the image
    run_env = {k: v for k, v in state.args.items() if k not in state.env()}
    key = chain_key(state.key, shown, json.dumps(sorted(run_env.items())), b.network)
    if b.use_cache(state, key, shown):
        return
    b.ensure_dirs(state)
    image_ref = _temp_image(b, state)
    import labkit.api as api

    run_kwargs = dict(env=run_env, workdir=state.cfg.get("WorkingDir") or "/",
                      user=state.cfg.get("User") or None, remove=False, entrypoint=[])
    import inspect

    if "network" in inspect.signature(api.run).parameters:
        run_kwargs["network"] = b.network
    elif b.network == "host" and not getattr(b, "_warned_network", False):
        b.warned_network = True
        b.say(_("[Warning] --network host is not supported by the runtime yet: RUN has no network"))
    name = build_container_name(b.tmp)  # names its build: found if the build is killed
    container = None
    try:
        result = api.run(image_ref, argv, name=name, **run_kwargs)
    except BaseException:
        # interrupted (Ctrl-C) or failed to start: the build container must not stay behind
        with contextlib.suppress(Exception):
            api.get(name).remove(force=True)
        raise
    try:
        if result.stdout:
            _show_output(b, result.stdout)
        if result.stderr:
            _show_output(b, result.stderr)
        container = api.get(result.id)
        if result.exit_code != 0:
            raise instr.error(_("the command %(cmd)s returned a non-zero code: %(code)d")
                              % {"cmd": json.dumps(argv), "code": result.exit_code})
        upper = Path(container.upper_dir)
        _clean_upper(b, state, upper)
        if not any(upper.iterdir()):
            b.record_layer(state, key, shown, None, None, None)
            return
        moved = b.tmp / f"upper-{b.step}"
        os.rename(upper, moved)
        upper.mkdir()  # the engine removes it with the container
        # rootless: read and tarred in the engine's user namespace (its files' owners, as the image sees them)
        desc = as_root(_layer_from_upper, b.store, moved)
        diff_id = desc.pop("diff_id")
        desc.pop("uncompressed_size", None)
        b.record_layer(state, key, shown, desc, diff_id, None)
    finally:
        if container is not None:
            with contextlib.suppress(LabkitError, OSError):
                container.remove(force=True)

def _layer_from_upper(store, moved: Path) -> dict:
    clamp_mtimes(moved, 0)  # the unpacked layer matches its tarball (mtime 0)
    return store.add_layer_from_dir(moved, move=True, owner=None, mtime=0, compress="gzip", level=GZIP_LEVEL)


def _show_output(b: Builder, text: str) -> None:
    for line in text.rstrip("\n").split("\n"):
        b.say(line)

def _clean_upper(b: Builder, state: State, upper: Path) -> None:
    """Drop what the runtime itself put in the upper dir (mount points it had to create)."""
    view = b.view(state)
    for rel in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname", "run/.containerenv"):
        p = upper / rel
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        existed = view.lookup("/" + rel, follow=False) if view else None
        if stat.S_ISDIR(st.st_mode) and existed is None and not any(p.iterdir()):
            p.rmdir()
        elif stat.S_ISREG(st.st_mode) and existed is None and st.st_size == 0:
            p.unlink()

def _temp_image(b: Builder, state: State) -> str:
    """An untagged image of the state so far, for the build container (removed at the end)."""
    cfg = copy.deepcopy(state.config)
    # named after the build's scratch directory: if the build is killed, the store check
    # (labkit/images/check.py) sees that directory abandoned and drops this image
    img = b.store.write_image(cfg, state.layers, None, annotations={SCRATCH_ANNOTATION: b.tmp.name})
    b.temp_images.append(img.descriptor)
    return img.digest
