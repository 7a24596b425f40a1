"""Deliberately broken guest tests: the host must turn each into a clear failure within its timeouts.

Collected only with --agentcg-selftest; driven by tests/test_vm_failure_modes.py, one boot per case.
"""
import os
import signal
import subprocess
from pathlib import Path

import pytest


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


def provoke_warning() -> None:
    """A WARN from the kernel itself, through LKDTM (a kernel built with it: agentcg-6.12)."""
    debugfs = Path("/sys/kernel/debug")
    if not (debugfs / "provoke-crash").exists():
        subprocess.run(["mount", "-t", "debugfs", "debugfs", str(debugfs)], check=False)
    (debugfs / "provoke-crash" / "DIRECT").write_text("WARNING\n")


@pytest.mark.requires("lkdtm")
def test_warns_the_kernel():
    provoke_warning()  # the test's own code passes: only the guard's scan can fail it


@pytest.fixture(scope="module")
def warns_after_the_module():
    yield
    provoke_warning()  # torn down after the last test's guard: outside every test


@pytest.mark.requires("lkdtm")
def test_passes_then_its_module_warns(warns_after_the_module):
    pass
