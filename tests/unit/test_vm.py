"""labkit.vm's pieces without booting: the initramfs, module order, the console
protocol (read from a process that speaks it), the KVM verdict, missing tools."""
from __future__ import annotations

import os
import stat

import pytest

from labkit.vm import initramfs, kernel, qemu, runner


def parse_newc(arc: bytes) -> dict[str, tuple[int, bytes]]:
    out, pos = {}, 0
    while True:
        hdr = arc[pos:pos + 110]
        assert hdr[:6] == b"070701"
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        pos += 110
        name = arc[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        data = arc[pos:pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, data)


def test_initramfs_holds_busybox_modules_in_order_and_files(tmp_path):
    bb = tmp_path / "busybox"
    bb.write_bytes(b"\x7fELF static")
    arc = initramfs.build(str(bb), [("a.ko", b"A"), ("b.ko", b"B")],
                          {"init": (0o100755, b"#!/bin/busybox sh\n")}, dirs=("lower",))
    assert len(arc) % 4 == 0
    files = parse_newc(arc)
    assert files["bin/busybox"][1] == b"\x7fELF static"
    assert files["modules.list"][1] == b"a.ko\nb.ko"
    assert files["mod/b.ko"][1] == b"B"
    assert stat.S_ISCHR(files["dev/console"][0]) and stat.S_ISDIR(files["lower"][0])
    assert files["init"] == (0o100755, b"#!/bin/busybox sh\n")


def test_modules_come_after_their_dependencies_and_are_decompressed(tmp_path):
    import lzma

    base = tmp_path / "6.0-test" / "kernel"
    base.mkdir(parents=True)
    (base / "crc.ko").write_bytes(b"crc")
    (base / "jbd2.ko.xz").write_bytes(lzma.compress(b"jbd2"))
    (base / "ext4.ko").write_bytes(b"ext4")
    (tmp_path / "6.0-test" / "modules.dep").write_text(
        "kernel/ext4.ko: kernel/jbd2.ko.xz kernel/crc.ko\nkernel/jbd2.ko.xz: kernel/crc.ko\n"
        "kernel/crc.ko:\n")
    mods = kernel.modules("6.0-test", ["ext4", "built_in_one"], root=str(tmp_path))
    assert [n for n, _ in mods] == ["crc.ko", "jbd2.ko", "ext4.ko"]
    assert dict(mods)["jbd2.ko"] == b"jbd2"


def test_missing_kernel_image_says_what_to_install(tmp_path):
    (tmp_path / "modules" / "6.0-x").mkdir(parents=True)
    with pytest.raises(kernel.VMUnavailable, match="linux-image-amd64"):
        kernel.pick_version(boot=str(tmp_path), modules=str(tmp_path / "modules"))


def test_newest_kernel_with_modules_is_picked(tmp_path):
    for v in ("6.1.0-9-amd64", "6.1.0-10-amd64", "6.2.0-1-amd64"):
        (tmp_path / "m" / v).mkdir(parents=True)
        (tmp_path / "m" / v / "modules.dep").write_text("")
    for v in ("6.1.0-9-amd64", "6.1.0-10-amd64"):  # 6.2 has modules but no image
        (tmp_path / f"vmlinuz-{v}").write_bytes(b"")
    assert kernel.pick_version(boot=str(tmp_path), modules=str(tmp_path / "m")) == "6.1.0-10-amd64"


def test_missing_qemu_and_dynamic_busybox(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_QEMU", "qemu-that-does-not-exist")
    with pytest.raises(kernel.VMUnavailable, match="qemu-that-does-not-exist"):
        qemu.find_qemu()
    dyn = tmp_path / "busybox"
    dyn.write_bytes(b"\x7fELF ... /lib64/ld-linux-x86-64.so.2 ...")
    with pytest.raises(kernel.VMUnavailable, match="busybox-static"):
        initramfs.find_busybox(str(dyn))


def speaker(tmp_path, body: str) -> list[str]:
    """A process that speaks the console protocol, as the guest's stage 2 does."""
    script = tmp_path / "guest.sh"
    script.write_text(body)
    return ["/bin/sh", str(script)]


def test_boot_protocol_output_status_and_last_line_without_newline(tmp_path):
    m = "@@T@@"
    argv = speaker(tmp_path, f"echo 'kernel noise'; echo '{m} start'; printf 'out\\r\\nlast';"
                             f" echo '{m} exit 3'; echo 'reboot: Power down'")
    seen = []
    b = qemu.boot(argv, m, timeout=30, echo=seen.append)
    assert b.exit_code == 3 and b.output == b"out\nlast"
    assert seen == [b"out\n", b"last\n"]  # the boot's lines are not echoed
    assert b"kernel noise" in b.console and b.boot_s is not None and not b.timed_out
    assert b.rss_peak > 0  # from wait4: the process was reaped by boot() itself


def test_boot_without_exit_marker_and_timeout(tmp_path):
    b = qemu.boot(speaker(tmp_path, "echo '@@T@@ start'; echo 'Kernel panic - not syncing'"),
                  "@@T@@", timeout=30)
    assert b.exit_code is None and b"Kernel panic" in b.output and not b.timed_out
    b = qemu.boot(speaker(tmp_path, "echo '@@T@@ start'; exec sleep 60"), "@@T@@", timeout=0.5)
    assert b.timed_out and b.exit_code is None
    assert b.qemu_status == -9  # killed, and reaped


def test_kvm_verdict_is_probed_once_then_cached(tmp_path):
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert qemu.choose_accel("auto", str(tmp_path / "v"), lambda: True) == "tcg"
        return
    calls = []
    probe = lambda: calls.append(1) or False  # noqa: E731
    assert qemu.choose_accel("auto", str(tmp_path / "v"), probe) == "tcg"
    assert qemu.choose_accel("auto", str(tmp_path / "v"), probe) == "tcg"
    assert calls == [1] and (tmp_path / "v").read_text() == "tcg\n"
    assert qemu.choose_accel("kvm", str(tmp_path / "v"), probe) == "kvm"


def test_command_and_memory_arguments():
    assert runner.command_argv("sh -c 'exit 3'") == ["sh", "-c", "exit 3"]
    assert runner.command_argv(None) == []
    assert runner.memory_arg("256m") == "256M" and runner.memory_arg("1g") == "1024M"
    assert runner.memory_arg(1 << 20) == "64M"  # QEMU's and the kernel's floor


def test_cg2vm_uses_labkit_vm():
    src = (os.path.dirname(__file__) + "/../../tools/cg2vm.py")
    text = open(src).read()
    assert "from labkit.vm import" in text
    for copy in ("def cpio", "def extract_vmlinux", "def mod_order", "subprocess.Popen"):
        assert copy not in text
