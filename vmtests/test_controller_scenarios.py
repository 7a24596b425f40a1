"""The user-space controller on the multi-tenant scenarios: agentcg against the static baselines."""
import json

import pytest

from agentcg.eval.registry import make_policy
from agentcg.workloads.engine import run, run_scenario
from agentcg.workloads.policy import NoPolicy
from agentcg.workloads.testkit import keep_replay, scenario_or_skip

pytestmark = [pytest.mark.requires("memcg", "cgroup_freeze", "cgroup_kill", "psi"), pytest.mark.evaluation]


# `tight` (parent budget 89% of the summed peaks): under agentcg every agent process survives - tool calls are
# throttled, frozen or killed instead, and every killed call is reported. The high-priority agent's completion
# time is compared with running alone.
def test_tight_under_agentcg_every_agent_survives(cg, record_measurement):
    tight = scenario_or_skip("tight")
    result = run_scenario(tight, cg, make_policy("agentcg"), speed=50, mem_scale=0.05)
    keep_replay("tight_agentcg", result)
    summary = "; ".join(f"{a.name}: survived={a.survived} kills={a.oom_kills}" for a in result.agents)
    assert result.all_survived, summary
    assert not any(k["process"] == "agent" for a in result.agents for k in a.oom_kills), summary

    high = next(a for a in tight.agents if a.priority == "high")
    alone = run([high], cg, NoPolicy(), speed=50, mem_scale=0.05, scenario="alone")
    high_result = next(a for a in result.agents if a.name == high.name)
    actions = [a for a in result.policy_actions if a["action"] in ("throttle", "freeze", "kill", "thaw")]
    record_measurement("tight_agentcg", {
        "survived": {a.name: a.survived for a in result.agents},
        "tool_calls_killed": sum(1 for a in actions if a["action"] == "kill"),
        "throttles": sum(1 for a in actions if a["action"] == "throttle"),
        "freezes": sum(1 for a in actions if a["action"] == "freeze"),
        "high_priority_completion_s": high_result.completion_s, "high_priority_alone_s": alone.agents[0].completion_s,
        "high_priority_overhead": (high_result.completion_s / alone.agents[0].completion_s
                                   if high_result.completion_s and alone.agents[0].completion_s else None),
        "p99_alloc_latency_ms": {a.name: a.alloc_latency_ms.get("p99") for a in result.agents},
    })
    json.loads(result.to_json())


# `tight` at 70% of the summed peaks, where the budget cannot hold bio-hard's pytest burst: agentcg still keeps
# every agent alive. (Tool calls inherited their agent's oom_score_adj -1000 once; with every process of the
# workload unkillable, the OOM at the parent's limit found no victim and two agents hung until the replay gave up.)
def test_tight_at_70_percent_under_agentcg_agents_survive_and_only_tool_calls_die(cg):
    from dataclasses import replace
    tight = scenario_or_skip("tight")
    at70 = replace(tight, budget_fixed_bytes=None, budget_trace_bytes=int(sum(tight.peaks(1.0)) * 0.7))
    result = run_scenario(at70, cg, make_policy("agentcg"), speed=50, mem_scale=0.05)
    keep_replay("tight70_agentcg", result)
    summary = "; ".join(f"{a.name}: survived={a.survived} kills={a.oom_kills} error={a.error}" for a in result.agents)
    assert result.all_survived and result.errors == [], summary
    assert all(k["process"].startswith("call-") for a in result.agents for k in a.oom_kills), summary
