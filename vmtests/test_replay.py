"""The trace replayer on a real kernel: it reproduces traces faithfully at 50x, and the baseline policies do what
a container-style limit does to agents.

Sizes fit a TCG guest with ~2 GB (memory is scaled: a 4 GB burst becomes ~200 MB); each test replays at most
~11 minutes of trace at 50x (the longest recorded run, 38 minutes, takes ~46 s), plus ~1-3 s per worker start.
Numbers are kept: each test writes its ReplayResult as JSON into the shared directory (replay/<test>.json).
Tests on recorded runs skip when the shared traces (../shared/traces) are not visible in the guest.
"""
import json
import os
from pathlib import Path

import pytest

from agentcg.eval.registry import make_policy
from agentcg.paths import REPO_ROOT
from agentcg.workloads import traces
from agentcg.workloads.engine import run, run_scenario
from agentcg.workloads.policy import NoPolicy
from agentcg.workloads.results import AgentResult
from agentcg.workloads.scenario import AgentSpec
from agentcg.workloads.testkit import keep_replay, scenario_or_skip

FIXTURES = REPO_ROOT / "fixtures" / "traces"
SUBSET = "batch_swebench_18tasks"
# The 18 tasks of the representative subset (first attempt of each), named so node ids never depend on the data.
TASKS = [f"{c}_{d}" for c in ("CLI_Tools", "DevOps_Build", "ML_Scientific", "Medical_Bio", "SQL_Data",
                              "Web_Network") for d in ("Easy", "Medium", "Hard")]
# `make test` replays three of them (the ones whose fidelity was hardest to hold: the most tool-call windows and
# bursts); `agentcg bench` and `make bench-replay` replay all 18.
EVERY_RUN = ("DevOps_Build_Easy", "ML_Scientific_Medium", "Medical_Bio_Hard")
FIDELITY = 0.05  # mean error of the agent's memory.current, relative to its (scaled) peak (agentcg.workloads.measure.fidelity)
MAX_SCALED_PEAK = 200_000_000  # a recorded run is scaled so its peak is at most this (and at most 10%)


def _summary(agent: AgentResult) -> str:
    return (f"{agent.name}: fidelity {agent.fidelity}, achieved speed {agent.achieved_speed}, "
            f"completion {agent.completion_s} s of {agent.planned_s} planned, oom {agent.oom_kills}, "
            f"error {agent.error}")


# Replaying a synthetic run alone at 50x, the agent's cgroup follows the trace within 5% of its peak.
@pytest.mark.requires("memcg")
def test_replay_follows_a_synthetic_trace_at_50x(cg):
    trace = traces.load(FIXTURES / "synth-small.json")
    result = run([AgentSpec("synth-small", trace)], cg, NoPolicy(), speed=50, mem_scale=0.1,
                        scenario="synth-small")
    keep_replay("synthetic_fidelity", result)
    (agent,) = result.agents
    assert agent.survived, _summary(agent)
    assert result.oom_kill_count == 0 and result.errors == []
    assert agent.fidelity["samples"] >= 100, _summary(agent)
    assert agent.fidelity["mae_rel"] <= FIDELITY, _summary(agent)
    assert len(agent.calls) == len(trace.calls) and all(c.status == 0 for c in agent.calls), _summary(agent)


# The same for each run of the representative 18-task subset (memory scaled to fit the guest).
@pytest.mark.requires("memcg")
@pytest.mark.parametrize("task", [t if t in EVERY_RUN else pytest.param(t, marks=pytest.mark.evaluation)
                                  for t in TASKS])
def test_replay_follows_recorded_traces_at_50x(cg, task):
    run_dir = traces.default_root() / SUBSET / task / "attempt_1"
    if not run_dir.is_dir():
        pytest.skip(f"shared traces not present: {run_dir}")
    trace = traces.load_run(run_dir, traces.default_root())
    peak = max(s.mem_bytes for s in trace.samples)
    scale = min(0.1, MAX_SCALED_PEAK / peak)
    result = run([AgentSpec(task, trace, f"recorded:{SUBSET}/{task}")], cg, NoPolicy(), speed=50,
                        mem_scale=scale, scenario=task)
    keep_replay(f"recorded_fidelity_{task}", result)
    (agent,) = result.agents
    assert agent.survived and result.oom_kill_count == 0, _summary(agent)
    assert agent.fidelity["mae_rel"] <= FIDELITY, _summary(agent)


# Three agents under a parent budget of 89% of their summed peaks, each limited to its average (the
# container-style static split): the bursts do not fit, and the OOM killer takes processes.
@pytest.mark.requires("memcg")
def test_tight_budget_with_static_average_limits_oom_kills(cg):
    scenario = scenario_or_skip("tight")
    result = run_scenario(scenario, cg, make_policy("static-avg"), speed=50, mem_scale=0.05)
    keep_replay("tight_static_avg", result)
    summary = "; ".join(_summary(a) for a in result.agents)
    assert result.oom_kill_count >= 1, summary
    assert all(a.memory_max is not None for a in result.agents)
    killed = [k["process"] for a in result.agents for k in a.oom_kills]
    assert all(p == "agent" or p.startswith("call-") for p in killed), killed
    # an agent whose own process was killed did not survive
    for a in result.agents:
        if any(k["process"] == "agent" for k in a.oom_kills):
            assert not a.survived, _summary(a)


# The same agents, their bursts together, with just enough memory (their concurrent peak is 95% of the budget):
# without any control all finish, nothing is killed.
@pytest.mark.requires("memcg")
def test_moderate_budget_without_control_keeps_every_agent_alive(cg):
    scenario = scenario_or_skip("moderate")
    result = run_scenario(scenario, cg, make_policy("none"))
    keep_replay("moderate_none", result)
    summary = "; ".join(_summary(a) for a in result.agents)
    assert result.all_survived, summary
    assert result.oom_kill_count == 0, summary
    assert result.work_lost_s == 0, summary
    assert result.errors == [], result.errors
    assert all(a.completion_s is not None for a in result.agents), summary
    json.loads(result.to_json())


# A tool call whose agent died before the replayer saw its pid (forked just before an OOM kill) is re-parented
# to the replayer and must still be reaped: cleanup leaves no zombie behind.
def test_cleanup_reaps_tool_calls_the_replayer_never_saw(cg):
    from agentcg.workloads.engine import _reap_orphans, _subreaper
    agent = cg.child("agent")
    was = _subreaper(True)
    try:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the "agent": joins the cgroup, forks a "tool call" that exits, dies without waiting
            (agent.path / "cgroup.procs").write_text("0")
            if os.fork() == 0:
                os._exit(0)
            os.write(w, b"x")
            os._exit(0)
        os.close(w)
        os.read(r, 1)
        os.close(r)
        os.waitpid(pid, 0)
        zombies = wait_for_zombie_children()
        assert zombies, "the tool call was not re-parented to the subreaper"
        _reap_orphans(set(), [agent], timeout=5.0)
        assert wait_for_zombie_children(timeout=0.5) == []
    finally:
        _subreaper(was)


def wait_for_zombie_children(timeout: float = 5.0) -> list[int]:
    import time

    from agentcg.workloads.engine import _ppid
    deadline = time.monotonic() + timeout
    while True:
        found = [int(p.name) for p in Path("/proc").iterdir()
                 if p.name.isdigit() and _ppid(int(p.name)) == os.getpid() and _state(p) == "Z"]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def _state(proc: Path) -> str | None:
    try:
        return (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
