"""A replay's results (per call, per agent, per run), as JSON and as rich tables."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field


@dataclass
class CallResult:
    n: int
    tool: str
    category: str | None
    planned_peak_bytes: int
    hold_bytes: int
    planned_s: float  # the call's active window (wall seconds)
    duration_s: float | None  # how long it really took (fork to exit, or to holding); None: not seen finishing
    status: int | None  # exit status, -signal when killed; None: never seen finishing (its agent died)
    oom_killed: bool
    high_events: int
    stall_ms: dict | None
    latency_ms: dict


@dataclass
class AgentResult:
    name: str
    source: str
    priority: str
    trace_duration_s: float
    planned_s: float  # trace duration / speed
    peak_bytes: int  # of the scaled trace
    average_bytes: int
    memory_max: int | None  # the policy's limit
    survived: bool  # the agent process ran its whole plan and was alive at the end
    completion_s: float | None  # wall seconds from the start to the agent's end
    achieved_speed: float | None  # trace duration / wall time / speed
    delay_s: float | None  # how far the agent's schedule shifted
    exit_status: int | None
    oom_kills: list[dict]  # [{"process": "agent" | "call-N", "category", "count"}]
    frozen: list[str]  # cgroups frozen at the end
    throttle_events: int  # memory.events high of the agent's cgroup
    memory_events: dict
    stall_ms: dict  # memory.pressure totals: {"total": .., "agent": .., "tools": ..}
    alloc_latency_ms: dict  # every chunk of every process of the agent
    agent_alloc_latency_ms: dict
    tool_alloc_latency_ms: dict
    fidelity: dict
    overhead_bytes: int | None  # the agent process's own footprint before it held anything
    calls: list[CallResult] = field(default_factory=list)
    error: str | None = None
    growth_latencies_ms: list[float] | None = None  # process model: each growth step's time, in order
    work_lost_s: float = 0.0  # trace seconds of work lost: killed calls, or all the agent had done if it died


@dataclass
class ReplayResult:
    scenario: str
    policy: str
    speed: float
    mem_scale: float
    chunk_bytes: int
    budget_bytes: int | None
    wall_s: float
    agents: list[AgentResult]
    policy_actions: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    swap: str = "none"  # agentcg.workloads.swap
    swap_stats: dict = field(default_factory=dict)  # zram: what the device held at the end

    @property
    def all_survived(self) -> bool:
        return all(a.survived for a in self.agents)

    @property
    def oom_kill_count(self) -> int:
        return sum(k["count"] for a in self.agents for k in a.oom_kills)

    @property
    def work_lost_s(self) -> float:
        """Trace seconds of work lost over all agents (AgentResult.work_lost_s)."""
        return round(sum(a.work_lost_s for a in self.agents), 3)

    @property
    def tool_calls_killed(self) -> int:
        """Tool calls that ended by a signal, whoever sent it (agentcg, a peer, the OOM killer)."""
        return sum(1 for a in self.agents for c in a.calls if c.status is not None and c.status < 0)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _fmt_ms(d: dict) -> str:
    return "-" if not d or d.get("p50") is None else f"{d['p50']:.2f}/{d['p95']:.2f}/{d['p99']:.2f}"


def render(result: ReplayResult, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    budget = f"{result.budget_bytes / 2**20:.0f} MiB" if result.budget_bytes else "none"
    table = Table(title=f"replay {result.scenario}: policy {result.policy}, speed {result.speed:g}x, "
                        f"mem-scale {result.mem_scale:g}, budget {budget}")
    for col in ("agent", "prio", "alive", "done (s)", "speed", "OOM kills", "high", "stall ms",
                "alloc ms P50/95/99", "MAE % peak"):
        table.add_column(col, justify="left" if col in ("agent", "OOM kills") else "right")
    for a in result.agents:
        stall = (a.stall_ms.get("total") or {}).get("some")
        mae = a.fidelity.get("mae_rel")
        table.add_row(a.name, a.priority, "yes" if a.survived else "[red]no[/red]",
                      f"{a.completion_s:.1f}" if a.completion_s else "-",
                      f"{a.achieved_speed:.2f}" if a.achieved_speed else "-",
                      ", ".join(f"{k['process']}" + (f" ({k['category']})" if k["category"] else "")
                                for k in a.oom_kills) or "-",
                      str(a.throttle_events), f"{stall:.0f}" if stall is not None else "-",
                      _fmt_ms(a.alloc_latency_ms), f"{100 * mae:.1f}" if mae is not None else "-")
    console.print(table)
    for e in result.errors:
        console.print(f"[red]error:[/red] {e}")


def render_bench(rows: list[AgentResult], console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    table = Table(title="replay fidelity and speed per trace (alone, no policy)")
    for col in ("trace", "duration (s)", "wall (s)", "achieved speed", "MAE % peak", "pointwise MAE %", "alive"):
        table.add_column(col, justify="left" if col == "trace" else "right")
    for a in rows:
        pct = [a.fidelity.get(k) for k in ("mae_rel", "mae_rel_pointwise")]
        table.add_row(a.name, f"{a.trace_duration_s:.0f}", f"{a.completion_s:.1f}" if a.completion_s else "-",
                      f"{a.achieved_speed:.2f}" if a.achieved_speed else "-",
                      *(f"{100 * v:.1f}" if v is not None else "-" for v in pct), "yes" if a.survived else "no")
    console.print(table)
