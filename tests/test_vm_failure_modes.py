"""Real boots of deliberately broken guests: a failing test, a leak, a panic and a hang each become a clear
failure on the host, within the watchdog's bounds, and never a hang or a false pass."""
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from agentcg.harness import slowness

REPO = Path(__file__).resolve().parent.parent
SELFTEST = "vmtests/selftest/test_failure_modes.py"
pytestmark = pytest.mark.vm


def run_guest_tests(tmp_path, names, *extra, kernel="debian-6.12"):
    junit = tmp_path / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--agentcg-selftest",
           "--kernel", kernel, "--vm-results", str(tmp_path / "guest"), f"--junitxml={junit}",
           *extra, *[f"{SELFTEST}::{n}" for n in names]]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        skipped = case.find("skipped")
        outcome = "failed" if failure is not None else "skipped" if skipped is not None else "passed"
        if skipped is not None and skipped.get("type") == "pytest.xfail":
            outcome = "xfailed"
        text = (failure.get("message", "") + (failure.text or "")) if failure is not None \
            else skipped.get("message", "") if skipped is not None else ""
        cases[case.get("name")] = (outcome, text)
    return proc, cases


def test_failing_and_leaking_guest_tests_fail_on_host(tmp_path):
    proc, cases = run_guest_tests(tmp_path, ["test_passes", "test_fails_deliberately", "test_leaves_a_cgroup_behind"])
    assert proc.returncode == 1
    assert cases["test_passes"][0] == "passed"
    assert cases["test_fails_deliberately"][0] == "failed"
    assert "deliberate failure" in cases["test_fails_deliberately"][1]
    assert cases["test_leaves_a_cgroup_behind"][0] == "failed"
    assert "leftover cgroups: agentcg-selftest-leak" in cases["test_leaves_a_cgroup_behind"][1]


def test_a_listed_flaky_test_runs_once_and_its_failure_is_reported_with_its_reason(tmp_path):
    listed = tmp_path / "flaky.yaml"
    listed.write_text(f"flaky:\n"
                      f"  - test: {SELFTEST}::test_fails_deliberately\n    reason: fails on purpose (selftest)\n"
                      f"  - test: {SELFTEST}::test_passes\n    kernels: [debian-*]\n    reason: listed, yet passes\n")
    proc, cases = run_guest_tests(tmp_path, ["test_passes", "test_fails_deliberately"], "--flaky-list", str(listed),
                                  "-rx")  # as `agentcg vmtest` runs it
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert cases["test_passes"][0] == "passed", "a listed test that passes is a pass"
    outcome, text = cases["test_fails_deliberately"]
    assert outcome == "xfailed" and "known flaky on debian-6.12" in text and "fails on purpose" in text, text
    assert "deliberate failure" in text, "the guest's own message stays in the report"
    assert "1 xfailed" in proc.stdout and "known flaky" in proc.stdout


@pytest.mark.agentcg_kernel
def test_a_kernel_warning_fails_exactly_the_test_during_which_it_came_or_else_the_run(tmp_path):
    """LKDTM's WARN in a test fails that test (its own code passed) and only it; a WARN in a module fixture's
    teardown, after every test's guard, fails `kernel log outside tests`; with neither, that item passes."""
    proc, cases = run_guest_tests(tmp_path, ["test_passes", "test_warns_the_kernel",
                                             "test_passes_then_its_module_warns"], kernel="agentcg-6.12")
    assert proc.returncode == 1
    assert cases["test_passes"][0] == "passed"
    outcome, text = cases["test_warns_the_kernel"]
    assert outcome == "failed" and "[warning]" in text and "lkdtm" in text.lower(), text
    assert cases["test_passes_then_its_module_warns"][0] == "passed"
    outcome, text = cases["kernel log outside tests"]
    assert outcome == "failed" and "outside every test" in text and "[warning]" in text, text
    assert "1 kernel splat(s)" in text, "the WARN inside a test is that test's, not the run's"

    proc, cases = run_guest_tests(tmp_path, ["test_passes", "test_warns_the_kernel"], kernel="agentcg-6.12")
    assert cases["test_warns_the_kernel"][0] == "failed" and cases["kernel log outside tests"][0] == "passed"


def test_guest_panic_fails_the_running_test_and_marks_the_rest_not_run(tmp_path):
    proc, cases = run_guest_tests(tmp_path, ["test_passes", "test_panics_the_kernel", "test_fails_deliberately"],
                                  "--stall-timeout", "40")
    assert proc.returncode == 1
    assert cases["test_passes"][0] == "passed"
    outcome, text = cases["test_panics_the_kernel"]
    assert outcome == "failed" and "VM died during this test" in text
    assert "panic" in text.lower()
    outcome, text = cases["test_fails_deliberately"]
    assert outcome == "failed" and "not run: the VM ended before this test" in text


def test_guest_hang_is_killed_by_the_watchdog(tmp_path):
    proc, cases = run_guest_tests(tmp_path, ["test_hangs"], "--test-timeout", "5", "--stall-timeout", "15")
    assert proc.returncode == 1
    outcome, text = cases["test_hangs"]
    # 15 s on the reference machine, longer on a slower one (agentcg.harness.slowness)
    assert outcome == "failed" and re.search(r"watchdog: guest made no progress for \d+ s", text), text


def _qemu_below(root: int) -> set[int]:
    """QEMU processes started by `root` (its descendants): other VMs on the machine (make test runs several at
    once) are none of this test's business."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            todo.append(pid)
            try:
                if "qemu-system" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    found.add(pid)
            except OSError:
                pass
    return found


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if Path(f"/proc/{p}").exists()}


@pytest.mark.parametrize("argv, progress", [
    (["vmrun", "--kernel", "debian-6.12", "--", "sleep", "600"], "vmrun/progress"),
    (["vmtest", "--kernel", "debian-6.12", "-k", "test_user_space_reaction_time"], "guest/progress"),
], ids=["vmrun", "vmtest"])
def test_terminating_the_runner_takes_its_vm_down(tmp_path, argv, progress):
    import os
    import signal
    import time
    progress = REPO / "results" / "debian-6.12" / progress
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "agentcg", *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    vms: set[int] = set()
    try:
        deadline = time.monotonic() + slowness.scaled(120)
        # the guest writes its progress file once it runs the command (or its first test)
        while not (progress.exists() and progress.stat().st_mtime >= started and progress.read_text().strip()):
            assert proc.poll() is None and time.monotonic() < deadline, "the guest never started"
            time.sleep(0.5)
        vms = _qemu_below(proc.pid)
        assert vms, "no VM running"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        deadline = time.monotonic() + 10
        while _alive(vms) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(vms), "the VM outlived its runner"
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _alive(vms):
            os.kill(pid, signal.SIGKILL)
