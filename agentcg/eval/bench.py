"""`agentcg bench`: the evaluation on one kernel, as a comparison table, JSON and figures.

    agentcg bench [--kernel agentcg-6.12]      run the evaluation vmtests (vmtests/test_evaluation.py, the sched_ext
                                               ones) and the budget sweep in the guest, then report
    agentcg bench --no-run                     report what results/<kernel>/ holds from the last run
    agentcg bench sweep SCENARIO               (in a guest) the budget sweep alone, JSON on stdout

Every figure comes from one run: the vmtests record their measurements (results/<kernel>/guest/measurements/), the
sweep writes results/<kernel>/bench/sweep.json; the report is results/<kernel>/bench/bench.json plus PNG figures.
Numbers are ratios between policies measured in the same run (guests run under TCG emulation here).
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import click

from agentcg.eval.registry import make_policy
from agentcg.paths import REPO_ROOT
from agentcg.workloads.engine import run_scenario
from agentcg.workloads.plan import ReplayError
from agentcg.workloads.scenario import SCENARIO_DIR, load_scenario

# The evaluation vmtests: the comparisons `make test` leaves out (marker `evaluation`) and the scheduler's
# measurements, which the report reads.
EVALUATION_TESTS = "evaluation or test_sched_ext"
SWEEP_POLICIES = ("none", "static-avg", "static-peak", "container", "k8s", "oomd", "earlyoom", "protect-only",
                  "agentcg", "agentcg-kernel")
SWEEP_SHARES = (0.6, 0.7, 0.8, 0.9, 1.0)  # of the concurrent peak (at 1.0 the replay's own overheads are over)
DENSITY_POLICIES = ("none", "container", "oomd", "agentcg", "agentcg-kernel")
# trace memory (scaled with mem_scale like everything else): peak provisioning admits one agent of the pool (its
# first, ml-easy, peaks at 1.3 GB), so 3x that is within the pool's first six (before bio-hard's 3.9 GB burst)
DENSITY_MEMORY_GIB = 1.5


def results_dir(kernel_slug: str) -> Path:
    return REPO_ROOT / "results" / kernel_slug


# ---- the budget sweep (in a guest) ------------------------------------------------------------------------

def sweep(scenario_name: str, policies: tuple[str, ...], shares: tuple[float, ...], speed: float | None,
          mem_scale: float | None, seed: int = 1, swaps: tuple[str, ...] = ("none",)) -> dict:
    """Replay the scenario (its start offsets from `seed`) under each policy and swap setting at parent budgets of
    `shares` x the peak of the agents' summed demand (their concurrent peak); per policy (`+zram` appended with
    swap) the smallest share at which no work was lost (None: at none)."""
    from agentcg.cgroup import ROOT, Cgroup
    scenario = load_scenario(SCENARIO_DIR / f"{scenario_name}.yaml", seed=seed)
    total_peak = max(b for _, b in scenario.summed_demand(1.0))
    Cgroup(ROOT).enable("memory")
    parent = Cgroup(ROOT).child(f"agentcg-bench-{scenario_name}")
    runs = []
    labels = [p if swap == "none" else f"{p}+{swap}" for swap in swaps for p in policies]
    try:
        for share in shares:
            for swap in swaps:
                at = replace(scenario, budget_fixed_bytes=None, budget_trace_bytes=int(total_peak * share), swap=swap)
                for policy in policies:
                    label = policy if swap == "none" else f"{policy}+{swap}"
                    try:
                        result = run_scenario(at, parent, make_policy(policy), speed=speed, mem_scale=mem_scale)
                    except ReplayError as e:  # e.g. agentcg-kernel on a kernel without memcg_bpf_ops
                        runs.append({"share": share, "policy": label, "error": str(e)})
                        continue
                    runs.append({"share": share, "policy": label, **outcome(result)})
                    print(f"sweep: {label} at {share:.0%}: {runs[-1]['survived']}/{runs[-1]['agents']} survived, "
                          f"{runs[-1]['tool_calls_killed']} tool calls killed, {runs[-1]['work_lost_s']} s lost",
                          file=sys.stderr, flush=True)
    finally:
        parent.destroy()
    return {"scenario": scenario_name, "seed": seed, "shares_of": "concurrent peak", "shares": list(shares),
            "runs": runs,
            "smallest_share_no_loss": {p: smallest_share(runs, p) for p in labels}}


def outcome(result) -> dict:
    """What a run cost: agents alive, tool calls killed on the way (by anyone), work lost (trace seconds)."""
    return {"survived": sum(a.survived for a in result.agents), "agents": len(result.agents),
            "tool_calls_killed": result.tool_calls_killed, "work_lost_s": result.work_lost_s,
            "no_loss": result.all_survived and result.work_lost_s == 0 and not result.errors}


# ---- density (in a guest) ----------------------------------------------------------------------------------

def peak_provisioned(peaks: list[int], memory: int) -> int:
    """How many agents of the pool, in order, peak provisioning admits: while their summed peaks fit."""
    total, n = 0, 0
    for p in peaks:
        if total + p > memory:
            break
        total, n = total + p, n + 1
    return n


def densest(tried: dict[int, bool]) -> int:
    """The largest agent count that held, below the smallest one that did not (counts are tried in any order)."""
    failed = [n for n, ok in tried.items() if not ok]
    limit = min(failed) if failed else float("inf")
    held = [n for n, ok in tried.items() if ok and n < limit]
    return max(held, default=0)


def next_count(tried: dict[int, bool], start: int, pool: int) -> int | None:
    """Galloping search: double from `start` while every count holds, then bisect between the densest count
    that held and the smallest that failed; None when the answer is known."""
    if start not in tried:
        return start
    best = densest(tried)
    failed = [n for n, ok in tried.items() if not ok]
    if not failed:
        nxt = min(pool, max(best * 2, best + 1))
        return None if nxt in tried else nxt
    nxt = (best + min(failed)) // 2
    return None if nxt <= best or nxt in tried else nxt


ZRAM_SHARE = 0.25  # with zram, the share of the fixed memory its compressed pages may take (the rest: memory.max)


def density_split(memory_bytes: int, swap: str) -> tuple[int, int | None]:
    """The fixed memory as (the parent's memory.max, zram's RAM limit or None): zram's compressed pages are RAM
    outside every cgroup, so with zram they come out of the same memory."""
    if swap == "none":
        return memory_bytes, None
    ram = int(memory_bytes * ZRAM_SHARE)
    return memory_bytes - ram, ram


def density(pool_name: str, policies: tuple[str, ...], memory_bytes: int, speed: float,
            mem_scale: float, swaps: tuple[str, ...] = ("none",)) -> dict:
    """How many agents of the pool run at once in memory_bytes (trace bytes) with no work lost, per policy and
    swap setting (`+zram` appended), against what peak provisioning admits. Without swap the parent's memory.max
    is memory_bytes; with zram, whose compressed pages are RAM outside every cgroup, the same memory is split:
    memory.max (1 - ZRAM_SHARE) of it, zram's RAM limit the rest."""
    from agentcg.cgroup import ROOT, Cgroup
    pool = load_scenario(SCENARIO_DIR / f"{pool_name}.yaml")
    n_peak = peak_provisioned(pool.peaks(1.0), memory_bytes)
    Cgroup(ROOT).enable("memory")
    parent = Cgroup(ROOT).child(f"agentcg-bench-{pool_name}")
    runs, densest_n = [], {}
    try:
        for swap in swaps:
            budget, ram = density_split(memory_bytes, swap)
            ram = None if ram is None else int(ram * mem_scale)
            for policy in policies:
                label = policy if swap == "none" else f"{policy}+{swap}"
                tried: dict[int, bool] = {}
                while (n := next_count(tried, max(1, n_peak), len(pool.agents))) is not None:
                    at = replace(pool, agents=pool.agents[:n], budget_fixed_bytes=None,
                                 budget_trace_bytes=budget, swap=swap)
                    try:
                        result = run_scenario(at, parent, make_policy(policy), speed=speed, mem_scale=mem_scale,
                                              swap_ram_bytes=ram)
                    except ReplayError as e:
                        runs.append({"n": n, "policy": label, "error": str(e)})
                        break
                    runs.append({"n": n, "policy": label, **outcome(result)})
                    tried[n] = runs[-1]["no_loss"]  # a killed tool call is lost work: the run did not hold
                    print(f"density: {label} with {n} agents: {runs[-1]['survived']}/{n} survived, "
                          f"{runs[-1]['tool_calls_killed']} tool calls killed", file=sys.stderr, flush=True)
                densest_n[label] = densest(tried) if tried else None
    finally:
        parent.destroy()
    return {"pool": pool_name, "memory_bytes": memory_bytes, "pool_size": len(pool.agents),
            "zram_share": ZRAM_SHARE if set(swaps) - {"none"} else None,
            "peak_provisioning": n_peak, "pool_exhausted": [p for p, n in densest_n.items() if n == len(pool.agents)],
            "runs": runs, "densest_no_loss": densest_n,
            "vs_peak_provisioning": {p: (round(n / n_peak, 2) if n is not None and n_peak else None)
                                     for p, n in densest_n.items()}}


def smallest_share(runs: list[dict], policy: str) -> float | None:
    """The smallest budget share from which no work was lost (every agent survived, no tool call was killed) at
    that share and every larger one (a lucky run below a failing share does not count)."""
    mine = sorted((r["share"], bool(r.get("no_loss")) and "error" not in r)
                  for r in runs if r["policy"] == policy)
    best = None
    for share, ok in reversed(mine):
        if not ok:
            break
        best = share
    return best


# ---- the report ---------------------------------------------------------------------------------------------

def collect(kernel_slug: str) -> dict:
    out = results_dir(kernel_slug)
    found = {}
    for path in sorted((out / "guest" / "measurements").glob("*.json")):
        found[path.stem] = json.loads(path.read_text())
    for name, key in (("sweep.json", "budget_sweep"), ("density.json", "density"), ("contention.json", "contention"),
                      ("moderate.json", "moderate_bench")):
        path = out / "bench" / name
        if path.exists():
            found[key] = json.loads(path.read_text())
    return found


def rows(m: dict) -> list[tuple[str, str, str, str]]:
    """(what, user-space agentcg, in-kernel agentcg / sched_ext, baseline) lines of the comparison table."""
    def f(x, fmt="{:.3g}"):
        return "-" if x is None else fmt.format(x)
    out = []
    tight = m.get("tight_policies")
    if tight:
        u, k = tight.get("agentcg", {}), tight.get("agentcg-kernel", {})
        others = [p for p in ("static-avg", "container", "k8s", "oomd", "earlyoom", "protect-only") if p in tight]
        out.append(("tight: agents surviving", f"{u.get('survived')}/{u.get('agents')}",
                    f"{k.get('survived')}/{k.get('agents')}",
                    ", ".join(f"{p} {tight[p].get('survived')}/{tight[p].get('agents')}" for p in others)))
        out.append(("tight: tool calls killed", f(u.get("tool_calls_killed"), "{}"),
                    f(k.get("tool_calls_killed"), "{}"),
                    ", ".join(f"{p} {f(tight[p].get('tool_calls_killed'), '{}')}" for p in others)))
        out.append(("tight: work lost (trace s)", f(u.get("work_lost_s"), "{:.0f}"), f(k.get("work_lost_s"), "{:.0f}"),
                    ", ".join(f"{p} {f(tight[p].get('work_lost_s'), '{:.0f}')}" for p in others)))
        out.append(("tight: throttles / kernel delays", f"{u.get('throttles')}", f"{k.get('throttles')} / "
                    f"{k.get('kernel_delays')}", "-"))
        out.append(("tight: high-prio completion vs alone", f(u.get("high_overhead"), "{:.2f}x"),
                    f(k.get("high_overhead"), "{:.2f}x"), f"alone {f(tight.get('alone_s'))} s"))
    cells = [c for key in ("contention", "moderate_bench") for c in ((m.get(key) or {}).get("scenarios") or {}).items()]
    for cell, per in cells:
        def lost(p):
            s = (per.get(p) or {}).get("summary")
            if not s:
                return "-"
            return (f"{f(s['work_lost_s_median'], '{:.0f}')} s, {s['runs_without_loss']}/{s['runs']} without loss"
                    + (f", {f(s['agents_killed_median'], '{:g}')} agents killed" if s["agents_killed_median"] else ""))

        def hp(p):
            s = (per.get(p) or {}).get("summary")
            return f(s and s["hp_completion_vs_alone_median"], "{:.2f}x")
        others = [p for p in per if p not in ("agentcg", "agentcg-kernel")]
        out.append((f"{cell}: work lost per run (median)", lost("agentcg"), lost("agentcg-kernel"),
                    "; ".join(f"{p} {lost(p)}" for p in others)))
        out.append((f"{cell}: high-prio completion vs alone", hp("agentcg"), hp("agentcg-kernel"),
                    ", ".join(f"{p} {hp(p)}" for p in others)))

        def p95(p):
            s = (per.get(p) or {}).get("summary")
            return f(s and s["hp_alloc_p95_ms_median"], "{:.1f} ms")
        out.append((f"{cell}: high-prio alloc P95 (median)", p95("agentcg"), p95("agentcg-kernel"),
                    ", ".join(f"{p} {p95(p)}" for p in others)))
    moderate = m.get("moderate_policies")
    if moderate:
        u, k, n = moderate.get("agentcg", {}), moderate.get("agentcg-kernel", {}), moderate.get("none", {})
        out.append(("moderate: high-prio alloc P50 vs none", f(u.get("p50_vs_none"), "{:.2f}x"),
                    f(k.get("p50_vs_none"), "{:.2f}x"), f"none {f(n.get('high_p50_ms'))} ms"))
        out.append(("moderate: high-prio alloc P95 vs none", f(u.get("p95_vs_none"), "{:.2f}x"),
                    f(k.get("p95_vs_none"), "{:.2f}x"), f"none {f(n.get('high_p95_ms'))} ms"))
    reaction = m.get("reaction_kernel_vs_user")
    if reaction:
        def ms(key):  # a key an older run's record may lack
            return f(reaction[key] * 1e3 if reaction.get(key) is not None else None, "{:.1f} ms")
        out.append(("reaction P50 (burst -> enforcement)", ms("user_p50_s"), ms("kernel_p50_s"), "-"))
        out.append(("reaction max", ms("user_max_s"), ms("kernel_max_s"), "-"))
    sweep_m = m.get("budget_sweep")
    if sweep_m:
        sm = sweep_m["smallest_share_no_loss"]
        others = [p for p in sm if p not in ("agentcg", "agentcg-kernel")]
        if "agentcg-kernel+zram" in sm:
            out.append(("sweep with zram: smallest budget, no work lost", f(sm.get("agentcg+zram"), "{:.0%}"),
                        f(sm.get("agentcg-kernel+zram"), "{:.0%}"),
                        ", ".join(f"{p} {f(sm.get(p), '{:.0%}')}" for p in sm
                                  if p.endswith("+zram") and not p.startswith("agentcg"))))
            others = [p for p in others if not p.endswith("+zram")]
        out.append(("sweep: smallest budget (of the concurrent peak), no work lost", f(sm.get("agentcg"), "{:.0%}"),
                    f(sm.get("agentcg-kernel"), "{:.0%}"),
                    ", ".join(f"{p} {f(sm.get(p), '{:.0%}')}" for p in others)))
        low = min(sweep_m["shares"])
        killed = {r["policy"]: r.get("tool_calls_killed") for r in sweep_m["runs"] if r["share"] == low}
        out.append((f"sweep at {low:.0%}: tool calls killed", f(killed.get("agentcg"), "{}"),
                    f(killed.get("agentcg-kernel"), "{}"),
                    ", ".join(f"{p} {f(killed.get(p), '{}')}" for p in others if p in killed)))
    dens = m.get("density")
    if dens:
        dn = dens["densest_no_loss"]
        more = lambda p: "+" if p in dens.get("pool_exhausted", []) else ""  # noqa: E731 - the pool ran out
        out.append((f"density: agents in {dens['memory_bytes'] / 2**30:.0f} GiB, no work lost",
                    f(dn.get("agentcg"), "{}") + more("agentcg"), f(dn.get("agentcg-kernel"), "{}") +
                    more("agentcg-kernel"),
                    f"peak provisioning {dens['peak_provisioning']}, " +
                    ", ".join(f"{p} {f(dn.get(p), '{}')}{more(p)}" for p in dn
                              if p not in ("agentcg", "agentcg-kernel"))))
    cpu = m.get("sched_latency")
    if cpu:
        out.append(("CPU: short call slowdown vs alone", f(cpu.get("weights_slowdown"), "{:.2f}x (cpu.weight)"),
                    f(cpu["agentcg_slowdown"], "{:.2f}x (sched_ext)"),
                    f(cpu["default_slowdown"], "default scheduler, equal weights {:.2f}x")))
        out.append(("CPU: bulk share of the machine", f(cpu.get("weights_bulk_cpu_share"), "{:.2f}"),
                    f(cpu["agentcg_bulk_cpu_share"], "{:.2f}"), f(cpu["default_bulk_cpu_share"], "{:.2f}")))
    return out


def figures(m: dict, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    made = []

    def bar(name, title, labels, values, ylabel):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(labels, [v or 0 for v in values], color="#4a78b5")
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)

    tight = m.get("tight_policies")
    if tight:
        pols = [p for p in ("static-avg", "container", "k8s", "oomd", "earlyoom", "protect-only", "agentcg", "agentcg-kernel") if p in tight]
        bar("tight_survival", "tight: agents surviving", pols, [tight[p]["survived"] for p in pols], "agents")
    reaction = m.get("reaction_kernel_vs_user")
    if reaction:
        bar("reaction", "burst -> first enforcement (P50)", ["user space", "in kernel"],
            [reaction["user_p50_s"] * 1e3, reaction["kernel_p50_s"] * 1e3], "ms")
    cpu = m.get("sched_latency")
    if cpu:
        bar("cpu_short_calls", "short tool call slowdown under bulk load",
            ["default (equal weights)", "agentcg cpu.weight", "agentcg sched_ext"],
            [cpu["default_slowdown"], cpu.get("weights_slowdown") or 0, cpu["agentcg_slowdown"]], "x alone")
    sweep_m = m.get("budget_sweep")
    if sweep_m:
        sm = sweep_m["smallest_share_no_loss"]
        pols = list(sm)
        bar("budget_sweep", "smallest budget where no work is lost", pols,
            [(sm[p] or 0) * 100 for p in pols], "% of the concurrent peak (0: never)")
    dens = m.get("density")
    if dens:
        dn = dens["densest_no_loss"]
        labels = ["peak provisioning"] + list(dn)
        bar("density", f"agents in {dens['memory_bytes'] / 2**30:.0f} GiB with no work lost", labels,
            [dens["peak_provisioning"]] + [dn[p] for p in dn], "agents")
    return made


def report(kernel_slug: str) -> dict:
    from rich.console import Console
    from rich.table import Table
    m = collect(kernel_slug)
    if not m:
        raise BenchError(f"no measurements in {results_dir(kernel_slug)}: run `agentcg bench` first")
    out = results_dir(kernel_slug) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title=f"agentcg evaluation on {kernel_slug} (one run; ratios between policies)")
    for col in ("measure", "user-space agentcg", "in-kernel agentcg", "baseline"):
        table.add_column(col)
    for r in rows(m):
        table.add_row(*r)
    Console(width=150).print(table)
    (out / "bench.json").write_text(json.dumps(m, indent=1))
    for path in figures(m, out):
        click.echo(f"figure: {path}")
    click.echo(f"results: {out / 'bench.json'}")
    return m


class BenchError(Exception):
    pass


def evaluate(kernel: str, run: bool = True, do_sweep: bool = True, do_density: bool = True) -> None:
    """The evaluation on KERNEL (a name of kernel/kernels.yaml or a bzImage path): the evaluation vmtests, the
    sweep and the density benchmark in guests, then the report."""
    from agentcg.harness import kernels
    k = kernels.resolve(kernel)
    if run:
        code = subprocess.call([sys.executable, "-m", "agentcg", "vmtest", "--kernel", kernel, "--", "-k",
                                EVALUATION_TESTS], cwd=REPO_ROOT)
        if code not in (0, 1):
            raise BenchError(f"the evaluation vmtests did not run (exit {code})")
        out = results_dir(k.slug) / "bench"
        out.mkdir(parents=True, exist_ok=True)
        if do_sweep:
            # 10 policies x 5 shares x 2 swap settings, ~30 s a run under TCG
            (out / "sweep.json").write_text(in_guest(k, ["sweep", "contention", "--swap", "none", "--swap", "zram"],
                                                     timeout_s=3 * 3600))
        if do_density:
            (out / "density.json").write_text(in_guest(k, ["density", "--swap", "none", "--swap", "zram"],
                                                       timeout_s=3 * 3600))
    report(k.slug)


def in_guest(k, args: list[str], timeout_s: float = 3600) -> str:
    """Run `agentcg bench ARGS` in a guest of kernel K; its JSON output (its stdout: progress goes to stderr)."""
    from agentcg.harness import kbuild, vm
    rwdir = results_dir(k.slug) / "bench" / "vmrun"
    outcome = vm.run_argv(k.image, ["agentcg", "bench", *args], rwdir, capture=True, announce=True,
                          env=kbuild.bpf_env(k.image),
                          watchdog=vm.Watchdog(boot_timeout=300, stall_timeout=timeout_s,
                                               total_timeout=timeout_s).scaled())
    if not outcome.ok:
        err = (rwdir / "stderr").read_text(errors="replace") if (rwdir / "stderr").exists() else ""
        raise BenchError(f"bench {' '.join(args)} failed ({outcome.killed_reason or f'exit {outcome.guest_exit}'}):"
                                   f" {err.strip()[-2000:] or outcome.console_tail(20)}")
    return (rwdir / "stdout").read_text()


def paper(kernel: str, repeats: int, policies: tuple[str, ...], scenarios: tuple[str, ...] | None = None,
          swaps: tuple[str, ...] | None = None) -> Path:
    """The paper's experiment (agentcg.eval.reproduce) on KERNEL, `repeats` times, in one guest; writes
    results/<kernel>/bench/paper.json and paper.png (paper-<scenario> for one scenario alone, contention.* for
    agentcg's own fight), returns the JSON's path."""
    import json as _json

    from agentcg.eval.reproduce import PAPER_SCENARIOS
    from agentcg.harness import kernels
    scenarios = tuple(scenarios or PAPER_SCENARIOS)
    k = kernels.resolve(kernel)
    runs = repeats * len(scenarios) * (len(policies) + 1)
    text = in_guest(k, ["paper-run", "--repeats", str(repeats), *[a for p in policies for a in ("--policy", p)],
                        *[a for s in scenarios for a in ("--scenario", s)],
                        *[a for s in swaps or () for a in ("--swap", s)]],
                    timeout_s=600 + 180 * runs * len(swaps or (None,)))
    data = _json.loads(text)
    data["kernel"] = k.name
    out = results_dir(k.slug) / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stem = "paper" if set(scenarios) == set(PAPER_SCENARIOS) else "-".join(scenarios)
    data["swaps"] = list(swaps) if swaps else None
    path = out / f"{stem}.json"
    path.write_text(_json.dumps(data, indent=1))
    paper_figure(data, out / f"{stem}.png")
    return path


def paper_figure(data: dict, path: Path) -> None:
    """Survival rate (work lost per run for agentcg's own fight, `swaps` set: median, bars from min to max) and
    HIGH's P95 allocation latency (median, min to max) per policy and scenario."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scenarios = list(data["scenarios"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(scenarios), 1)
    for j, name in enumerate(scenarios):
        per = data["scenarios"][name]
        policies = list(per)
        xs = [i + j * width for i in range(len(policies))]
        if data.get("swaps"):
            lost = [per[p]["summary"]["work_lost_s"] for p in policies]
            med = [s["median"] or 0 for s in lost]
            axes[0].bar(xs, med, width, label=name, yerr=[[m - (s["min"] or m) for m, s in zip(med, lost)],
                                                          [(s["max"] or m) - m for m, s in zip(med, lost)]], capsize=3)
        else:
            axes[0].bar(xs, [per[p]["summary"]["survival_rate"] or 0 for p in policies], width, label=name)
        p95 = [per[p]["summary"]["hp_alloc_p95_ms"] for p in policies]
        med = [s["median"] or 0 for s in p95]
        err = [[m - (s["min"] or m) for m, s in zip(med, p95)], [(s["max"] or m) - m for m, s in zip(med, p95)]]
        axes[1].bar(xs, med, width, yerr=err, capsize=3, label=name)
        for x, s in zip(xs, p95):
            if not s["n"]:  # every run failed or HIGH never finished: no latency to show, say so
                axes[1].text(x, 0, "no run\nfinished", ha="center", va="bottom", fontsize=7, rotation=90)
        for ax in axes:
            ax.set_xticks([i + width * (len(scenarios) - 1) / 2 for i in range(len(policies))], policies)
    axes[0].set_ylabel("work lost per run (trace s)" if data.get("swaps") else "processes completed (share)")
    axes[1].set_ylabel("HIGH allocation P95 (ms)")
    axes[0].set_title(f"work lost, {data['repeats']} seeds: median, min-max" if data.get("swaps")
                      else f"survival over {data['repeats']} runs")
    axes[1].set_title("HIGH P95 per run: median, min-max")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

