"""``labkit build``: a Dockerfile becomes an OCI image in the store, one layer per step.

How a step becomes a layer:

* ``COPY``/``ADD``: the files are written straight into a tar (sorted, owner
  0:0 unless ``--chown``, mtime 0) placed at the destination, which is
  resolved in the image so far (``/bin`` may be a link to ``usr/bin``).
  ``ADD`` of a local tarball unpacks it with the store's safe extractor first.
* ``RUN``: the command runs in a build container of the image so far
  (``labkit.run(..., remove=False)``); the container's OverlayFS upper
  directory *is* the change, and becomes the layer, with whiteouts written as
  ``.wh.`` entries and opaque directories as ``.wh..wh..opq``. The upper dir
  is moved into ``$LABKIT_HOME/layers/`` as the unpacked layer (no re-extraction).
* ``ENV``, ``CMD``, ``LABEL``... only change the image config (no layer).

The cache works like Docker's: a step's key is the hash of the previous key,
the instruction text (after ``ARG``/``ENV`` expansion) and, for ``COPY``/``ADD``,
the content of the copied files. A hit reuses the layer; a rebuild with
nothing changed writes no layer at all. The config's timestamps are fixed
(``SOURCE_DATE_EPOCH``, default 0), so the same Dockerfile and context give
the same image ID every time.
"""
from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import json
import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TextIO

from ..errors import LabkitError, NotFound
from ..i18n import _
from . import dockerfile as dfmod
from .dockerfile import DockerfileError, Instruction, expand_word, expand_words
from .dockerignore import DockerIgnore

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Docker's predefined ARGs, usable without declaring them
PREDEFINED_ARGS = {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
                   "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
GZIP_LEVEL = 1  # layers are written once per build; speed over a few bytes


def _epoch() -> int:
    try:
        return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    except ValueError:
        return 0


def _created() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_epoch()))


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- progress
class Progress:
    """Prints ``Passo 1/5 : FROM busybox`` lines; works in a terminal and a notebook."""

    def __init__(self, out: TextIO | Callable[[str], None] | None = None, quiet: bool = False) -> None:
        self.quiet = quiet
        self._out = out

    def __call__(self, text: str) -> None:
        if self.quiet:
            return
        if callable(self._out) and not hasattr(self._out, "write"):
            self._out(text)
            return
        stream = self._out or sys.stdout
        stream.write(text + "\n")
        with contextlib.suppress(Exception):
            stream.flush()


# --------------------------------------------------------------------------- state
@dataclass
class State:
    """The image being built in one stage."""

    config: dict
    layers: list[dict] = field(default_factory=list)  # manifest descriptors
    key: str = ""                                       # cache chain key
    base_ref: str = ""
    layer_dirs: list[Path] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # ARGs in scope (values)
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False  # CMD given in this stage (a later ENTRYPOINT keeps it)

    @property
    def cfg(self) -> dict:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        out = {}
        for item in self.cfg.get("Env") or []:
            k, _sep, v = item.partition("=")
            out[k] = v
        return out

    def set_env(self, key: str, value: str) -> None:
        env = self.env()
        env[key] = value
        self.cfg["Env"] = [f"{k}={v}" for k, v in env.items()]

    def expand_env(self) -> dict[str, str]:
        """Variables visible to expansion: ARGs, then ENV (ENV wins, as in Docker)."""
        return {**self.args, **self.env()}

    def add_history(self, created_by: str, empty: bool) -> None:
        entry = {"created": _created(), "created_by": created_by}
        if empty:
            entry["empty_layer"] = True
        self.config.setdefault("history", []).append(entry)

    def add_layer(self, desc: dict, diff_id: str, layer_dir: Path | None) -> None:
        self.layers.append({k: desc[k] for k in ("mediaType", "digest", "size")})
        self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})["diff_ids"].append(diff_id)
        if layer_dir is not None:
            self.layer_dirs.append(layer_dir)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))


def _duration_ns(instr: Instruction, text: str) -> int:
    """Go-style durations as Docker takes them: ``30s``, ``1m30s``, ``500ms``."""
    import re

    units = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise instr.error(_("invalid duration: %(v)s (use e.g. 30s, 1m30s)") % {"v": text})
    return int(sum(float(n) * units[u] for n, u in parts))


def _clamp_mtimes(top: Path, when: int) -> None:
    for root, dnames, fnames in os.walk(top):
        for n in dnames + fnames:
            with contextlib.suppress(OSError):
                os.utime(os.path.join(root, n), (when, when), follow_symlinks=False)
    os.utime(top, (when, when))


def scratch_config() -> dict:
    from .store import host_arch

    return {"architecture": host_arch(), "os": "linux", "created": _created(),
            "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}


# --------------------------------------------------------------------------- cache
class BuildCache:
    """``$LABKIT_HOME/build-cache/<key>.json``: what a step produced."""

    def __init__(self, home: Path, layout) -> None:
        self.dir = home / "build-cache"
        self.layout = layout

    def get(self, key: str) -> dict | None:
        try:
            entry = json.loads((self.dir / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        layer = entry.get("layer")
        if layer and not self.layout.has_blob(layer["digest"]):
            return None  # pruned since
        return entry

    def put(self, key: str, entry: dict) -> None:
        from .layout import Layout

        self.dir.mkdir(parents=True, exist_ok=True)
        Layout._atomic_write(self.dir / f"{key}.json", json.dumps(entry, sort_keys=True).encode())

    def clear(self) -> int:
        n = 0
        if self.dir.is_dir():
            for p in self.dir.glob("*.json"):
                p.unlink(missing_ok=True)
                n += 1
        return n


# --------------------------------------------------------------------------- the builder
@dataclass
class BuildResult:
    image: object          # store.Image
    steps: int
    cached: int
    layers_written: int
    seconds: float


class Builder:
    def __init__(self, context: Path, dockerfile_text: str, *, tag: str | None = None,
                 build_args: dict[str, str] | None = None, no_cache: bool = False,
                 network: str = "none", target: str | None = None,
                 progress: Progress | None = None, store=None, dockerfile_name: str = "Dockerfile",
                 labels: dict[str, str] | None = None) -> None:
        from .store import Store

        self.context = Path(context).resolve()
        self.df = dfmod.parse(dockerfile_text, dockerfile_name)
        self.tag = tag
        self.build_args = dict(build_args or {})
        self.no_cache = no_cache
        if network not in ("none", "host", "default"):
            raise LabkitError(_("invalid network for build: %(net)s (use none or host)") % {"net": network})
        self.network = network
        self.target = target
        self.progress = progress or Progress()
        self.store = store or Store()
        self.cache = BuildCache(self.store.home, self.store.layout)
        self.ignore = DockerIgnore.load(self.context)
        self.extra_labels = labels or {}
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
        self._tmp = Path(tempfile.mkdtemp(prefix="build-", dir=tmp_root))

    # ---- helpers
    def say(self, text: str) -> None:
        self.progress(text)

    def _step(self, instr: Instruction, shown: str) -> None:
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
        try:
            self.store.layout.ensure()
            with self.store.layout.writing():
                state = None
                for stage in stages:
                    state = self._build_stage(stage)
                assert state is not None
                image = self._finish(state)
        finally:
            self._cleanup()
        unused = sorted(set(self.build_args) - self.used_args - PREDEFINED_ARGS)
        if unused:
            self.say(_("[Warning] One or more build-args %(args)s were not consumed") % {"args": unused})
        self.say(_("Successfully built %(id)s") % {"id": image.short_id})
        if self.tag:
            self.say(_("Successfully tagged %(ref)s") % {"ref": self.tag})
        return BuildResult(image, self.step, self.cached, self.layers_written, time.monotonic() - started)

    def _cleanup(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        if not self.temp_images:
            return
        temp = {d["digest"] for d in self.temp_images}
        from .layout import REF_NAME

        def change(manifests: list[dict]) -> list[dict]:
            return [m for m in manifests
                    if m["digest"] not in temp or (m.get("annotations") or {}).get(REF_NAME)]

        with contextlib.suppress(OSError):
            self.store.layout.update_index(change)

    # ---- stages
    def _from(self, stage: dfmod.Stage) -> State:
        instr = stage.from_instr
        env = dict(self.global_args)
        try:
            base = expand_word(stage.base, env)
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        shown = instr.text if base == stage.base else instr.text.replace(stage.base, base, 1)
        self._step(instr, shown)
        if base.lower() in self.stages:
            src = self.stages[base.lower()]
            state = State(config=copy.deepcopy(src.config), layers=list(src.layers), key=src.key,
                          base_ref=src.base_ref, layer_dirs=list(src.layer_dirs), shell=list(src.shell))
        elif base == "scratch":
            state = State(config=scratch_config(), key=_sha("scratch"), base_ref="scratch")
        else:
            img = self._base_image(base, instr)
            cfg = copy.deepcopy(img.config)
            cfg.setdefault("config", {})
            cfg.setdefault("history", [])
            state = State(config=cfg, layers=[{k: d[k] for k in ("mediaType", "digest", "size")}
                                              for d in img.layers],
                          key=_sha("from", img.id), base_ref=base, layer_dirs=[])
            state.layer_dirs = list(img.layer_dirs())
            self.say(" ---> " + img.short_id)
        state.config["created"] = _created()
        state.args = {}
        return state

    def _base_image(self, ref: str, instr: Instruction):
        img = self.store.find(ref)
        if img is not None:
            return img
        from . import refs

        try:
            domain, path, tag, digest = refs.parse(ref)
        except LabkitError:
            raise instr.error(_("invalid image name: %(name)s") % {"name": ref}) from None
        if domain is None and path == "debian":
            from . import debian

            return debian.ensure(tag or "stable", store=self.store, progress=self.say)
        try:
            return self.store.resolve(ref)
        except NotFound:
            pass
        from .registry import pull

        try:
            return pull(ref, store=self.store, out=self.say)
        except LabkitError as exc:
            raise instr.error(_("image %(ref)s not found here and not pulled (%(why)s); build it, load it "
                                "or pull it first") % {"ref": ref, "why": exc}) from None

    def _build_stage(self, stage: dfmod.Stage) -> State:
        state = self._from(stage)
        for instr in stage.instructions:
            handler = getattr(self, "_i_" + instr.cmd.lower(), None)
            if handler is None:
                raise instr.error(_("instruction not supported by labkit"))
            handler(state, instr)
        self.stage_list.append(state)
        if stage.name:
            self.stages[stage.name] = state
        self.stages[str(stage.index)] = state
        return state

    # ---- config-only instructions
    def _config_step(self, state: State, instr: Instruction, shown: str, apply: Callable[[], None]) -> None:
        self._step(instr, shown)
        apply()
        state.add_history(shown, empty=True)
        state.key = _sha(state.key, shown)

    def _words(self, state: State, instr: Instruction) -> list[str]:
        try:
            return expand_words(instr.args, state.expand_env())
        except ValueError as exc:
            raise instr.error(str(exc)) from None

    def _word(self, state: State, instr: Instruction) -> str:
        try:
            return expand_word(instr.args, state.expand_env())
        except ValueError as exc:
            raise instr.error(str(exc)) from None

    def _i_env(self, state: State, instr: Instruction) -> None:
        pairs = dfmod.key_values(instr, state.expand_env())
        shown = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)

        def apply() -> None:
            for k, v in pairs:
                state.set_env(k, v)
        self._config_step(state, instr, shown, apply)

    def _i_label(self, state: State, instr: Instruction) -> None:
        pairs = dfmod.key_values(instr, state.expand_env(), legacy=True)
        shown = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)

        def apply() -> None:
            labels = state.cfg.setdefault("Labels", {}) or {}
            state.cfg["Labels"] = labels
            for k, v in pairs:
                labels[k] = v
        self._config_step(state, instr, shown, apply)

    def _i_maintainer(self, state: State, instr: Instruction) -> None:
        def apply() -> None:
            state.config["author"] = instr.args.strip()
        self._config_step(state, instr, instr.text, apply)

    def _i_arg(self, state: State, instr: Instruction) -> None:
        name, default = dfmod.parse_arg(instr, state.expand_env())
        self.used_args.add(name)
        if name in self.build_args:
            value: str | None = self.build_args[name]
        elif default is not None:
            value = default
        elif name in self.global_args:
            value = self.global_args[name]
        else:
            value = None
        self._step(instr, instr.text)
        if value is not None:
            state.args[name] = value
        # an ARG's value is part of the cache key of the steps after it (as in Docker)
        state.key = _sha(state.key, instr.text, f"{name}={value}")

    def _i_workdir(self, state: State, instr: Instruction) -> None:
        path = self._word(state, instr)
        if not path.startswith("/"):
            path = posixpath.join(state.cfg.get("WorkingDir") or "/", path)
        path = posixpath.normpath(path)
        shown = f"WORKDIR {path}"
        self._step(instr, shown)
        state.cfg["WorkingDir"] = path
        key = _sha(state.key, shown)
        # create the directory, in a layer of its own, when the image lacks it
        view = self._view(state)
        node = view.lookup(path) if view else None
        if node is not None and node.is_dir:
            state.add_history(shown, empty=True)
            state.key = key
            return
        if self._cached(state, key, shown):
            return
        real = view.resolve_path(path) if view else path
        entries = self._parent_entries(state, real.strip("/") + "/x")
        self._write_layer(state, key, shown, entries)

    def _i_user(self, state: State, instr: Instruction) -> None:
        user = self._word(state, instr)

        def apply() -> None:
            state.cfg["User"] = user
        self._config_step(state, instr, f"USER {user}", apply)

    def _exec_or_shell(self, state: State, instr: Instruction) -> list[str]:
        form = instr.json_list()
        if form is not None:
            return form
        return [*state.shell, instr.args.strip()]

    def _i_cmd(self, state: State, instr: Instruction) -> None:
        argv = self._exec_or_shell(state, instr) if instr.args.strip() else []

        def apply() -> None:
            state.cfg["Cmd"] = argv
            state.cmd_set = True
        self._config_step(state, instr, "CMD " + json.dumps(argv), apply)

    def _i_entrypoint(self, state: State, instr: Instruction) -> None:
        argv = self._exec_or_shell(state, instr) if instr.args.strip() else []

        def apply() -> None:
            state.cfg["Entrypoint"] = argv or None
            if not state.cmd_set:
                state.cfg.pop("Cmd", None)  # as Docker: a new ENTRYPOINT drops the base image's CMD
        self._config_step(state, instr, "ENTRYPOINT " + json.dumps(argv), apply)

    def _i_shell(self, state: State, instr: Instruction) -> None:
        form = instr.json_list()
        if not form:
            raise instr.error(_('SHELL needs the JSON form, e.g. SHELL ["/bin/sh", "-c"]'))

        def apply() -> None:
            state.shell = form
            state.cfg["Shell"] = form
        self._config_step(state, instr, "SHELL " + json.dumps(form), apply)

    def _i_expose(self, state: State, instr: Instruction) -> None:
        ports = []
        for w in self._words(state, instr):
            port, _sep, proto = w.partition("/")
            if not port.replace("-", "").isdigit():
                raise instr.error(_("invalid port: %(port)s") % {"port": w})
            ports.append(f"{port}/{proto or 'tcp'}")

        def apply() -> None:
            exposed = state.cfg.get("ExposedPorts") or {}
            for p in ports:
                exposed[p] = {}
            state.cfg["ExposedPorts"] = exposed
        self._config_step(state, instr, "EXPOSE " + " ".join(ports), apply)

    def _i_volume(self, state: State, instr: Instruction) -> None:
        form = instr.json_list()
        vols = form if form is not None else self._words(state, instr)

        def apply() -> None:
            volumes = state.cfg.get("Volumes") or {}
            for v in vols:
                volumes[v] = {}
            state.cfg["Volumes"] = volumes
        self._config_step(state, instr, "VOLUME " + json.dumps(vols), apply)

    def _i_stopsignal(self, state: State, instr: Instruction) -> None:
        sig = self._word(state, instr)

        def apply() -> None:
            state.cfg["StopSignal"] = sig
        self._config_step(state, instr, f"STOPSIGNAL {sig}", apply)

    def _i_healthcheck(self, state: State, instr: Instruction) -> None:
        args = instr.args.strip()
        if args.upper() == "NONE":
            check: dict = {"Test": ["NONE"]}
        else:
            word, _sep, rest = args.partition(" ")
            if word.upper() != "CMD" or not rest.strip():
                raise instr.error(_("expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE"))
            sub = Instruction(cmd="CMD", value=rest, line=instr.line, text=instr.text, args=rest.strip())
            form = sub.json_list()
            check = {"Test": ["CMD", *form] if form is not None else ["CMD-SHELL", rest.strip()]}
            for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                              ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
                if flag in instr.flags:
                    check[key] = _duration_ns(instr, instr.flags[flag])
            if "retries" in instr.flags:
                if not instr.flags["retries"].isdigit():
                    raise instr.error(_("invalid --retries: %(v)s") % {"v": instr.flags["retries"]})
                check["Retries"] = int(instr.flags["retries"])

        def apply() -> None:
            state.cfg["Healthcheck"] = check
        self._config_step(state, instr, instr.text, apply)

    def _i_onbuild(self, state: State, instr: Instruction) -> None:
        def apply() -> None:
            state.cfg.setdefault("OnBuild", [])
            state.cfg["OnBuild"] = (state.cfg["OnBuild"] or []) + [instr.args.strip()]
        self._config_step(state, instr, instr.text, apply)

    # ---- layers
    def _view(self, state: State):
        from .rootview import RootView

        self._ensure_dirs(state)
        return RootView(state.layer_dirs)

    def _ensure_dirs(self, state: State) -> None:
        """Unpack the layers (cache hits and pulled bases are not unpacked yet)."""
        if len(state.layer_dirs) == len(state.layers):
            return
        dirs = []
        for desc, diff_id in zip(state.layers, state.diff_ids):
            dirs.append(self.store._unpacked(desc, diff_id))
        state.layer_dirs = dirs

    def _cached(self, state: State, key: str, shown: str) -> bool:
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

    def _write_layer(self, state: State, key: str, shown: str, entries: list, comment: str = "") -> None:
        from . import layers

        with self.store.layout.new_blob_writer() as w:
            res = layers.write_tar(entries, w, compress="gzip", level=GZIP_LEVEL)
            w.commit()
        self.store._remember_size(res.diff_id, res.uncompressed_size)
        desc = {"mediaType": res.media_type, "digest": res.digest, "size": res.size}
        self._record_layer(state, key, shown, desc, res.diff_id, None)

    def _record_layer(self, state: State, key: str, shown: str, desc: dict | None, diff_id: str | None,
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

    # ---- COPY / ADD
    def _i_copy(self, state: State, instr: Instruction, add: bool = False) -> None:
        from . import layers

        # --link changes only how Docker stores the layer; the content is the same here
        form = instr.json_list()
        try:
            args = form if form is not None else self._words(state, instr)
            if form is not None:
                env = state.expand_env()
                args = [expand_word(a, env) for a in args]
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        if len(args) < 2:
            raise instr.error(_("needs at least a source and a destination"))
        *srcs, dest = args
        shown = f"{instr.cmd} " + " ".join(f"--{k}={v}" for k, v in sorted(instr.flags.items())) \
            + (" " if instr.flags else "") + " ".join(args)
        self._step(instr, shown)
        self._ensure_dirs(state)
        workdir = state.cfg.get("WorkingDir") or "/"
        if not dest.startswith("/"):
            dest_abs = posixpath.join(workdir, dest)
        else:
            dest_abs = dest
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        owner = self._chown(state, instr)
        chmod = None
        if instr.flags.get("chmod"):
            try:
                chmod = int(instr.flags["chmod"], 8)
            except ValueError:
                raise instr.error(_("invalid --chmod: %(v)s") % {"v": instr.flags["chmod"]}) from None
        source_view = None
        from_ref = instr.flags.get("from")
        if from_ref:
            source_view = self._source_stage(state, instr, from_ref)
        # collect the sources: (name in the layer relative to dest, kind, data)
        # (path under dest, "file"|"dir"|"link"|"tar", source, came from a directory source)
        items: list[tuple[str, str, object, bool]] = []
        multi = len(srcs) > 1
        for src in srcs:
            if add and (src.startswith("http://") or src.startswith("https://") or src.startswith("git@")):
                raise instr.error(_("ADD from a URL is not supported by labkit (no network in the course); "
                                    "download the file into the context and use COPY"))
            matched = self._match_sources(instr, src, source_view)
            if len(matched) > 1 or any(c in src for c in "*?["):
                multi = multi or len(matched) > 1
            for rel, node in matched:
                items.extend(self._source_items(instr, rel, node, source_view, add))
        if multi and not dest_is_dir:
            raise instr.error(_("when copying several sources the destination must end with /"))
        view = self._view(state)
        # the destination directory, with links in the image resolved
        real_dest = view.resolve_path(dest_abs) if view else posixpath.normpath(dest_abs)
        if view is not None and not dest_is_dir:
            node = view.lookup(real_dest)
            if node is not None and node.is_dir:
                dest_is_dir = True
        entries: list = []
        content = hashlib.sha256()
        seen_dirs: set[str] = set()
        for sub, kind, source, from_dir in items:
            if kind == "tar":
                # ADD: a local archive, unpacked safely into the destination directory
                tmpdir = Path(tempfile.mkdtemp(dir=self._tmp))
                try:
                    layers.extract(source, tmpdir)
                except layers.UnsafeLayer as exc:
                    raise instr.error(_("unsafe archive %(name)s refused: %(reason)s")
                                      % {"name": sub, "reason": exc}) from None
                base = real_dest.strip("/")
                # the archive's owners and times are kept, unless --chown says otherwise (as Docker)
                keep = None if "chown" not in instr.flags else owner
                for e in layers.dir_entries(tmpdir, owner=keep, mtime=None, whiteouts=False, prefix=base):
                    entries.append(e)
                    content.update(self._entry_fingerprint(e))
                continue
            if from_dir:
                target = posixpath.join(real_dest, sub) if sub else real_dest
            elif dest_is_dir:
                target = posixpath.join(real_dest, sub)
            else:
                target = real_dest
            name = target.strip("/")
            if not name:
                continue
            e = self._entry(name, kind, source, owner, chmod)
            if e.info.isdir():
                if name in seen_dirs:
                    continue
                seen_dirs.add(name)
            entries.append(e)
            content.update(self._entry_fingerprint(e))
        # parent directories, with the image's metadata when they exist
        names = {e.info.name for e in entries}
        parents: dict[str, object] = {}
        for e in list(entries):
            for p in self._parents_of(e.info.name):
                if p not in names and p not in parents:
                    parents[p] = self._parent_entry(view, p)
        entries.extend(parents.values())
        entries.sort(key=lambda e: e.info.name.encode())
        # drop duplicates (last wins, as a later source overwrites an earlier one)
        uniq: dict[str, object] = {}
        for e in entries:
            uniq[e.info.name] = e
        entries = sorted(uniq.values(), key=lambda e: e.info.name.encode())
        key = _sha(state.key, shown, content.hexdigest())
        if self._cached(state, key, shown):
            return
        self._write_layer(state, key, shown, entries)

    def _i_add(self, state: State, instr: Instruction) -> None:
        self._i_copy(state, instr, add=True)

    def _chown(self, state: State, instr: Instruction) -> tuple[int, int] | None:
        spec = instr.flags.get("chown")
        if not spec:
            return (0, 0)
        try:
            spec = expand_word(spec, state.expand_env())
        except ValueError as exc:
            raise instr.error(str(exc)) from None
        user, _sep, group = spec.partition(":")
        uid = self._lookup_id(state, instr, user, "passwd")
        gid = self._lookup_id(state, instr, group, "group") if group else uid
        if not group and not user.isdigit():
            gid = self._primary_gid(state, user)
        return (uid, gid)

    def _read_image_file(self, state: State, path: str) -> str:
        view = self._view(state)
        node = view.lookup(path) if view else None
        if node is None or node.is_dir:
            return ""
        try:
            return Path(node.host_path).read_text(errors="replace")
        except OSError:
            return ""

    def _lookup_id(self, state: State, instr: Instruction, name: str, db: str) -> int:
        if name.isdigit():
            return int(name)
        for line in self._read_image_file(state, f"/etc/{db}").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
        raise instr.error(_("unknown user or group %(name)s in the image's /etc/%(db)s") % {"name": name, "db": db})

    def _primary_gid(self, state: State, user: str) -> int:
        for line in self._read_image_file(state, "/etc/passwd").splitlines():
            fields = line.split(":")
            if len(fields) > 3 and fields[0] == user and fields[3].isdigit():
                return int(fields[3])
        return 0

    def _source_stage(self, state: State, instr: Instruction, ref: str):
        from .rootview import RootView

        key = ref.lower()
        if key in self.stages:
            src = self.stages[key]
            self._ensure_dirs(src)
            return RootView(src.layer_dirs)
        try:
            img = self._base_image(ref, instr)
        except DockerfileError:
            raise instr.error(_("--from=%(ref)s: no such stage or image") % {"ref": ref}) from None
        return RootView(img.layer_dirs())

    def _match_sources(self, instr: Instruction, src: str, view) -> list[tuple[str, object]]:
        """Sources as (relative name, host path or Node); wildcards expanded; context kept closed."""
        if view is not None:
            node = view.lookup(src if src.startswith("/") else "/" + src)
            if node is None:
                if any(c in src for c in "*?["):
                    parent = view.lookup(posixpath.dirname("/" + src.lstrip("/")))
                    pat = posixpath.basename(src)
                    out = []
                    if parent is not None and parent.is_dir:
                        for name in view.listdir(parent):
                            if fnmatch.fnmatchcase(name, pat):
                                out.append((name, view.child(parent, name)))
                    if out:
                        return out
                raise instr.error(_("%(src)s: not found in the source stage") % {"src": src})
            return [(posixpath.basename(src.rstrip("/")) or "", node)]
        rel = posixpath.normpath(src.lstrip("/"))
        if rel == "..":
            rel = "."
        if rel.startswith("../"):
            raise instr.error(_("%(src)s: outside the build context") % {"src": src})
        if any(c in rel for c in "*?["):
            out = []
            for path in sorted(self._context_files(dirs=True)):
                if fnmatch.fnmatchcase(path, rel) and "/" not in path[len(posixpath.dirname(rel)) + 1 if posixpath.dirname(rel) else 0:]:
                    out.append((posixpath.basename(path), self.context / path))
            if not out:
                raise instr.error(_("no source files were specified (%(src)s matches nothing in the context)")
                                  % {"src": src})
            return out
        path = self._in_context(instr, rel)
        if rel != "." and self.ignore.excluded(rel):
            raise instr.error(_("%(src)s: excluded by .dockerignore") % {"src": src})
        if not os.path.lexists(path):
            raise instr.error(_("%(src)s: not found in the build context") % {"src": src})
        return [(posixpath.basename(rel) if rel != "." else "", path)]

    def _in_context(self, instr: Instruction, rel: str) -> Path:
        """The host path of ``rel``; a symlink at the top is followed but must stay in the context."""
        path = self.context / rel if rel != "." else self.context
        real = Path(os.path.realpath(path))
        if real != self.context and self.context not in real.parents:
            raise instr.error(_("%(src)s: outside the build context") % {"src": rel})
        return real

    def _context_files(self, dirs: bool = False) -> list[str]:
        out = []
        for root, dnames, fnames in os.walk(self.context):
            rel_root = os.path.relpath(root, self.context)
            rel_root = "" if rel_root == "." else rel_root
            for n in (fnames + (dnames if dirs else [])):
                rel = f"{rel_root}/{n}" if rel_root else n
                if not self.ignore.excluded(rel):
                    out.append(rel)
        return out

    def _source_items(self, instr: Instruction, name: str, source, view, add: bool) -> list[tuple]:
        """Expand one source into items relative to the destination."""
        from .rootview import Node

        items: list[tuple[str, str, object]] = []
        if isinstance(source, Node):
            if source.is_dir:
                for rel, node in view.walk(source):
                    items.append((rel, self._kind(node.st), node.host_path, True))
                return items or [("", "dir", source.host_path, True)]
            return [(name, self._kind(source.st), source.host_path, False)]
        path = Path(source)
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            base_rel = os.path.relpath(path, self.context)
            base_rel = "" if base_rel == "." else base_rel
            for root, dnames, fnames in os.walk(path):
                dnames.sort()
                for n in sorted(dnames + fnames):
                    full = Path(root) / n
                    rel_ctx = os.path.relpath(full, self.context)
                    if self.ignore.excluded(rel_ctx):
                        continue
                    items.append((os.path.relpath(full, path), self._kind(os.lstat(full)), str(full), True))
            return items or [("", "dir", str(path), True)]
        if add and self._is_archive(path):
            return [(name, "tar", str(path), True)]
        return [(name, self._kind(st), str(path), False)]

    @staticmethod
    def _is_archive(path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                head = f.read(512)
        except OSError:
            return False
        if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00" \
                or head[:4] == b"\x28\xb5\x2f\xfd":
            return True
        return len(head) == 512 and head[257:262] == b"ustar"

    @staticmethod
    def _kind(st: os.stat_result) -> str:
        if stat.S_ISDIR(st.st_mode):
            return "dir"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        if stat.S_ISREG(st.st_mode):
            return "file"
        return "other"

    def _entry(self, name: str, kind: str, source, owner, chmod):
        from . import layers

        uid, gid = owner or (0, 0)
        st = os.lstat(source)
        if kind == "dir":
            return layers.dir_entry(name, chmod if chmod is not None else stat.S_IMODE(st.st_mode), uid, gid)
        if kind == "link":
            return layers.symlink_entry(name, os.readlink(source), uid, gid)
        if kind == "file":
            ti = tarfile.TarInfo(name)
            ti.type, ti.size = tarfile.REGTYPE, st.st_size
            ti.mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
            ti.uid, ti.gid, ti.mtime = uid, gid, 0
            return layers.Entry(ti, path=str(source))
        raise LabkitError(_("cannot copy %(name)s: not a file, directory or link") % {"name": name})

    @staticmethod
    def _entry_fingerprint(e) -> bytes:
        ti = e.info
        h = hashlib.sha256()
        h.update(f"{ti.name}\0{ti.type!r}\0{ti.mode}\0{ti.uid}\0{ti.gid}\0{ti.linkname}\0{ti.size}\0".encode(
            "utf-8", "surrogateescape"))
        if e.data is not None:
            h.update(e.data)
        elif e.path is not None and ti.type == tarfile.REGTYPE:
            with open(e.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        return h.digest()

    @staticmethod
    def _parents_of(name: str) -> list[str]:
        parts = name.split("/")[:-1]
        return ["/".join(parts[: i + 1]) for i in range(len(parts))]

    def _parent_entry(self, view, name: str):
        from . import layers

        node = view.lookup("/" + name, follow=False) if view else None
        if node is not None and node.is_dir:
            st = node.st
            return layers.dir_entry(name, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        return layers.dir_entry(name, 0o755)

    def _parent_entries(self, state: State, name: str) -> list:
        view = self._view(state)
        return [self._parent_entry(view, p) for p in self._parents_of(name)]

    # ---- RUN
    def _i_run(self, state: State, instr: Instruction) -> None:
        form = instr.json_list()
        argv = form if form is not None else [*state.shell, instr.args.strip()]
        shown = "RUN " + (json.dumps(argv) if form is not None else instr.args.strip())
        self._step(instr, shown)
        # build args are in the environment of RUN (and so in its cache key), not in the image
        run_env = {k: v for k, v in state.args.items() if k not in state.env()}
        key = _sha(state.key, shown, json.dumps(sorted(run_env.items())), self.network)
        if self._cached(state, key, shown):
            return
        self._ensure_dirs(state)
        image_ref = self._temp_image(state)
        import labkit.api as api

        run_kwargs = dict(env=run_env, workdir=state.cfg.get("WorkingDir") or "/",
                          user=state.cfg.get("User") or None, remove=False, entrypoint=[])
        import inspect

        if "network" in inspect.signature(api.run).parameters:
            run_kwargs["network"] = self.network
        elif self.network == "host" and not getattr(self, "_warned_network", False):
            self._warned_network = True
            self.say(_("[Warning] --network host is not supported by the runtime yet: RUN has no network"))
        name = f"labkit-build-{os.urandom(6).hex()}"
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
                self._show_output(result.stdout)
            if result.stderr:
                self._show_output(result.stderr)
            container = api.get(result.id)
            if result.exit_code != 0:
                raise instr.error(_("the command %(cmd)s returned a non-zero code: %(code)d")
                                  % {"cmd": json.dumps(argv), "code": result.exit_code})
            upper = Path(container.upper_dir)
            self._clean_upper(state, upper)
            if not any(upper.iterdir()):
                self._record_layer(state, key, shown, None, None, None)
                return
            moved = self._tmp / f"upper-{self.step}"
            os.rename(upper, moved)
            upper.mkdir()  # the engine removes it with the container
            _clamp_mtimes(moved, _epoch())  # the unpacked layer matches its tarball
            desc = self.store.add_layer_from_dir(moved, move=True, owner=None, mtime=0,
                                                 compress="gzip", level=GZIP_LEVEL)
            diff_id = desc.pop("diff_id")
            desc.pop("uncompressed_size", None)
            self._record_layer(state, key, shown, desc, diff_id, None)
        finally:
            if container is not None:
                with contextlib.suppress(LabkitError, OSError):
                    container.remove(force=True)

    def _show_output(self, text: str) -> None:
        for line in text.rstrip("\n").split("\n"):
            self.say(line)

    def _clean_upper(self, state: State, upper: Path) -> None:
        """Drop what the runtime itself put in the upper dir (mount points it had to create)."""
        view = self._view(state)
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

    def _temp_image(self, state: State) -> str:
        """An untagged image of the state so far, for the build container (removed at the end)."""
        cfg = copy.deepcopy(state.config)
        img = self.store.write_image(cfg, state.layers, None)
        self.temp_images.append(img.descriptor)
        return img.digest

    # ---- the result
    def _finish(self, state: State) -> object:
        cfg = copy.deepcopy(state.config)
        if self.extra_labels:
            labels = cfg.setdefault("config", {}).get("Labels") or {}
            labels.update(self.extra_labels)
            cfg["config"]["Labels"] = labels
        cfg["created"] = _created()
        cfg.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        cfg["config"] = {k: v for k, v in cfg.get("config", {}).items() if v is not None}
        ref = self.tag
        img = self.store.write_image(cfg, state.layers, ref)
        self.temp_images = [d for d in self.temp_images if d["digest"] != img.digest]
        return img


def build_result(context: str | os.PathLike = ".", tag: str | None = None, *, dockerfile: str | os.PathLike | None = None,
          build_args: dict[str, str] | None = None, no_cache: bool = False, network: str = "none",
          target: str | None = None, quiet: bool = False, out: TextIO | Callable[[str], None] | None = None,
          labels: dict[str, str] | None = None, home: Path | None = None):
    """Build an image from a Dockerfile, like ``docker build``; return a :class:`BuildResult`.

    ``context`` is the directory whose files ``COPY``/``ADD`` see (minus what
    ``.dockerignore`` excludes); ``dockerfile`` defaults to
    ``CONTEXT/Dockerfile`` and may also be the Dockerfile's text itself
    (anything with a newline). Progress goes to ``out`` (default stdout).
    """
    from .store import Store

    ctx = Path(context)
    if not ctx.is_dir():
        raise NotFound(_("build context not found: %(path)s") % {"path": ctx})
    name = "Dockerfile"
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
    if tag:
        from . import refs

        try:
            refs.parse(tag)
        except LabkitError:
            raise LabkitError(_("invalid image name: %(name)s") % {"name": tag}) from None
    builder = Builder(ctx, text, tag=tag, build_args=build_args, no_cache=no_cache, network=network,
                      target=target, progress=Progress(out, quiet), store=Store(home) if home else None,
                      dockerfile_name=name, labels=labels)
    return builder.run()


def build(context: str | os.PathLike = ".", tag: str | None = None, **kwargs):
    """Build an image from a Dockerfile, like ``docker build``; return the store ``Image``.

    Same arguments as :func:`build_result`: ``dockerfile`` (path, or the text
    itself), ``build_args``, ``no_cache``, ``network`` ("none" or "host"),
    ``target``, ``quiet``, ``out`` (a stream or a function of one line),
    ``labels``, ``home``.

        >>> img = labkit.build("exemplo/", "meu-app:1.0")   # doctest: +SKIP
    """
    return build_result(context, tag, **kwargs).image
