"""The evaluation: the same workloads under each policy in one run, user-space agentcg against in-kernel agentcg.

Policies compared: no control, static per-agent limits (the container-style split), user-space agentcg
(agentcg.controller alone) and in-kernel agentcg (the controller with bpf/memcg_policy.bpf.c attached). Results
are ratios between policies of the same run (TCG guests make absolute times meaningless) and are kept with
record_measurement; `agentcg bench` prints them as a table. In-kernel cases need memcg_bpf_ops (agentcg-6.12) and
skip elsewhere with that reason; the scenarios need the recorded traces (../shared/traces).
"""
import json
import statistics
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from agentcg import ladder
from agentcg.budgets import Budgets, load_config
from agentcg.controller import Controller, EventLog
from agentcg.eval.registry import make_policy
from agentcg.layout import Layout
from agentcg.workloads.engine import run, run_scenario
from agentcg.workloads.policy import NoPolicy
from agentcg.workloads.results import ReplayResult
from agentcg.workloads.testkit import keep_replay, scenario_or_skip

MIB = 1 << 20
pytestmark = pytest.mark.requires("memcg", "cgroup_freeze", "cgroup_kill", "psi")


class ControllerRun:
    """agentcg's tree under a test cgroup and a controller thread, user space only or with the in-kernel policy."""

    def __init__(self, parent, tmp: Path, inkernel: bool, reserve: int = 32 * MIB):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.budgets = tmp / "budgets.yaml"
        self.budgets.write_text("default_mib: 32\nclasses: {test: 32, explore: 16}\n")
        self.layout = Layout(parent.path / "agentcg", tmp / "state")
        self.layout.ensure_root()
        self.events = tmp / "events.jsonl"
        self.policy = None
        if inkernel:
            from agentcg.enforce.inkernel import InKernelPolicy
            self.policy = InKernelPolicy(self.layout.root, reserve).open()
        cfg = ladder.LadderConfig(reserve_bytes=reserve, runaway_factor=4, stall_frac=0.3, freeze_after_s=0.5,
                                  kill_after_s=1.5)
        self.ctl = Controller(self.layout, Budgets(load_config(self.budgets)), cfg, EventLog(self.events),
                              interval=0.05, inkernel=self.policy)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.ctl.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def exec_burst(self, workload: str, mib: int, mark_mib: int) -> float:
        """Run a tool call through `agentcg exec` that allocates `mib`; the moment it passed mark_mib."""
        proc = subprocess.run([sys.executable, "-m", "agentcg", "exec", "--workload", workload, "--class", "test",
                               "--budgets", str(self.budgets), "--root", str(self.layout.root), "--state",
                               str(self.layout.state), "--", sys.executable, "-m", "agentcg.harness.memhog", str(mib),
                               "--mark-usage-mib", str(mark_mib)], capture_output=True, text=True, timeout=240)
        marks = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("mark ")]
        assert marks, (proc.stdout, proc.stderr)
        return marks[0]

    def logged(self, event: str) -> list[dict]:
        lines = self.events.read_text().splitlines() if self.events.exists() else []
        return [e for e in map(json.loads, lines) if e.get("event") == event]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        if self.policy:
            self.policy.close()
        for name in self.layout.workloads():
            self.layout.remove_workload(name)


def first_enforcement(run: ControllerRun, mark: float) -> float:
    """Seconds from the burst passing its mark to the first enforcement on it: the kernel's first delay (its
    ktime, CLOCK_MONOTONIC like the mark) when the policy is in the kernel, else the ladder's first throttle."""
    kernel = [e["kernel_mono"] for e in run.logged("kernel_throttle") if e["kernel_mono"] >= mark - 1.0]
    user = [e["mono"] for e in run.logged("decision") if e["action"] == "throttle" and e["mono"] >= mark - 1.0]
    first = min(kernel + user)
    return max(0.0, first - mark)


def reaction_times(cg, tmp: Path, inkernel: bool, repeats: int = 8) -> list[float]:
    run = ControllerRun(cg, tmp, inkernel)
    try:
        run.layout.create_workload("w1")
        # at the runaway line (128 MiB) less than twice the 32 MiB reserve is left: runaways are throttled there
        run.layout.workload("w1").write("memory.max", 184 * MIB)
        out = []
        for _ in range(repeats):
            # past 4x its 32 MiB budget: a runaway. The mark is 2 MiB short of that line: the in-kernel policy
            # stops the call on the crossing charge itself, so a mark on the line would never be printed.
            mark = run.exec_burst("w1", 4 * 32 + 64, 4 * 32 - 2)
            assert run.logged("kernel_throttle") or run.logged("decision"), "the burst was enforced on"
            out.append(first_enforcement(run, mark))
            run.events.write_text("")
        return sorted(out)
    finally:
        run.close()


# Burst start -> first enforcement: the in-kernel policy acts on the charge that crosses the line, the user-space
# controller at its next 50 ms tick. Both measured in the same run, median and maximum over repeats.
@pytest.mark.evaluation
@pytest.mark.requires("memcg_bpf_ops")
def test_reaction_time_in_kernel_vs_user_space(cg, tmp_path, record_measurement):
    user = reaction_times(cg, tmp_path / "user", inkernel=False)
    kernel = reaction_times(cg, tmp_path / "kernel", inkernel=True)
    result = {"user_p50_s": statistics.median(user), "user_max_s": user[-1],
              "kernel_p50_s": statistics.median(kernel), "kernel_max_s": kernel[-1],
              "user_s": user, "kernel_s": kernel}
    record_measurement("reaction_kernel_vs_user", result)
    # measured: in-kernel P50 0.16-0.21 of user space (what is left is allocating the last 2 MiB before the mark)
    assert result["kernel_p50_s"] < 0.5 * result["user_p50_s"], result


# The in-kernel policy mirrors the ladder: a call over its budget is left alone while its workload has headroom
# above the reserve, and delayed (and reported through the session's event stream) once headroom runs short.
@pytest.mark.requires("memcg_bpf_ops")
def test_in_kernel_delay_only_when_headroom_runs_short(cg, tmp_path):
    run = ControllerRun(cg, tmp_path, inkernel=True, reserve=24 * MIB)
    try:
        run.layout.create_workload("w1")
        run.layout.workload("w1").write("memory.max", 96 * MIB)
        run.exec_burst("w1", 48, 40)  # 48 MiB: over the 32 MiB budget, 48 MiB of headroom left
        assert run.logged("kernel_throttle") == [], "no delay while there is room"
        run.exec_burst("w1", 80, 60)  # 80 MiB: 16 MiB left, under the 24 MiB reserve
        throttles = run.logged("kernel_throttle")
        assert throttles, "delayed once headroom fell below the reserve"
        assert all(e["workload"] == "w1" and e["call"] and e["usage"] > e["budget"] for e in throttles), throttles
        assert all(e["headroom"] < 24 * MIB for e in throttles), throttles
    finally:
        run.close()


def summarize(result: ReplayResult, high: str, alone_s: float | None) -> dict:
    acts = [a["action"] for a in result.policy_actions]
    hi = next(a for a in result.agents if a.name == high)
    return {"survived": sum(a.survived for a in result.agents), "agents": len(result.agents),
            "agent_kills": sum(1 for a in result.agents for k in a.oom_kills if k["process"] == "agent"),
            "tool_calls_killed": result.tool_calls_killed, "work_lost_s": result.work_lost_s,
            "agentcg_kills": acts.count("kill"),
            "peer_kills": acts.count("peer-kill"), "throttles": acts.count("throttle"),
            "kernel_delays": acts.count("kernel-delay"), "freezes": acts.count("freeze"),
            "high_completion_s": hi.completion_s,
            "high_overhead": round(hi.completion_s / alone_s, 3) if hi.completion_s and alone_s else None,
            "high_p50_ms": hi.alloc_latency_ms.get("p50"), "high_p95_ms": hi.alloc_latency_ms.get("p95")}


# The paper's tight run (process model, 1:1 memory; tests/test_scenarios.py: its summed demand goes over its
# 1100 MiB budget), once per policy: without control the OOM killer takes a process (one agent's whole process:
# the paper's No Isolation keeps 2 of 3); with agentcg the agents take turns (the LOW that finds the headroom short
# waits while the other finishes its burst) and all three complete. The in-kernel turn kept all three in 9 of 10
# runs of `agentcg bench paper` (README): here it must lose no more than no control and have made a LOW wait.
@pytest.mark.requires("memcg_bpf_ops")
def test_paper_tight_loses_a_process_without_control_and_none_with_agentcg(cg):
    scenario = scenario_or_skip("paper-tight")
    results = {}
    for policy in ("none", "agentcg", "agentcg-kernel"):
        results[policy] = result = run_scenario(scenario, cg, make_policy(policy))
        keep_replay(f"paper_tight_{policy.replace('-', '_')}", result)
        assert result.errors == [] and all(a.calls == [] for a in result.agents), _agents(result)
    none, user, kernel = results["none"], results["agentcg"], results["agentcg-kernel"]
    assert none.oom_kill_count >= 1 and 1 <= sum(a.survived for a in none.agents) <= 2, _agents(none)
    assert user.all_survived and user.oom_kill_count == 0, _agents(user)
    assert kernel.oom_kill_count <= none.oom_kill_count, _agents(kernel)
    for result in (user, kernel):
        waited = [a for a in result.policy_actions if a["action"] == "throttled"]
        assert waited and {a["agent"] for a in waited} <= {"low1", "low2"}, result.policy_actions


# `contention` (tests/test_scenarios.py: for every seed its agents' concurrent demand is 111 % of the budget), one
# seed: the bursts do not fit together, so without swap work is lost under the deployed baselines (the container's
# even split kills a burst or an agent, the pod's memory.oom.group kills the whole agent), and agentcg-kernel keeps
# every agent (a tool call may still die: without swap nothing can make room). With zram agentcg-kernel delays or
# freezes what must wait (and pushes a frozen call's memory out), and nothing is lost.
@pytest.mark.requires("memcg_bpf_ops", "zram")
def test_contention_costs_the_baselines_work_and_agentcg_kernel_with_zram_nothing(cg):
    scenario = scenario_or_skip("contention", seed=1)
    results = {}
    for policy in ("none", "container", "k8s", "agentcg-kernel"):
        results[policy] = result = run_scenario(scenario, cg, make_policy(policy))
        keep_replay(f"contention_{policy.replace('-', '_')}", result)
        assert result.errors == [], _agents(result)
    for policy in ("none", "container", "k8s"):
        assert results[policy].work_lost_s > 0, f"{policy}: {_agents(results[policy])}"
    assert not results["k8s"].all_survived, "memory.oom.group 1: an OOM takes the whole agent"
    assert results["agentcg-kernel"].all_survived, _agents(results["agentcg-kernel"])
    swapped = run_scenario(replace(scenario, swap="zram"), cg, make_policy("agentcg-kernel"))
    keep_replay("contention_zram_agentcg_kernel", swapped)
    assert swapped.errors == [] and swapped.all_survived and swapped.work_lost_s == 0, _agents(swapped)
    # how it made room varies with the seed's timing (kernel delays alone, or a call frozen and pushed to swap)
    assert {a["action"] for a in swapped.policy_actions} & {"throttle", "kernel-delay", "throttled", "reclaim"}, \
        swapped.policy_actions


def _agents(result: ReplayResult) -> str:
    return "; ".join(f"{a.name}: survived={a.survived} kills={a.oom_kills} lost={a.work_lost_s} error={a.error}"
                     for a in result.agents) + f"; errors={result.errors}"


# `tight` (parent budget 89% of the summed peaks) under every policy in one run (the real peers oomd and earlyoom
# included; where they stop keeping agents alive is the budget sweep's question): the static split OOM-kills
# agents; in-kernel agentcg keeps every agent alive (tool calls are delayed, frozen or killed instead, by agentcg
# or, with the agents protected, by the OOM killer), and the high-priority agent's completion is compared with
# running alone.
@pytest.mark.evaluation
@pytest.mark.requires("memcg_bpf_ops")
def test_tight_every_policy_in_one_run(cg, record_measurement):
    tight = scenario_or_skip("tight")
    high = next(a for a in tight.agents if a.priority == "high")
    alone = run([high], cg, NoPolicy(), speed=50, mem_scale=0.05, scenario="alone").agents[0]
    table = {}
    for policy in ("static-avg", "container", "k8s", "oomd", "earlyoom", "protect-only", "agentcg", "agentcg-kernel"):
        result = run_scenario(tight, cg, make_policy(policy), speed=50, mem_scale=0.05)
        keep_replay(f"tight_{policy}", result)
        table[policy] = summarize(result, high.name, alone.completion_s)
    record_measurement("tight_policies", {"alone_s": alone.completion_s, **table})
    # every agent survives in-kernel agentcg (the kernel's delays engage only when headroom runs under the
    # reserve, which this run may or may not reach: they are counted, the mechanism has its own tests above)
    kernel = table["agentcg-kernel"]
    assert kernel["survived"] == kernel["agents"] and kernel["agent_kills"] == 0, table
    assert table["static-avg"]["survived"] < table["static-avg"]["agents"], table


# `moderate` (the bursts together, their concurrent peak 95% of the budget): nothing has to die, and no policy may
# kill anything; the price is the high-priority agent's allocation latency, recorded (P50/P95) against no control
# in the same run (one seed here; `agentcg bench contention --scenario moderate` has the medians over seeds).
@pytest.mark.evaluation
@pytest.mark.requires("memcg_bpf_ops")
def test_moderate_loses_nothing_under_any_policy(cg, record_measurement):
    moderate = scenario_or_skip("moderate")
    high = next(a for a in moderate.agents if a.priority == "high")
    table = {}
    for policy in ("none", "agentcg", "agentcg-kernel"):
        result = run_scenario(moderate, cg, make_policy(policy))
        keep_replay(f"moderate_{policy}", result)
        table[policy] = summarize(result, high.name, None)
    base = table["none"]
    for policy in ("agentcg", "agentcg-kernel"):
        row = table[policy]
        row["p50_vs_none"] = round(row["high_p50_ms"] / base["high_p50_ms"], 3) if base["high_p50_ms"] else None
        row["p95_vs_none"] = round(row["high_p95_ms"] / base["high_p95_ms"], 3) if base["high_p95_ms"] else None
    record_measurement("moderate_policies", table)
    for policy, row in table.items():
        assert row["survived"] == row["agents"] and row["work_lost_s"] == 0, table

