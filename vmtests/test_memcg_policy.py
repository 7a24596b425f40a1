"""AgentCgroup's in-kernel memory policy (bpf/memcg_policy.bpf.c) on a kernel with memcg_bpf_ops."""
import select
import subprocess
import sys
import time

import pytest

from agentcg.cgroup import cgroup_id, reap
from agentcg.enforce import memcg_bpf
from agentcg.enforce.memcg_bpf import POLICY_AGENT, PRIO_HIGH, PRIO_LOW, PROTECT_LOW, Policy, drain_events
from agentcg.harness import slowness
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


# Two low-priority agents grow at once under a shared limit that holds them only one after the other (2 x 150 MiB
# plus their interpreters in 256 MiB, no swap): once the headroom is under their reserve, the first to charge
# holds the turn and finishes its growth, the other waits (its charges delayed in the kernel) until the first lets
# go, and then finishes too. Nobody is OOM-killed. Without the policy the two would meet at the limit.
def test_agents_under_a_short_shared_limit_take_turns_instead_of_meeting_the_oom_killer(cg, pins):
    cg.enable("memory")
    cg.write("memory.max", 256 * MIB)
    agents = [cg.child("a"), cg.child("b")]
    att = memcg_bpf.attach(memcg_bpf.obj("memcg_policy"), cg.path, pins / "policy")
    for a in agents:
        set_policy(att, cgroup_id(a.path), Policy(priority=PRIO_LOW, flags=POLICY_AGENT,
                                                  reserve_pages=128 * PAGES_PER_MIB))
    procs = [a.spawn([sys.executable, "-m", "agentcg.harness.memhog", "150", "--hold", "--go-on-stdin"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for a in agents]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "armed"
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        done = _first_line(procs, "touched", slowness.scaled(120))
        assert done is not None, "neither agent finished its growth"
        holder, waiter = procs[done], procs[1 - done]
        assert _first_line([waiter], "touched", 3.0) is None, "the other agent grew beside the holder"
        holder.kill()
        reap(holder)
        assert _first_line([waiter], "touched", slowness.scaled(120)) == 0, "the waiting agent never went on"
    finally:
        for p in procs:
            p.kill()
            reap(p)
    assert cg.keyed("memory.events")["oom_kill"] == 0
    stats = [get_policy(att, cgroup_id(a.path)) for a in agents]
    assert stats[1 - done].throttled > 0 and stats[done].throttled == 0, stats
    assert any(e.cgid == cgroup_id(agents[1 - done].path) for e in drain_events(att))


def _first_line(procs, word: str, timeout: float) -> int | None:
    """The index of the first process to print a line starting with `word` within `timeout`, else None."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([p.stdout for p in procs], [], [], left)
        for r in ready:
            line = r.readline()
            if line.startswith(word):
                return next(i for i, p in enumerate(procs) if p.stdout is r)
    return None
