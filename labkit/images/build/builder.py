"""The driver loop: stages in order, each instruction to its handler, the cache, the result.

:class:`Builder` walks the Dockerfile's stages (up to ``target``), starts
each with ``FROM`` (a previous stage, ``scratch``, an image in the store,
``debian:*`` or a pull), hands every other instruction to its function in
:data:`~labkit.images.build.instructions.HANDLERS`, and writes the last
stage as the image. The helpers the handlers share (``config_step``,
``use_cache``, ``write_layer``, ``record_layer``) are here.
"""
from __future__ import annotations

import re

import contextlib
import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TextIO

from ...errors import LabkitError, NotFound
from ...i18n import _
from .. import dockerfile as dfmod
from ..dockerfile import Instruction, expand_word, expand_words
from ..dockerignore import DockerIgnore
from ..tempfiles import SCRATCH_PREFIX, disk_full_is_an_error, temp_dir
from .cache import BuildCache, chain_key
from .instructions import HANDLERS
from .state import GZIP_LEVEL, PREDEFINED_ARGS, Progress, State, created, end_dates, note_input, scratch_config, start_dates


@dataclass
class BuildResult:
    image: object          # store.Image
    steps: int
    cached: int
    layers_written: int
    seconds: float


class Builder:
    """One build: the Dockerfile parsed, the stages built in order, the last one written as the image.

    The handlers in :mod:`.instructions` get the builder as ``b`` and use its
    shared state (``store``, ``cache``, ``context``, ``build_args``...) and helpers.
    """

    def __init__(self, context: Path, dockerfile_text: str, *, tag: str | None = None,
                 build_args: dict[str, str] | None = None, no_cache: bool = False,
                 network: str = "bridge", target: str | None = None,
                 progress: Progress | None = None, store=None, dockerfile_name: str = "Dockerfile",
                 labels: dict[str, str] | None = None, dockerfile_mtime: float = 0) -> None:
        from ..store import Store

        self.context = Path(context).resolve()
        self.df = dfmod.parse(dockerfile_text, dockerfile_name)
        self.tag = tag
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", network or ""):
            raise LabkitError(_("invalid network for build: %(net)s (use none, host, bridge or a network "
                                "made with labkit network create)") % {"net": network})
        self.network = "bridge" if network == "default" else network  # RUN's network, checked by the engine
        self.target = target
        self.progress = progress or Progress()
        self.store = store or Store()
        self.cache = BuildCache(self.store.home, self.store.layout)
        self.ignore = DockerIgnore.load(self.context)
        self.extra_labels = labels or {}
        self.dockerfile_mtime = dockerfile_mtime
        self.stages: dict[str, State] = {}
        self.stage_list: list[State] = []
        self.step = 0
        self.cached = 0
        self.layers_written = 0
        self.temp_images: list[dict] = []  # untagged manifests made for RUN steps
        self.used_args: set[str] = set()
        # on the store's filesystem: a RUN's upper dir is renamed into layers/, never copied
        tmp_root = self.store.home / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        # locked while the build runs: a killed build's scratch is found and removed (tempfiles.py)
        self._tmp_lock, tmp = temp_dir(tmp_root, prefix=SCRATCH_PREFIX)
        self.tmp = Path(tmp)

    # ---- helpers
    def say(self, text: str) -> None:
        self.progress(text)

    def announce(self, instr: Instruction, shown: str) -> None:
        self.step += 1
        self.say(_("Step %(n)d/%(total)d : %(instr)s") % {"n": self.step, "total": self.total, "instr": shown})

    # ---- entry point
    def run(self) -> BuildResult:
        started = time.monotonic()
        stages = self.df.stages
        if self.target:
            names = [s.name for s in stages]
            if self.target.lower() not in names:
                raise LabkitError(_("target stage %(name)s not found in the Dockerfile") % {"name": self.target})
            stages = stages[: names.index(self.target.lower()) + 1]
        self.total = sum(1 + len(s.instructions) for s in stages)
        global_args: dict[str, str] = {}
        for instr in self.df.global_args:
            name, default = dfmod.parse_arg(instr, global_args)
            value = self.build_args.get(name, default)
            self.used_args.add(name)
            if value is not None:
                global_args[name] = value
        self.global_args = global_args
        self.global_declared = {dfmod.parse_arg(i, {})[0] for i in self.df.global_args}
        dates = start_dates(self.dockerfile_mtime)
        try:
            self.store.layout.ensure()
            with disk_full_is_an_error(_("the image's layers")), self.store.layout.writing():
                state = None
                for stage in stages:
                    state = self.build_stage(stage)
                assert state is not None
                image = self.finish(state)
        finally:
            end_dates(dates)
            self.cleanup()
        unused = sorted(set(self.build_args) - self.used_args - PREDEFINED_ARGS)
        if unused:
            self.say(_("[Warning] One or more build-args %(args)s were not consumed") % {"args": unused})
        self.say(_("Successfully built %(id)s") % {"id": image.short_id})
        if self.tag:
            self.say(_("Successfully tagged %(ref)s") % {"ref": self.tag})
        return BuildResult(image, self.step, self.cached, self.layers_written, time.monotonic() - started)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._tmp_lock)
        if not self.temp_images:
            return
        temp = {d["digest"] for d in self.temp_images}
        from ..layout import REF_NAME

        def change(manifests: list[dict]) -> list[dict]:
            return [m for m in manifests
                    if m["digest"] not in temp or (m.get("annotations") or {}).get(REF_NAME)]

        with contextlib.suppress(OSError):
            self.store.layout.update_index(change)

    # ---- stages
    def from_(self, stage: dfmod.Stage) -> State:
        instr = stage.from_instr
        env = dict(self.global_args)
        try:
            base = expand_word(stage.base, env)
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        shown = instr.text if base == stage.base else instr.text.replace(stage.base, base, 1)
        self.announce(instr, shown)
        if base.lower() in self.stages:
            src = self.stages[base.lower()]
            state = State(config=copy.deepcopy(src.config), layers=list(src.layers), key=src.key,
                          base_ref=src.base_ref, layer_dirs=list(src.layer_dirs), shell=list(src.shell))
        elif base == "scratch":
            state = State(config=scratch_config(), key=chain_key("scratch"), base_ref="scratch")
        else:
            img = self.base_image(base, instr)
            if img.created is not None:
                note_input(img.created.timestamp())
            cfg = copy.deepcopy(img.config)
            cfg.setdefault("config", {})
            cfg.setdefault("history", [])
            state = State(config=cfg, layers=[{k: d[k] for k in ("mediaType", "digest", "size")}
                                              for d in img.layers],
                          key=chain_key("from", img.id), base_ref=base, layer_dirs=[])
            state.layer_dirs = list(img.layer_dirs())
            self.say(" ---> " + img.short_id)
        state.config["created"] = created()
        state.args = {}
        return state

    def base_image(self, ref: str, instr: Instruction):
        img = self.store.find(ref)
        if img is not None:
            return img
        from .. import refs

        try:
            domain, path, tag, digest = refs.parse(ref)
        except LabkitError:
            raise instr.error(_("invalid image name: %(name)s") % {"name": ref}) from None
        if domain is None and path == "debian":
            from .. import debian

            return debian.ensure(tag or "stable", store=self.store, progress=self.say)
        try:
            return self.store.resolve(ref)
        except NotFound:
            pass
        from ..registry import pull

        try:
            return pull(ref, store=self.store, out=self.say)
        except LabkitError as exc:
            raise instr.error(_("image %(ref)s not found here and not pulled (%(why)s); build it, load it "
                                "or pull it first") % {"ref": ref, "why": exc}) from None

    def build_stage(self, stage: dfmod.Stage) -> State:
        state = self.from_(stage)
        for instr in stage.instructions:
            handler = HANDLERS.get(instr.cmd.upper())
            if handler is None:
                raise instr.error(_("instruction not supported by labkit"))
            handler(self, state, instr)
        self.stage_list.append(state)
        if stage.name:
            self.stages[stage.name] = state
        self.stages[str(stage.index)] = state
        return state

    # ---- helpers of the handlers
    def config_step(self, state: State, instr: Instruction, shown: str, apply: Callable[[], None]) -> None:
        self.announce(instr, shown)
        apply()
        state.add_history(shown, empty=True)
        state.key = chain_key(state.key, shown)

    def words(self, state: State, instr: Instruction) -> list[str]:
        try:
            return expand_words(instr.args, state.expand_env())
        except ValueError as exc:
            raise instr.error(str(exc)) from None

    def word(self, state: State, instr: Instruction) -> str:
        try:
            return expand_word(instr.args, state.expand_env())
        except ValueError as exc:
            raise instr.error(str(exc)) from None

    # ---- layers
    def view(self, state: State):
        from ..rootview import RootView

        self.ensure_dirs(state)
        return RootView(state.layer_dirs)

    def ensure_dirs(self, state: State) -> None:
        """Unpack the layers (cache hits and pulled bases are not unpacked yet)."""
        if len(state.layer_dirs) == len(state.layers):
            return
        dirs = []
        for desc, diff_id in zip(state.layers, state.diff_ids):
            dirs.append(self.store.unpacked(desc, diff_id))
        state.layer_dirs = dirs

    def use_cache(self, state: State, key: str, shown: str) -> bool:
        if self.no_cache:
            return False
        entry = self.cache.get(key)
        if entry is None:
            return False
        self.cached += 1
        self.say(" ---> " + _("Using cache"))
        if entry.get("layer"):
            state.add_layer(entry["layer"], entry["diff_id"], None)  # unpacked when needed
        state.add_history(shown, empty=not entry.get("layer"))
        state.key = key
        self.say(" ---> " + (entry["layer"]["digest"][7:19] if entry.get("layer") else _("(no change)")))
        return True

    def write_layer(self, state: State, key: str, shown: str, entries: list, comment: str = "") -> None:
        from .. import layers

        with self.store.layout.new_blob_writer() as w:
            res = layers.write_tar(entries, w, compress="gzip", level=GZIP_LEVEL)
            w.commit()
        self.store.remember_size(res.diff_id, res.uncompressed_size)
        desc = {"mediaType": res.media_type, "digest": res.digest, "size": res.size}
        self.record_layer(state, key, shown, desc, res.diff_id, None)

    def record_layer(self, state: State, key: str, shown: str, desc: dict | None, diff_id: str | None,
                      layer_dir: Path | None) -> None:
        if desc is not None:
            complete = len(state.layer_dirs) == len(state.layers)
            state.add_layer(desc, diff_id, None)
            d = layer_dir or self.store.layer_dir(diff_id)
            if complete and d.is_dir():
                state.layer_dirs.append(d)
            self.layers_written += 1
            self.say(" ---> " + desc["digest"][7:19])
        else:
            self.say(" ---> " + _("(no change)"))
        state.add_history(shown, empty=desc is None)
        state.key = key
        self.cache.put(key, {"layer": desc, "diff_id": diff_id, "created_by": shown})

    # ---- the result
    def finish(self, state: State) -> object:
        cfg = copy.deepcopy(state.config)
        if self.extra_labels:
            labels = cfg.setdefault("config", {}).get("Labels") or {}
            labels.update(self.extra_labels)
            cfg["config"]["Labels"] = labels
        cfg["created"] = created()
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        cfg["config"] = {k: v for k, v in cfg.get("config", {}).items() if v is not None}
        ref = self.tag
        img = self.store.write_image(cfg, state.layers, ref)
        self.temp_images = [d for d in self.temp_images if d["digest"] != img.digest]
        return img


def build_result(context: str | os.PathLike = ".", tag: str | None = None, *, dockerfile: str | os.PathLike | None = None,
          build_args: dict[str, str] | None = None, no_cache: bool = False, network: str = "bridge",
          target: str | None = None, quiet: bool = False, out: TextIO | Callable[[str], None] | None = None,
          labels: dict[str, str] | None = None, home: Path | None = None):
    """Build an image from a Dockerfile, like ``docker build``; return a :class:`BuildResult`.

    ``context`` is the directory whose files ``COPY``/``ADD`` see (minus what
    ``.dockerignore`` excludes); ``dockerfile`` defaults to
    ``CONTEXT/Dockerfile`` and may also be the Dockerfile's text itself
    (anything with a newline). Progress goes to ``out`` (default stdout).
    """
    from ..store import Store

    ctx = Path(context)
    if not ctx.is_dir():
        raise NotFound(_("build context not found: %(path)s") % {"path": ctx})
    name = "Dockerfile"
    dockerfile_mtime = 0.0
    if dockerfile is not None and isinstance(dockerfile, str) and "\n" in dockerfile:
        text = dockerfile
    else:
        path = Path(dockerfile) if dockerfile is not None else ctx / "Dockerfile"
        if dockerfile is not None and not path.is_absolute() and not path.exists():
            path = ctx / path
        if not path.is_file():
            alt = ctx / "Containerfile"
            if dockerfile is None and alt.is_file():
                path = alt
            else:
                raise NotFound(_("Dockerfile not found: %(path)s") % {"path": path})
        text = path.read_text(encoding="utf-8")
        name = path.name
        dockerfile_mtime = path.stat().st_mtime
    if tag:
        from .. import refs

        try:
            refs.parse(tag)
        except LabkitError:
            raise LabkitError(_("invalid image name: %(name)s") % {"name": tag}) from None
    builder = Builder(ctx, text, tag=tag, build_args=build_args, no_cache=no_cache, network=network,
                      target=target, progress=Progress(out, quiet), store=Store(home) if home else None,
                      dockerfile_name=name, labels=labels, dockerfile_mtime=dockerfile_mtime)
    return builder.run()


def build(context: str | os.PathLike = ".", tag: str | None = None, **kwargs):
    """Build an image from a Dockerfile, like ``docker build``; return the store ``Image``.

    Same arguments as :func:`build_result`: ``dockerfile`` (path, or the text
    itself), ``build_args``, ``no_cache``, ``network`` ("bridge", the default; "none", "host", a network),
    ``target``, ``quiet``, ``out`` (a stream or a function of one line),
    ``labels``, ``home``.

        >>> img = labkit.build("exemplo/", "meu-app:1.0")   # doctest: +SKIP
    """
    return build_result(context, tag, **kwargs).image
