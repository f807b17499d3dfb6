"""Virtual machines: the same image labkit runs as a container, booted as a QEMU VM.

    >>> import labkit.vm
    >>> labkit.vm.run("busybox", "cat /proc/uptime").stdout   # the guest's own uptime
    '2.31 0.00\\n'

Modules: :mod:`.kernel` (the host's kernel and modules), :mod:`.initramfs`
(the first root, built in memory), :mod:`.rootdisk` (an image's layers as an
ext4 disk), :mod:`.qemu` (command line, one boot, the console protocol),
:mod:`.runner` (:func:`run`), :mod:`.comparison` (:func:`compare`: the same image
and command as a VM and as a container, measured; :mod:`.comparison_view` shows it). ``tools/cg2vm.py`` boots its test VM with the
same modules. :mod:`.hostroot` (the host's ``/`` as a guest's root over 9p) is what both
``tools/cg2vm.py`` and :mod:`.machine` (:class:`Machine`: a long-lived VM running labkit,
reached through forwarded ports; :mod:`.relay` carries its connections to the host) boot.
"""
from __future__ import annotations

from .comparison import Comparison, compare
from .kernel import VMUnavailable
from .machine import Machine, MachineResult
from .runner import VMResult, VMTimeout, accel, run

__all__ = ["run", "compare", "Comparison", "VMResult", "VMTimeout", "VMUnavailable", "accel", "Machine",
           "MachineResult"]
