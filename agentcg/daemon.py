"""`agentcg daemon`: the controller as a service — YAML config, workloads set up at start, a root-only state
file for `agentcg status`, Prometheus metrics on localhost, and the JSON event log.

Config (all keys optional):
    root: /sys/fs/cgroup/agentcg     state: /run/agentcg     interval_ms: 50
    event_log: /run/agentcg/events.jsonl                     metrics_port: 9707 (0: off)
    budgets: fixtures/budgets.yaml
    ladder: {reserve_mib: 64, runaway_factor: 4, stall_frac: 0.5, freeze_after_s: 1, kill_after_s: 3}
    workloads: [{name: agent-1, priority: high|normal|low, agent_min_mib: 256, memory_max_mib: 4096}]
    memory_policy: auto|kernel|user     cpu_scheduler: auto|sched_ext|weights     exec_tracer: off|auto|libbpf|bcc
    bpf_dir: <the BPF objects built for the running kernel> (default: $AGENTCG_BPF_DIR)
Which mechanisms run (in-kernel memory policy, sched_ext, exec tracer) is agentcg.mechanisms' decision; the
daemon logs it with the reasons and shows it in `agentcg status`.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from agentcg import ladder, mechanisms
from agentcg.budgets import DEFAULT_FILE, BudgetError, Budgets
from agentcg.budgets import load_config as load_budgets
from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.controller import Controller, EventLog
from agentcg.layout import DEFAULT_ROOT, DEFAULT_STATE, Layout, LayoutError, check_name
from agentcg.stopping import Stop
from agentcg.vocab import MIB, PRIORITIES

KEYS = {"root", "state", "interval_ms", "event_log", "metrics_port", "budgets", "ladder", "workloads",
        "memory_policy", "cpu_scheduler", "exec_tracer", "bpf_dir"}
CHOICES = {"memory_policy": mechanisms.MEMORY_CHOICES, "cpu_scheduler": mechanisms.CPU_CHOICES,
           "exec_tracer": mechanisms.TRACER_CHOICES}
LADDER_KEYS = {"reserve_mib", "runaway_factor", "stall_frac", "freeze_after_s", "kill_after_s"}
WORKLOAD_KEYS = {"name", "priority", "agent_min_mib", "memory_max_mib"}


class ConfigError(Exception):
    pass


@dataclass
class DaemonConfig:
    root: Path = DEFAULT_ROOT
    state: Path = DEFAULT_STATE
    interval_ms: float = 50
    event_log: Path | None = None
    metrics_port: int = 9707
    budgets: Path = DEFAULT_FILE
    ladder: ladder.LadderConfig = field(default_factory=ladder.LadderConfig)
    workloads: list[dict] = field(default_factory=list)
    memory_policy: str = "auto"
    cpu_scheduler: str = "auto"
    exec_tracer: str = "off"
    bpf_dir: Path | None = None


def load_config(path: Path | None) -> DaemonConfig:
    """Parse and validate; every problem is one ConfigError naming the key."""
    if path is None:
        return DaemonConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as e:
        raise ConfigError(f"config {path}: {e.strerror}")
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}")
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping at the top")
    unknown = set(data) - KEYS
    if unknown:
        raise ConfigError(f"config {path}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(KEYS))})")
    try:
        lad = data.get("ladder") or {}
        if not isinstance(lad, dict) or set(lad) - LADDER_KEYS:
            raise ConfigError(f"config {path}: ladder takes {', '.join(sorted(LADDER_KEYS))}")
        ladder_cfg = ladder.LadderConfig(
            reserve_bytes=int(float(lad.get("reserve_mib", 64)) * MIB),
            runaway_factor=float(lad.get("runaway_factor", 4)), stall_frac=float(lad.get("stall_frac", 0.5)),
            freeze_after_s=float(lad.get("freeze_after_s", 1)), kill_after_s=float(lad.get("kill_after_s", 3)))
        cfg = DaemonConfig(root=Path(data.get("root", DEFAULT_ROOT)), state=Path(data.get("state", DEFAULT_STATE)),
                           interval_ms=float(data.get("interval_ms", 50)),
                           event_log=Path(data["event_log"]) if data.get("event_log") else None,
                           metrics_port=int(data.get("metrics_port", 9707)),
                           budgets=Path(data.get("budgets", DEFAULT_FILE)), ladder=ladder_cfg,
                           workloads=list(data.get("workloads") or []),
                           memory_policy=str(data.get("memory_policy", "auto")),
                           cpu_scheduler=str(data.get("cpu_scheduler", "auto")),
                           exec_tracer=str(data.get("exec_tracer", "off")),
                           bpf_dir=Path(data["bpf_dir"]) if data.get("bpf_dir") else None)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config {path}: {e}")
    for key, choices in CHOICES.items():
        if getattr(cfg, key) not in choices:
            raise ConfigError(f"config {path}: {key} must be one of {', '.join(choices)}")
    if cfg.interval_ms <= 0 or not 0 <= cfg.metrics_port < 65536:
        raise ConfigError(f"config {path}: interval_ms must be > 0 and metrics_port a port number")
    names = set()
    for w in cfg.workloads:
        if not isinstance(w, dict) or set(w) - WORKLOAD_KEYS or "name" not in w:
            raise ConfigError(f"config {path}: each workload needs name and may set "
                              f"{', '.join(sorted(WORKLOAD_KEYS - {'name'}))}")
        try:
            check_name(str(w["name"]))
        except LayoutError as e:
            raise ConfigError(f"config {path}: {e}")
        if w["name"] in names:
            raise ConfigError(f"config {path}: workload {w['name']!r} listed twice")
        names.add(w["name"])
        if w.get("priority", "normal") not in PRIORITIES:
            raise ConfigError(f"config {path}: workload {w['name']}: priority must be one of "
                              f"{', '.join(PRIORITIES)}")
        for key in ("agent_min_mib", "memory_max_mib"):
            if key in w and (not isinstance(w[key], (int, float)) or w[key] <= 0):
                raise ConfigError(f"config {path}: workload {w['name']}: {key} must be a positive number")
    return cfg


def metrics_text(ctl: Controller) -> str:
    status = ctl.status()
    lines = ["# TYPE agentcg_ticks_total counter", f"agentcg_ticks_total {status['ticks']}",
             "# TYPE agentcg_decisions_total counter", f"agentcg_decisions_total {status['decisions']}",
             "# TYPE agentcg_workload_memory_bytes gauge", "# TYPE agentcg_call_memory_bytes gauge",
             "# TYPE agentcg_call_budget_bytes gauge"]
    for wname, w in status["workloads"].items():
        lines.append(f'agentcg_workload_memory_bytes{{workload="{wname}"}} {w["usage"]}')
        for call, c in w["calls"].items():
            labels = f'workload="{wname}",call="{call}",class="{c["cls"]}",stage="{c["stage"]}"'
            lines.append(f"agentcg_call_memory_bytes{{{labels}}} {c['usage']}")
            if c["budget"]:
                lines.append(f"agentcg_call_budget_bytes{{{labels}}} {c['budget']}")
    return "\n".join(lines) + "\n"


def serve_metrics(ctl: Controller, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = metrics_text(ctl).encode() if self.path == "/metrics" else b"see /metrics\n"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def write_state(ctl: Controller, state_dir: Path, mech: mechanisms.Mechanisms | None = None) -> None:
    """Root-only: the status file is the local control interface's read side."""
    path = state_dir / "status.json"
    tmp = state_dir / ".status.json.tmp"
    status = ctl.status()
    if mech is not None:
        status["mechanisms"] = mech.summary()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


def own_cgroup() -> Path:
    """This process's cgroup v2 directory."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return CGROUP_ROOT / line[3:].lstrip("/")
    raise ConfigError("this process is in no cgroup v2 hierarchy: agentcg needs cgroup v2")


def leave_parent_of(root: Path) -> Path | None:
    """With systemd's Delegate=yes the daemon starts in the cgroup that holds its root. cgroup v2 lets a cgroup
    with processes of its own enable no controllers for its children, so move into a leaf `daemon` beside the
    root first. Returns the leaf, None when the daemon is elsewhere."""
    here = own_cgroup()
    if here != Path(root).parent or here == CGROUP_ROOT:  # the root cgroup may hold processes and controllers
        return None
    leaf = here / "daemon"
    leaf.mkdir(exist_ok=True)
    (leaf / "cgroup.procs").write_text(str(os.getpid()))
    return leaf


def build(cfg: DaemonConfig) -> tuple[Controller, mechanisms.Mechanisms]:
    """Set up workloads, the mechanisms and the controller; on any failure undo what was made here (workloads,
    attachments) and raise one ConfigError."""
    try:
        budgets = Budgets(load_budgets(cfg.budgets))
    except BudgetError as e:
        raise ConfigError(str(e))
    if cfg.bpf_dir:
        os.environ["AGENTCG_BPF_DIR"] = str(cfg.bpf_dir)
    layout = Layout(cfg.root, cfg.state)
    made, mech, root_existed = [], None, layout.root.exists()
    try:
        leave_parent_of(layout.root)
        layout.ensure_root()
        for w in cfg.workloads:
            if w["name"] in layout.workloads():
                continue
            layout.create_workload(w["name"], w.get("priority", "normal"),
                                   int(w.get("agent_min_mib", 0) * MIB),
                                   int(w["memory_max_mib"] * MIB) if "memory_max_mib" in w else None)
            made.append(w["name"])
        mech = mechanisms.start(cfg.memory_policy, cfg.cpu_scheduler, cfg.exec_tracer, layout.root,
                                cfg.ladder.reserve_bytes)
        log = EventLog(cfg.event_log or cfg.state / "events.jsonl")
        ctl = Controller(layout, budgets, cfg.ladder, log, interval=cfg.interval_ms / 1000,
                         inkernel=mech.inkernel, scheduler=mech.scheduler)
        mechanisms.start_tracer(mech, layout, budgets, log, [w["name"] for w in cfg.workloads])
    except BaseException as e:  # a SIGTERM while the tracer compiles, too: nothing stays attached or made
        if mech is not None:
            mech.close()
        for name in made:
            layout.remove_workload(name)
        if not root_existed and layout.root.exists() and not layout.workloads():
            layout.root.rmdir()
        if isinstance(e, (LayoutError, OSError, mechanisms.MechanismError)):
            raise ConfigError(str(e)) from e
        raise
    return ctl, mech


def run(cfg: DaemonConfig, stop: Stop | None = None) -> None:
    stop = stop or Stop()  # set from a signal handler: see agentcg.stopping
    if threading.current_thread() is threading.main_thread():
        # before build(): a stop while it attaches BPF or waits for the tracer must still run its cleanup
        def on_signal(*_):
            if stop.is_set() or not started:
                raise KeyboardInterrupt("stopped during start-up")
            stop.set()
        started = False
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    ctl, mech = build(cfg)
    started = True
    server = None
    last_state = [0.0]

    def on_tick(c: Controller) -> None:
        if time.monotonic() - last_state[0] >= 1.0:
            write_state(c, cfg.state, mech)
            last_state[0] = time.monotonic()
    try:
        server = serve_metrics(ctl, cfg.metrics_port) if cfg.metrics_port else None
        ctl.log.emit(event="daemon_started", workloads=ctl.layout.workloads(), mechanisms=mech.summary())
        ctl.run(stop, on_tick)
    finally:
        mech.close()
        write_state(ctl, cfg.state, mech)
        if server:
            server.shutdown()
        ctl.log.emit(event="daemon_stopped")
