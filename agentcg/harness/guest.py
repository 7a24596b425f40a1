"""pytest plugin for the in-guest side of vmtests (loaded when AGENTCG_GUEST=1).

- `@pytest.mark.requires("feature", ...)`: run, skip or fail by what the kernel has and declares;
- every test is guarded: kernel splats printed while it ran, and cgroups, processes, BPF objects or pins it
  left behind, fail it;
- progress and one JSON record per test go to the shared directory for the host.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentcg import features
from agentcg.harness import envcheck, results, splat

RWDIR = Path(os.environ["AGENTCG_RWDIR"]) if os.environ.get("AGENTCG_RWDIR") else None
KERNEL = os.environ.get("AGENTCG_KERNEL", os.uname().release)
_declared = json.loads(os.environ.get("AGENTCG_DECLARED", "null"))
DECLARED = set(_declared) if _declared is not None else None

_probe: dict | None = None
_phases: dict[str, list[dict]] = {}
_index = 0
_nodeid = ""


def kernel_features() -> dict:
    """What the kernel has: as guest_main probed it at boot (rwdir/features.json), else probed here."""
    global _probe
    if _probe is None:
        try:
            _probe = json.loads((RWDIR / "features.json").read_text()) if RWDIR else None
        except (OSError, ValueError):
            _probe = None
        if not isinstance(_probe, dict) or "features" not in _probe:
            _probe = features.probe()  # a second probe costs ~0.6 s under TCG
    return _probe


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*features): the kernel features a test needs "
                                       f"({', '.join(features.KNOWN)})")


def pytest_runtest_setup(item):
    present = kernel_features()["features"]
    for mark in item.iter_markers("requires"):
        for feature in mark.args:
            decision = features.requirement_decision(feature, present, DECLARED, KERNEL)
            if decision and decision[0] == "skip":
                pytest.skip(decision[1])
            if decision:
                pytest.fail(decision[1], pytrace=False)


@pytest.fixture(autouse=True)
def _agentcg_guard():
    """Fails the test on a kernel splat during it, or on anything it left behind."""
    kmsg = envcheck.KmsgCursor()
    _mark(splat.GUARD_ON)
    before = envcheck.snapshot()
    yield
    try:
        problems = []
        _mark(splat.GUARD_OFF)  # first: what comes after it is the host's to scan, what came before is read here
        found = splat.scan(kmsg.read_new(), _allowed(), KERNEL)
        if found:
            problems.append(splat.summary(found))
        problems += envcheck.settled_leaks(before, own_pid=os.getpid())
    finally:
        kmsg.close()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


_allow: list | None = None


def _allowed() -> list:
    global _allow
    if _allow is None:
        _allow = splat.load_allow()
    return _allow


def _mark(marker: str) -> None:
    """A line in the kernel log where this test's guard starts or stops watching (the host's whole-log scan
    reports splats outside these spans). Debug level: on the log, not on the console."""
    try:
        with open("/dev/kmsg", "w") as kmsg:
            kmsg.write(f"<7>{marker}{_index} {_nodeid}\n")
    except OSError:
        pass  # no kernel log to mark: the host's scan then sees every line as outside, and says so


def pytest_runtest_logstart(nodeid, location):
    global _index, _nodeid
    _index += 1
    _nodeid = nodeid
    if RWDIR:
        (RWDIR / "progress").write_text(f"{_index} {nodeid}\n")


def still_running(note: str) -> None:
    """For a test that runs longer than the host's stall bound by design: show the host's watchdog it progresses
    (the note goes on a second line of the progress file)."""
    if RWDIR:
        (RWDIR / "progress").write_text(f"{_index} {_nodeid}\n{note}\n")


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        text = report.longrepr[2]
    else:
        text = report.longreprtext
    _phases.setdefault(report.nodeid, []).append(
        {"when": report.when, "outcome": report.outcome, "text": text, "duration": report.duration})


def pytest_runtest_logfinish(nodeid, location):
    if RWDIR:
        results.write_record(RWDIR, _index, results.aggregate(nodeid, _phases.pop(nodeid, [])))
