"""`paper-bpf`: the AgentCgroup paper's BPF configuration (../shared/design/paper-evaluation.md), expressed through
our memcg_bpf_ops v7 port and bpf/memcg_policy.bpf.c, so the paper's own setting runs beside agentcg on the same
replay.

The paper: HIGH memory.high = max, protected from reclaim by below_low; each LOW memory.high = 400M, its charges
delayed 50 ms once over it (its loader's `--delay-ms 50 --below-low`; the meaning of its `--threshold 10000` is
not in the public code, so nothing here stands for it). Here: memory.high as the paper sets it on each agent's
cgroup; the policy map gives a LOW's process cgroup (its agent leaf, where the charges are seen) a budget of
400 MiB with no reserve (delayed whenever over it) and base = max = 50 ms delays (so every delay is 50 ms), and
HIGH's cgroups the PROTECT_LOW flag. One difference stays: the
paper's v6 hook delayed from memory.high's over-high path, v7's memcg_charged runs about once per 64-page charge
batch.
"""
from __future__ import annotations

from agentcg.vocab import MIB, PAGE
from agentcg.workloads.plan import ReplayError
from agentcg.workloads.policy import AgentCgroups, Policy

LOW_HIGH_BYTES = 400 * MIB
DELAY_MS = 50


class PaperBpfPolicy(Policy):
    name = "paper-bpf"

    def __init__(self):
        super().__init__()
        self.session = None
        self.cgroups: list[AgentCgroups] = []

    def setup(self, agents: list[AgentCgroups]) -> None:
        from agentcg.enforce import memcg_bpf
        from agentcg.enforce.inkernel import InKernelError, InKernelPolicy, why_not
        reason = why_not()
        if reason:
            raise ReplayError(f"policy paper-bpf: {reason}")
        parent = agents[0].top.path.parent
        try:
            self.session = InKernelPolicy(parent, 0, base_delay_ms=DELAY_MS, max_delay_ms=DELAY_MS).open()
        except InKernelError as e:
            raise ReplayError(f"policy paper-bpf: {e}") from e
        self.cgroups = agents
        for a in agents:
            if a.spec.priority == "low":
                a.top.write("memory.high", LOW_HIGH_BYTES)
                # charges are seen at the cgroup that holds the process: the agent leaf
                self.session.track(a.agent.path, memcg_bpf.Policy(priority=memcg_bpf.PRIO_LOW,
                                                                  budget_pages=LOW_HIGH_BYTES // PAGE))
                self.log(a.name, "memory.high + delay", f"LOW: memory.high 400M, {DELAY_MS} ms charge delays over it",
                         bytes=LOW_HIGH_BYTES)
            else:
                for path in (a.top.path, a.agent.path):  # reclaim asks below_low of each level
                    self.session.track(path, memcg_bpf.Policy(priority=memcg_bpf.PRIO_HIGH, flags=memcg_bpf.PROTECT_LOW))
                self.log(a.name, "below_low", "HIGH: memory.high max, protected from reclaim (below_low)")

    def on_tick(self, elapsed: float, agents: list[AgentCgroups]) -> None:
        if self.session is not None:
            self.session.events()  # drained, so the loader's pipe never fills; the counts are in the map

    def teardown(self) -> None:
        if self.session is None:
            return
        for a in self.cgroups:
            stats = self.session.stats(a.agent.path)
            if stats is not None:
                self.log(a.name, "throttled", "charges delayed by the policy", count=stats.throttled,
                         delay_ms_total=stats.delay_ms_total)
        self.session.close()
        self.session = None
