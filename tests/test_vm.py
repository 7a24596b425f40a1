"""The VM runner's seams without booting: command line, rwdir contract, and the watchdog on real processes."""
import subprocess
import time
from pathlib import Path

from agentcg.harness import vm


def test_tcg_command_disables_kvm_and_uses_9p(tmp_path):
    cmd = vm.vng_command(Path("/boot/vmlinuz"), "true", tmp_path, accel="tcg", cpus=2, memory="2G")
    assert "--disable-kvm" in cmd and "--force-9p" in cmd and cmd[-2:] == ["--", "true"]
    assert "--disable-kvm" not in vm.vng_command(Path("/b"), "true", tmp_path, accel="kvm", cpus=1, memory="1G")


def test_rwdir_is_preset_to_failure(tmp_path):
    vm.prepare_rwdir(tmp_path)
    assert vm.read_guest_exit(tmp_path) == vm.GUEST_EXIT_UNSET
    (tmp_path / vm.EXIT_FILE).write_text("0\n")
    assert vm.read_guest_exit(tmp_path) == 0
    (tmp_path / vm.EXIT_FILE).write_text("garbage")
    assert vm.read_guest_exit(tmp_path) == vm.GUEST_EXIT_UNSET


def sleeper(seconds, script=""):
    return subprocess.Popen(["sh", "-c", f"{script} sleep {seconds}"], start_new_session=True)


def test_watchdog_kills_a_guest_that_never_starts(tmp_path):
    start = time.monotonic()
    reason, first = vm._watch(sleeper(30), tmp_path, vm.Watchdog(boot_timeout=1, stall_timeout=5), start)
    assert "did not start its tests within 1 s" in reason and first is None
    assert time.monotonic() - start < 5


def test_watchdog_kills_a_guest_that_stops_making_progress(tmp_path):
    progress = tmp_path / vm.PROGRESS_FILE
    proc = sleeper(30, f"echo '1 t::hang' > {progress};")
    reason, first = vm._watch(proc, tmp_path, vm.Watchdog(boot_timeout=5, stall_timeout=1), time.monotonic())
    assert "no progress for 1 s (hang during: 1 t::hang)" in reason and first is not None
    assert proc.returncode is not None


def test_watchdog_leaves_a_guest_that_exits_alone(tmp_path):
    proc = sleeper(0.3)
    reason, _ = vm._watch(proc, tmp_path, vm.Watchdog(boot_timeout=5, stall_timeout=5), time.monotonic())
    assert reason is None and proc.returncode == 0


def test_udev_stub_is_bind_mounted_in_a_private_namespace():
    cmd = vm.with_udev_stub(["vng", "--", "true"])
    if cmd[0] == "unshare":
        assert "--mount" in cmd and str(vm.STUB) in cmd[cmd.index("-c") + 1] and cmd[-3:] == ["vng", "--", "true"]
    else:
        assert cmd == ["vng", "--", "true"]
