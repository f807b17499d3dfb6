"""``labkit vm run``: an image booted as a QEMU VM (:mod:`labkit.vm`), the command's status as ours."""
from __future__ import annotations

import argparse

from ..i18n import _


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vm", help=_("Run an image as a virtual machine (QEMU)"),
        description=_("The same image a container runs, booted as a QEMU virtual machine with "
                      "this machine's Linux kernel."))
    vsub = p.add_subparsers(dest="vm_command", metavar=_("COMMAND"), required=True)
    r = vsub.add_parser(
        "run", help=_("Boot IMAGE as a VM and run a command in it"),
        description=_("Boot IMAGE as a VM and run CMD in it (or the image's Entrypoint and Cmd). "
                      "The output comes back over the serial console; the exit status is the "
                      "command's (124: timed out, 255: the guest died without reporting one)."))
    r.add_argument("--memory", "-m", default="256m", help=_("guest memory (e.g. 256m, 1g)"))
    r.add_argument("--cpus", type=int, default=1, help=_("number of virtual CPUs"))
    r.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=_("kill the VM after S seconds (exit status 124)"))
    r.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                   help=_("KVM or TCG (emulation); auto: KVM if a test boot with it works"))
    r.add_argument("--stats", action="store_true",
                   help=_("print boot time, total time and QEMU's peak memory at the end"))
    r.add_argument("image", metavar=_("IMAGE"))
    r.add_argument("cmd", nargs=argparse.REMAINDER, metavar=_("CMD"))
    r.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import signal
    import sys

    from .. import vm
    from ..i18n import decimal

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through labkit.vm, which kills QEMU
    signal.signal(signal.SIGTERM, on_term)
    res = vm.run(args.image, args.cmd or None, memory=args.memory, cpus=args.cpus,
                 timeout=args.timeout, accel_mode=args.accel, stdout=sys.stdout)
    if res.panicked:
        tail = res.console[-4000:]
        if tail and tail not in res.stdout:  # died before the command: its output shows nothing
            sys.stderr.write(tail)
        sys.stderr.write(_("labkit vm: the guest ended without reporting an exit status "
                           "(kernel panic?)") + "\n")
    if args.stats:
        sys.stderr.write(_("labkit vm: %(accel)s, kernel %(kernel)s, boot %(boot)s s, total "
                           "%(total)s s, QEMU peak RSS %(rss)s MiB")
                         % {"accel": res.accel, "kernel": res.kernel,
                            "boot": decimal(res.boot_s, 2), "total": decimal(res.total_s, 2),
                            "rss": res.rss_peak >> 20} + "\n")
    return res.exit_code
