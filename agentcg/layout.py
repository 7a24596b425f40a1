"""The cgroup tree agentcg manages: one node per agent workload, an `agent` leaf, one child per tool call.

    <root>/                      agentcg's subtree (default /sys/fs/cgroup/agentcg), memory+cpu+pids delegated down
      <workload>/                one agent task; optional memory.max; cpu.weight by priority
        agent/                   the agent framework: memory.min/low protection; the OOM killer's last choice
        tools/                   memory+cpu+pids enabled for the calls
          call-<n>/              one tool call: its process tree, memory.oom.group=1, throttled/frozen/killed alone

Metadata a cgroup cannot hold (command, class, budget, a kill reason for the agent) lives in a root-only state
directory (default /run/agentcg/<workload>/<call>.json). Every file here is owned by root: a tool running as the
agent's user can neither move itself out of its cgroup nor change its limits.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from agentcg.cgroup import Cgroup, CgroupError
from agentcg.enforce.sched import CPU_WEIGHT, sched_class
from agentcg.statefile import write_atomic
from agentcg.vocab import DEFAULT_PRIORITY, PRIORITIES, PRIORITY

DEFAULT_ROOT = Path("/sys/fs/cgroup/agentcg")
DEFAULT_STATE = Path("/run/agentcg")
CONTROLLERS = ("memory", "cpu", "pids")
# The agent framework is the OOM killer's last choice, by priority (agentcg.vocab: -998 .. -1000); its tool calls
# must stay killable, or a memcg OOM in a workload whose every process is protected finds no victim and the whole
# workload hangs.
TOOL_OOM_SCORE_ADJ = 0
def agent_oom_score_adj(priority: str) -> int:
    return PRIORITY[priority if priority in PRIORITY else DEFAULT_PRIORITY].agent_oom_score_adj


NAME_RX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the whole name (fullmatch: no trailing newline)


class LayoutError(Exception):
    pass


@dataclass
class ToolCallMeta:
    workload: str
    call: str
    command: str
    cls: str
    budget: int
    started: float
    pid: int | None = None
    killed_reason: str | None = None
    launcher: str = "exec"  # who started it: "exec" (removes its own cgroup) or "tracer" (the controller does)
    waiter: int | None = None  # unprivileged `agentcg exec`: the process that may end the call (agentcg.execsock)


def owner_uid(owner) -> int:
    """A workload owner as a uid: a user name, or a uid (a number or its digits)."""
    import pwd
    if isinstance(owner, int) and not isinstance(owner, bool):
        uid = owner
    elif isinstance(owner, str) and owner.isdigit() and len(owner) < 11:
        uid = int(owner)
    elif isinstance(owner, str) and NAME_RX.fullmatch(owner):
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise LayoutError(f"no user {owner!r}") from None
    else:
        raise LayoutError(f"owner must be a user name or uid, not {owner!r}")
    if not 0 <= uid < 2**32 - 1:
        raise LayoutError(f"owner uid {uid} is out of range")
    return uid


def check_name(name: str, what: str = "workload") -> str:
    if not isinstance(name, str) or not NAME_RX.fullmatch(name):
        raise LayoutError(f"invalid {what} name {name!r}: letters, digits, '_', '.', '-' (max 64)")
    return name


@dataclass
class Layout:
    root: Path = DEFAULT_ROOT
    state: Path = DEFAULT_STATE

    # ---- workloads -------------------------------------------------------------------------------------

    def ensure_root(self) -> Cgroup:
        parent = Cgroup(self.root.parent)
        missing = [c for c in CONTROLLERS if c not in parent.read("cgroup.controllers").split()]
        if missing:
            raise LayoutError(f"{self.root.parent} lacks cgroup v2 controllers {missing}: is this cgroup v2 with "
                              "the memory controller delegated?")
        parent.enable(*CONTROLLERS)
        if not self.root.exists():
            self.root.mkdir()
        root = Cgroup(self.root)
        root.enable(*CONTROLLERS)
        self.state.mkdir(mode=0o700, parents=True, exist_ok=True)
        return root

    def workload(self, name: str) -> Cgroup:
        path = self.root / check_name(name)
        if not path.is_dir():
            raise LayoutError(f"no workload {name!r} under {self.root} (create it first: agentcg workload create)")
        return Cgroup(path)

    def workloads(self) -> list[str]:
        return [name for name in Cgroup(self.root).child_names() if os.path.isdir(self.root / name / "agent")]

    def create_workload(self, name: str, priority: str = "normal", agent_min: int = 0,
                        memory_max: int | None = None, owner: int | None = None) -> Cgroup:
        """Create the workload's nodes; a failure part-way removes what was made."""
        check_name(name)
        if priority not in PRIORITIES:
            raise LayoutError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
        root = self.ensure_root()
        if (self.root / name).exists():
            raise LayoutError(f"workload {name!r} already exists")
        wl = root.child(name)
        try:
            wl.enable(*CONTROLLERS)
            wl.write("cpu.weight", PRIORITY[priority].cpu_weight)
            if memory_max:
                wl.write("memory.max", memory_max)
            agent = wl.child("agent")
            if agent_min:
                agent.write("memory.min", agent_min)
            if priority == "high" and agent_min:
                wl.write("memory.low", agent_min)
            tools = wl.child("tools")
            tools.enable(*CONTROLLERS)
            (self.state / name).mkdir(mode=0o700, exist_ok=True)
            (self.state / name / "workload.json").write_text(json.dumps({"priority": priority,
                                                                         "agent_min": agent_min, "owner": owner}))
        except (OSError, CgroupError) as e:
            wl.destroy()
            raise LayoutError(f"could not create workload {name!r}: {e}")
        return wl

    def owner(self, name: str) -> int | None:
        """The uid whose unprivileged `agentcg exec` may start calls in the workload (None: root only)."""
        try:
            owner = json.loads((self.state / name / "workload.json").read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            return None
        return owner if isinstance(owner, int) and not isinstance(owner, bool) and owner >= 0 else None

    def priority(self, name: str) -> str:
        try:
            return json.loads((self.state / name / "workload.json").read_text())["priority"]
        except (OSError, ValueError, KeyError):
            return "normal"

    def remove_workload(self, name: str) -> None:
        self.workload(name).destroy()
        for f in (self.state / name).glob("*.json") if (self.state / name).is_dir() else []:
            f.unlink(missing_ok=True)  # a finishing call may remove its own at the same time
        if (self.state / name).is_dir():
            (self.state / name).rmdir()

    def move_agent(self, name: str, pid: int) -> None:
        """Put the agent framework process into its leaf and make it the OOM killer's last choice."""
        Cgroup(self.workload(name).path / "agent").write("cgroup.procs", pid)
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(agent_oom_score_adj(self.priority(name))))

    # ---- tool calls ------------------------------------------------------------------------------------

    @staticmethod
    def unprotect_call(pid: int) -> None:
        """Give a tool process back to the OOM killer: forked by the agent, it inherited the agent's last-choice
        score, and the killer must take calls before any agent."""
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(TOOL_OOM_SCORE_ADJ))

    def start_call(self, workload: str, command: str, cls: str, budget: int,
                   launcher: str = "exec") -> tuple[Cgroup, ToolCallMeta]:
        tools = Cgroup(self.workload(workload).path / "tools")
        for _ in range(1000):
            call = f"call-{time.time_ns() % 10**12:012d}"
            try:
                cg = tools.child(call)
                break
            except CgroupError:
                continue
        else:
            raise LayoutError("could not allocate a tool call cgroup")
        try:
            cg.write("memory.oom.group", 1)
            cg.write("cpu.weight", CPU_WEIGHT[sched_class(cls)])  # the CPU policy without sched_ext
            meta = ToolCallMeta(workload, call, command, cls, budget, time.time(), launcher=launcher)
            self.save_meta(meta)
        except OSError as e:
            cg.destroy()
            raise LayoutError(f"could not set up tool call cgroup {cg.path}: {e}")
        return cg, meta

    def locate(self, path: Path) -> tuple[str, str | None] | None:
        """(workload, call or None) of a cgroup path in this tree, None when it is not ours."""
        try:
            parts = Path(path).relative_to(self.root).parts
        except ValueError:
            return None
        if len(parts) >= 3 and parts[1] == "tools":
            return parts[0], parts[2]
        return (parts[0], None) if parts else None

    def calls(self, workload: str) -> list[Cgroup]:
        tools = self.root / workload / "tools"
        return [Cgroup(tools / name) for name in Cgroup(tools).child_names()]

    def meta_path(self, workload: str, call: str) -> Path:
        return self.state / workload / f"{call}.json"

    def save_meta(self, meta: ToolCallMeta) -> None:
        write_atomic(self.meta_path(meta.workload, meta.call), json.dumps(asdict(meta)))

    def load_meta(self, workload: str, call: str) -> ToolCallMeta | None:
        try:
            return ToolCallMeta(**json.loads(self.meta_path(workload, call).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def finish_call(self, workload: str, call: str) -> ToolCallMeta | None:
        """Remove a finished call's cgroup and metadata; returns the metadata (with any kill reason)."""
        meta = self.load_meta(workload, call)
        Cgroup(self.root / workload / "tools" / call).destroy()
        self.meta_path(workload, call).unlink(missing_ok=True)
        return meta
