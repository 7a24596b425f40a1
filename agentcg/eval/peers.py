"""Real user-space peers as replay policies: Meta's oomd and earlyoom, Debian's builds.

They are unpacked from Debian's packages into .venv/peers by ci/setup-host.sh (`make setup`) rather than
installed: installing them would enable a host-wide OOM daemon on the user's machine. The replay guest sees the
checkout, so it runs them from there.

How each is configured follows its own documentation, retargeted at the replay:
- oomd: the ruleset Debian ships (/etc/oomd/oomd.json, "user session protection": memory pressure above 60 for
  30 s while the cgroup is being reclaimed -> kill_by_memory_size_or_growth) watching the agents' parent (the
  budget) instead of user.slice, with `recursive` so it can pick a tool call's leaf rather than a whole agent.
  The replay runs `speed` times faster than the trace, so durations are divided by it; oomd's granularity is
  whole seconds (its event loop too), so they round up to 1 s.
- earlyoom: Debian's defaults (available memory and free swap under 10% of total: SIGTERM, under 5%: SIGKILL).
  It watches the machine's memory (/proc/meminfo), not cgroups: a budget set as a cgroup limit is invisible to it.
  That is what it is; the evaluation reports what it did.
Both report what they killed on their output; the policy logs each kill as an action, and fails setup if the
daemon does not come up.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from agentcg.paths import REPO_ROOT
from agentcg.workloads.plan import ReplayError
from agentcg.workloads.policy import AgentCgroups, Policy

PEERS_DIR = REPO_ROOT / ".venv" / "peers"
START_TIMEOUT_S = 20.0


def root() -> Path:
    return Path(os.environ.get("AGENTCG_PEERS_DIR", PEERS_DIR))


def binary(name: str) -> Path:
    return root() / "usr" / "bin" / name


def _env() -> dict:
    env = dict(os.environ)
    libs = [str(root() / "usr" / "lib" / "x86_64-linux-gnu")]
    env["LD_LIBRARY_PATH"] = ":".join(libs + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    return env


def _need(name: str) -> Path:
    path = binary(name)
    if not path.exists():
        raise ReplayError(f"policy {name}: {path} is missing (`bash ci/setup-host.sh` unpacks it)")
    return path


def oomd_config(parent_rel: str, speed: float) -> dict:
    """Debian's shipped oomd ruleset, retargeted at the agents' parent and scaled to the replay's speed."""
    def seconds(trace_s: float) -> str:
        return str(max(1, math.ceil(trace_s / speed)))
    return {"rulesets": [{
        "name": "agent budget protection",
        "detectors": [["budget memory pressure above 60 for 30s while reclaiming",
                       {"name": "pressure_above",
                        "args": {"cgroup": parent_rel, "resource": "memory", "threshold": "60",
                                 "duration": seconds(30)}},
                       {"name": "memory_reclaim", "args": {"cgroup": parent_rel, "duration": seconds(10)}}]],
        "actions": [{"name": "kill_by_memory_size_or_growth",
                     "args": {"cgroup": f"{parent_rel}/*", "recursive": "true",
                              "post_action_delay": seconds(15)}}],
    }]}


class _Daemon:
    """A peer process whose output lines are collected by a thread; `ready` is set by the first line that
    `is_ready` accepts."""

    def __init__(self, argv: list[str], is_ready):
        self.lines: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=_env())
        self.is_ready = is_ready
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            if self.is_ready(line):
                self.ready.set()

    def wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.ready.is_set():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = "\n".join(l for _, l in self.lines[-10:])
                raise ReplayError(f"policy {name}: the daemon did not come up (exit {self.proc.returncode}):\n{tail}")
            self.ready.wait(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.thread.join(timeout=2)


class _PeerPolicy(Policy):
    """A peer daemon for the duration of the replay; which process of which agent it killed comes from the
    kill lines of its output, matched against the agents' pids at the time."""

    def __init__(self):
        super().__init__()
        self.daemon: _Daemon | None = None
        self.pids: dict[int, tuple[str, str]] = {}  # pid -> (agent, process)
        self.parent: Path | None = None  # the agents' parent cgroup

    def on_tick(self, elapsed: float, agents: list[AgentCgroups]) -> None:
        for a in agents:  # who is who, for attributing the daemon's kills afterwards
            for cg, label in [(a.agent, "agent")] + [(c, c.name) for c in _calls(a)]:
                try:
                    for pid in cg.procs():
                        self.pids.setdefault(pid, (a.name, label))
                except OSError:
                    pass

    def teardown(self) -> None:
        if self.daemon:
            if self.daemon.proc.poll() is not None:  # it must have watched the whole replay
                self.log("*", "peer-exit", f"{self.name} exited during the replay with {self.daemon.proc.returncode}")
            self.daemon.stop()
            for _, line in self.daemon.lines:
                kill = self.parse_kill(line)
                if kill is not None:
                    agent, process = self.pids.get(kill.get("pid", -1)) or self.by_cgroup(kill.get("cgroup"))
                    self.log(agent, "peer-kill", line.strip(), process=process)

    def by_cgroup(self, path: str | None) -> tuple[str, str]:
        """(agent, "agent" | "call-N" | the agent's whole tree "*") of a cgroup path under the replay's parent."""
        if not path or self.parent is None:
            return "?", path or "?"
        parts = Path(path).parts
        mine = self.parent.parts[len(Path("/sys/fs/cgroup").parts):]
        for i in range(len(parts) - len(mine) + 1):  # oomd may print the path relative to the cgroup fs
            if parts[i:i + len(mine)] == mine:
                rest = parts[i + len(mine):]
                if not rest:
                    return "*", "*"
                return rest[0], (rest[-1] if len(rest) > 1 else "*")
        return "?", path

    def parse_kill(self, line: str) -> dict | None:
        raise NotImplementedError


def _calls(a: AgentCgroups):
    try:
        return [type(a.tools)(p) for p in a.tools.path.iterdir() if p.is_dir()]
    except OSError:
        return []


class OomdPolicy(_PeerPolicy):
    name = "oomd"

    def __init__(self, speed: float = 50.0):
        super().__init__()
        self.speed = speed
        self._dir = tempfile.TemporaryDirectory(prefix="agentcg-oomd-")

    def setup(self, agents: list[AgentCgroups]) -> None:
        exe = _need("oomd")
        parent = self.parent = agents[0].top.path.parent
        rel = str(parent.relative_to("/sys/fs/cgroup"))
        config = Path(self._dir.name) / "oomd.json"
        config.write_text(json.dumps(oomd_config(rel, self.speed), indent=1))
        self.kmsg = Path(self._dir.name) / "kills"
        argv = [str(exe), "--config", str(config), "--interval", "1", "--cgroup-fs", "/sys/fs/cgroup",
                "--runtime-dir", str(Path(self._dir.name) / "run"), "--kmsg-override", str(self.kmsg)]
        self.daemon = _Daemon(argv, lambda line: "Running oomd" in line)
        self.daemon.wait_ready("oomd")
        self.log("*", "peer", f"oomd watching {rel} (interval 1 s)", config=json.loads(config.read_text()))

    def teardown(self) -> None:
        super().teardown()
        self._dir.cleanup()

    def parse_kill(self, line: str) -> dict | None:
        # oomd logs "Killed <n> ... <cgroup path>" for each kill (and writes "oomd kill: ..." to --kmsg-override)
        if not line.lstrip().startswith("Killed"):
            return None
        paths = [w.strip(",:") for w in line.split() if "/" in w]
        return {"cgroup": paths[-1]} if paths else {}


class EarlyoomPolicy(_PeerPolicy):
    name = "earlyoom"

    def setup(self, agents: list[AgentCgroups]) -> None:
        exe = _need("earlyoom")
        self.parent = agents[0].top.path.parent
        # Debian's /etc/default/earlyoom (-r 3600); its thresholds are earlyoom's defaults (-m 10 -s 10)
        self.daemon = _Daemon([str(exe), "-r", "3600"], lambda line: line.startswith("mem total"))
        self.daemon.wait_ready("earlyoom")
        self.log("*", "peer", "earlyoom with Debian's defaults: acts under 10% available memory of the machine")

    def parse_kill(self, line: str) -> dict | None:
        # "sending SIGTERM to process 1234 uid 0 "python3": badness 900, VmRSS 12 MiB"
        if not line.startswith("sending SIG") or " to process " not in line:
            return None
        words = line.split()
        try:
            return {"pid": int(words[words.index("process") + 1])}
        except (ValueError, IndexError):
            return {}

