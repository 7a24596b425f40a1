"""The slowness factor every harness time bound scales with, and slow mode's CPU limit."""
import os
import subprocess
import sys
import time

import pytest

from agentcg.harness import slowness, vm


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    for var in (slowness.ENV_FACTOR, slowness.ENV_SLOW, "AGENTCG_GUEST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(slowness, "_factor", None)


def test_factor_is_the_calibration_over_the_reference_never_below_one(monkeypatch):
    monkeypatch.setattr(slowness, "calibrate", lambda: 3 * slowness.REFERENCE_S)
    assert slowness.factor() == 3.0
    monkeypatch.setattr(slowness, "_factor", None)
    monkeypatch.setattr(slowness, "calibrate", lambda: slowness.REFERENCE_S / 2)
    assert slowness.factor() == 1.0  # a faster machine keeps the written bounds


def test_slow_mode_divides_by_the_share(monkeypatch):
    monkeypatch.setattr(slowness, "calibrate", lambda: 1.5 * slowness.REFERENCE_S)
    monkeypatch.setenv(slowness.ENV_SLOW, "0.5")
    assert slowness.slow_share() == 0.5
    assert slowness.factor() == 3.0
    assert slowness.scaled(100) == 300.0


def test_the_hosts_factor_reaches_the_guest_and_wins(monkeypatch):
    monkeypatch.setenv(slowness.ENV_FACTOR, "2.5")
    assert slowness.factor() == 2.5
    assert slowness.guest_env() == {"AGENTCG_SLOWNESS": "2.5"}
    monkeypatch.delenv(slowness.ENV_FACTOR)
    monkeypatch.setenv("AGENTCG_GUEST", "1")
    assert slowness.factor() == 1.0  # a guest has no host reference to calibrate against


@pytest.mark.parametrize("var,value", [(slowness.ENV_FACTOR, "fast"), (slowness.ENV_FACTOR, "0.5"),
                                       (slowness.ENV_SLOW, "half"), (slowness.ENV_SLOW, "0"),
                                       (slowness.ENV_SLOW, "2")])
def test_bad_settings_are_one_clear_error(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(slowness.SlownessError, match=var):
        slowness.factor()


def test_watchdog_bounds_scale(monkeypatch):
    monkeypatch.setenv(slowness.ENV_FACTOR, "2")
    wd = vm.Watchdog(boot_timeout=10, stall_timeout=20, total_timeout=30).scaled()
    assert (wd.boot_timeout, wd.stall_timeout, wd.total_timeout) == (20, 40, 60)


def test_calibration_measures_something_positive():
    assert 0 < slowness.calibrate(runs=1) < 5


def test_no_slow_mode_no_cgroup():
    with slowness.cpu_limit(None, "t") as join:
        assert join is None


def _cpu_controller() -> bool:
    try:
        slowness._cpu_hierarchy()
    except (slowness.SlownessError, OSError):
        return False
    return os.geteuid() == 0


@pytest.mark.skipif(not _cpu_controller(), reason="needs root and a cpu controller (cgroup v1 or v2)")
def test_slow_mode_holds_a_process_to_its_share_and_removes_its_cgroup():
    spin = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\n"
    with slowness.cpu_limit(0.25, "test") as join:
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", spin], preexec_fn=join)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        created = [p for p in slowness._cpu_hierarchy()[0].glob("agentcg-slow-test-*")]
        assert created
    assert os.waitstatus_to_exitcode(status) == 0
    cpu = usage.ru_utime + usage.ru_stime
    # a quarter of a core over the second it spun (CFS bandwidth periods are 100 ms: allow two of slack)
    assert cpu <= 0.25 * wall + 0.2, (cpu, wall)
    assert not [p for p in slowness._cpu_hierarchy()[0].glob("agentcg-slow-test-*")]
