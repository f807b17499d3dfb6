"""One function per Dockerfile instruction, in the order of the Dockerfile reference.

``FROM`` starts a stage and is handled by the driver
(:meth:`labkit.images.build.builder.Builder.from_`). Each function here gets
the builder ``b``, the stage's :class:`~.state.State` and the parsed
instruction. Instructions that change only the image config go through
``b.config_step`` (no layer); ``RUN``, ``COPY``, ``ADD`` and ``WORKDIR``
(when the directory is missing) write a layer.

To add an instruction: write its function here, in the reference's order,
and add it to :data:`HANDLERS`.
"""
from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Callable

from ...i18n import _
from .. import dockerfile as dfmod
from ..dockerfile import Instruction
from . import copying, running
from .cache import chain_key
from .state import State, duration_ns

if TYPE_CHECKING:
    from .builder import Builder


def exec_or_shell(state: State, instr: Instruction) -> list[str]:
    form = instr.json_list()
    if form is not None:
        return form
    return [*state.shell, instr.args.strip()]


def run(b: Builder, state: State, instr: Instruction) -> None:
    """Run a command in a build container; its upper directory becomes the layer."""
    running.run_step(b, state, instr)


def cmd(b: Builder, state: State, instr: Instruction) -> None:
    argv = exec_or_shell(state, instr) if instr.args.strip() else []

    def apply() -> None:
        state.cfg["Cmd"] = argv
        state.cmd_set = True
    b.config_step(state, instr, "CMD " + json.dumps(argv), apply)


def label(b: Builder, state: State, instr: Instruction) -> None:
    pairs = dfmod.key_values(instr, state.expand_env(), legacy=True)
    shown = "LABEL " + " ".join(f"{k}={v}" for k, v in pairs)

    def apply() -> None:
        labels = state.cfg.setdefault("Labels", {}) or {}
        state.cfg["Labels"] = labels
        for k, v in pairs:
            labels[k] = v
    b.config_step(state, instr, shown, apply)


def maintainer(b: Builder, state: State, instr: Instruction) -> None:
    def apply() -> None:
        state.config["author"] = instr.args.strip()
    b.config_step(state, instr, instr.text, apply)


def expose(b: Builder, state: State, instr: Instruction) -> None:
    ports = []
    for w in b.words(state, instr):
        port, _sep, proto = w.partition("/")
        if not port.replace("-", "").isdigit():
            raise instr.error(_("invalid port: %(port)s") % {"port": w})
        ports.append(f"{port}/{proto or 'tcp'}")

    def apply() -> None:
        exposed = state.cfg.get("ExposedPorts") or {}
        for p in ports:
            exposed[p] = {}
        state.cfg["ExposedPorts"] = exposed
    b.config_step(state, instr, "EXPOSE " + " ".join(ports), apply)


def env(b: Builder, state: State, instr: Instruction) -> None:
    pairs = dfmod.key_values(instr, state.expand_env())
    shown = "ENV " + " ".join(f"{k}={v}" for k, v in pairs)

    def apply() -> None:
        for k, v in pairs:
            state.set_env(k, v)
    b.config_step(state, instr, shown, apply)


def add(b: Builder, state: State, instr: Instruction) -> None:
    """COPY, plus: a local tar archive is unpacked into the destination."""
    copying.copy_step(b, state, instr, add=True)


def copy(b: Builder, state: State, instr: Instruction) -> None:
    """Files of the context (or of a stage, ``--from``) written into a new layer."""
    copying.copy_step(b, state, instr, add=False)


def entrypoint(b: Builder, state: State, instr: Instruction) -> None:
    argv = exec_or_shell(state, instr) if instr.args.strip() else []

    def apply() -> None:
        state.cfg["Entrypoint"] = argv or None
        if not state.cmd_set:
            state.cfg.pop("Cmd", None)  # as Docker: a new ENTRYPOINT drops the base image's CMD
    b.config_step(state, instr, "ENTRYPOINT " + json.dumps(argv), apply)


def volume(b: Builder, state: State, instr: Instruction) -> None:
    form = instr.json_list()
    vols = form if form is not None else b.words(state, instr)

    def apply() -> None:
        volumes = state.cfg.get("Volumes") or {}
        for v in vols:
            volumes[v] = {}
        state.cfg["Volumes"] = volumes
    b.config_step(state, instr, "VOLUME " + json.dumps(vols), apply)


def user(b: Builder, state: State, instr: Instruction) -> None:
    user = b.word(state, instr)

    def apply() -> None:
        state.cfg["User"] = user
    b.config_step(state, instr, f"USER {user}", apply)


def workdir(b: Builder, state: State, instr: Instruction) -> None:
    path = b.word(state, instr)
    if not path.startswith("/"):
        path = posixpath.join(state.cfg.get("WorkingDir") or "/", path)
    path = posixpath.normpath(path)
    shown = f"WORKDIR {path}"
    b.announce(instr, shown)
    state.cfg["WorkingDir"] = path
    key = chain_key(state.key, shown)
    # create the directory, in a layer of its own, when the image lacks it
    view = b.view(state)
    node = view.lookup(path) if view else None
    if node is not None and node.is_dir:
        state.add_history(shown, empty=True)
        state.key = key
        return
    if b.use_cache(state, key, shown):
        return
    real = view.resolve_path(path) if view else path
    entries = copying.parent_entries(b, state, real.strip("/") + "/x")
    b.write_layer(state, key, shown, entries)


def arg(b: Builder, state: State, instr: Instruction) -> None:
    name, default = dfmod.parse_arg(instr, state.expand_env())
    b.used_args.add(name)
    if name in b.build_args:
        value: str | None = b.build_args[name]
    elif default is not None:
        value = default
    elif name in b.global_args:
        value = b.global_args[name]
    else:
        value = None
    b.announce(instr, instr.text)
    if value is not None:
        state.args[name] = value
    # an ARG's value is part of the cache key of the steps after it (as in Docker)
    state.key = chain_key(state.key, instr.text, f"{name}={value}")


def onbuild(b: Builder, state: State, instr: Instruction) -> None:
    def apply() -> None:
        state.cfg.setdefault("OnBuild", [])
        state.cfg["OnBuild"] = (state.cfg["OnBuild"] or []) + [instr.args.strip()]
    b.config_step(state, instr, instr.text, apply)


def stopsignal(b: Builder, state: State, instr: Instruction) -> None:
    sig = b.word(state, instr)

    def apply() -> None:
        state.cfg["StopSignal"] = sig
    b.config_step(state, instr, f"STOPSIGNAL {sig}", apply)


def healthcheck(b: Builder, state: State, instr: Instruction) -> None:
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
                check[key] = duration_ns(instr, instr.flags[flag])
        if "retries" in instr.flags:
            if not instr.flags["retries"].isdigit():
                raise instr.error(_("invalid --retries: %(v)s") % {"v": instr.flags["retries"]})
            check["Retries"] = int(instr.flags["retries"])

    def apply() -> None:
        state.cfg["Healthcheck"] = check
    b.config_step(state, instr, instr.text, apply)


def shell(b: Builder, state: State, instr: Instruction) -> None:
    form = instr.json_list()
    if not form:
        raise instr.error(_('SHELL needs the JSON form, e.g. SHELL ["/bin/sh", "-c"]'))

    def apply() -> None:
        state.shell = form
        state.cfg["Shell"] = form
    b.config_step(state, instr, "SHELL " + json.dumps(form), apply)


Handler = Callable[["Builder", State, Instruction], None]

HANDLERS: dict[str, Handler] = {
    "RUN": run,
    "CMD": cmd,
    "LABEL": label,
    "MAINTAINER": maintainer,
    "EXPOSE": expose,
    "ENV": env,
    "ADD": add,
    "COPY": copy,
    "ENTRYPOINT": entrypoint,
    "VOLUME": volume,
    "USER": user,
    "WORKDIR": workdir,
    "ARG": arg,
    "ONBUILD": onbuild,
    "STOPSIGNAL": stopsignal,
    "HEALTHCHECK": healthcheck,
    "SHELL": shell,
}
