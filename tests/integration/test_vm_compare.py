"""labkit.vm.compare: the same image and command as a VM and as a container, measured.

One comparison (two VM boots, two containers) is shared by every test of the module:
each TCG boot costs seconds of a core. Properties and orders only, never seconds.
"""
from __future__ import annotations

import os

import pytest

from labkit import vm
from labkit.vm.comparison import LOOP_N

from requirements import needs_tool

pytestmark = [pytest.mark.root, needs_tool("qemu-system-x86_64", package="qemu-system-x86")]

CMD = ["md5sum", "/bin/busybox"]


@pytest.fixture(scope="module")
def comparison():
    return vm.compare("busybox", CMD, memory="256m", timeout=600)


def test_both_ran_the_same_command_with_the_same_output(comparison):
    c = comparison
    assert c.command == CMD and c.accel in ("kvm", "tcg")
    assert c.vm.exit_code == 0 == c.container.exit_code
    assert c.vm.output == c.container.output and c.vm.output.endswith("  /bin/busybox\n")
    for side in (c.vm, c.container):
        assert 0 < side.first_output_s <= side.exit_s


def test_the_vm_counts_from_its_own_boot_the_container_shares_the_hosts_kernel(comparison):
    c = comparison
    # The container's probe ran before the host was read: the same clock, read later.
    assert c.vm.uptime_s < c.container.uptime_s <= c.host.uptime_s
    assert c.container.cpu_model == c.host.cpu_model
    if c.accel == "tcg":  # with KVM and -cpu host the guest may show the host's model
        assert c.vm.cpu_model != c.host.cpu_model
    assert c.vm.dmesg_lines and c.vm.dmesg_lines > 0  # its own kernel's log, root inside reads it
    with open("/proc/sys/kernel/dmesg_restrict") as f:
        if f.read().strip() == "1":  # no CAP_SYSLOG in a container: the host's log stays closed
            assert c.container.dmesg_lines is None
    assert c.container.kernel_release == os.uname().release == c.host.kernel_release
    assert c.vm.kernel_release  # reported, but a host running its newest kernel looks the same


def test_memory_and_disk_of_each(comparison):
    c = comparison
    assert c.vm.memory_peak > c.container.memory_peak > 0
    assert c.vm.memory_peak_source == "qemu-rss"
    assert c.container.memory_peak_source in ("memory.peak", "memory.max_usage_in_bytes", "sampled")
    # The guest's /proc/meminfo is its own 256 MiB; the container's is the host's.
    assert 0 < c.vm.mem_used < c.vm.mem_total <= 256 << 20 < c.host.mem_total
    assert c.container.mem_total == c.host.mem_total
    assert c.vm.disk > c.container.disk > 0  # an ext4 file with room to spare vs the layers


def test_the_cpu_loop_ran_in_both(comparison):
    for side in (comparison.vm, comparison.container):
        assert side.loop_iterations == LOOP_N and side.loop_s > 0 and side.loop_rate > 0


def test_table_and_figure_show_the_data_in_portuguese(comparison):
    c = comparison
    text = c.table()
    assert "tempo até sair (s)" in text and "memória de pico (MiB)" in text
    assert ("emulada" in text) == (c.accel == "tcg")
    fig = c.figure()
    bars = [p.get_width() for p in fig.axes[0].patches]
    assert bars == [c.vm.exit_s, c.container.exit_s]
    assert fig.axes[0].get_title() == "tempo até sair"
