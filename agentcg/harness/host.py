"""pytest plugin for the host side of vmtests: collect the tests here, run them in a VM, report each one here.

Each collected vmtest is swapped for a GuestItem with the same node id and markers, so host-side reports (JUnit,
allure, -k selection) see every guest test individually. The first GuestItem to run boots the kernel once and
runs all selected tests in the guest (agentcg.harness.guest_main); each item then reports its guest verdict.
One more item, `kernel log outside tests`, scans the whole kernel log the guest saved for splats no test's guard
watched (boot, between tests, fixture teardown; agentcg.harness.splat).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from agentcg.harness import flaky, kernels, results, slowness, vm
from agentcg.paths import REPO_ROOT

REPO = REPO_ROOT
_RUN_KEY = pytest.StashKey["GuestRun"]()


def pytest_addoption(parser):
    g = parser.getgroup("agentcg", "agentcg VM tests")
    g.addoption("--kernel", default="debian-6.12", help="kernel name from kernel/kernels.yaml, or a bzImage path")
    g.addoption("--vm-cpus", type=int, default=2)
    g.addoption("--vm-memory", default="2G")
    g.addoption("--vm-results", default=None, help="shared result directory (default results/<kernel>/guest)")
    g.addoption("--boot-timeout", type=float, default=180.0,
                help="seconds until the guest starts its tests (on the reference machine: x agentcg.harness.slowness)")
    g.addoption("--test-timeout", type=float, default=240.0,
                help="in-guest per-test timeout (seconds on the reference machine: x agentcg.harness.slowness)")
    g.addoption("--stall-timeout", type=float, default=None,
                help="host watchdog: seconds without guest progress before the VM is killed (default: test timeout + 60; "
                     "x agentcg.harness.slowness)")
    g.addoption("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    g.addoption("--flaky-list", default=str(flaky.FLAKY_FILE),
                help="the known-flaky tests, each with its reason (a failure of one is reported as xfail)")
    g.addoption("--agentcg-selftest", action="store_true",
                help="also collect vmtests/selftest (deliberately failing, panicking and hanging guests)")


def pytest_configure(config):
    config.addinivalue_line("markers", "requires(*features): kernel features the test needs")


class GuestFailure(Exception):
    pass


class _GuestReportItem(pytest.Item):
    """An item whose verdict comes from the guest: a GuestFailure is shown as its message alone."""

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, GuestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class GuestItem(_GuestReportItem):
    def runtest(self):
        run = self.session.stash[_RUN_KEY]
        record = run.verdict(self.nodeid)
        self.user_properties.append(("guest_duration", round(record.duration, 3)))
        if record.outcome == "skipped":
            raise pytest.skip.Exception(record.message.removeprefix("Skipped: "), _use_item_location=True)
        if record.outcome != "passed":
            _attach_allure(f"guest {record.outcome}", record.message)
            known = flaky.find(run.flaky, self.nodeid, run.kernel.name)
            if known:  # run once like any other, never retried: reported as what it is, with why
                pytest.xfail(f"known flaky on {run.kernel.name} (vmtests/flaky.yaml: {known.reason}); "
                             f"guest {record.outcome}: {record.message}")
            raise GuestFailure(f"[guest {record.outcome} on {run.kernel.name}] {record.message}")

    guest_lineno = 0  # line of the test function, so skips point at the test, not at this plugin

    def reportinfo(self):
        return self.path, self.guest_lineno, self.name


class KernelLogItem(_GuestReportItem):
    """The splats of the run's whole kernel log that no test's guard saw: each fails the run here."""

    def runtest(self):
        from agentcg.harness import splat
        run = self.session.stash[_RUN_KEY]
        run.boot()
        log = run.rwdir / "dmesg.txt"
        if not log.exists():
            raise GuestFailure(f"[kernel log on {run.kernel.name}] the guest saved no kernel log (it ended before "
                               "its tests finished; see the tests above)")
        found = splat.scan(splat.outside_guards(log.read_text(errors="replace")), splat.load_allow(),
                           run.kernel.name)
        if found:
            _attach_allure("kernel log outside tests", splat.summary(found, limit=50))
            raise GuestFailure(f"[kernel log on {run.kernel.name}] outside every test (boot, between tests or "
                               f"in fixture teardown), {splat.summary(found)}\n  (whole log: {log})")

    def reportinfo(self):
        return self.path, 0, self.name


def _json_or_empty(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _attach_allure(name: str, text: str) -> None:
    try:
        import allure
        allure.attach(text, name=name, attachment_type=allure.attachment_type.TEXT)
    except Exception:  # allure not active in this session
        pass


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    guest_items = []
    for item in items:
        gi = GuestItem.from_parent(item.parent, name=item.name)
        gi.guest_lineno = item.location[1] or 0
        gi.own_markers.extend(item.own_markers)
        for mark in item.iter_markers():
            gi.keywords[mark.name] = mark
        guest_items.append(gi)
    if guest_items:
        guest_items.append(KernelLogItem.from_parent(guest_items[-1].parent, name="kernel log outside tests"))
    items[:] = guest_items
    session.stash[_RUN_KEY] = GuestRun(config, [i.nodeid for i in guest_items if isinstance(i, GuestItem)])


def pytest_ignore_collect(collection_path, config):
    if collection_path.name == "selftest" and not config.getoption("--agentcg-selftest"):
        return True
    return None


def pytest_report_header(config):
    return f"agentcg: in-guest tests on kernel {config.getoption('--kernel')}"


def pytest_terminal_summary(terminalreporter, config):
    run = getattr(config, "_agentcg_run", None)
    if run and run.summary:
        s = run.summary
        for path in sorted(Path(s["rwdir"]).glob("measurements/*.json")):
            try:
                data = json.loads(path.read_text())
            except ValueError:
                continue
            scalars = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in data.items()
                       if isinstance(v, (int, float, str)) and k != "test"}
            terminalreporter.write_line(f"measured {path.stem}: {json.dumps(scalars)}")
        terminalreporter.write_line(
            f"agentcg: kernel {s['kernel']} ({s['release']}), accel {s['accel']}, slowness {s['slowness']}"
            f"{' (slow mode: %s of a core)' % s['slow_mode_share'] if s['slow_mode_share'] else ''}: boot->first test "
            f"{s['boot_to_first_test_s']} s, VM wall time {s['vm_wall_s']} s; results in {s['rwdir']}")
        if s.get("boot_breakdown_s"):
            terminalreporter.write_line("agentcg: boot->first test, s: " + ", ".join(
                f"{k} {v}" for k, v in s["boot_breakdown_s"].items()))


class GuestRun:
    """One VM boot per session: runs every selected test in the guest, then answers per-test verdicts."""

    def __init__(self, config, nodeids: list[str]):
        self.config = config
        self.nodeids = nodeids
        self.kernel: kernels.Kernel | None = None
        self.records: dict[str, results.TestRecord] | None = None
        self.end: results.VMEnd | None = None
        self.summary: dict | None = None
        try:
            self.flaky = flaky.load(Path(config.getoption("--flaky-list")))
        except flaky.FlakyListError as e:
            raise pytest.UsageError(str(e))
        config._agentcg_run = self

    def boot(self) -> None:
        """Boot the guest and run every selected test, once."""
        if self.records is None:
            self._boot_and_run()

    @property
    def rwdir(self) -> Path:
        return self._rwdir()

    def verdict(self, nodeid: str) -> results.TestRecord:
        self.boot()
        return results.verdict(nodeid, self.records, self.end)

    def _rwdir(self) -> Path:
        opt = self.config.getoption("--vm-results")
        return Path(opt) if opt else REPO / "results" / self.kernel.slug / "guest"

    def _build_bpf(self) -> str | None:
        """Kernels we build carry their own toolchain: build bpf/ against it before booting."""
        from agentcg.harness import kbuild
        try:
            built = kbuild.bpf_objects_for(self.kernel.image)
            return str(built) if built else None
        except kbuild.BuildError as e:
            raise pytest.UsageError(f"building bpf/ for {self.kernel.name} failed: {e}")

    def _boot_and_run(self) -> None:
        opt = self.config.getoption
        try:
            self.kernel = kernels.resolve(opt("--kernel"))
        except kernels.KernelError as e:
            raise pytest.UsageError(str(e))
        rwdir = self._rwdir()
        if rwdir.exists():
            shutil.rmtree(rwdir)
        rwdir.mkdir(parents=True)
        try:
            slow = slowness.factor()
            if self.kernel.slowness > 1:  # a sanitizer kernel: every bound of this run (watchdog, guest) grows
                slow = round(slow * self.kernel.slowness, 2)
                os.environ[slowness.ENV_FACTOR] = str(slow)
        except slowness.SlownessError as e:
            raise pytest.UsageError(str(e))
        test_timeout = round(opt("--test-timeout") * slow, 1)
        (rwdir / "run.json").write_text(json.dumps({
            "bpf_dir": self._build_bpf(),
            "kernel": self.kernel.name,
            "declared": sorted(self.kernel.features) if self.kernel.features is not None else None,
            "nodeids": self.nodeids,
            "test_timeout": test_timeout,
        }))
        watchdog = vm.Watchdog(boot_timeout=opt("--boot-timeout"),
                               stall_timeout=opt("--stall-timeout") or opt("--test-timeout") + 60).scaled()
        accel = vm.probe_accel() if opt("--accel") == "auto" else opt("--accel")
        started = time.monotonic()
        outcome = vm.run_argv(self.kernel.image, [sys.executable, "-m", "agentcg.harness.guest_main", str(rwdir)],
                              rwdir, accel=accel, cpus=opt("--vm-cpus"), memory=opt("--vm-memory"), watchdog=watchdog)
        self.records = results.load_records(rwdir)
        progress = (rwdir / vm.PROGRESS_FILE)
        running = results.parse_progress(progress.read_text() if progress.exists() else None)
        self.end = results.VMEnd(outcome.guest_exit, outcome.killed_reason, outcome.console_tail(80), running)
        self.summary = {
            "kernel": self.kernel.name, "release": self.kernel.release or "?", "accel": accel,
            "boot_to_first_test_s": round(outcome.first_progress_s, 1) if outcome.first_progress_s else None,
            "vm_wall_s": round(time.monotonic() - started, 1), "guest_exit": outcome.guest_exit,
            "killed_reason": outcome.killed_reason, "tests": len(self.nodeids), "rwdir": str(rwdir),
            "slowness": slow, "slow_mode_share": slowness.slow_share(),
            "boot_breakdown_s": results.boot_breakdown(_json_or_empty(rwdir / "boot.json"),
                                                       outcome.first_progress_s),
        }
        (rwdir.parent / "summary.json").write_text(json.dumps(self.summary, indent=1))
