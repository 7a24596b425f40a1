"""The seam where a resource policy meets a replay, and the two baselines every comparison has.

A policy sees each agent as `AgentCgroups` (its spec, scaled peak and average, its cgroups, its planned calls),
is told the replay's scale (`Policy.scale`), and acts in setup / on_tick / teardown, logging every decision with
its reason. `none` leaves the agents to share the parent's budget; `static-avg` / `static-peak` are fixed
limits sized from the trace; `container` and `k8s` split the budget between the agents as a platform does. Named policies (and the peers, agentcg itself) are in agentcg.eval.registry.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agentcg.cgroup import Cgroup
from agentcg.vocab import PAGE
from agentcg.workloads.scenario import AgentSpec


@dataclass
class AgentCgroups:
    """What a policy sees of one agent: its spec, its (scaled) trace statistics and its cgroups."""
    spec: AgentSpec
    peak: int  # scaled bytes
    average: int
    top: Cgroup  # <parent>/<agent>
    agent: Cgroup  # <parent>/<agent>/agent
    tools: Cgroup  # <parent>/<agent>/tools (tools/call-N appear as the agent makes calls)
    calls: list = field(default_factory=list)  # the plan's CallPlans (scaled): what each call-N will run

    @property
    def name(self) -> str:
        return self.spec.name


class Policy:
    """The seam where a resource policy plugs in. setup() runs once the agents' processes are ready and before
    the replay starts; on_tick() on every sampling tick (elapsed wall seconds); teardown() after the replay,
    before the cgroups are removed. Every decision goes to `actions` with its reason."""
    name = "none"

    def __init__(self):
        self.actions: list[dict] = []
        self.speed, self.mem_scale = 1.0, 1.0

    def scale(self, speed: float, mem_scale: float) -> None:
        """The replay's time acceleration and memory scale, given before setup(): a policy with sizes in
        real-world MiB or durations in trace seconds scales them as the replay does."""
        self.speed, self.mem_scale = speed, mem_scale

    def setup(self, agents: list[AgentCgroups]) -> None:
        pass

    def on_tick(self, elapsed: float, agents: list[AgentCgroups]) -> None:
        pass

    def teardown(self) -> None:
        pass

    def log(self, agent: str, action: str, reason: str, **values) -> None:
        self.actions.append({"agent": agent, "action": action, "reason": reason, **values})

    def limit_of(self, agent: str) -> int | None:
        """The memory.max this policy set on an agent (None: none)."""
        return None


class NoPolicy(Policy):
    """No per-agent control: the agents share the parent's budget, the kernel decides under pressure."""
    name = "none"


class LimitPolicy(Policy):
    """A memory.max per agent (set once, in setup), with the agent cgroup's memory.oom.group as given."""

    def __init__(self):
        super().__init__()
        self.limits: dict[str, int] = {}

    def limit(self, a: AgentCgroups, limit: int, oom_group: bool, reason: str) -> None:
        a.top.write("memory.oom.group", int(oom_group))
        a.top.write("memory.max", limit)
        self.limits[a.name] = limit
        self.log(a.name, "memory.max", reason, bytes=limit)

    def limit_of(self, agent: str) -> int | None:
        return self.limits.get(agent)


class StaticPolicy(LimitPolicy):
    """A container-style fixed limit per agent: memory.max = the trace's average or peak (scaled), with
    memory.oom.group 0, so an agent over its limit loses one process (chosen by the OOM killer) rather than all."""

    def __init__(self, basis: str):
        super().__init__()
        if basis not in ("avg", "peak"):
            raise ValueError(f"basis must be avg or peak, got {basis!r}")
        self.basis = basis
        self.name = f"static-{basis}"

    def setup(self, agents: list[AgentCgroups]) -> None:
        for a in agents:
            limit = a.average if self.basis == "avg" else a.peak
            self.limit(a, max(-(-limit // PAGE) * PAGE, PAGE), False,
                       f"the trace's {'average' if self.basis == 'avg' else 'peak'} memory")


class PlatformPolicy(LimitPolicy):
    """What people deploy: one container (or pod) per agent, the shared budget split evenly between them as a
    platform packing n agents into a machine would, each a memory.max. `container` (podman/docker): memory.oom.group
    0, the OOM killer takes the container's biggest process. `k8s` (kubelet >= 1.28 on cgroup v2): memory.oom.group
    1, one OOM kills the whole container, the agent included. Swap as they set it where the machine has swap:
    docker/podman's `--memory` alone allows as much swap again (memory.swap.max = the limit); the kubelet's
    default swap behavior (NoSwap) gives containers none (memory.swap.max 0)."""

    def __init__(self, oom_group: bool):
        super().__init__()
        self.oom_group = oom_group
        self.name = "k8s" if oom_group else "container"

    def setup(self, agents: list[AgentCgroups]) -> None:
        parent = agents[0].top.path.parent
        raw = (parent / "memory.max").read_text().strip() if (parent / "memory.max").exists() else "max"
        budget = int(raw) if raw != "max" else sum(a.peak for a in agents)  # no budget: each gets its peak's share
        share = max(budget // len(agents) // PAGE * PAGE, PAGE)
        for a in agents:
            self.limit(a, share, self.oom_group,
                       f"1/{len(agents)} of the budget, memory.oom.group {int(self.oom_group)}")
            if (a.top.path / "memory.swap.max").exists():
                swap = 0 if self.oom_group else share
                a.top.write("memory.swap.max", swap)
                self.log(a.name, "memory.swap.max", "kubelet NoSwap" if self.oom_group else
                         "docker/podman --memory without --memory-swap: as much swap again", bytes=swap)
