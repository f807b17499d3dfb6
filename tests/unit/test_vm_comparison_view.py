"""labkit.vm.compare's table and figure, from a Comparison written out here (no VM booted)."""
from __future__ import annotations

from labkit.vm.comparison import Comparison, Host, Side, _facts

MIB = 1 << 20


def side(**kw) -> Side:
    base = dict(exit_code=0, output="x\n", first_output_s=0.01, exit_s=0.02, memory_peak=MIB,
                memory_peak_source="memory.max_usage_in_bytes", mem_total=4096 * MIB, mem_used=900 * MIB,
                disk=2 * MIB, uptime_s=8000.0, cpu_model="Intel(R) Xeon(R) Processor", dmesg_lines=None,
                kernel_release="6.1.0-40-amd64", loop_iterations=1000, loop_s=0.25)
    base.update(kw)
    return Side(**base)


def comparison(accel: str = "tcg") -> Comparison:
    vm = side(first_output_s=3.5, exit_s=3.75, memory_peak=260 * MIB, memory_peak_source="qemu-rss",
              mem_total=230 * MIB, mem_used=25 * MIB, disk=20 * MIB, uptime_s=1.5,
              cpu_model="QEMU TCG CPU version 2.5+", dmesg_lines=300, loop_s=2.5)
    return Comparison(image="busybox", command=["md5sum", "/bin/busybox"], accel=accel, memory="256m",
                      vm=vm, container=side(), host=Host(8001.0, "Intel(R) Xeon(R) Processor", 2300,
                                                         "6.1.0-40-amd64", 4096 * MIB))


def test_probe_lines_are_parsed_and_other_output_ignored():
    f = _facts("noise\n@cmd 0\n@mem 268435456 26214400\n@cpu QEMU TCG CPU version 2.5+\n@loop 10 1.50 1.75\n")
    assert f["mem"] == ["268435456", "26214400"] and f["cpu"] == ["QEMU TCG CPU version 2.5+"]
    assert f["loop"] == ["10", "1.50", "1.75"] and "noise" not in f


def test_loop_rate_is_iterations_over_seconds_and_zero_when_untimed():
    assert side(loop_iterations=1000, loop_s=0.25).loop_rate == 4000
    assert side(loop_s=0.0).loop_rate == 0.0


def test_table_in_portuguese_with_decimal_commas():
    text = comparison().table()
    assert text.splitlines()[0] == "busybox, comando: md5sum /bin/busybox"
    assert "TCG (emulada)" in text and "contêiner (o kernel do host)" in text
    assert "260,0 (RSS do QEMU)" in text and "1,0 (cgroup, memory.max_usage_in_bytes)" in text
    assert "sem acesso (host: 2300)" in text  # the container cannot read the host's kernel log
    assert "KVM (hardware)" in comparison("kvm").table()


def test_figure_reads_its_bars_from_the_data():
    c = comparison()
    fig = c.figure()
    assert len(fig.axes) == 6
    widths = [[p.get_width() for p in ax.patches] for ax in fig.axes[:5]]
    assert widths == [[3.75, 0.02], [260.0, 1.0], [20.0, 2.0], [1.5, 8000.0], [0.4, 4.0]]
    assert fig.axes[0].get_xlabel() == "segundos (escala log)" and fig.axes[0].get_xscale() == "log"
    assert "laço awk do busybox (TCG (emulada))" == fig.axes[4].get_title()
