import json
import math

import pytest
from click.testing import CliRunner

from agentcg.analysis import analyze
from agentcg.cli import main
from agentcg.stats import percentile
from agentcg.workloads import traces
from agentcg.workloads.traces import Sample, ToolCall, Trace

MB = 1_000_000


def mk(mem_mb, cpu=None, calls=(), model="m1", name="t", **meta) -> Trace:
    """A trace with one sample per second: mem_mb[i] and cpu[i] at t = i."""
    cpu = cpu or [0.0] * len(mem_mb)
    meta.setdefault("has_calls", True)
    return Trace(name, model, [Sample(float(i), int(m * MB), float(c)) for i, (m, c) in enumerate(zip(mem_mb, cpu))],
                 list(calls), meta)


def bash(start, end, command, category=None):
    from agentcg.classify import classify
    return ToolCall(start, end, "Bash", command, category or classify(command))


# Ten samples, a test run bursting to 900 MB in the middle, a Task delegation that time metrics ignore.
A = mk([100, 100, 100, 100, 500, 900, 100, 100, 100, 100],
       [80, 10, 10, 10, 60, 70, 10, 10, 10, 10],
       [ToolCall(0.5, 0.6, "Read", None, "Read"),
        ToolCall(1.0, 3.0, "Task", None, "Task"),
        bash(3.5, 5.5, "python -m pytest tests"),
        bash(7.2, 7.4, "git diff")],
       init_time=10.0, claude_time=12.0)


# --- helpers ------------------------------------------------------------------------------------------------

def test_percentile_linear_between_ranks():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([5], 95) == 5
    assert percentile([], 95) is None


def test_percentile_nearest_rank_is_an_observed_value():
    assert percentile([100, 110, 120, 130, 400], 95, "nearest-rank") == 400
    assert percentile([4, 1, 3, 2], 50, "nearest-rank") == 2
    assert percentile(range(1, 101), 95, "nearest-rank") == 95
    assert percentile(range(1, 101), 95, "floor-index") == 96  # the paper's: element floor(0.95 n)
    assert percentile(range(1, 21), 95, "floor-index") == 20
    with pytest.raises(ValueError):
        percentile([1], 95, "midpoint")


def test_merge_and_tool_time():
    assert analyze.merge([(3, 4), (0, 1), (0.5, 2)]) == [(0, 2), (3, 4)]
    assert analyze.tool_time(A) == pytest.approx(0.1 + 2.0 + 0.2)  # Task left out


def test_pearson_needs_three_varying_pairs():
    assert analyze.pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(0.9933992677987828)
    assert analyze.pearson([1, 2], [1, 2]) is None
    assert analyze.pearson([1, 2, 3], [5, 5, 5]) is None


# --- metrics ------------------------------------------------------------------------------------------------

def test_latency_split():
    assert analyze.latency_split(A) == pytest.approx({"init": 10.0, "tool": 2.3, "llm": 9.7, "claude": 12.0})
    assert analyze.latency_split(mk([1], claude_time=5.0)) is None  # init unknown
    assert analyze.latency_split(mk([1], init_time=1.0, claude_time=5.0, has_calls=False)) is None
    b = mk([1, 1], calls=[bash(0, 1, "ls")], init_time=2.0, claude_time=3.0)
    table = analyze.latency_table([A, b])
    # sums: init 12, tool 3.3, llm 9.7 + 2 = 11.7; total 27
    assert table == pytest.approx({"runs": 2, "init_s": 6.0, "tool_s": 1.65, "llm_s": 5.85,
                                   "init_share": 12 / 27, "tool_share": 3.3 / 27, "llm_share": 11.7 / 27})


def test_tool_and_bash_composition():
    tools = analyze.tool_composition([A])
    assert list(tools) == ["Bash", "Read"]  # by time, Task left out
    assert tools["Bash"] == pytest.approx({"calls": 2, "time_s": 2.2, "share": 2.2 / 2.3, "mean_s": 1.1})
    assert tools["Read"] == pytest.approx({"calls": 1, "time_s": 0.1, "share": 0.1 / 2.3, "mean_s": 0.1})
    cats = analyze.bash_composition([A])
    assert cats["test"] == pytest.approx({"calls": 1, "time_s": 2.0, "share": 2.0 / 2.2, "mean_s": 2.0})
    assert cats["git"]["share"] == pytest.approx(0.2 / 2.2)
    unknown = mk([1, 1], calls=[ToolCall(0, 1, "Bash", None, None)])
    assert analyze.bash_composition([unknown]) == {"unknown": {"calls": 1, "time_s": 1, "share": 1.0, "mean_s": 1}}


def test_phase_distribution():
    t = mk([1] * 11, calls=[ToolCall(0, 0.1, "Read"), ToolCall(0.5, 1, "Read"), ToolCall(5, 6, "Bash"),
                            ToolCall(9.99, 10, "Bash"), ToolCall(10, 10, "Edit")])
    phases = analyze.phase_distribution([t])
    assert len(phases) == 10
    assert phases[0] == {"Read": 1.0}
    assert phases[5] == {"Bash": 1.0}
    assert phases[9] == {"Bash": 0.5, "Edit": 0.5}  # a call at the very end falls in the last phase
    assert [p for i, p in enumerate(phases) if i not in (0, 5, 9)] == [{}] * 7


def test_cpu_and_memory_stats():
    assert analyze.cpu_stats(A) == pytest.approx({"mean": 28.0, "above": 0.3, "peak": 80.0})
    assert analyze.baseline(A) == 100 * MB  # median of the first 10 samples
    # 20 samples: the first max(10, 2) = 10 count; the 11th (a burst) does not
    long = mk([10, 190, 200, 200, 200, 200, 200, 200, 200, 200, 5000] + [200] * 9)
    assert analyze.baseline(long) == 200 * MB
    assert analyze.mem_rates(A) == [0, 0, 0, 400, 400, 800, 0, 0, 0]
    assert analyze.memory_stats(A) == pytest.approx({
        "baseline_mb": 100, "peak_mb": 900, "avg_mb": 220, "peak_avg": 900 / 220, "rate_max": 800,
        "rate_p95": 640})  # sorted rates [0 x6, 400, 400, 800]: position 7.6 -> 400 + 0.6 * 400


def test_resource_table_pools_rates_and_takes_max_peaks():
    b = mk([100, 300], [0, 100])
    table = analyze.resource_table([A, b])
    assert table["runs"] == 2
    assert table["cpu_mean"] == pytest.approx((28 + 50) / 2)
    assert table["cpu_above_share"] == pytest.approx((0.3 + 0.5) / 2)
    assert table["cpu_peak"] == 100
    assert table["mem_peak_mb"] == pytest.approx(600) and table["mem_peak_max_mb"] == pytest.approx(900)
    assert table["peak_avg_max"] == pytest.approx(900 / 220)
    assert table["rate_max"] == pytest.approx(800)
    assert table["rate_p95"] == pytest.approx(analyze.percentile([0] * 6 + [400, 400, 800, 200], 95))


def test_burst_attribution():
    got = analyze.burst_attribution([A])
    assert got == pytest.approx({
        "runs": 1, "samples": 10,
        "mem_bursts": 2, "mem_in_calls": 1.0, "mem_at_startup": 0.0,  # 500 and 900 MB > 100 + 300, in pytest
        "cpu_bursts": 3, "cpu_in_calls": 2 / 3, "cpu_at_startup": 1 / 3,  # t=0 is before the first call
        "samples_in_calls": 0.2, "time_in_calls": 2.3 / 9})
    higher = analyze.burst_attribution([A], mem_threshold_mb=450)
    assert (higher["mem_bursts"], higher["mem_in_calls"]) == (1, 1.0)
    # with 0.5 s of slack the spans become [0, 1.1], [3, 6], [6.7, 7.9]: t = 0, 1, 3, 4, 5, 6, 7
    assert analyze.burst_attribution([A], slack=0.5)["samples_in_calls"] == pytest.approx(0.7)
    none = analyze.burst_attribution([mk([1, 1], has_calls=False)])
    assert none["runs"] == 0 and none["mem_in_calls"] is None


def test_call_spike_and_bash_spikes():
    test_call, git_call = A.calls[2], A.calls[3]
    assert analyze.call_spike(A, test_call) == 800 * MB  # max 900 inside, 100 at t=3 before start
    assert analyze.call_spike(A, git_call) is None  # no sample inside
    dropping = mk([500, 300, 200], calls=[bash(0.5, 2, "python x.py")])
    assert analyze.call_spike(dropping, dropping.calls[0]) == 0  # memory fell: spike is at least 0
    early = mk([0, 0, 100, 700], calls=[bash(-1, 3, "make")])  # starts before the first sample
    assert analyze.call_spike(early, early.calls[0]) == 700 * MB
    b = mk([100, 100, 300, 100, 100, 1100], calls=[bash(1.5, 2.5, "pytest"), bash(4.5, 5, "pytest"),
                                                   bash(0.5, 1, "pip install x")])
    spikes = analyze.bash_spikes([A, b])
    assert list(spikes) == ["test", "install"]  # by P95, git absent (never observed)
    assert spikes["test"]["calls"] == 3  # 800 (A), 200, 1000 MB
    assert spikes["test"]["p50_mb"] == pytest.approx(800)
    assert spikes["test"]["p95_mb"] == pytest.approx(800 + 0.9 * 200)
    assert spikes["test"]["max_mb"] == pytest.approx(1000)
    assert spikes["install"] == {"calls": 1, "p50_mb": 0, "p95_mb": 0, "max_mb": 0}


def test_retry_loops():
    calls = [bash(0, 1, "pytest"), ToolCall(1, 1.1, "Edit"), bash(2, 3, "pytest"), bash(3, 4, " pytest "),
             bash(4, 4.5, "ls"), bash(5, 5.5, "ls"), bash(6, 6.5, "ls"), bash(7, 7.5, "ls"), bash(8, 9, "git diff")]
    t = mk([1] * 10, calls=calls)
    assert analyze.retry_groups(t) == [{"command": "pytest", "count": 3, "time_s": 3.0},
                                       {"command": "ls", "count": 4, "time_s": 2.0}]
    broken = mk([1], calls=[bash(0, 1, "a"), bash(1, 2, "a"), ToolCall(2, 3, "Bash", None, None), bash(3, 4, "a")])
    assert analyze.retry_groups(broken) == []  # an unknown command breaks the streak
    assert analyze.retry_groups(broken, min_repeat=2) == [{"command": "a", "count": 2, "time_s": 2.0}]
    table = analyze.retry_table([t, broken, mk([1], has_calls=False)])
    assert table == pytest.approx({"runs": 2, "runs_with_loops": 1, "runs_share": 0.5, "groups": 2,
                                   "groups_per_run": 1.0, "longest": 4, "bash_time_share": 5.0 / (6.0 + 4.0)})


def test_correlations():
    runs = [mk([100, 100 * k], [k, 2 * k], output_tokens=k, rounds=k * k, claude_time=10.0 - k) for k in (1, 2, 3)]
    runs.append(mk([50], output_tokens=None, rounds=None, claude_time=1.0))  # no transcript: left out
    got = analyze.correlations(runs)
    assert got["output_tokens_vs_peak_mem"] == pytest.approx(1.0)
    assert got["output_tokens_vs_exec_time"] == pytest.approx(-1.0)
    # rounds 1, 4, 9 against peaks 100, 200, 300
    assert got["rounds_vs_peak_mem"] == pytest.approx(0.9897433186107871)
    assert got["n_rounds_vs_exec_time"] == 3
    assert got["cpu_mem_r_mean"] is None and got["n_cpu_mem_r"] == 0  # two samples per run are too few


def test_cpu_mem_r_per_run_and_working_phase():
    boot = mk([10, 200, 300, 400, 500], [90, 10, 20, 30, 40], calls=[bash(1, 2, "ls")])
    assert analyze.cpu_mem_r(boot) < 0  # the boot sample dominates
    assert analyze.cpu_mem_r(boot, working=True) == pytest.approx(1.0)
    assert analyze.cpu_mem_r(mk([1, 2, 3]), working=True) is None  # no calls
    got = analyze.correlations([boot])
    assert got["cpu_mem_r_working_mean"] == pytest.approx(1.0) and got["n_cpu_mem_r_working"] == 1


def test_heterogeneity():
    got = analyze.heterogeneity([mk([100]), mk([50, 200]), mk([300])])
    assert got == pytest.approx({"runs": 3, "min_mb": 100, "max_mb": 300, "range_mb": 200, "mean_mb": 200,
                                 "cv": math.sqrt(20000 / 3) / 200})
    assert analyze.heterogeneity([]) == {"runs": 0}


# --- report, rendering, figures, CLI ------------------------------------------------------------------------

def test_report_groups_and_tables():
    b = mk([100, 200], model="m2", name="b", category="Medical_Bio")
    rep = analyze.report([A, b])
    assert rep["groups"] == {"m1": 1, "m2": 1, "all": 2}
    assert set(rep["tables"]) == {"latency", "tool_composition", "bash_composition", "phases", "resources",
                                  "bursts", "bash_spikes", "retry_loops", "correlations", "heterogeneity"}
    assert rep["tables"]["bursts"]["m1"] == analyze.burst_attribution([A])
    assert rep["tables"]["heterogeneity"]["all"]["max_mb"] == 900
    json.dumps(rep)  # plain data
    assert analyze.report([A, b], by="category")["groups"] == {"Medical_Bio": 1, "uncategorised": 1, "all": 2}
    assert analyze.report([A], by="model")["groups"] == {"m1": 1}  # no "all" for a single group
    with pytest.raises(ValueError, match="cannot group by"):
        analyze.report([A], by="colour")


def test_render_and_figures(tmp_path):
    from rich.console import Console
    rep = analyze.report([A, mk([100, 200], model="m2")])
    console = Console(record=True, width=200)
    analyze.render(rep, console)
    text = console.export_text()
    assert "End-to-end latency" in text and "Burst attribution" in text and "Retry loops" in text
    written = analyze.figures(rep, [A, mk([100, 200], model="m2")], tmp_path / "figs")
    assert len(written) == 7 and all(p.stat().st_size > 1000 for p in written)


def test_cli_analyze_and_summary_on_synthetic_files(tmp_path):
    traces.save(A, tmp_path / "a.json")
    (tmp_path / "bad.json").write_text("{}")
    runner = CliRunner()
    result = runner.invoke(main, ["analyze", str(tmp_path / "a.json"), str(tmp_path / "bad.json"), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    assert rep["runs"] == 1 and rep["skipped"] == 1
    assert rep["tables"]["latency"]["m1"]["tool_s"] == pytest.approx(2.3)
    result = runner.invoke(main, ["traces", "summary", str(tmp_path / "a.json"), str(tmp_path / "bad.json"),
                                  "--json"])
    summary = json.loads(result.stdout)
    assert summary["usable"] == 1 and summary["skipped"] == 1
    assert "format must be" in next(iter(summary["skipped_by_reason"]))


def test_cli_analyze_without_shared_traces_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(traces.TRACES_ENV, str(tmp_path / "absent"))
    result = CliRunner().invoke(main, ["analyze"])
    assert result.exit_code == 2
    assert "shared traces directory" in result.output and "AGENTCG_TRACES" in result.output
    result = CliRunner().invoke(main, ["analyze", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such file or directory" in result.output
