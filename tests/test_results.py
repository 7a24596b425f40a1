import json

from agentcg.harness import results
from agentcg.harness.results import TestRecord, VMEnd


def phase(when, outcome, text=""):
    return {"when": when, "outcome": outcome, "text": text, "duration": 0.5}


def test_aggregate_passed_failed_error_skipped():
    ok = results.aggregate("t", [phase("setup", "passed"), phase("call", "passed"), phase("teardown", "passed")])
    assert (ok.outcome, ok.duration) == ("passed", 1.5)
    failed = results.aggregate("t", [phase("setup", "passed"), phase("call", "failed", "assert 1 == 2"),
                                     phase("teardown", "failed", "leftover cgroups: x")])
    assert failed.outcome == "failed"
    assert "assert 1 == 2" in failed.message and "[teardown] leftover cgroups: x" in failed.message
    error = results.aggregate("t", [phase("setup", "passed"), phase("call", "passed"),
                                    phase("teardown", "failed", "1 kernel splat(s)")])
    assert error.outcome == "error" and error.message.startswith("[teardown] 1 kernel splat")
    skipped = results.aggregate("t", [phase("setup", "skipped", "Skipped: lacks sched_ext"),
                                      phase("teardown", "passed")])
    assert (skipped.outcome, skipped.message) == ("skipped", "Skipped: lacks sched_ext")


def test_aggregate_without_call_phase_is_an_error():
    assert results.aggregate("t", [phase("setup", "passed")]).outcome == "error"


def test_records_round_trip_and_malformed_files(tmp_path):
    results.write_record(tmp_path, 1, TestRecord("a.py::t1", "passed", "", 0.1))
    results.write_record(tmp_path, 2, TestRecord("a.py::t2", "failed", "boom", 0.2))
    (tmp_path / "tests" / "00003.json").write_text("{not json")
    (tmp_path / "tests" / "00004.json").write_text(json.dumps({"nodeid": "x", "outcome": "weird",
                                                               "message": "", "duration": 0}))
    recs = results.load_records(tmp_path)
    assert recs["a.py::t1"].outcome == "passed" and recs["a.py::t2"].message == "boom"
    malformed = [r for k, r in recs.items() if k.startswith("<malformed")]
    assert len(malformed) == 2 and all(r.outcome == "error" for r in malformed)


def test_missing_results_dir_gives_no_records(tmp_path):
    assert results.load_records(tmp_path) == {}


PANIC_TAIL = "[ 30.1] sysrq: Trigger a crash\n[ 30.1] Kernel panic - not syncing: sysrq triggered crash"


def test_verdict_for_a_recorded_test_is_its_record():
    rec = TestRecord("t1", "passed")
    assert results.verdict("t1", {"t1": rec}, VMEnd(0, None, "", None)) is rec


def test_panic_fails_the_running_test_and_the_rest_are_not_run():
    end = VMEnd(guest_exit=255, killed_reason=None, console_tail=PANIC_TAIL, running="t2")
    running = results.verdict("t2", {}, end)
    assert running.outcome == "failed"
    assert "VM died during this test" in running.message and "console shows panic" in running.message
    later = results.verdict("t3", {}, end)
    assert later.outcome == "failed" and later.message.startswith("not run: the VM ended before this test")


def test_watchdog_kill_names_the_reason():
    end = VMEnd(255, "guest made no progress for 15 s (hang during: 1 t1)", "", "t1")
    assert "watchdog: guest made no progress" in results.verdict("t1", {}, end).message


def test_guest_that_finished_without_a_result_is_a_failure_not_a_pass():
    end = VMEnd(0, None, "tail", None)
    rec = results.verdict("t9", {}, end)
    assert rec.outcome == "failed" and "without a result" in rec.message


def test_progress_parsing():
    assert results.parse_progress("3 vmtests/test_x.py::test_y[a b]\n") == "vmtests/test_x.py::test_y[a b]"
    assert results.parse_progress("") is None and results.parse_progress(None) is None
    assert results.parse_progress("3 vmtests/test_x.py::test_y\n250/1000 tool calls\n") == "vmtests/test_x.py::test_y"


def test_boot_breakdown_splits_boot_to_first_test_by_the_guests_marks():
    marks = {"interpreter": 7.5, "main": 10.0, "probed": 11.0, "pytest_imported": 18.0, "collected": 21.5,
             "first_test": 22.0}
    assert results.boot_breakdown(marks, 25.0) == {
        "qemu_and_firmware": 3.0, "kernel_boot_and_init": 7.5, "interpreter_and_imports": 2.5, "feature_probe": 1.0,
        "import_pytest": 7.0, "pytest_collection": 3.5, "to_first_test": 0.5}
    assert results.boot_breakdown({**marks, "first_test": None}, 25.0) is None
    assert results.boot_breakdown({"main": 1}, 25.0) is None, "a guest that died before its first test"
