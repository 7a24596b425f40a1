"""The evaluation's commands: replay (a scenario or trace in cgroups under a named policy, or the replayer's
own fidelity), bench (every policy on the same workloads, one report) and demo."""
from __future__ import annotations

import json
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import click

from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.cgroup import Cgroup
from agentcg.cli.errors import fail
from agentcg.eval.bench import DENSITY_MEMORY_GIB, DENSITY_POLICIES, SWEEP_POLICIES, SWEEP_SHARES, density, sweep
from agentcg.eval.registry import POLICIES, make_policy
from agentcg.eval.reproduce import (CONTENTION_POLICIES, CONTENTION_SCENARIOS, PAPER_POLICIES, PAPER_SCENARIOS,
                                    REFERENCE_SCENARIOS, SWAP_DIMENSION)
from agentcg.harness import kernels
from agentcg.workloads import engine
from agentcg.workloads.engine import check_environment, run_scenario
from agentcg.workloads.plan import DEFAULT_CHUNK, ReplayError
from agentcg.workloads.results import render, render_bench
from agentcg.workloads.scenario import DEFAULT_MEM_SCALE, DEFAULT_SPEED, ScenarioError, load_target
from agentcg.workloads.swap import SWAPS


@click.command()
@click.argument("target")
@click.option("--speed", type=float, default=None, help=f"time acceleration (default: the scenario's, else "
                                                         f"{DEFAULT_SPEED:g})")
@click.option("--mem-scale", type=float, default=None, help=f"memory scale (default: the scenario's, else "
                                                             f"{DEFAULT_MEM_SCALE:g})")
@click.option("--policy", type=click.Choice(list(POLICIES)), default="none", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.option("--parent", type=click.Path(), default=None,
              help="cgroup to build the agents under (default: a new one below /sys/fs/cgroup, removed after)")
@click.option("--chunk-kib", type=int, default=DEFAULT_CHUNK // 1024, show_default=True,
              help="allocation chunk (each chunk's allocate+touch time is one latency sample)")
@click.option("--bench", "bench_mode", is_flag=True,
              help="replay each trace of TARGET alone and print fidelity and achieved speed per trace")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="draw the scenario's start offsets (its jitter_s) from this seed")
@click.option("--swap", type=click.Choice(SWAPS), default=None, help="swap for every agent (default: the scenario's)")
def replay(target, speed, mem_scale, policy, as_json, parent, chunk_kib, bench_mode, seed, swap):
    """Replay SCENARIO (YAML, or a name in fixtures/scenarios) or TRACE (an agentcg-trace file, a run directory,
    recorded:<folder>/<task>) as processes in cgroups. Root and cgroup v2 with the memory controller only (a VM)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    try:
        scenario = load_target(target, bench_mode, seed)
    except ScenarioError as e:
        fail(str(e))
    if swap is not None:
        scenario = replace(scenario, swap=swap)
    speed = speed if speed is not None else scenario.speed
    mem_scale = mem_scale if mem_scale is not None else scenario.mem_scale
    if speed <= 0 or mem_scale <= 0 or chunk_kib <= 0:
        fail("--speed, --mem-scale and --chunk-kib must be positive")
    parent_path = Path(parent) if parent else CGROUP_ROOT / f"agentcg-replay-{uuid.uuid4().hex[:8]}"
    try:
        check_environment(parent_path)
    except ReplayError as e:
        fail(str(e))
    created = not parent_path.exists()
    if created:
        Cgroup(parent_path.parent).enable("memory")
        parent_cg = Cgroup(parent_path.parent).child(parent_path.name)
    else:
        parent_cg = Cgroup(parent_path)
    err = Console(stderr=True)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=err, transient=as_json) as bar:
            tasks: dict[str, int] = {}

            def progress(name: str, fraction: float) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=1.0)
                bar.update(tasks[name], completed=fraction)
            if bench_mode:
                rows = engine.bench(scenario.agents, parent_cg, speed=speed, mem_scale=mem_scale,
                             chunk_bytes=chunk_kib * 1024, on_progress=progress)
            else:
                result = run_scenario(scenario, parent_cg, make_policy(policy), speed=speed, mem_scale=mem_scale,
                                      chunk_bytes=chunk_kib * 1024, on_progress=progress)
    except ReplayError as e:
        fail(str(e))
    finally:
        if created:
            parent_cg.destroy()
    if bench_mode:
        if as_json:
            click.echo(json.dumps([asdict(r) for r in rows], indent=1))
        else:
            render_bench(rows)
    elif as_json:
        click.echo(result.to_json())
    else:
        render(result)


@click.command()
@click.option("--kernel", default="debian-6.12", show_default=True)
def demo(kernel: str):
    """Boot KERNEL and show what a static limit does to an agent's tool burst, and what a graduated answer does."""
    from agentcg.eval import demo as demo_mod
    try:
        demo_mod.run(kernel)
    except (kernels.KernelError, demo_mod.DemoError) as e:
        fail(str(e))


@click.group(invoke_without_command=True)
@click.option("--kernel", default="agentcg-6.12", show_default=True)
@click.option("--run/--no-run", default=True, help="run the evaluation first (else report the last run)")
@click.option("--sweep/--no-sweep", "do_sweep", default=True, help="include the budget sweep (~20 min under TCG)")
@click.option("--density/--no-density", "do_density", default=True,
              help="include the density benchmark (~15 min under TCG)")
@click.pass_context
def bench(ctx, kernel: str, run: bool, do_sweep: bool, do_density: bool):
    """The evaluation: every policy on the same workloads, one table (agentcg.eval.bench)."""
    if ctx.invoked_subcommand:
        return
    from agentcg.eval import bench as bench_mod
    try:
        bench_mod.evaluate(kernel, run, do_sweep, do_density)
    except (kernels.KernelError, bench_mod.BenchError) as e:
        fail(str(e))


@bench.command("density")
@click.option("--pool", default="density", show_default=True, help="scenario whose agents form the pool")
@click.option("--policy", "policies", multiple=True, default=DENSITY_POLICIES, show_default=True)
@click.option("--memory-gib", type=float, default=DENSITY_MEMORY_GIB, show_default=True,
              help="the fixed memory size, in trace GiB (scaled by --mem-scale)")
@click.option("--speed", type=float, default=50.0, show_default=True)
@click.option("--mem-scale", type=float, default=0.05, show_default=True)
@click.option("--swap", "swaps", multiple=True, type=click.Choice(SWAPS), default=("none",), show_default=True,
              help="with zram, a quarter of the memory is zram's RAM")
def density_cmd(pool, policies, memory_gib, speed, mem_scale, swaps):
    """(In a guest: needs root and cgroup v2.) Agents per fixed memory size, per policy; JSON on stdout."""
    try:
        click.echo(json.dumps(density(pool, tuple(policies), int(memory_gib * 2**30), speed, mem_scale,
                                      tuple(swaps)), indent=1))
    except (ReplayError, ScenarioError) as e:
        fail(str(e))


@bench.command("sweep")
@click.argument("scenario", default="contention")
@click.option("--policy", "policies", multiple=True, default=SWEEP_POLICIES, show_default=True)
@click.option("--share", "shares", multiple=True, type=float, default=SWEEP_SHARES, show_default=True,
              help="parent budgets as shares of the agents' concurrent peak")
@click.option("--speed", type=float, default=None, help="default: the scenario's")
@click.option("--mem-scale", type=float, default=None, help="default: the scenario's")
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--swap", "swaps", multiple=True, type=click.Choice(SWAPS), default=("none",), show_default=True)
def sweep_cmd(scenario, policies, shares, speed, mem_scale, seed, swaps):
    """(In a guest: needs root and cgroup v2.) Budget sweep of SCENARIO; JSON on stdout."""
    try:
        click.echo(json.dumps(sweep(scenario, tuple(policies), tuple(shares), speed, mem_scale, seed, tuple(swaps)),
                              indent=1))
    except (ReplayError, ScenarioError) as e:
        fail(str(e))


@bench.command("paper")
@click.option("--kernel", default="agentcg-6.12", show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--policy", "policies", multiple=True, default=PAPER_POLICIES, show_default=True)
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(PAPER_SCENARIOS), default=PAPER_SCENARIOS,
              show_default=True)
def paper_cmd(kernel, repeats, policies, scenarios):
    """The AgentCgroup paper's experiment (paper-tight, paper-moderate), REPEATS times per policy in one guest:
    results/<kernel>/bench/paper.json and paper.png (paper-<scenario>.* when only one scenario is run)."""
    from agentcg.eval import bench as bench_mod
    try:
        click.echo(f"results: {bench_mod.paper(kernel, repeats, tuple(policies), tuple(scenarios))}")
    except (kernels.KernelError, bench_mod.BenchError) as e:
        fail(str(e))


@bench.command("contention")
@click.option("--kernel", default="agentcg-6.12", show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="seeds 1..REPEATS")
@click.option("--policy", "policies", multiple=True, default=CONTENTION_POLICIES, show_default=True)
@click.option("--scenario", "scenarios", multiple=True, type=click.Choice(CONTENTION_SCENARIOS + REFERENCE_SCENARIOS),
              default=CONTENTION_SCENARIOS, show_default=True)
@click.option("--swap", "swaps", multiple=True, type=click.Choice(SWAPS), default=SWAP_DIMENSION, show_default=True)
def contention_cmd(kernel, repeats, policies, scenarios, swaps):
    """Agentcg's own fight (fixtures/scenarios/contention.yaml) under each policy, one seed per repeat, with and
    without swap, in one guest: results/<kernel>/bench/contention.json (what each run lost, medians per cell)."""
    from agentcg.eval import bench as bench_mod
    try:
        click.echo(f"results: {bench_mod.paper(kernel, repeats, tuple(policies), tuple(scenarios), tuple(swaps))}")
    except (kernels.KernelError, bench_mod.BenchError) as e:
        fail(str(e))


@bench.command("paper-run")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--policy", "policies", multiple=True, default=PAPER_POLICIES, show_default=True)
@click.option("--scenario", "scenarios", multiple=True,
              type=click.Choice(PAPER_SCENARIOS + CONTENTION_SCENARIOS + REFERENCE_SCENARIOS),
              default=PAPER_SCENARIOS, show_default=True)
@click.option("--swap", "swaps", multiple=True, type=click.Choice(SWAPS), default=None,
              help="swap settings to run each scenario with (default: the scenario's own)")
def paper_run_cmd(repeats, policies, scenarios, swaps):
    """(In a guest: needs root and cgroup v2.) Scenarios x policies with repeats (`bench paper`, `bench
    contention`); JSON on stdout, progress on stderr."""
    from agentcg.eval.reproduce import run_paper
    try:
        data = run_paper(repeats, scenarios=tuple(scenarios), policies=tuple(policies),
                         progress=lambda line: click.echo(line, err=True), swaps=tuple(swaps) or None)
    except (ReplayError, ScenarioError) as e:
        fail(str(e))
    click.echo(json.dumps(data, indent=1))

