"""AgentCgroup's in-kernel memory policy (bpf/memcg_policy.bpf.c) on a kernel with memcg_bpf_ops."""
import pytest

from agentcg.cgroup import cgroup_id
from agentcg.enforce import memcg_bpf
from agentcg.enforce.memcg_bpf import POLICY_AGENT, PRIO_HIGH, PRIO_LOW, PROTECT_LOW, Policy, drain_events
from agentcg.harness.bpfmaps import get_policy, set_policy
from agentcg.harness.memhog import touch_timed

pytestmark = pytest.mark.requires("memcg_bpf_ops")

MIB = 1 << 20
PAGES_PER_MIB = MIB // 4096


# A low-priority tool call over its budget is slowed down in the kernel and reported to user space, while a
# high-priority tool call and the agent leaf allocating the same amount are not delayed.
def test_policy_throttles_low_priority_tool_over_budget_only(cg, pins, record_measurement):
    cg.enable("memory")
    agent = cg.child("agent")
    tools = cg.child("tools")
    tools.enable("memory")
    low, high = tools.child("call-low"), tools.child("call-high")
    att = memcg_bpf.attach(memcg_bpf.obj("memcg_policy"), cg.path, pins / "policy")
    budget = 4 * PAGES_PER_MIB
    set_policy(att, cgroup_id(low.path), Policy(priority=PRIO_LOW, budget_pages=budget))
    set_policy(att, cgroup_id(high.path), Policy(priority=PRIO_HIGH, budget_pages=budget))
    set_policy(att, cgroup_id(agent.path), Policy(flags=POLICY_AGENT | PROTECT_LOW, budget_pages=budget))

    t_high, _ = touch_timed(high, 8 * 1024)
    t_agent, _ = touch_timed(agent, 8 * 1024)
    t_low, _ = touch_timed(low, 8 * 1024)

    stats = get_policy(att, cgroup_id(low.path))
    events = drain_events(att)
    record_measurement("policy_throttle", {"t_high_s": t_high, "t_agent_s": t_agent, "t_low_s": t_low,
                                           "throttled": stats.throttled, "delay_ms_total": stats.delay_ms_total,
                                           "events": len(events)})
    assert stats.throttled > 0 and stats.delay_ms_total >= 20 * stats.throttled
    assert get_policy(att, cgroup_id(high.path)).throttled == 0
    assert get_policy(att, cgroup_id(agent.path)).throttled == 0
    assert t_low > 3 * max(t_high, t_agent), (t_low, t_high, t_agent)
    assert events and all(e.cgid == cgroup_id(low.path) and e.usage_pages > e.budget_pages for e in events)
