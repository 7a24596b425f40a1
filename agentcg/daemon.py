"""`agentcg daemon`: the controller as a service — YAML config, workloads set up at start, a root-only state
file for `agentcg status`, Prometheus metrics on a root-only socket (TCP on localhost when asked), and the JSON
event log.

Config (all keys optional):
    root: /sys/fs/cgroup/agentcg     state: /run/agentcg     interval_ms: 50
    event_log: /run/agentcg/events.jsonl
    metrics_socket: true (<state>/metrics.sock, root only; false: off)   metrics_port: 0 (N: also 127.0.0.1:N)
    budgets: <agentcg/budgets.yaml, shipped with the package>
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
from pathlib import Path

from agentcg import config, execsock, ladder, mechanisms, metrics, sockets
from agentcg.budgets import DEFAULT_FILE, BudgetError, Budgets
from agentcg.budgets import load_config as load_budgets
from agentcg.cgroup import ROOT as CGROUP_ROOT
from agentcg.config import ConfigError
from agentcg.controller import Controller, EventLog
from agentcg.layout import DEFAULT_ROOT, DEFAULT_STATE, Layout, LayoutError, check_name, owner_uid
from agentcg.procs import cgroup_of
from agentcg.statefile import write_atomic
from agentcg.stopping import Stop
from agentcg.vocab import DEFAULT_PRIORITY, MIB, PRIORITIES

_written: dict[Path, str] = {}  # the learned budgets last written, per state directory
LEARNED_FILE = "budgets-learned.json"  # in the state directory: the peaks the budgets learned, across restarts
CHOICES = {"memory_policy": mechanisms.MEMORY_CHOICES, "cpu_scheduler": mechanisms.CPU_CHOICES,
           "exec_tracer": mechanisms.TRACER_CHOICES}
LADDER_KEYS = {"reserve_mib", "runaway_factor", "stall_frac", "freeze_after_s", "kill_after_s"}
WORKLOAD_KEYS = {"name", "priority", "agent_min_mib", "memory_max_mib", "owner"}


@dataclass
class DaemonConfig:
    root: Path = DEFAULT_ROOT
    state: Path = DEFAULT_STATE
    interval_ms: float = 50
    event_log: Path | None = None
    metrics_socket: bool = True
    exec_socket: Path | None = execsock.DEFAULT_SOCKET  # for agents that are not root (agentcg.execsock)
    metrics_port: int = 0
    budgets: Path = DEFAULT_FILE
    ladder: ladder.LadderConfig = field(default_factory=ladder.LadderConfig)
    workloads: list[dict] = field(default_factory=list)
    memory_policy: str = "auto"
    cpu_scheduler: str = "auto"
    exec_tracer: str = "off"
    bpf_dir: Path | None = None


def load_config(path: Path | None) -> DaemonConfig:
    """Parse and validate; every problem is one ConfigError naming the key. Defaults: DaemonConfig's and
    LadderConfig's fields."""
    if path is None:
        return DaemonConfig()
    where = f"config {path}"

    def ladder_config(raw) -> ladder.LadderConfig:
        lad = config.mapping(raw, "ladder", where)
        if set(lad) - LADDER_KEYS:
            raise ConfigError(f"{where}: ladder takes {', '.join(sorted(LADDER_KEYS))}")
        values = {k: config.number(v, f"ladder.{k}", where, allow_zero=k != "runaway_factor") for k, v in lad.items()}
        if "reserve_mib" in values:
            values["reserve_bytes"] = int(values.pop("reserve_mib") * MIB)
        return ladder.LadderConfig(**values)

    def absolute(key: str):
        def convert(raw) -> Path | None:
            if raw is None or raw == "":
                if key in ("event_log", "bpf_dir", "exec_socket"):
                    return None
                raise ValueError("must be a path")
            if not isinstance(raw, str) or "\0" in raw or not raw.startswith("/"):
                raise ValueError(f"must be an absolute path, got {raw!r}")
            return Path(raw)
        return convert

    def choice(key: str):
        def convert(raw) -> str:
            raw = "off" if raw is False else raw  # YAML 1.1 reads a bare `off` as false
            return config.one_of(raw, CHOICES[key], key, where, ConfigError)
        return convert

    def interval(raw) -> float:
        value = config.number(raw, "interval_ms", where)
        if not 1 <= value <= 60_000:
            raise ConfigError(f"{where}: interval_ms must be within 1..60000, got {raw!r}")
        return value

    def flag(key: str):
        def convert(raw) -> bool:
            if not isinstance(raw, bool):
                raise ValueError(f"must be true or false, got {raw!r}")
            return raw
        return convert

    def port(raw) -> int:
        value = config.number(raw, "metrics_port", where, allow_zero=True, integer=True)
        if value > 65535:
            raise ConfigError(f"{where}: metrics_port must be a port number (0 turns the endpoint off), got {raw!r}")
        return value

    return config.build(DaemonConfig, config.read_mapping(path, ConfigError), {
        "root": absolute("root"), "state": absolute("state"), "interval_ms": interval,
        "event_log": absolute("event_log"), "metrics_port": port, "metrics_socket": flag("metrics_socket"),
        "budgets": absolute("budgets"), "exec_socket": absolute("exec_socket"),
        "ladder": ladder_config, "workloads": lambda raw: _workloads(raw, where),
        "memory_policy": choice("memory_policy"), "cpu_scheduler": choice("cpu_scheduler"),
        "exec_tracer": choice("exec_tracer"), "bpf_dir": absolute("bpf_dir")}, where, ConfigError)


def _workloads(raw, where: str) -> list[dict]:
    names = set()
    for w in raw or []:
        if not isinstance(w, dict) or set(w) - WORKLOAD_KEYS or "name" not in w:
            raise ConfigError(f"{where}: each workload needs name and may set "
                              f"{', '.join(sorted(WORKLOAD_KEYS - {'name'}))}")
        try:
            check_name(str(w["name"]))
        except LayoutError as e:
            raise ConfigError(f"{where}: {e}")
        if w["name"] in names:
            raise ConfigError(f"{where}: workload {w['name']!r} listed twice")
        names.add(w["name"])
        config.one_of(w.get("priority", DEFAULT_PRIORITY), PRIORITIES, "priority", f"{where}: workload {w['name']}",
                      ConfigError)
        for key in ("agent_min_mib", "memory_max_mib"):
            if key in w:
                config.number(w[key], key, f"{where}: workload {w['name']}")
        if "owner" in w:
            try:
                w["owner"] = owner_uid(w["owner"])
            except LayoutError as e:
                raise ConfigError(f"{where}: workload {w['name']}: {e}") from None
    return list(raw or [])


def write_state(ctl: Controller, state_dir: Path, mech: mechanisms.Mechanisms | None = None) -> dict:
    """Root-only: the status file is the local control interface's read side. Returns the status written."""
    status = ctl.status()
    if mech is not None:
        status["mechanisms"] = mech.summary()
    write_atomic(state_dir / "status.json", json.dumps(status))
    learned = json.dumps(ctl.budgets.learned())
    if learned not in ("{}", _written.get(state_dir)):  # a finished call changes it: most seconds nothing does
        write_atomic(state_dir / LEARNED_FILE, learned)
        _written[state_dir] = learned
    return status


def bind_sockets(cfg: DaemonConfig, snapshot: metrics.Snapshot) -> tuple[list, object | None]:
    """The metrics endpoints and the tool-call socket the config asks for, bound before anything is made (the
    tool-call socket answers "starting" until it is given its service); one ConfigError, with nothing left
    bound, when one cannot be. (every server, the tool-call server or None)"""
    servers, calls = [], None
    try:
        if cfg.metrics_socket:
            servers.append(metrics.serve(snapshot.get, socket_path=cfg.state / "metrics.sock"))
        if cfg.metrics_port:
            servers.append(metrics.serve(snapshot.get, cfg.metrics_port))
        if cfg.exec_socket:
            calls = execsock.serve(None, cfg.exec_socket)
            servers.append(calls)
    except (metrics.MetricsError, execsock.ExecSocketError) as e:
        for server in servers:
            sockets.stop(server)
        raise ConfigError(str(e)) from None
    return servers, calls


def own_cgroup() -> Path:
    """This process's cgroup v2 directory."""
    try:
        return cgroup_of(os.getpid())
    except FileNotFoundError:
        raise ConfigError("this process is in no cgroup v2 hierarchy: agentcg needs cgroup v2") from None


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
    try:  # what an earlier run learned (a daemon restarted after a crash does not start from scratch)
        budgets.restore(json.loads((cfg.state / LEARNED_FILE).read_bytes()[:1 << 22]))
    except (OSError, ValueError, RecursionError):
        pass
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
                                   int(w["memory_max_mib"] * MIB) if "memory_max_mib" in w else None,
                                   owner=w.get("owner"))
            made.append(w["name"])
        mech = mechanisms.start(cfg.memory_policy, cfg.cpu_scheduler, cfg.exec_tracer, layout.root,
                                cfg.ladder.reserve_bytes)
        log = EventLog(cfg.event_log or cfg.state / "events.jsonl")
        ctl = Controller(layout, budgets, cfg.ladder, log, interval=cfg.interval_ms / 1000,
                         inkernel=mech.inkernel, scheduler=mech.scheduler)
        mechanisms.start_tracer(mech, layout, budgets, log, layout.workloads())
        ctl.tracer = mech.exec_tracer
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
    snapshot = metrics.Snapshot()
    cfg.state.mkdir(mode=0o700, parents=True, exist_ok=True)
    servers, calls = bind_sockets(cfg, snapshot)  # first: a port that is taken stops the start before anything is made
    try:
        ctl, mech = build(cfg)
    except BaseException:
        for server in servers:
            sockets.stop(server)
        raise
    if calls is not None:
        calls.service = execsock.Service(ctl.layout, ctl.budgets, ctl.log)
    started = True
    last_state = [0.0]

    def on_tick(c: Controller) -> None:
        if time.monotonic() - last_state[0] >= 1.0:
            snapshot.publish(write_state(c, cfg.state, mech))
            last_state[0] = time.monotonic()
    try:
        snapshot.publish(write_state(ctl, cfg.state, mech))
        ctl.log.emit(event="daemon_started", workloads=ctl.layout.workloads(), mechanisms=mech.summary())
        ctl.run(stop, on_tick)
    finally:
        mech.close()
        write_state(ctl, cfg.state, mech)
        for server in servers:
            sockets.stop(server)
        ctl.log.emit(event="daemon_stopped")
