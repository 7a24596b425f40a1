"""Deliberately broken guest tests: the host must turn each into a clear failure within its timeouts.

Collected only with --agentcg-selftest; driven by tests/test_vm_failure_modes.py, one boot per case.
"""
import os
import signal
from pathlib import Path


def test_passes():
    pass


def test_fails_deliberately():
    assert 1 + 1 == 3, "deliberate failure"


def test_leaves_a_cgroup_behind():
    Path("/sys/fs/cgroup/agentcg-selftest-leak").mkdir()


def test_panics_the_kernel():
    Path("/proc/sys/kernel/sysrq").write_text("1")
    Path("/proc/sysrq-trigger").write_text("c")


def test_hangs():
    # A stopped process cannot even take its own timeout signal: only the host watchdog can end this.
    os.kill(os.getpid(), signal.SIGSTOP)
