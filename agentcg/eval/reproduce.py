"""Scenarios replayed with repeats under each policy, summarized as medians with their spread.

`agentcg bench paper`: the AgentCgroup paper's experiment: its two scenarios (fixtures/scenarios/paper-*.yaml,
the process model), HIGH alone once per repeat, and per run the paper's metrics as its public code defines them
(../shared/design/paper-evaluation.md): which processes completed, HIGH's completion against its time alone, HIGH's
allocation latency per growth step (P50; the paper's P95: zeros dropped, element floor(0.95 n); the largest; and
each growth's median over the runs), the total completion and the policy's throttle count.

`agentcg bench contention`: agentcg's own fight (the tool-call model): each repeat draws the scenario's start
offsets from its own seed (1, 2, ...), with and without swap; per run what was lost (agents killed, tool calls
killed, work lost in trace seconds), HIGH's completion against alone and its allocation P95 (over every chunk
of its processes), the policy's throttle / freeze / reclaim / kill counts and the controller's CPU.

A run with replay errors is marked failed and enters no median (its losses are still counted in `runs`).
"""
from __future__ import annotations

from dataclasses import replace

from agentcg.workloads.plan import ReplayError

PAPER_SCENARIOS = ("paper-tight", "paper-moderate")
PAPER_POLICIES = ("none", "paper-bpf", "agentcg", "agentcg-kernel")
CONTENTION_SCENARIOS = ("contention", "moderate")
REFERENCE_SCENARIOS = ("roomy",)  # nothing presses: what sharing the machine alone costs HIGH (asked for by name)
CONTENTION_POLICIES = ("none", "container", "k8s", "protect-only", "agentcg", "agentcg-kernel")
SWAP_DIMENSION = ("none", "zram")


def paper_p95(latencies_ms: list[float]) -> float | None:
    """The paper's per-run P95 of HIGH's allocation latency: zeros dropped, element floor(0.95 n)."""
    from agentcg.stats import percentile
    return percentile([x for x in latencies_ms if x > 0], 95, "floor-index")


STOPS = ("freeze", "reclaim", "thaw", "kill", "kernel-oom-kill")


def run_record(result, alone_s: float | None) -> dict:
    """One run, as paper.json keeps it. HIGH is the scenario's first agent. A run with replay errors is marked
    failed: its latencies and times are kept but never enter a median."""
    from agentcg.stats import percentile
    high = result.agents[0]
    lat = [x for x in (high.growth_latencies_ms or []) if x > 0]
    throttled = [a.get("count", 0) for a in result.policy_actions if a.get("action") == "throttled"]
    done = [a.completion_s for a in result.agents]
    if not lat and getattr(high, "alloc_latency_ms", None):  # the tool-call model: every chunk of HIGH's processes
        p50, p95 = high.alloc_latency_ms.get("p50"), high.alloc_latency_ms.get("p95")
        chunk_max = high.alloc_latency_ms.get("max")
    else:
        p50, p95 = (percentile(lat, 50), paper_p95(lat)) if lat else (None, None)
        chunk_max = max(lat) if lat else None
    decided = [a.get("action") for a in result.policy_actions]
    return {
        "failed": bool(result.errors), "errors": result.errors,
        "survived": [a.name for a in result.agents if a.survived],
        "killed": [a.name for a in result.agents if a.oom_kills],
        "hp_completion_s": high.completion_s, "hp_alone_s": alone_s,
        "hp_completion_vs_alone": round(high.completion_s / alone_s, 4) if high.completion_s and alone_s else None,
        "hp_alloc_p50_ms": p50, "hp_alloc_p95_ms": p95, "hp_growths": len(lat), "hp_alloc_max_ms": chunk_max,
        "hp_growth_latencies_ms": list(high.growth_latencies_ms or []),
        "total_completion_s": max(done) if all(d is not None for d in done) else None,
        "throttle_events": sum(throttled) if throttled else None,
        "work_lost_s": result.work_lost_s,
        "agents_killed": sum(not a.survived for a in result.agents),
        "calls_killed": getattr(result, "tool_calls_killed", 0),
        "decisions": {k: decided.count(k) for k in ("throttle", "freeze", "reclaim", "thaw", "kill") if k in decided},
        # what stopped or ended a call, in order: why a run lost what it lost
        "stops": [{k: a.get(k) for k in ("agent", "call", "action", "reason", "headroom")}
                  for a in result.policy_actions if a.get("action") in STOPS],
        "controller_cpu_s": next((a.get("seconds") for a in result.policy_actions
                                  if a.get("action") == "controller-cpu"), None),
        "swap": getattr(result, "swap", "none"), "swap_stats": getattr(result, "swap_stats", {}),
        "wall_s": result.wall_s,
    }


def _spread(values: list[float]) -> dict:
    import statistics
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)} \
        if values else {"median": None, "min": None, "max": None, "n": 0}


def summarize(runs: list[dict], processes: int) -> dict:
    """Survival over every run (a process that did not finish did not survive, whatever stopped it); times and
    latencies over the runs that did not fail and in which HIGH finished, as median with min and max."""
    ok = [r for r in runs if not r["failed"] and r["hp_completion_s"] is not None]

    def over(key):
        return _spread([r[key] for r in ok if r[key] is not None])

    def every(key):  # over every run, failed ones included
        return _spread([r[key] for r in runs if r.get(key) is not None])
    return {
        "processes": processes, "runs": len(runs), "failed_runs": sum(r["failed"] for r in runs),
        "survival_rate": round(sum(len(r["survived"]) for r in runs) / (processes * len(runs)), 4) if runs else None,
        "all_survived_runs": sum(len(r["survived"]) == processes for r in runs),
        "hp_completion_vs_alone": over("hp_completion_vs_alone"), "hp_alloc_p50_ms": over("hp_alloc_p50_ms"),
        "hp_alloc_p95_ms": over("hp_alloc_p95_ms"), "total_completion_s": over("total_completion_s"),
        "throttle_events": over("throttle_events"), "hp_alloc_max_ms": over("hp_alloc_max_ms"),
        "hp_growth_median_ms": per_growth(ok),
        # what was lost, over every run (a failed run's losses are real losses too)
        "agents_killed_median": every("agents_killed")["median"],
        "calls_killed_median": every("calls_killed")["median"],
        "work_lost_s_median": every("work_lost_s")["median"],
        "work_lost_s": every("work_lost_s"),
        "runs_without_loss": sum(r.get("work_lost_s") == 0 and not r.get("agents_killed") and not r["failed"]
                                 for r in runs),
        "hp_completion_vs_alone_median": over("hp_completion_vs_alone")["median"],
        "hp_alloc_p95_ms_median": over("hp_alloc_p95_ms")["median"],
    }


def per_growth(runs: list[dict]) -> list[float] | None:
    """HIGH's latency of each growth step (in trace order), the median over runs: the paper's P95 over ~60
    growths is one element (the 4th largest), so which growths a policy speeds up or slows down shows here.
    None unless every run made the same growths."""
    import statistics
    lists = [r.get("hp_growth_latencies_ms") for r in runs]
    if not lists or any(not x or len(x) != len(lists[0]) for x in lists):
        return None
    return [round(statistics.median(col), 3) for col in zip(*lists)]


def run_paper(repeats: int, scenarios=PAPER_SCENARIOS, policies=PAPER_POLICIES, progress=None,
              swaps: tuple[str, ...] | None = None) -> dict:
    """In a guest (root, cgroup v2): every scenario (x swap, default the scenario's own) x policy, `repeats`
    times, policies interleaved within a repeat so drift hits them alike; HIGH alone once per repeat (its
    completion without the others). Repeat i loads the scenario with seed i (its start offsets, when it has
    jitter_s); a cell is keyed by the scenario's name, `+zram` appended when its swap is not the scenario's."""
    import uuid

    from agentcg.cgroup import ROOT, Cgroup
    from agentcg.eval.registry import make_policy
    from agentcg.workloads.engine import check_environment, run, run_scenario
    from agentcg.workloads.scenario import SCENARIO_DIR, load_scenario
    parent_path = ROOT / f"agentcg-paper-{uuid.uuid4().hex[:8]}"
    check_environment(parent_path)
    Cgroup(ROOT).enable("memory")
    parent = Cgroup(ROOT).child(parent_path.name)
    out = {"repeats": repeats, "scenarios": {}}
    try:
        for name in scenarios:
            default = load_scenario(SCENARIO_DIR / f"{name}.yaml")
            for swap in swaps or (default.swap,):
                key = name if swap == default.swap else f"{name}+{swap}"
                per = {p: [] for p in policies}
                for i in range(repeats):
                    scenario = replace(load_scenario(SCENARIO_DIR / f"{name}.yaml", seed=i + 1), swap=swap)
                    alone = run([scenario.agents[0]], parent, make_policy("none"), speed=scenario.speed,
                                mem_scale=scenario.mem_scale, model=scenario.model, scenario=f"{name}-alone",
                                swap=swap)
                    alone_s = alone.agents[0].completion_s if not alone.errors else None
                    for policy in policies:
                        try:
                            result = run_scenario(scenario, parent, make_policy(policy))
                            record = run_record(result, alone_s)
                        except ReplayError as e:
                            record = {"failed": True, "errors": [str(e)], "survived": [], "killed": [],
                                      "hp_completion_s": None}
                        record["seed"] = scenario.seed
                        per[policy].append(record)
                        if progress:
                            progress(f"{key} {policy} run {i + 1}/{repeats}: survived {record['survived']}, "
                                     f"work lost {record.get('work_lost_s')} s"
                                     f"{' FAILED: ' + '; '.join(record['errors']) if record['failed'] else ''}")
                out["scenarios"][key] = {p: {"runs": rs, "summary": summarize(rs, len(default.agents))}
                                         for p, rs in per.items()}
    finally:
        parent.destroy()
    return out
