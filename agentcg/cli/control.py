"""CLI of the user-space controller: workloads, `exec` (one tool call in its own cgroup), daemon, status."""
from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from pathlib import Path

import click

from agentcg.budgets import DEFAULT_FILE, BudgetError, Budgets
from agentcg.budgets import load_config as load_budgets
from agentcg.cgroup import CgroupError
from agentcg.classify import CATEGORIES
from agentcg.cli.errors import fail
from agentcg.execclient import KILLED_EXIT
from agentcg.layout import DEFAULT_ROOT, DEFAULT_STATE, TOOL_OOM_SCORE_ADJ, Layout, LayoutError, owner_uid
from agentcg.vocab import MIB, PRIORITIES


def _root_only() -> None:
    if os.geteuid() != 0:
        fail("this command manages cgroups and needs root")


root_opt = click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
                        help="agentcg's cgroup subtree")
state_opt = click.option("--state", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True,
                         help="root-only state directory")


@click.group("workload")
def workload():
    """Create, list and remove agent workloads (cgroup nodes with an agent leaf and a tools subtree)."""


@workload.command("create")
@click.argument("name")
@click.option("--priority", type=click.Choice(PRIORITIES), default="normal")
@click.option("--agent-min-mib", type=click.IntRange(min=0), default=0, help="memory.min of the agent leaf")
@click.option("--memory-max-mib", type=click.IntRange(min=1), default=None, help="memory.max of the workload")
@click.option("--agent-pid", type=int, default=None, help="move this process into the agent leaf")
@click.option("--owner", default=None, help="user (name or uid) whose `agentcg exec` may start tool calls here "
                                             "through the daemon (default: root only)")
@root_opt
@state_opt
def workload_create(name, priority, agent_min_mib, memory_max_mib, agent_pid, owner, root, state):
    _root_only()
    layout = Layout(root, state)
    try:
        uid = owner_uid(owner) if owner is not None else None
    except LayoutError as e:
        fail(str(e))
    try:
        layout.create_workload(name, priority, agent_min_mib * MIB, memory_max_mib * MIB if memory_max_mib else None,
                               owner=uid)
        if agent_pid:
            layout.move_agent(name, agent_pid)
    except (LayoutError, CgroupError, OSError) as e:
        if agent_pid and name in layout.workloads():
            layout.remove_workload(name)
        fail(str(e))
    click.echo(str(root / name))


@workload.command("remove")
@click.argument("name")
@root_opt
@state_opt
def workload_remove(name, root, state):
    _root_only()
    try:
        Layout(root, state).remove_workload(name)
    except (LayoutError, CgroupError, OSError) as e:
        fail(str(e))


@workload.command("list")
@root_opt
@state_opt
def workload_list(root, state):
    layout = Layout(root, state)
    for name in layout.workloads():
        click.echo(f"{name}\t{layout.priority(name)}\t{len(layout.calls(name))} tool calls")


@click.command("exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--workload", "wname", required=True, help="the agent workload this tool call belongs to")
@click.option("--class", "cls", default=None, help="command class (default: classified from the command)")
@click.option("--budgets", "budgets_file", type=click.Path(path_type=Path), default=DEFAULT_FILE)
@root_opt
@state_opt
@click.option("--socket", "socket_path", type=click.Path(path_type=Path), default=None,
              help="the daemon's tool-call socket, for callers that are not root [default: $AGENTCG_SOCKET, else "
                   "/run/agentcg.sock]")
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(wname, cls, budgets_file, root, state, socket_path, cmd):
    """Run CMD as one tool call of WORKLOAD, in its own cgroup, under the controller's graduated response.

    As root, agentcg makes the call itself; any other user asks the running daemon (agentcg.execsock) and CMD runs
    as that user. Exits with CMD's status; if agentcg killed the call, prints "killed by agentcg: <reason>" and
    exits 137.
    """
    if os.geteuid() != 0:
        from agentcg import execclient
        if cls is not None and cls not in CATEGORIES:
            fail(f"unknown class {cls!r}: one of {', '.join(CATEGORIES)}")
        path = socket_path or Path(os.environ.get("AGENTCG_SOCKET") or execclient.DEFAULT_SOCKET)
        sys.exit(execclient.run(path, wname, cls, list(cmd)))
    layout = Layout(root, state)
    try:
        budgets = Budgets(load_budgets(budgets_file))
        command = shlex.join(cmd)
        cls = cls or budgets.classify(command)
        cg, meta = layout.start_call(wname, command, cls, budgets.budget_bytes(cls))
    except (BudgetError, LayoutError, OSError) as e:
        fail(str(e))
    try:
        proc = cg.spawn(list(cmd), oom_score_adj=TOOL_OOM_SCORE_ADJ)  # not the agent's (inherited) last-choice score
    except OSError as e:
        layout.finish_call(wname, meta.call)
        fail(f"cannot run {cmd[0]}: {e.strerror}")
    meta.pid = proc.pid
    layout.save_meta(meta)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    rc = proc.wait()
    final = layout.finish_call(wname, meta.call)
    if final and final.killed_reason:
        click.echo(f"agentcg: tool call killed by agentcg: {final.killed_reason}", err=True)
        sys.exit(KILLED_EXIT)
    sys.exit(rc if rc >= 0 else 128 - rc)


@click.command("daemon")
@click.option("--config", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None)
def daemon_cmd(config):
    """Run the user-space controller in the foreground (systemd: ci/agentcg.service, Delegate=yes)."""
    from agentcg import daemon
    _root_only()
    try:
        daemon.run(daemon.load_config(config))
    except daemon.ConfigError as e:
        fail(str(e))


@click.command("status")
@state_opt
@click.option("--json", "as_json", is_flag=True)
def status_cmd(state, as_json):
    """Tree, budgets, pressure and recent decisions, from the running daemon's state file (root only)."""
    path = state / "status.json"
    try:
        data = json.loads(path.read_text())
    except PermissionError:
        fail(f"{path} is readable by root only")
    except (OSError, ValueError):
        fail(f"no daemon state at {path}: is `agentcg daemon` running?")
    if as_json:
        click.echo(json.dumps(data, indent=1))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    def text(value, limit: int = 400) -> str:
        """What the agent's side wrote (commands, names, reasons) is text, never markup; long text is cut here
        (`--json` has all of it)."""
        value = str(value)
        return escape(value if len(value) <= limit else value[:limit] + f"… ({len(value)} characters)")
    try:
        tree = Tree(f"agentcg: {data['ticks']} ticks, {data['decisions']} decisions; budgets (MiB) "
                    + ", ".join(f"{text(k)}={text(v)}" for k, v in data["budgets_mib"].items()))
        for wname, w in data["workloads"].items():
            node = tree.add(f"[bold]{text(wname)}[/] ({text(w['priority'])}): {w['usage'] >> 20} MiB, headroom "
                            f"{w['headroom'] >> 20} MiB, memory PSI some avg10 {w['pressure_some_avg10']}%")
            for call, c in w["calls"].items():
                node.add(f"{text(call)} {text('[' + str(c['stage']) + ']')} {text(c['cls'])}: "
                         f"{c['usage'] >> 20}/{(c['budget'] or 0) >> 20} MiB, PSI {c['pressure_some_avg10']}% — "
                         f"{text(c['command'])}")
        recent = [f"  {text(e['workload'])}/{text(e['call'])}: [bold]{text(e['action'])}[/] — {text(e['reason'])}"
                  for e in data["recent"] if e.get("event") == "decision"]
    except (KeyError, TypeError, AttributeError) as e:
        fail(f"{path} is not a status file of this agentcg version ({type(e).__name__}: {e})")
    console = Console(highlight=False)
    console.print(tree, highlight=False)
    for line in recent:
        console.print(line, highlight=False)


@click.command("hook")
@click.argument("which", type=click.Choice(["pre", "post"]))
def hook_cmd(which):
    """Claude Code PreToolUse/PostToolUse hook (config: ci/claude-code-hooks.json); JSON on stdin."""
    from agentcg import hooks
    sys.exit(hooks.main(which))
