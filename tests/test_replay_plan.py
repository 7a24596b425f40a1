"""The replayer's host-side logic: trace -> plans (speed and scale applied), scenarios and budgets, policies,
fidelity and latency math, the environment check; and the whole orchestration (real worker processes, forks,
held calls, clean-up) on a plain directory tree standing in for cgroupfs, with the workers counting their own
chunks instead of reading memory.current. Real cgroups are exercised by vmtests/test_replay.py."""
import json
import os
import shutil
import signal
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcg import cgroup
from agentcg.cli import evaluate
from agentcg.cli.evaluate import replay
from agentcg.eval.registry import make_policy
from agentcg.vocab import MIB
from agentcg.workloads import engine, synth, traces
from agentcg.workloads.engine import _agent_result, _Run, check_environment, run, worker_plan
from agentcg.workloads.measure import fidelity, latency_summary, plan_time, timeline
from agentcg.workloads.plan import Curve, ReplayError, build_plan, retry_members, worker_events
from agentcg.workloads.policy import AgentCgroups, NoPolicy
from agentcg.workloads.scenario import (SCENARIO_DIR, AgentSpec, ProcessModel, ScenarioError, SharedTracesMissing,
                                        agent_name, load_scenario, load_target)
from agentcg.workloads.traces import Sample, ToolCall, Trace

MB = 1_000_000
FIXTURES = synth.FIXTURES_DIR
SHARED = traces.default_root() / "batch_swebench_18tasks"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared traces not present ({SHARED})")


def make_trace(mems_mb, calls=(), name="t", dt=1.0):
    samples = [Sample(i * dt, int(m * MB), 1.0) for i, m in enumerate(mems_mb)]
    return Trace(name, None, samples, [ToolCall(*c) if not isinstance(c, ToolCall) else c for c in calls],
                 {"has_calls": True})


def bash(start, end, command="python -m pytest", category="test"):
    return ToolCall(start, end, "Bash", command, category)


# --- plans --------------------------------------------------------------------------------------------------

def test_a_tool_call_owns_its_burst_and_the_agent_keeps_its_level():
    trace = make_trace([200, 200, 200, 800, 1000, 200, 200], [bash(2.5, 4.6)])
    plan = build_plan(trace)
    (call,) = plan.calls
    assert call.n == 0 and call.start == 2.5
    assert call.end == 5.0, "window runs to the first sample after the call (podman lag)"
    # L0 = 200 MB (the sample before the start), the call holds the rest of the (linear) curve
    assert call.points == [(0.0, 300 * MB), (0.5, 600 * MB), (1.5, 800 * MB), (2.5, 0)]
    assert call.peak == 800 * MB and call.hold == 0
    assert all(b == 200 * MB for _, b in plan.agent), "the agent never holds the burst"
    for s in trace.samples:
        assert plan.total_at(s.t) == s.mem_bytes


def test_the_window_does_not_reach_into_the_next_call():
    trace = make_trace([200, 200, 600, 200, 200, 200], [bash(1.5, 2.2), bash(2.4, 2.8, "git diff", "git")])
    plan = build_plan(trace)
    first, second = plan.calls
    assert first.end == 2.2 and second.start == 2.4 and second.end == 3.0
    assert len(plan.groups) == 2


def test_the_window_is_not_stretched_beyond_one_and_a_half_sample_intervals():
    trace = make_trace([200, 200, 200, 200, 200, 200], [bash(1.0, 1.2)], dt=2.0)
    (call,) = build_plan(trace).calls
    assert call.end == 2.0  # next sample at 2.0 is within 1.5 x 2 s
    trace = make_trace([200] * 20, [bash(1.0, 1.2)], dt=0.1)
    (call,) = build_plan(trace).calls
    assert call.end == pytest.approx(1.2)


def test_overlapping_calls_are_one_group_with_one_memory_owner():
    trace = make_trace([200, 200, 200, 900, 900, 200, 200],
                       [bash(2.0, 4.5), ToolCall(2.5, 2.7, "Read", None, "Read"), bash(3.0, 3.5, "ls", "explore")])
    plan = build_plan(trace)
    assert len(plan.groups) == 1
    owner = max(plan.calls, key=lambda c: c.peak)
    assert owner.n == 0 and owner.peak == 700 * MB
    others = [c for c in plan.calls if c.n != 0]
    assert all(c.peak == 0 and c.group == owner.group for c in others)
    assert [c.end - c.start for c in sorted(others, key=lambda c: c.n)] == [pytest.approx(0.2), pytest.approx(0.5)]
    for s in trace.samples:
        assert plan.total_at(s.t) == s.mem_bytes


def test_delegation_calls_are_the_agents_memory():
    trace = make_trace([200, 200, 1400, 200, 200], [ToolCall(0.5, 3.5, "Task", None, "Task")])
    plan = build_plan(trace)
    assert plan.calls == []
    assert [b for _, b in plan.agent] == [s.mem_bytes for s in trace.samples]


def test_calls_outside_the_samples_are_clipped_or_dropped():
    trace = make_trace([200, 200, 200], [bash(-1.0, 0.5), bash(5.0, 6.0)])
    plan = build_plan(trace)
    assert [c.n for c in plan.calls] == [0] and plan.calls[0].start == 0.0


def test_retry_loop_memory_is_held_by_the_calls_that_left_it():
    # The same command three times, each leaving +100 MB that never goes away.
    mems = [200, 200, 400, 300, 300, 500, 400, 400, 600, 500, 500, 500]
    calls = [bash(1.5, 3.0), bash(4.5, 6.0), bash(7.5, 9.0)]
    plan = build_plan(make_trace(mems, calls))
    holders = [c for c in plan.calls if c.hold]
    assert [c.n for c in holders] == [0, 1, 2]
    assert [c.hold for c in holders] == [100 * MB] * 3
    assert all(c.release is None for c in holders), "accumulated memory is never released"
    assert all(c.points[-1][1] == c.hold for c in holders)
    assert all(b == 200 * MB for t, b in plan.agent if t >= 3), "the agent keeps its own level"
    for i, m in enumerate(mems):
        assert plan.total_at(float(i)) == m * MB
    assert retry_members(make_trace(mems, calls)) == {0, 1, 2}


def test_held_memory_is_released_when_the_trace_drops():
    mems = [200, 200, 400, 300, 300, 500, 400, 400, 600, 500, 500, 210, 210]
    calls = [bash(1.5, 3.0), bash(4.5, 6.0), bash(7.5, 9.0)]
    plan = build_plan(make_trace(mems, calls))
    assert [c.release for c in plan.calls] == [11.0, 11.0, 11.0]
    assert plan.total_at(11.0) == 210 * MB
    events = worker_events(plan)
    assert {"t": 11.0, "k": "r", "n": [0, 1, 2]} in events


def test_single_runs_are_no_retry_loop():
    mems = [200, 200, 400, 300, 300, 500, 400]
    calls = [bash(1.5, 3.0), bash(4.5, 6.0, "python -m pytest -x")]
    assert all(c.hold == 0 for c in build_plan(make_trace(mems, calls)).calls)


def test_scaling_divides_time_by_speed_and_multiplies_memory():
    trace = make_trace([200, 200, 200, 800, 1000, 200, 200], [bash(2.5, 4.6)])
    plan = build_plan(trace).scaled(50, 0.1)
    assert plan.duration == pytest.approx(6 / 50) and plan.peak == 100 * MB and plan.speed == 50
    (call,) = plan.calls
    assert call.start == pytest.approx(0.05) and call.end == pytest.approx(0.1)
    assert call.points == [(0.0, 30 * MB), (0.01, 60 * MB), (0.03, 80 * MB), (0.05, 0)]
    assert plan.agent[0] == (0.0, 20 * MB)
    with pytest.raises(ValueError):
        build_plan(trace).scaled(0, 0.1)


@pytest.mark.parametrize("stem", list(synth.FIXTURES))
def test_plans_add_up_to_the_trace_at_every_sample(stem):
    trace = traces.load(FIXTURES / f"{stem}.json")
    plan = build_plan(trace)
    for s in trace.samples:
        assert plan.total_at(s.t) == pytest.approx(s.mem_bytes, abs=4)
    # every call has a process; bursts belong to calls, never to the agent
    assert len(plan.calls) == len(trace.calls)
    assert max(b for _, b in plan.agent) < 0.6 * max(s.mem_bytes for s in trace.samples) \
        or not trace.meta["heavy_bursts"]


def test_the_retry_fixture_replays_its_accumulation_as_held_calls():
    plan = build_plan(traces.load(FIXTURES / "synth-retry.json"))
    holders = [c for c in plan.calls if c.hold]
    assert len(holders) >= 3 and sum(c.hold for c in holders) > 100 * MB


@needs_shared
def test_recorded_plans_add_up_to_the_trace():
    trace = traces.load_run(SHARED / "Medical_Bio_Hard" / "attempt_1", traces.default_root())
    plan = build_plan(trace)
    for s in trace.samples:
        assert plan.total_at(s.t - trace.samples[0].t) == pytest.approx(s.mem_bytes, abs=4)
    assert max(c.peak for c in plan.calls) > 3_000 * MB, "the 4 GB pytest burst is a tool call's"


def test_worker_events_are_in_time_order_and_ties_finish_before_they_start():
    trace = make_trace([200, 200, 500, 200, 500, 200], [bash(1.0, 2.0), bash(3.0, 4.0, "ls", "explore")])
    events = worker_events(build_plan(trace).scaled(10, 1.0))
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    kinds = [e["k"] for e in events]
    assert kinds.count("c") == 2 and kinds.count("w") == 2
    start = next(e for e in events if e["k"] == "c")
    assert start["p"][0] == [0.0, 0] and start["h"] is False and start["g"] == 0
    at = {}
    for e in events:
        at.setdefault(e["t"], []).append(e["k"])
    for ks in at.values():
        assert ks == sorted(ks, key=lambda k: "wrac".index(k))
    json.dumps(events)


def test_zero_length_calls_are_waited_for_after_they_start():
    # calls without an end time: one at a sample, one between samples, one ending where the next starts
    trace = make_trace([200] * 8, [bash(2.0, 2.0), bash(3.5, 3.5, "ls", "explore"), bash(5.0, 6.0),
                                   bash(6.0, 6.0, "git diff", "git")], dt=1.0)
    events = worker_events(build_plan(trace))
    started = set()
    for e in events:
        if e["k"] == "c":
            started.add(e["g"])
        if e["k"] == "w":
            assert e["g"] in started, f"group {e['g']} waited for before it started: {events}"
    assert sum(e["k"] == "w" for e in events) == 4


# --- scenarios ----------------------------------------------------------------------------------------------

def write(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_scenario_of_fixtures_computes_its_budget_from_the_traces(tmp_path):
    path = write(tmp_path, """
        name: mine
        budget: {share_of_peaks: 0.89}
        agents:
          - trace: fixtures/traces/synth-burst.json
            priority: high
          - trace: fixtures/traces/synth-small.json
          - trace: synth-retry.json
        """)
    shutil.copy(FIXTURES / "synth-retry.json", tmp_path)  # relative to the scenario file
    s = load_scenario(path)
    assert s.name == "mine" and [a.priority for a in s.agents] == ["high", "normal", "normal"]
    assert [a.name for a in s.agents] == ["synth-burst", "synth-small", "synth-retry"]
    peaks = [max(x.mem_bytes for x in traces.load(FIXTURES / f"{n}.json").samples)
             for n in ("synth-burst", "synth-small", "synth-retry")]
    assert s.budget_bytes(0.05) == pytest.approx(0.89 * 0.05 * sum(peaks), abs=2)
    assert s.budget_bytes(0.1) == pytest.approx(0.89 * 0.1 * sum(peaks), abs=2)
    assert s.budget_bytes(0.05) / sum(s.peaks(0.05)) == pytest.approx(0.89, rel=1e-6)


def test_no_budget_and_a_fixed_budget(tmp_path):
    free = load_scenario(write(tmp_path, "agents: [{trace: fixtures/traces/synth-small.json}]"))
    assert free.budget_bytes() is None and free.speed == 50 and free.mem_scale == 0.05
    fixed = load_scenario(write(tmp_path, """
        budget: {bytes: 300000000}
        agents: [{trace: fixtures/traces/synth-small.json}]""", "f.yaml"))
    assert fixed.budget_bytes(0.05) == fixed.budget_bytes(0.5) == 300_000_000


@needs_shared
@pytest.mark.parametrize("name, share", [("tight", 0.89)])
def test_the_shipped_scenarios_share_three_recorded_agents(name, share):
    s = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    assert len(s.agents) == 3 and [a.priority for a in s.agents].count("high") == 1
    peaks = s.peaks()
    assert max(peaks) / min(peaks) > 5, "clearly different peaks"
    assert s.budget_bytes() / sum(peaks) == pytest.approx(share, rel=1e-6)
    assert s.budget_bytes(0.1) == pytest.approx(2 * s.budget_bytes(0.05), abs=2)
    assert all(a.source.startswith("recorded:batch_swebench_18tasks/") for a in s.agents)
    # fits a 2 GB guest at the default scale, with room to spare
    assert s.budget_bytes() < 512 * 2**20


def test_tight_moderate_and_contention_name_the_same_agents():
    import yaml
    tight, moderate, contention = (yaml.safe_load((SCENARIO_DIR / f"{n}.yaml").read_text())
                                   for n in ("tight", "moderate", "contention"))
    assert tight["agents"] == moderate["agents"] == contention["agents"]
    assert tight["budget"] == {"share_of_peaks": 0.89}
    assert {k: v for k, v in moderate.items() if k not in ("name", "description", "budget")} == \
        {k: v for k, v in contention.items() if k not in ("name", "description", "budget")}


def test_recorded_traces_without_the_shared_directory_are_a_skip_not_a_failure(tmp_path, monkeypatch):
    monkeypatch.setenv(traces.TRACES_ENV, str(tmp_path / "absent"))
    with pytest.raises(SharedTracesMissing) as e:
        load_scenario(SCENARIO_DIR / "tight.yaml")
    assert isinstance(e.value, ScenarioError) and "does not exist" in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("agents: [{trace: x", "not valid YAML"),
    ("- 1\n- 2", "mapping at the top level"),
    ("agents: []", "non-empty list"),
    ("name: x", "non-empty list"),
    ("agents: [{trace: fixtures/traces/nope.json}]", "unknown trace"),
    ("agents: [{trace: recorded:batch_swebench_18tasks/No_Such_Task}]", "unknown trace"),
    ("agents: [{name: a}]", "'trace' string"),
    ("budget: {share_of_peaks: -0.5}\nagents: [{trace: fixtures/traces/synth-small.json}]", "must be positive"),
    ("budget: {bytes: -1}\nagents: [{trace: fixtures/traces/synth-small.json}]", "must be positive"),
    ("budget: 0.89\nagents: [{trace: fixtures/traces/synth-small.json}]", "budget must be"),
    ("budget: {share_of_peaks: yes}\nagents: [{trace: fixtures/traces/synth-small.json}]", "must be a number"),
    ("speed: 0\nagents: [{trace: fixtures/traces/synth-small.json}]", "speed must be positive"),
    ("mem_scale: -1\nagents: [{trace: fixtures/traces/synth-small.json}]", "mem_scale must be positive"),
    ("agents: [{trace: fixtures/traces/synth-small.json, priority: urgent}]", "priority must be one of"),
    ("agents: [{trace: fixtures/traces/synth-small.json, name: a}, {trace: fixtures/traces/synth-burst.json, "
     "name: a}]", "duplicate agent name"),
    ("agents: [{trace: fixtures/traces/synth-small.json, memory: 1}]", "unknown key"),
    ("budgets: 1\nagents: [{trace: fixtures/traces/synth-small.json}]", "unknown key"),
    ("model: process\nagents: [{trace: fixtures/traces/synth-small.json}]", "model must be tool-call or"),
    ("model: {process: {step_mib: 0}}\nagents: [{trace: fixtures/traces/synth-small.json}]", "step_mib must be positive"),
    ("model: {process: {mb_as_mib: 1}}\nagents: [{trace: fixtures/traces/synth-small.json}]", "true or false"),
    ("model: {process: {base: 1}}\nagents: [{trace: fixtures/traces/synth-small.json}]", "unknown keys"),
    ("budget: {mib: -5}\nagents: [{trace: fixtures/traces/synth-small.json}]", "budget mib must be positive"),
])
def test_invalid_scenarios_raise_one_clear_error(tmp_path, monkeypatch, text, message):
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv(traces.TRACES_ENV, str(tmp_path / "shared"))
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    assert message in str(e.value) and str(path) in str(e.value)


def test_a_missing_scenario_file_is_a_scenario_error(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "nope.yaml")


def test_broken_trace_files_are_scenario_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ScenarioError, match="malformed JSON"):
        load_scenario(write(tmp_path, "agents: [{trace: bad.json}]"))


def test_agent_names_are_cgroup_safe_and_unique():
    taken = set()
    assert agent_name("batch_swebench_18tasks/Medical_Bio_Hard", taken) == \
        "batch_swebench_18tasks-Medical_Bio_Hard"
    assert agent_name("batch_swebench_18tasks/Medical_Bio_Hard", taken) == \
        "batch_swebench_18tasks-Medical_Bio_Hard-2"
    assert agent_name("../..", set()) == "agent"
    assert agent_name("batch_swebench_18tasks/Medical_Bio_Hard/attempt_1", set()) == \
        "Medical_Bio_Hard-attempt_1"  # whole trailing components that fit in 48 characters
    assert len(agent_name("x" * 80, set())) == 48
    assert "/" not in agent_name("synth/x y", set())


def test_load_target_accepts_scenario_names_trace_files_and_directories(tmp_path):
    assert load_target(str(FIXTURES / "synth-small.json")).agents[0].trace.name == "synth/small"
    with pytest.raises(ScenarioError):
        load_target(str(tmp_path))
    for stem in ("synth-small", "synth-burst"):
        shutil.copy(FIXTURES / f"{stem}.json", tmp_path)
    with pytest.raises(ScenarioError):
        load_target(str(tmp_path / "nothing-here"), bench_mode=True)


# --- measurements -------------------------------------------------------------------------------------------

def test_latency_percentiles_in_milliseconds():
    s = latency_summary([i * 1000 for i in range(1, 101)])  # 1..100 ms
    assert s == {"chunks": 100, "p50": 50.5, "p95": 95.05, "p99": 99.01, "max": 100.0}
    assert latency_summary([]) == {"chunks": 0, "p50": None, "p95": None, "p99": None, "max": None}
    assert latency_summary([2500])["p99"] == 2.5


def test_plan_time_follows_the_checkpoints():
    cps = [(0.0, 0.0), (1.0, 1.0), (2.0, 3.0), (3.0, 4.0)]  # one planned second took two
    assert plan_time(cps, 0.5) == 0.5
    assert plan_time(cps, 2.0) == 1.5
    assert plan_time(cps, 4.0) == 3.0
    assert plan_time(cps, 4.1) is None and plan_time(cps, -0.1) is None
    assert plan_time([], 1.0) is None
    assert plan_time([(0.0, 0.0), (0.0, 0.0), (1.0, 1.0)], 0.0) == 0.0


def _curve(mems_mb):
    return Curve(make_trace(mems_mb))


def test_fidelity_of_a_perfect_replay_is_zero():
    curve = _curve([200, 200, 1000, 200, 200])
    speed, scale = 10.0, 0.1
    cps = [(t / speed, t / speed) for t in range(5)]
    samples = [(t / 100, int(curve.at(t / 100 * speed) * scale)) for t in range(41)]
    f = fidelity(samples, cps, curve, speed, scale)
    assert f["mae_bytes"] <= 1 and f["mae_rel"] == 0.0 and f["mae_rel_pointwise"] == 0.0 and f["samples"] == 41 and f["peak_bytes"] == 100 * MB


def test_fidelity_is_the_mean_error_over_the_scaled_peak():
    curve = _curve([200] * 5)
    cps = [(0.0, 0.0), (0.4, 0.4)]
    # 5 MB too much everywhere, against a 20 MB scaled peak: 25%
    samples = [(t / 100, 25 * MB) for t in range(41)]
    f = fidelity(samples, cps, curve, 10.0, 0.1)
    assert f["mae_rel"] == pytest.approx(0.25, abs=1e-6) and f["mae_rel_pointwise"] == pytest.approx(0.25, abs=1e-6)


def test_fidelity_counts_a_missed_burst():
    curve = _curve([200, 200, 200, 1000, 1000, 1000, 200, 200, 200])
    cps = [(0.0, 0.0), (0.8, 0.8)]
    # the replay stayed at 20 MB while the trace held 100 MB for 2 s: far beyond any timing tolerance
    flat = [(t / 100, 20 * MB) for t in range(81)]
    f = fidelity(flat, cps, curve, 10.0, 0.1)
    # samples within one interval (1 s) of the burst's edges still count, as 20 MB is below the trace's range there
    assert f["mae_rel"] > 0.05
    assert f["mae_rel_pointwise"] > f["mae_rel"]


def test_fidelity_tolerates_timing_within_the_recorders_interval():
    curve = _curve([200, 200, 1000, 1000, 200, 200])  # one sample a second
    cps = [(0.0, 0.0), (0.5, 0.5)]
    # the burst replayed 0.5 trace seconds late: within the trace's 1 s resolution
    late = [(t / 100, int(curve.at(max(0.0, t / 10 - 0.5)) * 0.1)) for t in range(51)]
    f = fidelity(late, cps, curve, 10.0, 0.1)
    assert f["mae_rel"] < 1e-6 and f["mae_rel_pointwise"] > 0.05
    # 2 s late is not
    later = [(t / 100, int(curve.at(max(0.0, t / 10 - 2.0)) * 0.1)) for t in range(51)]
    assert fidelity(later, cps, curve, 10.0, 0.1)["mae_rel"] > 0.05


def test_fidelity_compares_a_late_replay_with_where_it_is():
    curve = _curve([200, 200, 1000, 1000, 1000, 1000, 1000, 200, 200, 200, 200, 200, 200])
    # the agent spent three extra seconds at trace time 1-2 (a slow tool call): checkpoints say so
    cps = [(0.0, 0.0), (0.1, 0.1), (0.2, 0.5), (0.9, 1.2)]
    samples = []
    for i in range(121):
        elapsed = i / 100
        samples.append((elapsed, int(curve.at(plan_time(cps, elapsed) * 10) * 0.1)))
    assert fidelity(samples, cps, curve, 10.0, 0.1)["mae_rel_pointwise"] < 1e-6
    # the same samples judged by the clock alone would be far off, even with the tolerance
    clock = [(0.0, 0.0), (1.2, 1.2)]
    assert fidelity(samples, clock, curve, 10.0, 0.1)["mae_rel"] > 0.1


def _window_replay():
    """A tool call that carries the window trace 1-6 s (0.1-0.6 s at 10x) falls 0.5 s behind while it allocates
    its burst; the agent keeps its own schedule through the window and then waits for the call."""
    curve = _curve([200, 200, 200, 1000, 1000, 200, 200, 200, 200])
    agent = [(0.0, 0.0), (0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4), (0.5, 0.5), (0.6, 1.1), (0.7, 1.2),
             (0.8, 1.3)]
    call = [(0.1, 0.1), (0.2, 0.2), (0.3, 0.8), (0.4, 0.9), (0.5, 1.0), (0.6, 1.1)]
    truth = [(0.0, 0.0), (0.1, 0.1), (0.2, 0.2), (0.3, 0.8), (0.4, 0.9), (0.5, 1.0), (0.6, 1.1), (0.7, 1.2),
             (0.8, 1.3)]
    samples = [(i / 100, int(curve.at(plan_time(truth, i / 100) * 10) * 0.1)) for i in range(131)]
    return curve, agent, call, samples


def test_inside_a_window_the_replay_is_where_its_call_is():
    curve, agent, call, samples = _window_replay()
    merged = timeline(agent, call, [(0.1, 0.6)])
    assert fidelity(samples, merged, curve, 10.0, 0.1)["mae_rel_pointwise"] < 1e-6
    # judged by the agent's schedule alone, the late burst looks like an error of the replay
    assert fidelity(samples, agent, curve, 10.0, 0.1)["mae_rel"] > 0.05


def test_timeline_keeps_the_agents_checkpoints_outside_windows_and_never_goes_back():
    _, agent, call, _ = _window_replay()
    merged = timeline(agent, call, [(0.1, 0.6)])
    assert (0.3, 0.3) not in merged and (0.3, 0.8) in merged  # inside: the call's
    assert (0.0, 0.0) in merged and (0.8, 1.3) in merged  # outside: the agent's
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(merged, merged[1:]))
    # a window no call reported on keeps the agent's checkpoints
    assert timeline(agent, [], [(0.1, 0.6)]) == agent
    # two calls of a group disagreeing: the plan position is the furthest reached
    assert timeline([], [(0.2, 1.0), (0.1, 1.1)], [(0.0, 1.0)]) == [(0.2, 1.0), (0.2, 1.1)]


def test_fidelity_without_samples_is_unknown():
    f = fidelity([], [(0.0, 0.0)], _curve([1, 2]), 10.0, 0.1)
    assert f["mae_rel"] is None and f["samples"] == 0


# --- policies and environment -------------------------------------------------------------------------------

def _agent_cgroups(tmp_path, name, peak, average):
    top = tmp_path / name
    for d in (top, top / "agent", top / "tools"):
        d.mkdir(parents=True)
    spec = AgentSpec(name, make_trace([1, 2]))
    return AgentCgroups(spec, peak, average, cgroup.Cgroup(top), cgroup.Cgroup(top / "agent"),
                               cgroup.Cgroup(top / "tools"))


@pytest.mark.parametrize("policy, expected", [("static-avg", 12 * 4096), ("static-peak", 50 * 4096)])
def test_static_policies_set_memory_max_per_agent_and_leave_oom_group_off(tmp_path, policy, expected):
    agent = _agent_cgroups(tmp_path, "a", peak=50 * 4096, average=12 * 4096 - 100)
    p = make_policy(policy)
    p.setup([agent])
    assert (agent.top.path / "memory.max").read_text() == str(expected)
    assert (agent.top.path / "memory.oom.group").read_text() == "0"
    assert p.limit_of("a") == expected and p.actions[0]["action"] == "memory.max"
    assert p.name == policy


@pytest.mark.parametrize("policy, group", [("container", "0"), ("k8s", "1")])
def test_platform_policies_split_the_budget_evenly_k8s_with_oom_group(tmp_path, policy, group):
    (tmp_path / "memory.max").write_text(f"{300 * 4096 + 17}\n")
    agents = [_agent_cgroups(tmp_path, n, peak=200 * 4096, average=10 * 4096) for n in ("a", "b", "c")]
    p = make_policy(policy)
    p.setup(agents)
    for a in agents:
        assert (a.top.path / "memory.max").read_text() == str(100 * 4096), "a third, whole pages"
        assert (a.top.path / "memory.oom.group").read_text() == group
    assert p.limit_of("b") == 100 * 4096 and p.name == policy


def test_protect_only_protects_the_agents_and_runs_no_controller(tmp_path):
    agent = _agent_cgroups(tmp_path, "a", peak=50 * 4096, average=12 * 4096)
    (agent.agent.path / "cgroup.procs").write_text("")
    (tmp_path / "memory.max").write_text("max\n")
    p = make_policy("protect-only")
    p.setup([agent])
    try:
        assert (agent.agent.path / "memory.min").read_text() == str(12 * 4096)
        assert p.ctl is None and p.thread is None and p.name == "protect-only"
    finally:
        p.teardown()


def test_no_policy_touches_nothing(tmp_path):
    agent = _agent_cgroups(tmp_path, "a", peak=10, average=5)
    p = make_policy("none")
    p.setup([agent])
    p.on_tick(0.1, [agent])
    p.teardown()
    assert not (agent.top.path / "memory.max").exists() and p.actions == [] and p.limit_of("a") is None


def test_unknown_policy():
    with pytest.raises(ReplayError, match="unknown policy"):
        make_policy("magic")


def test_environment_check_needs_cgroup_v2_with_memory_and_root(tmp_path, monkeypatch):
    with pytest.raises(ReplayError, match="not a cgroup v2 hierarchy"):
        check_environment(root=tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpu pids\n")
    with pytest.raises(ReplayError, match="memory controller is not available"):
        check_environment(root=tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ReplayError, match="must run as root"):
        check_environment(root=tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    check_environment(root=tmp_path)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "cgroup.controllers").write_text("cpu\n")
    with pytest.raises(ReplayError, match="not enabled"):
        check_environment(tmp_path / "p", root=tmp_path)


def test_this_host_is_refused_unless_it_really_has_cgroup_v2_memory():
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    if controllers.is_file() and "memory" in controllers.read_text().split() and os.geteuid() == 0:
        pytest.skip("a real cgroup v2 host: replay could run here")
    with pytest.raises(ReplayError):
        check_environment()


def test_cli_fails_cleanly_without_cgroup_v2(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "CGROUP_ROOT", tmp_path)
    result = CliRunner().invoke(replay, [str(FIXTURES / "synth-small.json"), "--speed", "50"])
    assert result.exit_code == 2
    assert "not a cgroup v2 hierarchy" in result.output and "Traceback" not in result.output


def test_cli_reports_scenario_errors(tmp_path):
    bad = write(tmp_path, "agents: []")
    result = CliRunner().invoke(replay, [str(bad)])
    assert result.exit_code == 2 and "non-empty list" in result.output


def test_cli_is_registered():
    from agentcg.cli import main
    result = CliRunner().invoke(main, ["replay", "--help"])
    assert result.exit_code == 0 and "--mem-scale" in result.output and "--bench" in result.output


def test_oom_kills_are_attributed_to_the_agent_or_the_tool_call(tmp_path):
    trace = make_trace([200, 200, 900, 200, 200, 800, 200, 200],
                       [bash(1.5, 3.0), bash(4.5, 6.0, "pip install x", "install"), bash(6.5, 6.6, "ls", "explore")])
    spec = AgentSpec("a", trace, priority="high")
    plan = build_plan(trace).scaled(10, 0.1)
    cgs = _agent_cgroups(tmp_path, "a", plan.peak, plan.average)
    (cgs.agent.path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (cgs.top.path / "memory.events").write_text("low 0\nhigh 7\nmax 9\noom 2\noom_kill 2\n")
    (cgs.top.path / "memory.pressure").write_text("some avg10=1.00 avg60=0.50 avg300=0.10 total=2500\n"
                                                  "full avg10=0.00 avg60=0.00 avg300=0.00 total=1000\n")
    left = cgs.tools.path / "call-1"  # its agent died before removing it
    left.mkdir()
    (left / "memory.events").write_text("high 0\nmax 3\noom 1\noom_kill 1\n")
    (left / "cgroup.events").write_text("populated 0\nfrozen 1\n")
    run = _Run(spec, plan, cgs)
    run.calls[0] = {"n": 0, "start": 0.1, "done": 0.4, "status": 0, "lat": [1000, 3000],
                    "memory_events": "high 2\nmax 0\noom 0\noom_kill 0\n",
                    "memory_pressure": "some avg10=0 avg60=0 avg300=0 total=1500\n"
                                       "full avg10=0 avg60=0 avg300=0 total=0\n"}
    run.ended, run.exit_status = None, -9
    result = _agent_result(run, NoPolicy(), 10, 0.1)
    assert result.oom_kills == [{"process": "agent", "category": None, "count": 1},
                                {"process": "call-1", "category": "install", "count": 1}]
    assert not result.survived and result.completion_s is None and result.priority == "high"
    assert result.throttle_events == 7 and result.memory_events["oom_kill"] == 2
    assert result.stall_ms["total"] == {"some": 2.5, "full": 1.0}
    assert result.frozen == ["call-1"]
    first, second = result.calls  # call 2 never started: not reported
    assert first.n == 0 and first.high_events == 2 and first.stall_ms == {"some": 1.5, "full": 0.0}
    assert first.duration_s == pytest.approx(0.3) and first.latency_ms["p50"] == 2.0 and not first.oom_killed
    assert second.n == 1 and second.oom_killed and second.status is None and second.duration_s is None
    assert result.tool_alloc_latency_ms["chunks"] == 2


# --- the orchestration, on a directory tree standing in for cgroupfs -----------------------------------------

FAKE_FILES = {"memory.current": "0\n", "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.procs": "",
              "cgroup.subtree_control": "", "memory.max": "max\n"}


@pytest.fixture
def fake_parent(tmp_path, monkeypatch):
    """A parent 'cgroup' that is a plain directory: children get the interface files the replayer reads."""
    real_child = cgroup.Cgroup.child

    def child(self, name):
        cg = real_child(self, name)
        for f, v in FAKE_FILES.items():
            (cg.path / f).write_text(v)
        return cg
    monkeypatch.setattr(cgroup.Cgroup, "child", child)
    monkeypatch.setattr(cgroup, "_rmdir_retry", lambda path, timeout: shutil.rmtree(path, ignore_errors=True))
    root = tmp_path / "parent"
    root.mkdir()
    for f, v in FAKE_FILES.items():
        (root / f).write_text(v)
    return cgroup.Cgroup(root)


def _children_of_mine():
    """Live or zombie processes whose parent is this test process."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                out.append((int(entry), stat.rsplit(")", 1)[1].split()[0]))
    return out


def test_replay_runs_agents_forks_calls_holds_retries_and_cleans_up(fake_parent):
    agents = [AgentSpec("retry", traces.load(FIXTURES / "synth-retry.json"), "synth-retry", "high"),
              AgentSpec("burst", traces.load(FIXTURES / "synth-burst.json"))]
    seen = []
    result = run(agents, fake_parent, make_policy("static-avg"), speed=200, mem_scale=0.01,
                        budget_bytes=40 * MB, accounting="self", scenario="fake",
                        on_progress=lambda name, f: seen.append((name, f)))
    assert result.errors == [] and result.all_survived and result.oom_kill_count == 0
    assert result.policy == "static-avg" and len(result.policy_actions) == 2
    for a in result.agents:
        trace = traces.load(FIXTURES / f"synth-{a.name}.json")
        assert a.survived and a.exit_status == 0 and a.error is None
        assert a.planned_s == pytest.approx(trace.duration / 200, abs=1e-3)
        assert a.completion_s >= a.planned_s * 0.99 and 0.3 < a.achieved_speed <= 1.01
        assert len(a.calls) == len(trace.calls) and all(c.status == 0 for c in a.calls)
        assert a.agent_alloc_latency_ms["chunks"] > 0 and a.alloc_latency_ms["p99"] is not None
        assert a.memory_max == result.policy_actions[[x["agent"] for x in result.policy_actions].index(a.name)][
            "bytes"]
        assert a.fidelity["samples"] > 10  # (memory.current is a constant file here: no fidelity to judge)
    retry = result.agents[0]
    assert retry.priority == "high" and sum(c.hold_bytes > 0 for c in retry.calls) >= 3
    burst = result.agents[1]
    assert burst.tool_alloc_latency_ms["chunks"] > 20  # the heavy burst, in 256 KiB chunks, at 1% scale
    assert {n for n, _ in seen} == {"retry", "burst"} and max(f for _, f in seen) == 1.0
    # everything is gone: no cgroup directories, no processes, the parent's files restored
    assert sorted(p.name for p in fake_parent.path.iterdir() if p.is_dir()) == []
    assert (fake_parent.path / "memory.max").read_text().strip() == "max"
    assert _children_of_mine() == []
    json.loads(result.to_json())


def test_process_model_holds_the_trace_in_steps_with_one_latency_per_growth(fake_parent):
    """The paper's model: one process per agent, no tool calls, base held before the start, growth in whole steps
    (the last partial), one allocation-latency sample per growth, whole steps freed on a fall."""
    model = ProcessModel(base_mib=2, step_mib=1, mb_as_mib=False)
    levels = [0, 3, 3, 1, 5, 5]  # MiB: grow, stay, fall (whole steps freed), grow again
    trace = Trace("steps", None, [Sample(float(i), v * MIB, 0.0) for i, v in enumerate(levels)], [])
    spec = AgentSpec("proc", model.process_trace(trace))
    assert [s.mem_bytes for s in spec.trace.samples] == [(2 + v) * MIB for v in levels]
    result = run([spec], fake_parent, make_policy("none"), speed=20, mem_scale=1.0, accounting="self",
                 scenario="fake", model=model)
    a = result.agents[0]
    assert result.errors == [] and a.survived and a.exit_status == 0 and a.calls == []
    assert a.agent_alloc_latency_ms["chunks"] == 2, "one sample per growth: 0->3 and 1->5 MiB"
    assert _children_of_mine() == []


def test_steps_grow_exactly_and_free_whole_chunks():
    from agentcg.workloads.worker import Steps
    s = Steps(chunk=64 * 4096, dontfork=False)
    s.adjust(100 * 4096 + 1)  # 64 + 37 pages: the last chunk partial, rounded up to a page
    assert [len(c) for c in s.chunks] == [64 * 4096, 37 * 4096] and len(s.latencies) == 1
    s.adjust(70 * 4096)  # frees whole chunks until at or below the target
    assert s.total == 64 * 4096 and len(s.latencies) == 1
    s.adjust(64 * 4096)
    assert len(s.latencies) == 1, "no growth, no latency sample"


def test_replay_reports_a_killed_agent_and_reaps_what_it_left(fake_parent):
    agents = [AgentSpec("victim", traces.load(FIXTURES / "synth-retry.json")),
              AgentSpec("bystander", traces.load(FIXTURES / "synth-small.json"))]
    killed = []

    def kill_victim_midway(name, fraction):
        if name == "victim" and fraction > 0.8 and not killed:  # after the retry loop: calls are holding
            pids = [int(p) for p in (fake_parent.path / "victim" / "agent" / "cgroup.procs").read_text().split()
                    if int(p) > 0] or []
            killed.append(True)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
    # the fake cgroup.procs holds "0" (the spawn's write): find the worker by its command line instead
    real_spawn = cgroup.Cgroup.spawn

    def spawn(self, argv, **kw):
        proc = real_spawn(self, argv, **kw)
        (self.path / "cgroup.procs").write_text(str(proc.pid))
        return proc
    mp = pytest.MonkeyPatch()
    mp.setattr(cgroup.Cgroup, "spawn", spawn)
    try:
        result = run(agents, fake_parent, None, speed=200, mem_scale=0.01, accounting="self",
                            on_progress=kill_victim_midway)
    finally:
        mp.undo()
    assert killed
    victim, bystander = result.agents
    assert not victim.survived and victim.exit_status == -9 and "before its plan finished" in victim.error
    assert victim.completion_s is None and victim.achieved_speed is None
    assert bystander.survived and bystander.error is None
    assert not result.all_survived
    assert _children_of_mine() == [], "held calls of the killed agent were reaped, not left as zombies"
    assert [p for p in fake_parent.path.iterdir() if p.is_dir()] == []


def test_replay_cleans_up_on_keyboard_interrupt(fake_parent):
    def interrupt(name, fraction):
        if fraction > 0.3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run([AgentSpec("a", traces.load(FIXTURES / "synth-small.json"))], fake_parent, None, speed=100,
                   mem_scale=0.01, accounting="self", budget_bytes=10 * MB, on_progress=interrupt)
    assert [p for p in fake_parent.path.iterdir() if p.is_dir()] == []
    assert (fake_parent.path / "memory.max").read_text().strip() == "max"
    assert _children_of_mine() == []


def test_a_worker_that_cannot_start_is_a_replay_error(fake_parent):
    spec = AgentSpec("a", traces.load(FIXTURES / "synth-small.json"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "worker_events", lambda plan: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            run([spec], fake_parent, accounting="self")
    assert [p for p in fake_parent.path.iterdir() if p.is_dir()] == []
    real_plan = worker_plan
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine, "worker_plan", lambda *a: {**real_plan(*a), "chunk": "not a size"})
        with pytest.raises(ReplayError, match="(?s)worker of a exited .* before it was ready: .*TypeError"):
            run([spec], fake_parent, accounting="self")
    assert [p for p in fake_parent.path.iterdir() if p.is_dir()] == []
    assert _children_of_mine() == []


def test_run_rejects_bad_arguments(fake_parent):
    spec = AgentSpec("a", traces.load(FIXTURES / "synth-small.json"))
    with pytest.raises(ReplayError):
        run([spec], fake_parent, speed=0)
    with pytest.raises(ReplayError):
        run([spec], fake_parent, budget_bytes=-1)
    with pytest.raises(ReplayError):
        run([spec, AgentSpec("a", spec.trace)], fake_parent)
    with pytest.raises(ReplayError):
        run([], fake_parent)


def test_a_failed_set_up_removes_what_it_created_and_nothing_else(fake_parent):
    (fake_parent.path / "b").mkdir()  # someone else's
    agents = [AgentSpec("a", traces.load(FIXTURES / "synth-small.json")),
              AgentSpec("b", traces.load(FIXTURES / "synth-small.json"))]
    with pytest.raises(ReplayError, match="already exists"):
        run(agents, fake_parent, accounting="self", budget_bytes=10 * MB)
    assert sorted(p.name for p in fake_parent.path.iterdir() if p.is_dir()) == ["b"]
    assert (fake_parent.path / "memory.max").read_text().strip() == "max"


# Work lost: what the agent must do again. A killed tool call costs its window; a dead agent all it had done.
def test_work_lost_counts_killed_calls_windows_or_everything_a_dead_agent_had_done():
    from agentcg.workloads.engine import work_lost
    from agentcg.workloads.results import CallResult

    def call(n, window_s, status):
        return CallResult(n, "Bash", "test", 1, 0, window_s, 1.0, status, status == -9, 0, None, {})
    calls = [call(1, 2.0, 0), call(2, 0.5, -9), call(3, 1.0, None), call(4, 0.25, -15)]
    assert work_lost(True, 100.0, calls, speed=10) == pytest.approx(7.5), "(0.5 + 0.25) s of wall at 10x"
    assert work_lost(False, 123.4, calls, speed=10) == pytest.approx(123.4), "the agent's progress, calls included"
    assert work_lost(True, 100.0, [call(1, 2.0, 0)], speed=10) == 0


# Start offsets: an agent that starts late holds its first level until then, and everything else comes later.
def test_a_delayed_trace_idles_at_its_first_level_then_runs_unchanged():
    from agentcg.workloads.scenario import delayed
    from agentcg.workloads.traces import Sample, ToolCall, Trace
    t = Trace("x", None, [Sample(0.0, 100, 5.0), Sample(2.0, 300, 50.0)], [ToolCall(0.5, 1.5, "Bash", "ls")])
    d = delayed(t, 10.0)
    assert d.samples == [Sample(0.0, 100, 0.0), Sample(10.0, 100, 5.0), Sample(12.0, 300, 50.0)]
    assert (d.calls[0].start, d.calls[0].end) == (10.5, 11.5) and d.duration == 12.0
    assert delayed(t, 0) is t


def test_align_peaks_makes_every_agent_peak_at_the_latest_peak_and_sets_a_concurrent_budget(tmp_path):
    from agentcg.workloads.scenario import load_scenario
    for name, peak_at in (("a", 1.0), ("b", 3.0)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"format": "agentcg-trace/1", "name": name, "samples": [
            [0, 10, 0], [peak_at, 100, 0], [4, 10, 0]]}))
    (tmp_path / "s.yaml").write_text("agents: [{trace: a.json}, {trace: b.json}]\nalign: peaks\nmem_scale: 1\n"
                                     "budget: {share_of_concurrent_peak: 0.5}\n")
    s = load_scenario(tmp_path / "s.yaml")
    assert [a.trace.meta.get("start_s") for a in s.agents] == [2.0, None]
    assert max(b for _, b in s.summed_demand()) == 200 and s.budget_bytes() == 100
    (tmp_path / "bad.yaml").write_text("agents: [{trace: a.json, start_s: 1}]\nalign: peaks\n")
    with pytest.raises(ScenarioError, match="no start_s beside it"):
        load_scenario(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("agents: [{trace: a.json}]\nalign: valleys\n")
    with pytest.raises(ScenarioError, match="align must be peaks"):
        load_scenario(tmp_path / "bad2.yaml")
