"""The AgentCgroup paper's definitions (agentcg.analysis.paper) on small hand-made run directories.

Every expected value is worked out by hand in a comment. Times: T0 plus seconds; samples carry `epoch`, calls and
transcript records UTC ISO times, as the recorded runs do.
"""
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcg.analysis import paper
from agentcg.cli import main
from agentcg.workloads import traces

T0 = 1_770_000_000.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(T0 + t, timezone.utc).isoformat().replace("+00:00", "Z")


def mem_text(m) -> str:
    return m if isinstance(m, str) else f"{m}MB"


def write_run(root: Path, folder: str, task: str, mem, cpu=None, times=None, calls=(), claude_time=100.0,
              transcript=None, attempt="attempt_1", summary=None, results_peak=None) -> Path:
    """A run directory: samples at `times` (default 0, 1, 2, ... s) with memory `mem` (MB numbers or podman
    strings) and `cpu`; calls as (tool, start, end, command); transcript as a list of records (dicts)."""
    d = root / folder / task / attempt
    d.mkdir(parents=True)
    times = times if times is not None else [float(i) for i in range(len(mem))]
    cpu = cpu or [1.0] * len(mem)
    samples = [{"timestamp": "2026-01-01T00:00:00", "epoch": T0 + t, "mem_usage": f"{mem_text(m)} / 134.5GB",
                "mem_percent": "0.1%", "cpu_percent": f"{c}%"} for t, m, c in zip(times, mem, cpu)]
    mb = [traces.parse_mem(mem_text(m)) / 1e6 for m in mem]
    summary = summary or {"sample_count": len(mem), "duration_seconds": times[-1] - times[0],
                          "memory_mb": {"max": max(mb), "avg": sum(mb) / len(mb)},
                          "cpu_percent": {"avg": sum(cpu) / len(cpu)}}
    (d / "resources.json").write_text(json.dumps({"samples": samples, "summary": summary}))
    (d / "tool_calls.json").write_text(json.dumps([
        {"timestamp": iso(a), "end_timestamp": iso(b), "tool": tool, "id": f"t{i}",
         "input": {"command": cmd} if cmd else {}} for i, (tool, a, b, cmd) in enumerate(calls)]))
    results = {"claude_time": claude_time,
               "resource_samples": {"summary": {"memory_mb": {"max": results_peak or max(mb)}}}}
    (d / "results.json").write_text(json.dumps(results))
    records = transcript if transcript is not None else [{"type": "user", "timestamp": iso(0)},
                                                         {"type": "assistant", "timestamp": iso(times[-1])}]
    (d / "trace.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return d


def sixty(mem_value=100, n=11, **kw):
    """n samples spread over exactly 60 s (passes the filter at n >= 10)."""
    times = [60.0 * i / (n - 1) for i in range(n)]
    return dict(mem=[mem_value] * n, times=times, **kw)


# --- validity filter and attempts ---------------------------------------------------------------------------

def test_validity_filter_bounds(tmp_path):
    write_run(tmp_path, "ds", "ok", **sixty(n=10))  # 10 samples, 60 s: both bounds are inclusive
    write_run(tmp_path, "ds", "few", **sixty(n=9))  # 9 samples < 10
    write_run(tmp_path, "ds", "short", mem=[100] * 20, times=[i * 3.1 for i in range(20)])  # 58.9 s < 60
    ds = paper.load_dataset(tmp_path / "ds")
    assert sorted(ds.runs) == ["ok"]
    assert "sample_count" in ds.skipped["few"] and "duration_seconds" in ds.skipped["short"]


def test_latest_attempt_is_the_last_name_sorted_as_strings(tmp_path):
    # attempt_2 sorts after attempt_10 as strings, so attempt_2 (9 samples: invalid) is the one judged
    write_run(tmp_path, "ds", "t", attempt="attempt_10", **sixty())
    write_run(tmp_path, "ds", "t", attempt="attempt_2", **sixty(n=9))
    assert paper.latest_attempt(tmp_path / "ds" / "t").name == "attempt_2"
    ds = paper.load_dataset(tmp_path / "ds")
    assert ds.runs == {} and "sample_count" in ds.skipped["t"]


def test_attempt_1_figures_use_attempt_1_even_when_a_later_one_is_latest(tmp_path):
    write_run(tmp_path, "ds", "t", attempt="attempt_1", **sixty(mem_value=111))
    write_run(tmp_path, "ds", "t", attempt="attempt_2", **sixty(mem_value=222))
    ds = paper.load_dataset(tmp_path / "ds")
    assert ds.runs["t"].attempt == "attempt_2" and ds.first["t"].attempt == "attempt_1"
    assert ds.first["t"].mem_mb[0] == 111


def test_missing_and_broken_files_are_reported_and_skipped(tmp_path):
    write_run(tmp_path, "ds", "ok", **sixty())
    broken = write_run(tmp_path, "ds", "broken", **sixty())
    (broken / "resources.json").write_text("{not json")
    gone = write_run(tmp_path, "ds", "gone", **sixty())
    (gone / "resources.json").unlink()
    partial = write_run(tmp_path, "ds", "partial", **sixty())
    (partial / "tool_calls.json").write_text("[")
    (partial / "trace.jsonl").unlink()
    (tmp_path / "ds" / "empty").mkdir()
    ds = paper.load_dataset(tmp_path / "ds")
    assert sorted(ds.runs) == ["ok", "partial"]
    assert ds.runs["partial"].calls is None and ds.runs["partial"].transcript is None
    assert "malformed JSON" in ds.skipped["broken"] and "missing" in ds.skipped["gone"]
    assert ds.skipped["empty"] == "no attempt_* directory"


# --- latency split ------------------------------------------------------------------------------------------

def test_latency_split_per_task_then_unweighted_mean(tmp_path):
    # task a: claude 100 s; records at 10 s and 50 s -> active 40 s; two parallel calls 8 s + 12 s -> tool 20 s
    # (added, not merged); r = 0.5: init = (100 - 40)/100 = 0.6, tool = 40*0.5/100 = 0.2, llm = 40*0.5/100 = 0.2
    a = write_run(tmp_path, "ds", "a", **sixty(calls=[("Bash", 10, 18, "ls"), ("Read", 12, 24, None)],
                                                transcript=[{"type": "user", "timestamp": iso(50)},
                                                            {"type": "assistant", "timestamp": iso(10)}]))
    # task b: claude 50 s, active 50 s, no calls: init 0, tool 0, llm 1
    write_run(tmp_path, "ds", "b", **sixty(claude_time=50.0, transcript=[{"type": "user", "timestamp": iso(0)},
                                                                         {"type": "x", "timestamp": iso(50)}]))
    ds = paper.load_dataset(tmp_path / "ds")
    assert paper.task_latency(paper.load_run(a)) == pytest.approx({"init": 0.6, "tool": 0.2, "llm": 0.2})
    # means over the two tasks: init 0.3, tool 0.1, llm 0.6
    assert paper.latency_split(ds.runs.values()) == pytest.approx(
        {"tasks": 2, "init_share": 0.3, "tool_share": 0.1, "llm_share": 0.6})


def test_latency_split_needs_claude_time_and_transcript(tmp_path):
    d = write_run(tmp_path, "ds", "a", **sixty(claude_time=None))
    assert paper.task_latency(paper.load_run(d)) is None
    (d / "results.json").write_text(json.dumps({"claude_time": 10}))
    (d / "trace.jsonl").unlink()
    assert paper.task_latency(paper.load_run(d)) is None


# --- CPU ----------------------------------------------------------------------------------------------------

def test_cpu_avg_is_the_mean_of_summary_averages(tmp_path):
    # the summary block says 10 and 30 (whatever the samples say): mean 20
    for task, avg in (("a", 10.0), ("b", 30.0)):
        write_run(tmp_path, "ds", task, **sixty(summary={"sample_count": 11, "duration_seconds": 60,
                                                         "cpu_percent": {"avg": avg}}))
    ds = paper.load_dataset(tmp_path / "ds")
    assert paper.cpu_avg(ds.runs.values()) == 20.0


def test_cpu_samples_over_50_pooled_and_strict(tmp_path):
    # a: 50 (not above), 51, 10; b: 99, 1, 1, 1, 1 -> 2 of 8 samples pooled (not the mean of 1/3 and 1/5)
    a = write_run(tmp_path, "ds", "a", mem=[1] * 3, cpu=[50.0, 51.0, 10.0])
    b = write_run(tmp_path, "ds", "b", mem=[1] * 5, cpu=[99.0, 1, 1, 1, 1])
    assert paper.cpu_samples_over([paper.load_run(a), paper.load_run(b)]) == 2 / 8


# --- tool-time fraction and bursts --------------------------------------------------------------------------

def burst_run(tmp_path):
    # samples at 0..9 s; one call [2, 4]: samples 2, 3, 4 inside (both bounds inclusive) -> fraction 3/10
    # memory bursts (> 300 MB, absolute): samples 3 (301) and 7 (500); sample 4 at exactly 300 is not one
    # CPU bursts (> 30 %): samples 2 (31) and 8 (90) and 9 (40)
    mem = [100, 100, 100, 301, 300, 100, 100, 500, 100, 100]
    cpu = [1, 1, 31, 1, 30, 1, 1, 1, 90, 40]
    return paper.load_run(write_run(tmp_path, "ds", "b", mem=mem, cpu=cpu, calls=[("Read", 2, 4, None)]))


def test_tool_time_fraction_inclusive_bounds(tmp_path):
    run = burst_run(tmp_path)
    assert paper.in_calls(run) == [False, False, True, True, True, False, False, False, False, False]
    assert paper.tool_bursts([run])["tool_time_fraction"] == 3 / 10


def test_memory_bursts_are_absolute_and_their_concentration(tmp_path):
    out = paper.tool_bursts([burst_run(tmp_path)])
    # 2 memory bursts, 1 inside: share 1/2; concentration (1/2) / (3/10) = 5/3
    assert out["mem_bursts"] == 2 and out["mem_bursts_in_tool_calls"] == 1 / 2
    assert out["mem_concentration"] == pytest.approx(5 / 3)


def test_cpu_bursts_above_30(tmp_path):
    out = paper.tool_bursts([burst_run(tmp_path)])
    # 3 CPU bursts (31, 90, 40; the 30 at sample 4 is not above), 1 inside: share 1/3, concentration 10/9
    assert out["cpu_bursts"] == 3 and out["cpu_bursts_in_tool_calls"] == 1 / 3
    assert out["cpu_concentration"] == pytest.approx(10 / 9)


def test_bursts_leave_out_tasks_under_10_samples(tmp_path):
    short = paper.load_run(write_run(tmp_path, "ds", "s", mem=[900] * 9, calls=[("Read", 0, 8, None)]))
    assert paper.tool_bursts([short])["samples"] == 0


# --- retry loops --------------------------------------------------------------------------------------------

def test_retry_groups_are_3_consecutive_bash_any_commands(tmp_path):
    # B B B Read B B B B Edit B B: groups of 3 and 4 (the last two Bash make no group); the commands all differ
    seq = ["Bash"] * 3 + ["Read"] + ["Bash"] * 4 + ["Edit"] + ["Bash"] * 2
    calls = [paper.Call(tool, float(i), float(i) + 0.5, f"cmd {i}") for i, tool in enumerate(seq)]
    assert [len(g) for g in paper.retry_groups(calls)] == [3, 4]


def test_retry_groups_skip_calls_without_a_start_time():
    # the middle entry has no readable start: it is dropped, neither counted nor breaking the run
    calls = [paper.Call("Bash", 0.0, 1.0), paper.Call("Read", None, None), paper.Call("Bash", 2.0, 3.0),
             paper.Call("Bash", 4.0, 5.0)]
    assert [len(g) for g in paper.retry_groups(calls)] == [3]


def test_retry_table(tmp_path):
    # a: 3 Bash of 2 s each in a row -> 1 group, retry time 6 s, share 6 / 60 = 0.1, largest 3
    # b: 5 Bash of 1 s, Read, 3 Bash of 1 s -> 2 groups, 8 s, claude_time 0.5 counts as 1 s -> share 8
    # c: Bash Read Bash -> no group
    bash = lambda start, d: ("Bash", start, start + d, "x")  # noqa: E731
    write_run(tmp_path, "ds", "a", **sixty(claude_time=60.0, calls=[bash(0, 2), bash(2, 2), bash(4, 2)]))
    write_run(tmp_path, "ds", "b", **sixty(claude_time=0.5, calls=[bash(i, 1) for i in range(5)]
                                           + [("Read", 6, 7, None)] + [bash(8 + i, 1) for i in range(3)]))
    write_run(tmp_path, "ds", "c", **sixty(calls=[bash(0, 1), ("Read", 1, 2, None), bash(2, 1)]))
    out = paper.retry_table(paper.load_dataset(tmp_path / "ds").runs.values())
    # 2 of 3 tasks have groups; means over those two: groups (1 + 2) / 2, share (0.1 + 8) / 2
    assert out["tasks"] == 3 and out["retry_task_share"] == pytest.approx(2 / 3)
    assert out["retry_groups_per_task"] == 1.5 and out["retry_max_consecutive"] == 5
    assert out["retry_time_share"] == pytest.approx(4.05)


def test_retry_memory_growth(tmp_path):
    # samples 0..10 s; group of 3 Bash spanning [2.5, 6.5]: last sample at or before 2.5 is t=2 (100 MB), first
    # at or after 6.5 is t=7 (350 MB): growth 250. A second group [8, 9] sits on samples: t=8 (400) to t=9
    # (380): -20, left out of the task total (positives only) -> 250
    mem = [100, 100, 100, 200, 300, 300, 300, 350, 400, 380, 380]
    calls = [("Bash", 2.5, 3, "a"), ("Bash", 3, 5, "b"), ("Bash", 5, 6.5, "c"), ("Read", 7, 7.5, None),
             ("Bash", 8, 8.2, "d"), ("Bash", 8.3, 8.5, "e"), ("Bash", 8.6, 9, "f")]
    run = paper.load_run(write_run(tmp_path, "ds", "t", mem=mem, calls=calls))
    groups = paper.retry_groups(run.calls)
    assert [paper.group_mem_growth(run, g) for g in groups] == pytest.approx([250, -20])
    assert paper.task_retries(run)["mem_growth_mb"] == pytest.approx(250)


# --- Bash categories ----------------------------------------------------------------------------------------

def test_bash_categories_time_order():
    assert paper.bash_category("cd /testbed && python -m pytest tests -x") == "Test"
    assert paper.bash_category("git status && pip install -e .") == "Git"  # Git before Package install
    assert paper.bash_category("python -c 'print(1)' | wc -l") == "File exploration"  # before Python snippet
    assert paper.bash_category("cd /testbed && export X=1") == "Shell/environment"
    assert paper.bash_category("echo hi") == "Other"


def test_bash_categories_spike_order():
    order = paper.SPIKE_ORDER
    assert paper.bash_category("git status && pip install -e .", order) == "Package install"
    assert paper.bash_category("python -c 'print(1)' | wc -l", order) == "Python snippet"
    assert paper.bash_category("cd /testbed && export X=1", order) == "Other"  # no Shell category here


def test_bash_time_shares(tmp_path):
    # Test 6 s (two calls of 3 s), Git 1 s, Other 3 s, a Read of 50 s ignored: Bash time 10 s
    calls = [("Bash", 0, 3, "pytest"), ("Bash", 3, 4, "git diff"), ("Bash", 4, 7, "echo"),
             ("Bash", 7, 10, "tox"), ("Read", 0, 50, None)]
    run = paper.load_run(write_run(tmp_path, "ds", "t", **sixty(calls=calls)))
    assert paper.bash_time_shares([run]) == pytest.approx({"Test": 0.6, "Git": 0.1, "Other": 0.3})


# --- Bash memory spikes -------------------------------------------------------------------------------------

def spike_run(tmp_path):
    # samples at 0..9 s
    mem = [100, 150, 400, 120, 120, 90, 80, 80, 200, 100]
    return paper.load_run(write_run(tmp_path, "ds", "t", mem=mem))


def test_spike_is_max_inside_minus_last_sample_strictly_before(tmp_path):
    run = spike_run(tmp_path)
    # [1, 2]: samples 1 (150) and 2 (400) inside; last strictly before 1 is sample 0 (100): 400 - 100 = 300
    assert paper.call_spike(run, paper.Call("Bash", T0 + 1, T0 + 2)) == 300
    # [0, 1]: no sample before 0: the first inside (100) is the base: 150 - 100 = 50
    assert paper.call_spike(run, paper.Call("Bash", T0 + 0, T0 + 1)) == 50


def test_spike_can_be_negative(tmp_path):
    # [4.5, 6]: inside 5 (90), 6 (80): max 90; before 4.5 is sample 4 (120): 90 - 120 = -30
    assert paper.call_spike(spike_run(tmp_path), paper.Call("Bash", T0 + 4.5, T0 + 6)) == -30


def test_spike_needs_0_1_s_and_a_sample_inside(tmp_path):
    run = spike_run(tmp_path)
    assert paper.call_spike(run, paper.Call("Bash", T0 + 2, T0 + 2.09)) is None  # 0.09 s, sample 2 inside
    assert paper.call_spike(run, paper.Call("Bash", T0 + 2, T0 + 2.1)) == 400 - 150  # 0.1 s counts
    assert paper.call_spike(run, paper.Call("Bash", T0 + 2.2, T0 + 2.8)) is None  # no sample inside


def test_bash_spikes_p95_linear_and_at_least_two_calls(tmp_path):
    # Test calls [1,2] -> 300, [4.5,6] -> -30, [7.5,8] -> 200 - 80 = 120; sorted -30, 120, 300:
    # P95 at rank 0.95 * 2 = 1.9 -> 120 + 0.9 * (300 - 120) = 282. One Git call: category left out.
    mem = [100, 150, 400, 120, 120, 90, 80, 80, 200, 100]
    calls = [("Bash", 1, 2, "pytest a"), ("Bash", 4.5, 6, "pytest b"), ("Bash", 7.5, 8, "pytest c"),
             ("Bash", 2.5, 3, "git log")]
    run = paper.load_run(write_run(tmp_path, "ds", "t", mem=mem, calls=calls))
    assert paper.bash_spikes([run]) == pytest.approx({"Test": 282})


# --- the unit-parsing bug -----------------------------------------------------------------------------------

def test_paper_parser_drops_a_digit_of_two_letter_units():
    assert paper.paper_mem_mb("264.5MB / 134.5GB") == 264
    assert paper.paper_mem_mb("300MB") == 30
    assert paper.paper_mem_mb("1GB") == 0
    assert paper.paper_mem_mb("1.46GB") == pytest.approx(1.4 * 1024)
    assert paper.paper_mem_mb("512MiB") == pytest.approx(512 * 2**20 / 1e6)  # three-letter units read right
    assert paper.paper_mem_mb("0B") == 0


def test_the_bug_moves_bursts_and_spikes(tmp_path):
    # sample 3 "301.5MB" is a burst (301.5 > 300); the bugged parser reads "301." = 301, still one, but
    # "1000MB" (sample 5) reads as 100: no burst. Correct: 2 bursts, 1 inside [3, 3] -> 1/2; bugged 1/1.
    mem = [100, 100, 100, "301.5MB", 100, "1000MB", 100, 100, 100, 100]
    run = paper.load_run(write_run(tmp_path, "ds", "a", mem=mem, calls=[("Bash", 3, 3.5, "pytest")]))
    assert paper.tool_bursts([run])["mem_bursts_in_tool_calls"] == 1 / 2
    assert paper.tool_bursts([run], paper_parsed=True)["mem_bursts_in_tool_calls"] == 1
    # a second call [4.5, 5] on the same samples; spikes: [3, 3.5] 301.5 - 100 = 201.5 (bugged: "100MB" -> 10,
    # 301 - 10 = 291); [4.5, 5] 1000 - 100 = 900
    # (bugged 100 - 10 = 90); P95 of two: a + 0.95 (b - a)
    calls = [("Bash", 3, 3.5, "pytest"), ("Bash", 4.5, 5, "pytest")]
    run = paper.load_run(write_run(tmp_path, "ds", "b", mem=mem, calls=calls))
    assert paper.bash_spikes([run])["Test"] == pytest.approx(201.5 + 0.95 * (900 - 201.5))
    assert paper.bash_spikes([run], paper_parsed=True)["Test"] == pytest.approx(90 + 0.95 * (291 - 90))


# --- peak / average and variation ---------------------------------------------------------------------------

def test_peak_avg_and_peak_spread(tmp_path):
    # summaries: a max 400 avg 100 (ratio 4), b max 600 avg 300 (2), c max 800 avg 400 (2)
    # peaks 400, 600, 800: mean 600, sample stdev sqrt((200^2 + 0 + 200^2) / 2) = 200 -> CV 1/3
    for task, peak, avg in (("a", 400, 100), ("b", 600, 300), ("c", 800, 400)):
        write_run(tmp_path, "ds", task, mem=[avg], summary={"sample_count": 1, "duration_seconds": 0,
                                                            "memory_mb": {"max": peak, "avg": avg}})
    ds = paper.load_dataset(tmp_path / "ds", validate=False)
    out = paper.peak_spread(ds.runs.values())
    assert out["peak_avg_max"] == 4 and out["peak_avg_max_task"] == "a"
    assert (out["peak_min_mb"], out["peak_max_mb"]) == (400, 800)
    assert out["peak_cv"] == pytest.approx(1 / 3)


def test_spike_duration_is_the_longest_run_at_80_percent_of_peak(tmp_path):
    # peak 1000: threshold 800; samples at or above: 800, 900 (run of 2), then 1000, 850, 810 (run of 3)
    mem = [100, 800, 900, 700, 1000, 850, 810, 100]
    run = paper.load_run(write_run(tmp_path, "ds", "t", mem=mem))
    assert paper.spike_duration(run) == 3


# --- correlations -------------------------------------------------------------------------------------------

def transcript(rounds: int, tokens: int):
    """`rounds` assistant records each repeating usage output_tokens = tokens (as Claude Code writes one record
    per content block), plus a user record that counts for neither."""
    return [{"type": "user", "timestamp": iso(0)}] + [
        {"type": "assistant", "timestamp": iso(1), "message": {"id": "same", "usage": {"output_tokens": tokens}}}
        for _ in range(rounds)]


def test_rounds_and_tokens_are_per_record_without_dedup(tmp_path):
    # 3 records of the same message id with 7 tokens each: rounds 3, tokens 21
    run = paper.load_run(write_run(tmp_path, "ds", "t", **sixty(transcript=transcript(3, 7))))
    assert (run.transcript.rounds, run.transcript.output_tokens) == (3, 21)


def test_correlations_are_pearson_over_tasks(tmp_path):
    # rounds 1, 2, 3 against claude_time 10, 20, 40: r of (1,2,3) and (10,20,40) = 0.9819805060619657
    # tokens 1*5, 2*5, 3*5 against results.json peaks 300, 100, 200: r of (5,10,15) and (300,100,200) = -0.5
    for i, (ct, peak) in enumerate(((10, 300), (20, 100), (40, 200)), start=1):
        write_run(tmp_path, "ds", f"t{i}", **sixty(claude_time=ct, results_peak=peak, transcript=transcript(i, 5)))
    out = paper.correlations(paper.load_dataset(tmp_path / "ds").runs.values())
    assert out["r_rounds_exec_time"] == pytest.approx(0.9819805060619657)
    assert out["r_output_tokens_peak_mem"] == pytest.approx(-0.5)


# --- the report and the command -----------------------------------------------------------------------------

FIGURE_KEYS = {"init_share", "tool_share", "llm_share", "cpu_avg", "cpu_samples_over_50", "tool_time_fraction",
               "mem_bursts_in_tool_calls", "burst_concentration", "cpu_bursts_in_tool_calls", "retry_task_share",
               "retry_groups_per_task", "retry_max_consecutive", "retry_time_share", "bash_share",
               "bash_p95_spike_mb", "r_output_tokens_peak_mem", "r_rounds_exec_time", "r_rounds_peak_mem"}
BATCH_KEYS = {"peak_avg_max", "peak_avg_max_task", "peak_min_mb", "peak_max_mb", "peak_cv"}


def small_root(tmp_path) -> Path:
    calls = [("Bash", 1, 3, "pytest"), ("Bash", 4, 6, "pytest"), ("Bash", 7, 9, "ls"), ("Read", 10, 11, None)]
    for folder, tasks in (("all_images_haiku", ("x", "y")), ("all_images_local", ("y", "z"))):
        for task in tasks:
            write_run(tmp_path, folder, task, **sixty(calls=calls))
    write_run(tmp_path, "batch_swebench_18tasks", "b", mem=[100, 400])
    return tmp_path


def test_cli_paper_json_shape(tmp_path):
    result = CliRunner().invoke(main, ["analyze", "--definitions", "paper", "--json", str(small_root(tmp_path))])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["definitions"] == "paper"
    assert {k: rep["datasets"][k]["tasks"] for k in ("haiku", "glm", "common")} == {"haiku": 2, "glm": 2,
                                                                                     "common": 1}
    for name in ("haiku", "glm"):
        assert FIGURE_KEYS <= set(rep["figures"][name])
        for key in ("init_share", "cpu_samples_over_50", "tool_time_fraction", "retry_task_share"):
            assert 0 <= rep["figures"][name][key] <= 1
    assert BATCH_KEYS <= set(rep["figures"]["batch"])


def test_cli_both_prints_both_definitions(tmp_path):
    root = small_root(tmp_path)
    result = CliRunner().invoke(main, ["analyze", "--definitions", "both", "--json", str(root)])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["definitions"] == "both" and set(rep["ours"]) == {"haiku", "glm", "batch"}
    result = CliRunner().invoke(main, ["analyze", "--definitions", "both", str(root)])
    assert result.exit_code == 0 and "haiku ours" in result.output and "glm paper" in result.output


def test_cli_paper_bad_root_is_one_error_line(tmp_path):
    for args in ([str(tmp_path / "nope")], [str(tmp_path)], [str(tmp_path), str(tmp_path)]):
        result = CliRunner().invoke(main, ["analyze", "--definitions", "paper", *args])
        assert result.exit_code == 2 and result.output.startswith("agentcg: error: "), result.output
        assert "Traceback" not in result.output


# --- the shared recorded traces -----------------------------------------------------------------------------

SHARED = Path(os.environ.get(traces.TRACES_ENV) or traces.REPO_ROOT.parent / "shared" / "traces")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared traces not present at {SHARED}")
def test_shared_traces_data_set_sizes_and_every_figure():
    rep = paper.report(SHARED)
    assert {k: rep["datasets"][k]["tasks"] for k in ("haiku", "glm", "common")} == {"haiku": 33, "glm": 111,
                                                                                     "common": 30}
    for name in ("haiku", "glm"):
        figures = rep["figures"][name]
        assert FIGURE_KEYS <= set(figures)
        assert all(figures[k] is not None for k in FIGURE_KEYS), figures
    assert rep["figures"]["batch"]["tasks"] == 18 and BATCH_KEYS <= set(rep["figures"]["batch"])
