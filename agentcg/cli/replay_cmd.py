"""`agentcg replay`: replay a scenario or a trace in cgroups under a named policy, or measure the replayer."""
from __future__ import annotations

import json
import sys
import uuid
from dataclasses import asdict
from pathlib import Path

import click

from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.cgroup import Cgroup
from agentcg.eval.registry import POLICIES, make_policy
from agentcg.workloads.engine import bench, check_environment, run_scenario
from agentcg.workloads.plan import DEFAULT_CHUNK, ReplayError
from agentcg.workloads.results import render, render_bench
from agentcg.workloads.scenario import DEFAULT_MEM_SCALE, DEFAULT_SPEED, ScenarioError, load_target


def _fail(message: str) -> None:
    click.echo(f"agentcg: error: {message}", err=True)
    sys.exit(2)


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
def replay(target, speed, mem_scale, policy, as_json, parent, chunk_kib, bench_mode):
    """Replay SCENARIO (YAML, or a name in fixtures/scenarios) or TRACE (an agentcg-trace file, a run directory,
    recorded:<folder>/<task>) as processes in cgroups. Root and cgroup v2 with the memory controller only (a VM)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    try:
        scenario = load_target(target, bench_mode)
    except ScenarioError as e:
        _fail(str(e))
    speed = speed if speed is not None else scenario.speed
    mem_scale = mem_scale if mem_scale is not None else scenario.mem_scale
    if speed <= 0 or mem_scale <= 0 or chunk_kib <= 0:
        _fail("--speed, --mem-scale and --chunk-kib must be positive")
    parent_path = Path(parent) if parent else CGROUP_ROOT / f"agentcg-replay-{uuid.uuid4().hex[:8]}"
    try:
        check_environment(parent_path)
    except ReplayError as e:
        _fail(str(e))
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
                rows = bench(scenario.agents, parent_cg, speed=speed, mem_scale=mem_scale,
                             chunk_bytes=chunk_kib * 1024, on_progress=progress)
            else:
                result = run_scenario(scenario, parent_cg, make_policy(policy), speed=speed, mem_scale=mem_scale,
                                      chunk_bytes=chunk_kib * 1024, on_progress=progress)
    except ReplayError as e:
        _fail(str(e))
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
