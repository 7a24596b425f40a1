"""`agentcg demo`: boot a kernel and show, on real cgroups, why an agent needs per-tool-call control.

Two runs of the same workload: an agent process holding its framework baseline starts a tool call that bursts.
- container-style: one static memory.max for the whole workload sized near its average, with memory.oom.group
  (what Kubernetes sets for cgroup v2 containers): the burst takes the agent down with it;
- agentcg layout: the agent in its own protected leaf, the tool call in its own child cgroup with a budget: only
  the tool call dies, and the agent keeps its state.
Sizes are scaled down for TCG VMs.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agentcg.harness import kernels, vm
from agentcg.paths import REPO_ROOT

MIB = 1 << 20
AGENT_MIB, BURST_MIB, LIMIT_MIB = 24, 160, 96


class DemoError(Exception):
    pass


def _hog(cg, mib: int, hold: bool):
    import subprocess
    argv = [sys.executable, "-m", "agentcg.harness.memhog", str(mib)] + (["--hold"] if hold else [])
    return cg.spawn(argv, stdout=subprocess.PIPE)


def _wait_ready(proc, timeout: float = 60) -> None:
    import select
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready or b"ready" not in proc.stdout.readline():
        raise DemoError("agent process did not start")


def run_case(name: str, agentcg_layout: bool) -> dict:
    """In the guest: one agent + one bursting tool call; report who survived."""
    from agentcg.cgroup import ROOT, Cgroup, reap
    root = Cgroup(ROOT)
    root.enable("memory")
    workload = root.child(f"agentcg-demo-{name}")
    try:
        if agentcg_layout:
            workload.enable("memory")
            agent_cg = workload.child("agent")
            agent_cg.write("memory.min", (AGENT_MIB + 8) * MIB)
            tools = workload.child("tools")
            tools.enable("memory")
            tool_cg = tools.child("call-1")
            tool_cg.write("memory.max", (LIMIT_MIB - AGENT_MIB - 8) * MIB)
        else:
            workload.write("memory.max", LIMIT_MIB * MIB)
            workload.write("memory.oom.group", 1)
            agent_cg = tool_cg = workload
        agent = _hog(agent_cg, AGENT_MIB, hold=True)
        _wait_ready(agent)
        start = time.monotonic()
        tool = _hog(tool_cg, BURST_MIB, hold=False)
        tool_rc = reap(tool, timeout=120)
        elapsed = time.monotonic() - start
        agent_alive = agent.poll() is None
        return {"case": name, "agent_survived": agent_alive, "tool_exit": tool_rc,
                "oom_kills": workload.keyed("memory.events").get("oom_kill", 0), "tool_seconds": round(elapsed, 2)}
    finally:
        workload.destroy()


def guest_main(rwdir: str) -> int:
    try:
        out = [run_case("container-static-limit", agentcg_layout=False),
               run_case("agentcg-layout", agentcg_layout=True)]
    except Exception:
        import traceback
        Path(rwdir, "guest-error.txt").write_text(traceback.format_exc())
        raise
    Path(rwdir, "demo.json").write_text(json.dumps(out))
    return 0


def run(kernel_name: str) -> None:
    """On the host: boot, run both cases in the guest, print the comparison."""
    from rich.console import Console
    from rich.table import Table
    kernel = kernels.resolve(kernel_name)
    rwdir = REPO_ROOT / "results" / kernel.slug / "demo"
    console = Console()
    with console.status(f"booting {kernel.name} ({kernel.image.name}) under virtme-ng ..."):
        outcome = vm.run_argv(kernel.image, [sys.executable, "-m", "agentcg.eval.demo", str(rwdir)], rwdir,
                              watchdog=vm.Watchdog(boot_timeout=300, total_timeout=600).scaled())
    if not outcome.ok or not (rwdir / "demo.json").exists():
        error = rwdir / "guest-error.txt"
        detail = error.read_text() if error.exists() else f"console tail:\n{outcome.console_tail(20)}"
        raise DemoError(f"demo VM failed (guest exit {outcome.guest_exit}, "
                        f"{outcome.killed_reason or 'no result'}):\n{detail}")
    table = Table(title=f"An agent ({AGENT_MIB} MiB) runs a tool call bursting to {BURST_MIB} MiB "
                        f"under a {LIMIT_MIB} MiB budget — kernel {kernel.release}")
    for col in ("setup", "agent survived", "tool call", "OOM kills", "tool time (s)"):
        table.add_column(col)
    for r in json.loads((rwdir / "demo.json").read_text()):
        tool = "completed" if r["tool_exit"] == 0 else f"killed (signal {-r['tool_exit']})" \
            if r["tool_exit"] < 0 else f"exit {r['tool_exit']}"
        table.add_row(r["case"], "[green]yes[/]" if r["agent_survived"] else "[red]NO: agent state lost[/]",
                      tool, str(r["oom_kills"]), str(r["tool_seconds"]))
    console.print(table)
    console.print(f"VM wall time {outcome.elapsed:.1f} s; raw results in {rwdir}/demo.json")


if __name__ == "__main__":
    sys.exit(guest_main(sys.argv[1]))
