"""The slice verbs: ``labkit stats`` (as ``docker stats``) and ``labkit update``."""
from __future__ import annotations

import json
import sys
import time

from ..i18n import _


def register(sub) -> None:
    p = sub.add_parser("stats", help=_("Display a live stream of containers' resource usage"))
    p.add_argument("--no-stream", action="store_true",
                   help=_("print one reading (two samples 0.5 s apart) and exit"))
    p.add_argument("--no-trunc", action="store_true", help=_("show the full container ID"))
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help=_("table (default) or json: one JSON object per container and reading"))
    p.add_argument("-i", "--interval", type=float, default=1.0,
                   help=_("seconds between redraws when streaming (default 1)"))
    p.add_argument("containers", nargs="*", metavar="CONTAINER",
                   help=_("containers to watch (default: every running one)"))
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("update", help=_("Change the resource limits of running containers"))
    p.add_argument("--cpus", help=_("CPU quota in cores (e.g. 0.3 = 30 %% of one core)"))
    p.add_argument("-m", "--memory", help=_("new memory limit (e.g. 64m)"))
    p.add_argument("--memory-swap", help=_("new memory plus swap limit; -1 for unlimited swap"))
    p.add_argument("--pids-limit", type=int, help=_("new maximum number of processes"))
    p.add_argument("-c", "--cpu-shares", type=int, help=_("new CPU shares (relative weight)"))
    p.add_argument("--cpuset-cpus", help=_("CPUs the container may use (e.g. 0 or 0-1)"))
    p.add_argument("containers", nargs="+", metavar="CONTAINER")
    p.set_defaults(func=cmd_update)


# -- stats -------------------------------------------------------------------

class _Watch:
    """Per-container readers kept open between redraws (no re-open per second)."""

    def __init__(self) -> None:
        self.readers: dict[str, object] = {}
        self.prev: dict[str, tuple[dict, int]] = {}
        self.names: dict[str, str] = {}

    def read(self, container) -> tuple[dict, int] | None:
        from ..monitor import CgroupReader, Gone
        cid = container.id
        try:
            reader = self.readers.get(cid)
            if reader is None:
                cg = container.cgroup
                try:
                    reader = CgroupReader(cg.paths(), slow_every=0)
                except Gone:
                    reader = cg  # has .stats()
                self.readers[cid] = reader
                self.names[cid] = container.name
            stats = reader.stats()
            return stats, time.monotonic_ns()
        except Exception:  # gone, not running, engine said no
            self.drop(cid)
            return None

    def drop(self, cid: str) -> None:
        reader = self.readers.pop(cid, None)
        if reader is not None and hasattr(reader, "close"):
            reader.close()
        self.prev.pop(cid, None)

    def tick(self, containers) -> list[dict]:
        from ..monitor import derive
        entries = []
        seen = set()
        for c in containers:
            seen.add(c.id)
            got = self.read(c)
            if got is None:
                continue
            stats, wall = got
            before = self.prev.get(c.id)
            self.prev[c.id] = got
            if before is None:
                continue
            e = derive(before[0], stats, before[1], wall)
            e["id"], e["name"] = c.id, self.names.get(c.id, "")
            entries.append(e)
        for cid in list(self.readers):
            if cid not in seen:
                self.drop(cid)
        return entries

    def close(self) -> None:
        for cid in list(self.readers):
            self.drop(cid)


def _targets(names: list[str]):
    import labkit
    if names:
        return [labkit.get(n) for n in names]
    return labkit.containers()


def _render(entries: list[dict], args) -> str:
    from ..monitor import stats_header, stats_table
    if args.format == "json":
        keys = ("id", "name", "cpu_percent", "cpu_quota_percent", "memory_bytes",
                "memory_limit", "memory_percent", "pids", "pids_limit", "throttled",
                "oom_kills")
        return "\n".join(json.dumps({k: e.get(k) for k in keys}) for e in entries)
    if not args.no_trunc:
        entries = [dict(e, id=str(e["id"])[:12]) for e in entries]
    return stats_header() + "\n" + stats_table(entries)


def cmd_stats(args) -> int:
    from ..kernel.cgroups import backend

    if getattr(backend(), "delegated", True) is False:  # rootless, no delegated cgroup: say so, not an empty table
        from ..errors import LabkitError
        from ..kernel.cgroups.delegated import no_counters_message

        raise LabkitError(no_counters_message())
    watch = _Watch()
    try:
        if args.no_stream:
            containers = _targets(args.containers)
            watch.tick(containers)
            time.sleep(0.5)
            entries = watch.tick(containers)
            print(_render(entries, args))
            return 0
        tty = sys.stdout.isatty()
        containers = _targets(args.containers)
        watch.tick(containers)
        next_at = time.monotonic()
        while True:
            next_at += args.interval
            time.sleep(max(0.0, next_at - time.monotonic()))
            if not args.containers:
                containers = _targets([])
            entries = watch.tick(containers)
            text = _render(entries, args)
            if tty:
                sys.stdout.write("\033[2J\033[H" + text + "\n")
            else:
                sys.stdout.write(text + "\n\n")
            sys.stdout.flush()
            if args.containers and not watch.readers:
                return 0  # every container named has gone
    except KeyboardInterrupt:
        return 0
    finally:
        watch.close()


# -- update ------------------------------------------------------------------

def cmd_update(args) -> int:
    import labkit
    from ..errors import LabkitError

    changes = {k: getattr(args, k) for k in ("cpus", "memory", "memory_swap", "pids_limit",
                                             "cpu_shares", "cpuset_cpus")
               if getattr(args, k) is not None}
    if not changes:
        raise LabkitError(_("you must provide one or more flags when using this command "
                            "(e.g. --cpus 0.5, --memory 64m, --pids-limit 50)"))
    failed = 0
    for name in args.containers:
        try:
            labkit.get(name).update(**changes)
            print(name)
        except LabkitError as exc:
            sys.stderr.write(_("labkit: error: %(msg)s") % {"msg": exc.message} + "\n")
            failed = exc.exit_code
    return failed
