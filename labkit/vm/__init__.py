"""Virtual machines: the same image labkit runs as a container, booted as a QEMU VM.

    >>> import labkit.vm
    >>> labkit.vm.run("busybox", "cat /proc/uptime").stdout   # the guest's own uptime
    '2.31 0.00\\n'

Modules: :mod:`.kernel` (the host's kernel and modules), :mod:`.initramfs`
(the first root, built in memory), :mod:`.rootdisk` (an image's layers as an
ext4 disk), :mod:`.qemu` (command line, one boot, the console protocol),
:mod:`.runner` (:func:`run`), :mod:`.comparison` (:func:`compare`: the same image
and command as a VM and as a container, measured; :mod:`.comparison_view` shows it). ``tools/cg2vm.py`` boots its test VM with the
same modules.
"""
from __future__ import annotations

from .comparison import Comparison, compare
from .kernel import VMUnavailable
from .runner import VMResult, VMTimeout, accel, run

__all__ = ["run", "compare", "Comparison", "VMResult", "VMTimeout", "VMUnavailable", "accel"]
