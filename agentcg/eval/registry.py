"""The policies a replay can be asked for by name: the baselines, the real user-space peers people deploy
(Debian's oomd and earlyoom, agentcg.eval.peers), the AgentCgroup paper's BPF setting (agentcg.eval.paper) and
agentcg itself (agentcg.eval.agentcg_policy), each imported only when asked for."""
from __future__ import annotations

from typing import Callable

from agentcg.workloads.plan import ReplayError
from agentcg.workloads.policy import NoPolicy, PlatformPolicy, Policy, StaticPolicy


def _agentcg_policy(inkernel: bool = False, controller: bool = True) -> Policy:
    from agentcg.eval.agentcg_policy import AgentcgPolicy  # the controller, imported only when asked for
    return AgentcgPolicy(inkernel=inkernel, controller=controller)


def _paper_policy() -> Policy:
    from agentcg.eval.paper import PaperBpfPolicy  # the paper's BPF setting, on memcg_bpf_ops
    return PaperBpfPolicy()


def _peer_policy(name: str) -> Policy:
    from agentcg.eval import peers  # real user-space peers (Debian's oomd and earlyoom)
    return peers.OomdPolicy() if name == "oomd" else peers.EarlyoomPolicy()


POLICIES: dict[str, Callable[[], Policy]] = {
    "none": NoPolicy,
    "static-avg": lambda: StaticPolicy("avg"),
    "static-peak": lambda: StaticPolicy("peak"),
    "container": lambda: PlatformPolicy(oom_group=False),
    "k8s": lambda: PlatformPolicy(oom_group=True),
    "protect-only": lambda: _agentcg_policy(controller=False),
    "oomd": lambda: _peer_policy("oomd"),
    "earlyoom": lambda: _peer_policy("earlyoom"),
    "agentcg": _agentcg_policy,
    "agentcg-kernel": lambda: _agentcg_policy(inkernel=True),
    "paper-bpf": _paper_policy,
}


def make_policy(name: str) -> Policy:
    try:
        return POLICIES[name]()
    except KeyError:
        raise ReplayError(f"unknown policy {name!r} (known: {', '.join(POLICIES)})") from None
