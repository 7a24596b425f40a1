"""`agentcg test`: which jobs the whole suite is, in which order, and how they share the machine."""
import sys
import time

import pytest

from agentcg.harness import kernels, slowness, suite


@pytest.fixture(autouse=True)
def logs(tmp_path, monkeypatch):
    monkeypatch.setattr(suite, "LOGS", tmp_path / "logs")
    monkeypatch.setenv(slowness.ENV_FACTOR, "1.0")


def test_the_shipped_suites_name_known_kernels_and_existing_tests():
    suites = suite.load_suites()
    table = kernels.load_table()
    for name, shards in suites.items():
        assert name in table, name
        for args in shards:
            paths = [a for a in args if a.startswith("vmtests/")]
            assert paths, (name, args)
            assert all((kernels.REPO_ROOT / p.split("::")[0]).exists() for p in paths), (name, args)


@pytest.mark.parametrize("text", ["[]", "k: {shards: []}", "k: {shards: [vmtests]}", "k: {shards: [[1]]}", ":"])
def test_a_malformed_suites_file_is_one_clear_error(tmp_path, text):
    path = tmp_path / "suites.yaml"
    path.write_text(text)
    with pytest.raises(suite.SuiteError, match="suites.yaml"):
        suite.load_suites(path)


def test_plan_builds_our_kernel_first_and_its_vms_wait_for_it():
    suites = {"debian-6.12": [["vmtests/a.py"]], "agentcg-6.12": [["vmtests/b.py"], ["vmtests/c.py"]]}
    jobs = suite.plan(["debian-6.12", "agentcg-6.12"], suites)
    names = [j.name for j in jobs]
    assert names == ["build agentcg-6.12", "host", "host/agentcg-6.12", "debian-6.12", "agentcg-6.12/1",
                     "agentcg-6.12/2"]
    build = jobs[0]
    assert build.slots >= 1 and build.argv[-3:] == ["kernel", "build", "agentcg-6.12"]
    assert [j.after for j in jobs[1:]] == [None, "build agentcg-6.12", None, "build agentcg-6.12",
                                           "build agentcg-6.12"]
    # host tests that boot our kernel run after its build, the others at once
    assert jobs[1].argv[jobs[1].argv.index("-m", 3) + 1] == "not agentcg_kernel"
    assert jobs[2].argv[jobs[2].argv.index("-m", 3) + 1] == "agentcg_kernel"
    # every VM leaves the evaluations to agentcg bench, and each shard has its own results
    for j in jobs[3:]:
        assert j.argv[j.argv.index("-m", 3) + 1] == "not evaluation"
    outs = [j.argv[j.argv.index("--out") + 1] for j in jobs[3:]]
    assert outs[0].endswith("results/debian-6.12") and outs[1].endswith("-1") and outs[2].endswith("-2")


def test_a_kernel_without_a_suite_is_refused():
    with pytest.raises(suite.SuiteError, match="debian-6.1"):
        suite.plan(["debian-6.1"], {"debian-6.12": [["vmtests"]]})


def test_pytest_counts_read_the_closing_line():
    text = "stuff\n===== 3 failed, 45 passed, 34 skipped, 1 error in 1566.40s (0:26:06) =====\n"
    counts, line = suite.pytest_counts(text)
    assert counts == {"failed": 3, "passed": 45, "skipped": 34, "error": 1}
    assert line.startswith("3 failed")
    assert suite.pytest_counts("511 passed in 348.1s\n")[0] == {"passed": 511}
    assert suite.pytest_counts("kernel agentcg-6.12: built in 2003.7 s\n") == ({}, "")


def _job(name, code, after=None, slots=1, sleep=0.3):
    said = "1 passed in 0.1s" if code == 0 else "error: it broke"
    script = f"import time, sys; time.sleep({sleep}); print('{said}'); sys.exit({code})"
    return suite.Job(name, [sys.executable, "-c", script], slots=slots, after=after)


def test_runner_keeps_to_its_slots_and_reports_every_job():
    lines = []
    jobs = [_job("build k", 0, slots=2), _job("a", 0), _job("b", 0, after="build k"), _job("c", 0)]
    started = time.monotonic()
    assert suite.Runner(jobs, capacity=3, echo=lines.append).run()
    assert time.monotonic() - started < 10
    # never more than 3 slots at once: the 2-slot build ran beside one other job only
    spans = {j.name: (j.started, j.ended) for j in jobs}
    for t in [j.started for j in jobs]:
        assert sum(j.slots for j in jobs if spans[j.name][0] <= t < spans[j.name][1]) <= 3
    assert jobs[2].started >= jobs[0].ended  # b waited for the build
    assert lines[-1] == "total: 4 passed, 0 failed, 0 skipped"


def test_a_failed_build_fails_the_run_and_its_vms_do_not_run():
    lines = []
    jobs = [_job("build k", 1), _job("b", 0, after="build k"), _job("c", 0)]
    assert not suite.Runner(jobs, capacity=2, echo=lines.append).run()
    assert jobs[1].started is None and jobs[1].skipped_because == "build k failed"
    assert jobs[2].ok
    assert any(line.startswith("---- build k: last lines") for line in lines)
    assert lines[-1] == "total: 1 passed, 1 failed, 0 skipped"


def test_over_subscription_raises_the_slowness_handed_to_jobs(monkeypatch):
    monkeypatch.setattr(suite.os, "cpu_count", lambda: 2)
    runner = suite.Runner([_job("a", 0), _job("b", 0), _job("c", 0)], capacity=3)
    assert runner.env()[slowness.ENV_FACTOR] == "1.5"
    assert suite.Runner([_job("a", 0)], capacity=3).env()[slowness.ENV_FACTOR] == "1.0"


def test_a_sigterm_to_the_runner_stops_every_job(tmp_path):
    """CI's time limit arrives as SIGTERM: the jobs (each in its own session, like a VM's QEMU) must not outlive
    the runner."""
    import os
    import signal
    import subprocess
    pids = tmp_path / "pids"
    job = ("import os, time; open(%r, 'a').write(f'{os.getpid()}\\n'); time.sleep(300)" % str(pids))
    script = (
        "import sys\n"
        "from agentcg.harness import suite\n"
        f"suite.LOGS = __import__('pathlib').Path({str(tmp_path / 'logs')!r})\n"
        f"jobs = [suite.Job(n, [sys.executable, '-c', {job!r}]) for n in ('a', 'b')]\n"
        "try:\n"
        "    suite.Runner(jobs, capacity=2, echo=lambda line: None).run()\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n")
    runner = subprocess.Popen([sys.executable, "-c", script], cwd=kernels.REPO_ROOT,
                              env=dict(os.environ, **{slowness.ENV_FACTOR: "1"}))
    deadline = time.monotonic() + 30
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline and runner.poll() is None, "the jobs never started"
        time.sleep(0.1)
    started = [int(p) for p in pids.read_text().split()]
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=40) == 130
    for pid in started:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z", pid
