"""The real user-space peers on a real kernel: Debian's oomd and earlyoom run beside the replay, watch it for its
whole length, and whatever they kill is read back and attributed to the replay's agents.

The scenario is `tight` at 70% of the summed peaks, where the budget cannot hold the bursts: the kernel's OOM
killer acts at the parent's memory.max, and the peers get their chance to act first. What each did is kept
(replay/peer_<name>.json) for the evaluation; how they compare is agentcg bench's budget sweep.
"""
from dataclasses import replace

import pytest

from agentcg.eval.registry import make_policy
from agentcg.workloads.engine import run_scenario
from agentcg.workloads.testkit import keep_replay, scenario_or_skip


def _at_share(scenario, share):
    return replace(scenario, budget_fixed_bytes=None, budget_trace_bytes=int(sum(scenario.peaks(1.0)) * share))


@pytest.mark.evaluation
@pytest.mark.requires("memcg", "psi")
@pytest.mark.parametrize("peer", ["oomd", "earlyoom"])
def test_peer_watches_the_whole_replay_and_its_kills_are_attributed(cg, peer):
    tight = _at_share(scenario_or_skip("tight"), 0.7)
    result = run_scenario(tight, cg, make_policy(peer), speed=50, mem_scale=0.05)
    keep_replay(f"peer_{peer}", result)
    actions = [a["action"] for a in result.policy_actions]
    assert actions[0] == "peer", result.policy_actions  # the daemon came up before the replay started
    assert "peer-exit" not in actions, result.policy_actions  # and was still running when it ended
    names = {a.name for a in result.agents}
    for kill in (a for a in result.policy_actions if a["action"] == "peer-kill"):
        assert kill["agent"] in names, kill  # a peer acts inside the budget it watches, nowhere else
    assert result.errors == [], result.errors
    # the budget did not hold every burst: someone (the kernel or the peer) killed something
    assert result.oom_kill_count + actions.count("peer-kill") >= 1, [a.__dict__ for a in result.agents]
