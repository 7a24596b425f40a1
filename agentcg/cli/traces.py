"""CLI commands over agent traces: `agentcg analyze` (characterisation tables and figures),
`agentcg traces summary` (which runs are usable, which are skipped and why) and `agentcg record` (a live run's
cgroup into a run directory that the other two read).

PATHS are recorded-run trees (searched for run directories) or agentcg-trace/1 files; with none, the shared
recorded traces ($AGENTCG_TRACES, else <repo>/../shared/traces) are used.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from agentcg.analysis import analyze as analysis
from agentcg.analysis import paper
from agentcg.cli.errors import fail
from agentcg.workloads import record as recorder
from agentcg.workloads import traces as tracefiles


def _load(paths: tuple[str, ...]):
    """(traces, skipped [(path, reason)]) from PATHS, or from the shared traces when none are given."""
    if not paths:
        root = tracefiles.default_root()
        if not root.is_dir():
            fail(f"no PATHS given and the shared traces directory {root} does not exist "
                  f"(pass PATHS or set {tracefiles.TRACES_ENV})")
        paths = (str(root),)
    loaded, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found, missed = tracefiles.load_all(p)
            loaded += found
            skipped += missed
        elif p.is_file():
            try:
                loaded.append(tracefiles.load(p))
            except tracefiles.TraceError as e:
                skipped.append((p, str(e)))
        else:
            fail(f"{p}: no such file or directory")
    return loaded, skipped


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--by", type=click.Choice(analysis.GROUPINGS), default="model", show_default=True,
              help="group runs by model, task category (e.g. Medical_Bio from Medical_Bio_Hard) or data folder")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON instead of tables")
@click.option("--figures", "figures_dir", type=click.Path(file_okay=False), help="write PNG figures into DIR")
@click.option("--mem-threshold", type=float, default=300.0, show_default=True,
              help="memory burst: MB above the run's early baseline")
@click.option("--definitions", type=click.Choice(("ours", "paper", "both")), default="ours", show_default=True,
              help="agentcg's metric definitions, the AgentCgroup paper's (over a traces root holding its data "
                   "sets), or both side by side")
def analyze(paths, by, as_json, figures_dir, mem_threshold, definitions):
    """Characterise agent runs: latency split, tool-time composition, CPU/memory, bursts, spikes, retry loops."""
    if definitions != "ours":
        return _analyze_paper(paths, definitions, as_json, figures_dir)
    loaded, skipped = _load(paths)
    if not loaded:
        fail(f"no usable runs ({len(skipped)} skipped; see `agentcg traces summary`)")
    rep = analysis.report(loaded, by=by, mem_threshold_mb=mem_threshold)
    rep["skipped"] = len(skipped)
    if as_json:
        click.echo(json.dumps(rep, indent=1))
    else:
        analysis.render(rep)
        click.echo(f"{len(skipped)} run(s) skipped; `agentcg traces summary` lists them with reasons")
    if figures_dir:
        written = analysis.figures(rep, loaded, figures_dir)
        click.echo(f"{len(written)} figures written to {figures_dir}", err=as_json)


def _analyze_paper(paths, definitions, as_json, figures_dir):
    """`analyze --definitions paper|both`: the paper's figures over one traces root (default: the shared traces)."""
    if figures_dir:
        fail(f"--figures goes with --definitions ours, not {definitions}")
    if len(paths) > 1:
        fail(f"--definitions {definitions} reads one traces root holding "
             f"{', '.join(list(paper.DATASETS.values()) + [paper.BATCH])}; {len(paths)} PATHS given")
    root = Path(paths[0]) if paths else tracefiles.default_root()
    if not root.is_dir():
        fail(f"{root}: not a directory" + ("" if paths else f" (pass a traces root or set {tracefiles.TRACES_ENV})"))
    folders = list(paper.DATASETS.values()) + [paper.BATCH]
    if not any((root / f).is_dir() for f in folders):
        fail(f"{root} holds none of the paper's data sets ({', '.join(folders)})")
    rep = paper.report_both(root) if definitions == "both" else paper.report(root)
    if as_json:
        click.echo(json.dumps(rep, indent=1))
    else:
        paper.render(rep)


@click.command()
@click.option("--cgroup", "cgroup_path", metavar="PATH",
              help="the agent's cgroup v2 directory (or its path inside the cgroup2 hierarchy)")
@click.option("--pid", type=int, help="record the cgroup v2 of this process (stops when it exits)")
@click.option("--out", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="run directory to write (must not exist, or be empty; its parent must exist)")
@click.option("--interval", type=float, default=1.0, show_default=True,
              help="seconds between samples; at 1 s tool bursts shorter than a second are missed, use 0.1")
@click.option("--duration", type=float, help="stop after this many seconds (default: Ctrl-C, or the target ends)")
@click.option("--tool-events", metavar="FILE",
              help="JSON-lines tool start/end events written by hooks or `agentcg exec` (see agentcg.workloads.record)")
def record(cgroup_path, pid, out_dir, interval, duration, tool_events):
    """Sample a running agent's cgroup (memory, CPU) and tool calls into DIR, for `agentcg analyze DIR`."""
    try:
        result = recorder.run(out_dir, cgroup=cgroup_path, pid=pid, interval=interval, duration=duration,
                              tool_events=tool_events, log=lambda m: click.echo(m, err=True))
    except recorder.RecordError as e:
        fail(str(e))
    calls = "" if result.calls is None else f", {result.calls} tool call(s)"
    click.echo(f"{result.samples} sample(s) over {result.seconds:.1f} s{calls} written to {result.out} "
               f"(stopped: {result.stop_reason}; memory: {result.memory_source}, CPU: {result.cpu_source})")
    for note in result.notes:
        click.echo(f"  {note}")


@click.group()
def traces():
    """Recorded and synthetic agent traces."""


@traces.command("summary")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def summary(paths, as_json):
    """Usable and skipped runs (with reasons), per folder."""
    loaded, skipped = _load(paths)
    dirs = [Path(p) for p in paths or (tracefiles.default_root(),) if Path(p).is_dir()]
    result = tracefiles.summarize(loaded, skipped, dirs[0] if len(dirs) == 1 else None)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    from rich.table import Table
    console = analysis.make_console()
    table = Table(title=f"{result['usable']} usable runs, {result['skipped']} skipped", title_justify="left")
    for header in ("folder", "usable", "without tool calls", "without transcript", "skipped"):
        table.add_column(header, justify="left" if header == "folder" else "right")
    for folder, row in result["folders"].items():
        table.add_row(folder, str(row["usable"]), str(row["without_calls"]), str(row["without_transcript"]),
                      str(row["skipped"]))
    console.print(table)
    if result["models"]:
        console.print("models: " + ", ".join(f"{m} {n}" for m, n in result["models"].items()))
    for reason, runs in result["skipped_by_reason"].items():
        console.print(f"[bold]skipped ({len(runs)}):[/] {reason}")
        for run in runs:
            console.print(f"  {run}", highlight=False)
