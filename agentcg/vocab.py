"""The words and units every part of agentcg shares, defined once.

A priority is what an operator gives an agent workload; each mechanism reads its own column:
- cpu_weight: the workload's cpu.weight (agentcg.layout), so CPU is shared by priority where sched_ext is absent;
- reserve_factor: how much of the ladder's reserve a workload of this priority keeps free before its calls are
  throttled (agentcg.ladder): a low-priority agent yields earlier, a high one later;
- agent_oom_score_adj: of the agent framework's processes (agentcg.layout). Below high priority -998/-999: the
  OOM killer's last choice, taken only when no tool call is left to kill (a call scores at least its size, an
  agent its size minus ~all of the limit), so a memory cgroup holding nothing but agents never livelocks (an
  OOM that finds no victim retries the faulting charge for ever, stalling every agent in it). High: -1000,
  never chosen;
- its code in the in-kernel policy's map is the header's PRIO_<NAME> (agentcg.enforce.memcg_bpf.priority_code),
  read only where the in-kernel policy runs.
"""
from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
PAGE = 4096  # bytes; the memory controller charges whole pages


@dataclass(frozen=True)
class Priority:
    name: str
    cpu_weight: int
    reserve_factor: float
    agent_oom_score_adj: int


PRIORITY = {p.name: p for p in (
    Priority("low", cpu_weight=50, reserve_factor=2.0, agent_oom_score_adj=-998),
    Priority("normal", cpu_weight=100, reserve_factor=1.0, agent_oom_score_adj=-999),
    Priority("high", cpu_weight=200, reserve_factor=0.5, agent_oom_score_adj=-1000),
)}
PRIORITIES = tuple(PRIORITY)  # lowest first
DEFAULT_PRIORITY = "normal"
