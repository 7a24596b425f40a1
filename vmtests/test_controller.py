"""The user-space controller on a stock cgroup v2 kernel: layout, graduated response, delegation safety, bad input.

Each test builds agentcg's tree inside the test cgroup, runs the controller in a thread, and drives tool calls
through `agentcg exec` as a user would. Sizes are scaled for TCG; timings are ratios or ordering, not absolutes.
"""
import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agentcg import ladder
from agentcg.budgets import Budgets, load_config
from agentcg.cgroup import Cgroup, reap
from agentcg.controller import Controller, EventLog
from agentcg.enforce import sched
from agentcg.enforce.memcg_bpf import BPFFS
from agentcg.harness import guest, slowness
from agentcg.layout import TOOL_OOM_SCORE_ADJ, Layout
from agentcg.paths import IMPORT_ROOT

MIB = 1 << 20
DECLARED = guest.DECLARED or set()  # what the kernel declares
pytestmark = pytest.mark.requires("memcg", "cgroup_freeze", "cgroup_kill", "psi")


@pytest.fixture
def agentcg_env(cg, tmp_path):
    """An agentcg tree under the test cgroup, small budgets, and a controller thread (stopped at teardown)."""
    budgets_file = tmp_path / "budgets.yaml"
    budgets_file.write_text("default_mib: 32\nclasses: {test: 32, explore: 16}\n")
    layout = Layout(cg.path / "agentcg", tmp_path / "state")
    log = EventLog(tmp_path / "events.jsonl")
    cfg = ladder.LadderConfig(reserve_bytes=32 * MIB, runaway_factor=4, stall_frac=0.3, freeze_after_s=0.5,
                              kill_after_s=1.5)
    ctl = Controller(layout, Budgets(load_config(budgets_file)), cfg, log, interval=0.05)
    stop = threading.Event()
    env = {"layout": layout, "log": log, "ctl": ctl, "budgets": budgets_file, "tmp": tmp_path, "procs": []}
    threads = []

    def start():
        threads.append(threading.Thread(target=ctl.run, args=(stop,), daemon=True))
        threads[-1].start()
    env["start"] = start
    yield env
    stop.set()
    for thread in threads:  # before removing the tree it may be writing to
        thread.join(timeout=10)
    for name in layout.workloads():
        layout.remove_workload(name)
    for proc in env["procs"]:
        reap(proc)


def agentcg_cli(env, *args, **kw):
    cmd = [sys.executable, "-m", "agentcg", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, **kw)


def exec_args(env, workload, *cmd, cls="test"):
    return ("exec", "--workload", workload, "--class", cls, "--budgets", str(env["budgets"]),
            "--root", str(env["layout"].root), "--state", str(env["layout"].state), "--", *cmd)


def start_agent(env, name, mib=16):
    layout = env["layout"]
    agent = Cgroup(layout.workload(name).path / "agent").spawn(
        [sys.executable, "-m", "agentcg.harness.memhog", str(mib), "--hold"], stdout=subprocess.PIPE)
    assert agent.stdout.readline().strip() == b"ready"
    layout.move_agent(name, agent.pid)  # already there; sets oom_score_adj -1000
    env["procs"].append(agent)
    return agent


def decisions(env, call=None):
    out = []
    for line in (env["tmp"] / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e.get("event") == "decision" and (call is None or e["call"] == call):
            out.append(e)
    return out


# A tool call that outgrows its budget while its workload runs out of room is throttled, then frozen, then
# killed - in that order - and only the tool call dies: the agent keeps running and is told why.
def test_tool_over_budget_is_throttled_then_frozen_then_killed_agent_survives(agentcg_env):
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1", agent_min=32 * MIB, memory_max=160 * MIB)
    agent = start_agent(env, "w1")
    env["start"]()
    result = agentcg_cli(env, *exec_args(env, "w1", sys.executable, "-m", "agentcg.harness.memhog", "400"))

    assert result.returncode == 137, result.stderr
    assert "killed by agentcg:" in result.stderr
    actions = [d["action"] for d in decisions(env)]
    assert actions[:3] == ["throttle", "freeze", "kill"], actions
    assert agent.poll() is None, "the agent survives"
    assert layout.workload("w1").keyed("memory.events")["oom_kill"] == 0
    assert layout.calls("w1") == [], "the finished call's cgroup is gone"


# A tool call within its budget, or over it while the host has room, runs to completion untouched.
def test_tool_with_room_is_left_alone(agentcg_env):
    env = agentcg_env
    env["layout"].create_workload("w1", agent_min=16 * MIB)
    env["start"]()
    result = agentcg_cli(env, *exec_args(env, "w1", sys.executable, "-m", "agentcg.harness.memhog", "64"))
    assert result.returncode == 0, result.stderr
    assert decisions(env) == []


# A tool running as the agent's (unprivileged) user can neither leave its cgroup nor raise its limits.
def test_unprivileged_tool_cannot_escape_its_cgroup(agentcg_env):
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    agent_procs = layout.workload("w1").path / "agent" / "cgroup.procs"
    script = (f"echo $$ > {agent_procs} 2>/dev/null && echo MOVED-TO-AGENT; "
              f"echo $$ > {layout.root.parent}/cgroup.procs 2>/dev/null && echo MOVED-UP; "
              "cg=$(cut -d: -f3 /proc/self/cgroup); "
              "echo max > /sys/fs/cgroup$cg/memory.max 2>/dev/null && echo RAISED-LIMIT; "
              "echo 0 > /sys/fs/cgroup$cg/cgroup.freeze 2>/dev/null && echo TOUCHED-FREEZE; "
              "echo STILL-IN $cg")
    result = agentcg_cli(env, *exec_args(env, "w1", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                         "sh", "-c", script, cls="explore"))
    assert result.returncode == 0, result.stderr
    assert "MOVED" not in result.stdout and "RAISED" not in result.stdout and "TOUCHED" not in result.stdout
    assert "STILL-IN /" in result.stdout and "/w1/tools/call-" in result.stdout


# A tool call launched by the protected agent (oom_score_adj -1000, which its children inherit) is given back to
# the OOM killer: when its workload runs out of memory the tool dies, instead of every process in the workload
# being unkillable and the workload hanging on its memory.max.
def test_tool_started_by_a_protected_agent_stays_killable(agentcg_env):
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1", memory_max=64 * MIB)
    start_agent(env, "w1")

    def as_agent():  # what the agent's own children start with
        Path("/proc/self/oom_score_adj").write_text("-1000")
    shown = agentcg_cli(env, *exec_args(env, "w1", "cat", "/proc/self/oom_score_adj", cls="explore"),
                        preexec_fn=as_agent)
    assert shown.returncode == 0 and shown.stdout.strip() == str(TOOL_OOM_SCORE_ADJ), (shown.stdout, shown.stderr)

    # no controller running: the kernel's OOM killer alone must find a victim
    cmd = [sys.executable, "-m", "agentcg", *exec_args(env, "w1", sys.executable, "-m", "agentcg.harness.memhog", "200")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=as_agent)
    assert result.returncode == 137, (result.returncode, result.stderr)
    assert layout.workload("w1").keyed("memory.events")["oom_kill"] >= 1
    assert all(p.poll() is None for p in env["procs"]), "the agent survives"


# Bad input gets one clear error and a non-zero exit, and leaves no cgroups behind (the guard checks).
def test_bad_input_is_one_clear_error_and_leaves_nothing(agentcg_env, tmp_path):
    env = agentcg_env
    env["layout"].create_workload("w1")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("workloads: [unclosed\n")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text(f"root: {env['layout'].root}\nstate: {tmp_path / 's2'}\nwrkloads: []\n")
    bad_priority = tmp_path / "prio.yaml"
    bad_priority.write_text(f"root: {env['layout'].root}\nstate: {tmp_path / 's3'}\n"
                            "workloads: [{name: ok-1}, {name: w2, priority: urgent}]\n")
    cases = [
        (("daemon", "--config", str(bad_yaml)), "not valid YAML"),
        (("daemon", "--config", str(unknown_key)), "unknown keys ['wrkloads']"),
        (("daemon", "--config", str(bad_priority)), "priority must be one of"),
        (exec_args(env, "nope", "true"), "no workload 'nope'"),
        (exec_args(env, "w1", "/no/such/binary"), "cannot run /no/such/binary"),
        (exec_args(env, "../escape", "true"), "invalid workload name"),
    ]
    for args, message in cases:
        result = agentcg_cli(env, *args)
        assert result.returncode == 2, (args, result.stderr)
        errors = [ln for ln in result.stderr.splitlines() if ln.startswith("agentcg: error:")]
        assert len(errors) == 1 and message in errors[0], (args, result.stderr)
    assert env["layout"].workloads() == ["w1"] and env["layout"].calls("w1") == []


# Reaction time of the user-space path: from the moment a burst passes the runaway threshold (as the bursting
# process itself timestamps it) to the controller's first enforcement action. Reported as median and maximum of 10. The workload's
# limit (184 MiB) leaves less than twice the 32 MiB reserve at the runaway line, where runaways are throttled.
@pytest.mark.evaluation
def test_user_space_reaction_time(agentcg_env, record_measurement):
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    layout.workload("w1").write("memory.max", 184 * MIB)
    env["start"]()
    budget_mib = 32
    threshold_mib = budget_mib * 4
    reactions = []
    for _ in range(10):
        proc = subprocess.Popen([sys.executable, "-m", "agentcg", *exec_args(
            env, "w1", sys.executable, "-m", "agentcg.harness.memhog", str(threshold_mib + 64), "--mark-usage-mib",
            str(threshold_mib))], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate(timeout=240)
        marks = [float(line.split()[1]) for line in out.splitlines() if line.startswith("mark ")]
        assert marks, (out, err)
        throttles = [d for d in decisions(env) if d["action"] == "throttle" and d["mono"] >= marks[0] - 1.0]
        assert throttles, "the burst was throttled"
        reactions.append(max(0.0, throttles[0]["mono"] - marks[0]))
        (env["tmp"] / "events.jsonl").write_text("")
    reactions.sort()
    p50, most = statistics.median(reactions), reactions[-1]
    record_measurement("userspace_reaction", {"interval_ms": 50, "reactions_s": reactions, "p50_s": p50,
                                              "max_s": most})
    assert p50 < 1.0, reactions


# A launcher makes a call's cgroup, then moves its process in. The controller must not take the empty cgroup in
# between for a finished call and remove it (it did, for calls the exec tracer found: the move then failed and the
# tool stayed in the agent's leaf). Once the launcher records the pid, an empty call is over and goes.
def test_controller_keeps_a_call_until_its_process_has_entered(agentcg_env):
    env = agentcg_env
    layout, ctl = env["layout"], env["ctl"]
    layout.create_workload("w1")
    cg, meta = layout.start_call("w1", "sleep 30", "other", 32 * MIB, launcher="tracer")
    for _ in range(3):
        ctl.tick()
    assert cg.path.is_dir(), "a call not yet filled by its launcher survives the controller's ticks"
    assert [e for e in env["log"].recent if e["event"] == "call_finished"] == []
    proc = cg.spawn(["sleep", "30"])
    env["procs"].append(proc)
    meta.pid = proc.pid
    layout.save_meta(meta)
    ctl.tick()
    assert cg.path.is_dir() and cg.populated()
    proc.kill()
    reap(proc)
    cg.wait_populated(False)
    ctl.tick()
    assert not cg.path.exists(), "the traced call is removed once its process has ended"
    assert [e["call"] for e in env["log"].recent if e["event"] == "call_finished"] == [meta.call]


# What the controller keeps per call (state, open files, cached metadata) lives exactly as long as the call: a call
# finished but not yet removed by its launcher is started and finished once, not once per tick; a call its
# launcher removed before any tick saw it end leaves nothing behind (a daemon would otherwise run out of fds).
def test_controller_keeps_nothing_of_calls_that_are_gone(agentcg_env):
    env = agentcg_env
    layout, ctl = env["layout"], env["ctl"]
    layout.create_workload("w1")

    def call_with_process():
        cg, meta = layout.start_call("w1", "sleep 30", "other", 32 * MIB)
        proc = cg.spawn(["sleep", "30"])
        meta.pid = proc.pid
        layout.save_meta(meta)
        ctl.tick()
        proc.kill()
        reap(proc)
        cg.wait_populated(False)
        return cg, meta

    cg, meta = call_with_process()
    for _ in range(3):
        ctl.tick()  # ended, still there: its launcher has not removed it yet
    events = [e["event"] for e in env["log"].recent if e.get("call") == meta.call]
    assert events == ["call_started", "call_finished"], events
    layout.finish_call("w1", meta.call)
    cg2, meta2 = call_with_process()
    layout.finish_call("w1", meta2.call)  # removed before a tick saw it end
    ctl.tick()
    assert ctl.calls == {} and ctl._call_cgs == {} and ctl._metas == {}
    # what is kept open is the workload's (tools/cgroup.stat tells an empty tools/ without listing it), no call's
    assert not [f for f in ctl.files._fds if "/tools/" in f and not f.endswith("/tools/cgroup.stat")], ctl.files._fds


AGENT_WITHOUT_WRAPPER = """
import subprocess, sys
sys.stdin.readline()
child = subprocess.Popen(["sleep", "60"])
print(child.pid, flush=True)
sys.stdin.readline()
child.kill()
child.wait()
"""


# A process the agent starts without `agentcg exec` is caught by the eBPF exec tracer and moved into its own
# tool-call cgroup, which the controller removes once it ends.
@pytest.mark.requires("bpf_syscall")
@pytest.mark.parametrize("backend", ["bcc", "libbpf"])
def test_process_started_without_wrapper_lands_in_a_tool_cgroup(agentcg_env, backend):
    from agentcg.enforce.tracing import ExecTracer, libbpf_tracer
    if backend == "libbpf" and libbpf_tracer() is None:
        pytest.skip("no agentcg-built BPF objects for this kernel (built with agentcg's kernels; Debian's kernels "
                    "use the bcc tracer)")
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    agent = Cgroup(layout.workload("w1").path / "agent").spawn(
        [sys.executable, "-c", AGENT_WITHOUT_WRAPPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    env["procs"].append(agent)
    tracer = ExecTracer(layout, env["ctl"].budgets, env["log"], backend=backend)
    tracer.start(["w1"])
    assert tracer.backend == backend
    stop = threading.Event()
    reader = threading.Thread(target=tracer.run, args=(stop,), daemon=True)
    reader.start()
    env["start"]()
    try:
        agent.stdin.write("go\n")
        agent.stdin.flush()
        pid = int(agent.stdout.readline())
        deadline = time.monotonic() + 20  # bounded: the event arrives in ms, TCG can stall the threads for seconds
        where = ""
        while time.monotonic() < deadline:
            where = Path(f"/proc/{pid}/cgroup").read_text().strip()
            if "/w1/tools/call-" in where:
                break
            time.sleep(0.05)
        assert "/w1/tools/call-" in where, (where, f"moved {tracer.moved}",
                                            [e for e in env["log"].recent if e["event"].startswith("call_trace")])
        agent.stdin.write("done\n")
        agent.stdin.flush()
        assert reap(agent) == 0
        deadline = time.monotonic() + 10
        while layout.calls("w1") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert layout.calls("w1") == [], "the finished traced call's cgroup is removed"
    finally:
        stop.set()
        reader.join(timeout=5)
        tracer.stop()


# An exec event read late names a pid that may since belong to someone else: another workload's process (the pid
# reused after the agent's process ended) is never moved, and a process that already left the leaf neither.
def test_a_late_exec_event_never_moves_a_process_of_another_workload(agentcg_env):
    from agentcg.cgroup import cgroup_id
    from agentcg.enforce.tracing import ExecTracer
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    layout.create_workload("w2")
    tracer = ExecTracer(layout, env["ctl"].budgets, env["log"])
    tracer.leaves = {cgroup_id(layout.workload("w1").path / "agent"): "w1"}
    other = Cgroup(layout.workload("w2").path / "agent").spawn(["sleep", "60"])
    env["procs"].append(other)
    tracer.handle({"cgid": cgroup_id(layout.workload("w1").path / "agent"), "pid": other.pid, "comm": "sleep"})
    assert Path(f"/proc/{other.pid}/cgroup").read_text().strip().endswith("/w2/agent")
    assert layout.calls("w1") == [] and tracer.moved == 0
    assert any(e["event"] == "call_trace_skipped" and e["pid"] == other.pid for e in env["log"].recent)
    for forged in ({"cgid": 1, "pid": other.pid}, {"cgid": None, "pid": "1"}, {"pid": True}, {}):
        tracer.handle(forged)
    other.kill()


def _tasks() -> set[int]:
    """Every pid in use (threads take pids too)."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            with contextlib.suppress(OSError):
                out.update(int(t) for t in os.listdir(f"/proc/{d}/task"))
    return out


@contextlib.contextmanager
def few_pids(free: int):
    """kernel.pid_max lowered so that about `free` pids are left to hand out: they wrap within a few hundred
    forks (restored afterwards)."""
    knob = Path("/proc/sys/kernel/pid_max")
    saved = knob.read_text().strip()
    used = _tasks()
    pid_max = 301  # the kernel's smallest; pids wrap to 300
    while pid_max - 300 - sum(300 <= p < pid_max for p in used) < free:
        pid_max += 50
    knob.write_text(str(pid_max))
    try:
        yield pid_max
    finally:
        knob.write_text(saved)


# Pid reuse for real: an agent floods short execs while nothing reads the tracer (its events queue up, as when
# the daemon falls behind), pids wrap, then another tenant's processes are started on the pids those events name.
# When the events are finally read, none of the tenant's processes is moved into the agent's calls.
@pytest.mark.requires("bpf_syscall")
def test_pid_reuse_under_an_exec_flood_never_moves_another_tenants_process(agentcg_env):
    from agentcg.enforce.tracing import ExecTracer
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    tenant = Cgroup(layout.root.parent / "tenant")
    tenant.path.mkdir()
    agent = Cgroup(layout.workload("w1").path / "agent").spawn(
        ["sh", "-c", "read go; i=0; while [ $i -lt 1200 ]; do /bin/true; i=$((i+1)); done; echo done; read end"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    env["procs"].append(agent)
    tracer = ExecTracer(layout, env["ctl"].budgets, env["log"])
    named = []
    handle = tracer.handle
    tracer.handle = lambda event: (named.append(event.get("pid")), handle(event))
    tracer.start(["w1"])
    stop = threading.Event()
    try:
        with few_pids(free=400):
            agent.stdin.write("go\n")  # 1,200 execs over ~400 free pids: each pid handed out about 3 times
            agent.stdin.flush()
            assert agent.stdout.readline().strip() == "done"
            sleepers = tenant.spawn(["sh", "-c", "for i in $(seq 150); do sleep 600 & echo $!; done; wait"],
                                    stdout=subprocess.PIPE, text=True)
            env["procs"].append(sleepers)
            theirs = [int(sleepers.stdout.readline()) for _ in range(150)]
        reader = threading.Thread(target=tracer.run, args=(stop,), daemon=True)
        reader.start()  # now the queued events are read, every one of them late
        deadline, seen = time.monotonic() + 60, -1
        while time.monotonic() < deadline and len(named) != seen:  # until a second passes without an event
            seen = len(named)
            time.sleep(1.0)
        reused = set(theirs) & set(named)
        assert len(named) >= 100, f"the flood's exec events were read ({len(named)})"
        assert reused, "the tenant's processes got pids that queued events name (else this tests nothing)"
        moved = [p for p in theirs if not Path(f"/proc/{p}/cgroup").read_text().strip().endswith("/tenant")]
        assert moved == [], f"tenant processes moved out of their cgroup: {moved}"
        assert tracer.moved == 0 and layout.calls("w1") == [], "no process of the flood was alive to move"
        events = [json.loads(line) for line in (env["tmp"] / "events.jsonl").read_text().splitlines()]
        skipped = {e["pid"] for e in events if e["event"] == "call_trace_skipped"}
        assert skipped & reused, "the tracer saw a reused pid, in another cgroup, and said so"
    finally:
        stop.set()
        tracer.stop()
        agent.stdin.write("end\n")
        agent.stdin.flush()


FORKS_BEFORE_EXEC_IS_SEEN = """
import os, sys, time
child = os.fork()
if child == 0:  # a fork without exec: the tracer never sees it
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
sys.stdin.readline()
os.kill(child, 9)
"""


# A process forks before the tracer gets to move it (fork without exec, which the tracer never sees): its child
# is still in the agent's leaf, and goes to the same call as its parent.
@pytest.mark.requires("bpf_syscall")
@pytest.mark.parametrize("backend", ["bcc", "libbpf"])
def test_a_child_forked_before_the_move_follows_its_parent_into_the_call(agentcg_env, backend):
    from agentcg.enforce.tracing import ExecTracer, libbpf_tracer
    if backend == "libbpf" and libbpf_tracer() is None:
        pytest.skip("no agentcg-built BPF objects for this kernel (Debian's kernels use the bcc tracer)")
    env = agentcg_env
    layout = env["layout"]
    layout.create_workload("w1")
    tracer = ExecTracer(layout, env["ctl"].budgets, env["log"], backend=backend)
    tracer.start(["w1"])
    stop = threading.Event()
    try:
        tool = Cgroup(layout.workload("w1").path / "agent").spawn(
            [sys.executable, "-c", FORKS_BEFORE_EXEC_IS_SEEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        env["procs"].append(tool)
        child = int(tool.stdout.readline())  # forked, and nothing read the exec event yet
        assert Path(f"/proc/{child}/cgroup").read_text().strip().endswith("/w1/agent")
        reader = threading.Thread(target=tracer.run, args=(stop,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 20  # the parent is moved first, its child a moment after
        while time.monotonic() < deadline:
            parent_at = Path(f"/proc/{tool.pid}/cgroup").read_text().strip()
            child_at = Path(f"/proc/{child}/cgroup").read_text().strip()
            if "/tools/call-" in parent_at and child_at == parent_at:
                break
            time.sleep(0.05)
        assert "/w1/tools/call-" in parent_at and child_at == parent_at, (parent_at, child_at)
        tool.stdin.write("done\n")
        tool.stdin.flush()
    finally:
        stop.set()
        tracer.stop()


@contextlib.contextmanager
def daemon_running(cg, tmp_path, config: str, start_in: Cgroup | None = None, wait_s: float = 60,
                   exec_socket: Path | None = None):
    """`agentcg daemon` with `config` (root and state filled in) until its status file is there; stopped with
    SIGTERM afterwards, which must exit 0, and its tree removed. Yields (process, root, state)."""
    import signal
    root, state = cg.path / "agentcg", tmp_path / "state"
    path = tmp_path / "agentcg.yaml"
    path.write_text(f"root: {root}\nstate: {state}\nexec_socket: {exec_socket or tmp_path / 'agentcg.sock'}\n{config}")
    argv = [sys.executable, "-m", "agentcg", "daemon", "--config", str(path)]
    kw = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemon = start_in.spawn(argv, **kw) if start_in else subprocess.Popen(argv, **kw)
    try:
        deadline = time.monotonic() + wait_s
        while not (state / "status.json").exists() and time.monotonic() < deadline:
            assert daemon.poll() is None, daemon.stderr.read()
            time.sleep(0.1)
        yield daemon, root, state
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, daemon.stderr.read()
        layout = Layout(root, state)
        deadline = time.monotonic() + 10
        while any(layout.calls(w) for w in layout.workloads()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for name in layout.workloads():
            layout.remove_workload(name)
        Cgroup(root).destroy()


# `agentcg daemon` from a YAML config: sets up its workloads, serves Prometheus metrics on a root-only socket (and
# on localhost TCP, asked for here), keeps a root-only status file that `agentcg status` reads, and stops cleanly
# on SIGTERM.
def test_daemon_serves_status_and_metrics(cg, tmp_path):
    import urllib.request
    config = ("metrics_port: 19707\ninterval_ms: 50\nworkloads:\n"
              "  - {name: claude-1, priority: high, agent_min_mib: 16}\n  - {name: swe-2, priority: low}\n")
    with daemon_running(cg, tmp_path, config) as (_, root, state):
        assert oct((state / "status.json").stat().st_mode & 0o777) == "0o600"
        status = json.loads(subprocess.run([sys.executable, "-m", "agentcg", "status", "--json", "--state",
                                            str(state)], capture_output=True, text=True, check=True).stdout)
        assert set(status["workloads"]) == {"claude-1", "swe-2"}
        assert status["workloads"]["claude-1"]["priority"] == "high"
        assert (root / "claude-1" / "agent" / "memory.min").read_text().strip() == str(16 * MIB)
        metrics = urllib.request.urlopen("http://127.0.0.1:19707/metrics", timeout=10).read().decode()
        assert "agentcg_ticks_total" in metrics and 'agentcg_workload_memory_bytes{workload="swe-2"}' in metrics
        sock = state / "metrics.sock"
        assert oct(sock.stat().st_mode & 0o777) == "0o600"
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(sock))
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            reply = b"".join(iter(lambda: s.recv(65536), b""))
        assert reply.startswith(b"HTTP/1.0 200") and b"agentcg_ticks_total" in reply
        # auto: the in-kernel memory policy and sched_ext where the kernel has them, else the user-space path
        mech = status["mechanisms"]
        assert mech["memory"] == ("kernel" if "memcg_bpf_ops" in DECLARED else "user"), mech
        assert mech["cpu"] == ("sched_ext" if "sched_ext" in DECLARED else "weights"), mech
        assert mech["tracer"] == "off"
        if "sched_ext" in DECLARED:
            assert sched.kernel_state() == "enabled"
    if "sched_ext" in DECLARED:
        deadline = time.monotonic() + 10
        while sched.kernel_state() != "disabled" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sched.kernel_state() == "disabled", "the daemon detached its scheduler when it stopped"


# Under systemd (Delegate=yes) the daemon starts inside the cgroup that holds its root; cgroup v2 lets a cgroup
# with processes of its own enable no controllers below it, so the daemon moves itself into a leaf beside the root.
def test_daemon_started_in_the_parent_of_its_root_moves_into_a_leaf(cg, tmp_path):
    config = "metrics_port: 0\nmemory_policy: user\ncpu_scheduler: weights\nworkloads: [{name: w1}]\n"
    with daemon_running(cg, tmp_path, config, start_in=cg) as (daemon, root, _):
        assert Path(f"/proc/{daemon.pid}/cgroup").read_text().strip().endswith(f"/{cg.path.name}/daemon")
        assert "memory" in (cg.path / "cgroup.subtree_control").read_text().split()
        assert (root / "w1" / "agent" / "memory.min").exists()


# A mechanism asked for by name that cannot run here is one clear error, a non-zero exit and nothing left behind.
def test_daemon_refuses_a_mechanism_it_cannot_run_and_leaves_nothing(cg, tmp_path):
    root, state = cg.path / "agentcg", tmp_path / "state"
    config = tmp_path / "agentcg.yaml"
    config.write_text(f"root: {root}\nstate: {state}\nmetrics_port: 0\nmemory_policy: kernel\n"
                      f"bpf_dir: {tmp_path / 'not-built'}\nworkloads: [{{name: w1}}]\n")
    out = subprocess.run([sys.executable, "-m", "agentcg", "daemon", "--config", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "kernel was asked for but cannot run" in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not root.exists(), "no half-made cgroups"
    assert not list(BPFFS.glob("agentcg-*/*")), "no pinned links"


# With exec_tracer on, the daemon catches a process an agent starts without `agentcg exec` and gives it a tool
# call cgroup: the product path, not only the tracer.
@pytest.mark.requires("bpf_syscall")
def test_daemon_traces_tool_processes_started_without_the_wrapper(cg, tmp_path):
    config = ("metrics_port: 0\ninterval_ms: 50\nexec_tracer: auto\nmemory_policy: user\ncpu_scheduler: weights\n"
              "workloads: [{name: w1}]\n")
    # the bcc tracer compiles its program first
    with daemon_running(cg, tmp_path, config, wait_s=200) as (_, root, state):
        status = json.loads((state / "status.json").read_text())
        assert status["mechanisms"]["tracer"] in ("libbpf", "bcc"), status["mechanisms"]
        _traced_in(root, "w1")
        # a workload made while the daemon runs is traced too, once the controller has found it
        made = subprocess.run([sys.executable, "-m", "agentcg", "workload", "create", "w2", "--root", str(root),
                               "--state", str(state)], capture_output=True, text=True, timeout=120)
        assert made.returncode == 0, made.stderr
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
            if any(e["event"] == "tracer_watching" and e["workload"] == "w2" for e in events):
                break
            time.sleep(0.1)
        _traced_in(root, "w2")


def _traced_in(root: Path, workload: str) -> None:
    """A process the agent of `workload` starts without the wrapper lands in a call of that workload."""
    agent = Cgroup(root / workload / "agent").spawn([sys.executable, "-c", AGENT_WITHOUT_WRAPPER],
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        agent.stdin.write("go\n")
        agent.stdin.flush()
        pid = int(agent.stdout.readline())
        where = ""
        deadline = time.monotonic() + 20
        while f"/{workload}/tools/call-" not in where and time.monotonic() < deadline:
            where = Path(f"/proc/{pid}/cgroup").read_text().strip()
            time.sleep(0.05)
        assert f"/{workload}/tools/call-" in where, where
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "0"
        agent.stdin.write("done\n")
        agent.stdin.flush()
        assert reap(agent) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            reap(agent)


# A daemon killed (SIGKILL) while a call was throttled and another frozen leaves them so; the next daemon adopts
# them and, with memory to spare, releases and thaws both within a second. With the in-kernel policy the killed
# daemon's link is still attached at the root: the next one replaces it instead of failing to attach. What the
# budgets learned survives the restart.
@pytest.mark.parametrize("memory_policy", ["user", "kernel"])
def test_a_daemon_killed_mid_throttle_and_mid_freeze_is_recovered_by_the_next(cg, tmp_path, memory_policy):
    import signal
    if memory_policy == "kernel" and "memcg_bpf_ops" not in DECLARED:
        pytest.skip("the in-kernel policy needs memcg_bpf_ops")
    config = f"interval_ms: 50\nmemory_policy: {memory_policy}\ncpu_scheduler: weights\nworkloads: [{{name: w1}}]\n"
    root, state = cg.path / "agentcg", tmp_path / "state"
    path = tmp_path / "agentcg.yaml"
    path.write_text(f"root: {root}\nstate: {state}\nexec_socket: {tmp_path / 'agentcg.sock'}\n{config}")
    first = subprocess.Popen([sys.executable, "-m", "agentcg", "daemon", "--config", str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (state / "status.json").exists() and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.1)
    tools = Cgroup(root / "w1" / "tools")
    held = []
    for name in ("call-throttled", "call-frozen"):
        call = tools.child(name)
        held.append(call.spawn([sys.executable, "-m", "agentcg.harness.memhog", "8", "--hold"],
                               stdout=subprocess.PIPE, text=True))
        assert held[-1].stdout.readline().strip() == "ready"
    (state / "budgets-learned.json").write_text(json.dumps({"test": [300 * MIB]}))
    Cgroup(tools.path / "call-throttled").write("memory.high", 8 * MIB)  # what the ladder does, then the crash
    Cgroup(tools.path / "call-frozen").freeze(True)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    (state / "status.json").unlink()  # so that the next daemon is waited for: it writes it just before its first tick
    try:
        with daemon_running(cg, tmp_path, config) as (_, _, _):
            started = time.monotonic()
            deadline = started + slowness.scaled(10)
            while time.monotonic() < deadline:
                throttled = (tools.path / "call-throttled" / "memory.high").read_text().strip()
                frozen = Cgroup(tools.path / "call-frozen").frozen()
                if throttled == "max" and not frozen:
                    break
                time.sleep(0.05)
            assert throttled == "max" and not frozen, (throttled, frozen)
            recovered_s = time.monotonic() - started
            status = json.loads((state / "status.json").read_text())
            assert status["mechanisms"]["memory"] == memory_policy, status["mechanisms"]
            assert status["budgets_mib"]["test"] >= 300, "the learned peak came back"
            events = [json.loads(x) for x in (state / "events.jsonl").read_text().splitlines()]
            adopted = {e["call"]: e["stage"] for e in events if e["event"] == "call_adopted"}
            assert adopted == {"call-throttled": "throttled", "call-frozen": "frozen"}, adopted
            assert recovered_s < slowness.scaled(1.0), recovered_s
    finally:
        for p in held:
            p.kill()
            reap(p)


def _as_user(uid: int, leaf: Path, *argv: str, timeout: float = 120, input: str | None = None,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """argv as `uid` (no groups), started inside the cgroup `leaf`, with the system Python (the agent's user may
    not reach the checkout's virtualenv): how an agent that is not root runs `agentcg exec`."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(IMPORT_ROOT), "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": "/nonexistent", **(env or {})}
    proc = Cgroup(leaf).spawn(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *argv],
                              stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    out, err = proc.communicate(input, timeout=slowness.scaled(timeout))
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


# An agent that is not root starts its tool calls through the daemon's socket: the command runs as the agent's
# uid, in a new call cgroup of its own workload, removed afterwards. Another uid cannot use that workload, and a
# tool call cannot start a fresh call from inside its own (which would escape its throttle or freeze).
@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists(), reason="needs setpriv (util-linux)")
def test_an_unprivileged_agent_runs_its_tool_calls_through_the_daemon_as_itself(cg, tmp_path):
    config = ("metrics_socket: false\ninterval_ms: 50\nmemory_policy: user\ncpu_scheduler: weights\n"
              "workloads: [{name: w1, owner: 65534}, {name: w2, owner: 65533}]\n")
    sock = Path("/run") / f"agentcg-{tmp_path.name}.sock"  # the agent's user must reach it (not so tmp_path)
    with daemon_running(cg, tmp_path, config, exec_socket=sock) as (_, root, state):
        exec_ = ["/usr/bin/python3", "-m", "agentcg.execclient", "--socket", str(sock), "--workload"]
        leaf = root / "w1" / "agent"
        # the whole path: Claude Code's PreToolUse hook (run as the agent's user) rewrites the Bash command, the
        # agent's shell runs the rewritten command, which asks the daemon for a call and runs the tool as itself
        hook_env = {"AGENTCG_WORKLOAD": "w1", "AGENTCG_EXEC": shlex.join(exec_[:-1])}
        payload = {"tool_name": "Bash", "tool_input": {"command": "id -u; cat /proc/self/cgroup"}, "cwd": "/"}
        hooked = _as_user(65534, leaf, "/usr/bin/python3", "-c", "import sys; from agentcg.hooks import main; "
                          "sys.exit(main('pre'))", input=json.dumps(payload), env=hook_env)
        assert hooked.returncode == 0 and hooked.stdout, hooked.stderr
        command = json.loads(hooked.stdout)["hookSpecificOutput"]["updatedInput"]["command"]
        ran = _as_user(65534, leaf, "sh", "-c", command)
        assert ran.returncode == 0, (command, ran.stderr)
        uid, where = ran.stdout.split()
        assert uid == "65534" and "/w1/tools/call-" in where, ran.stdout
        assert Layout(root, state).calls("w1") == [], "the call is removed once it ended"
        refused = _as_user(65533, leaf, *exec_, "w1", "--", "true")
        assert refused.returncode == 2 and "is not yours" in refused.stderr, refused.stderr
        assert refused.stderr.count("agentcg: error:") == 1 and "Traceback" not in refused.stderr
        nested = _as_user(65534, leaf, *exec_, "w1", "--", *exec_, "w1", "--", "true")
        assert nested.returncode == 2 and "agent leaf may start" in nested.stderr, nested.stderr
        elsewhere = _as_user(65534, root / "w2" / "agent", *exec_, "w1", "--", "true")
        assert elsewhere.returncode == 2 and "agent leaf may start" in elsewhere.stderr, elsewhere.stderr


CHURN = """
import sys
from pathlib import Path
from agentcg.execclient import run
path, n = Path(sys.argv[1]), int(sys.argv[2])
failed = sum(run(path, "w1", "git", ["true"]) != 0 for _ in range(n))
print(failed)
"""


def _fds(pid: int) -> dict[str, int]:
    """Open descriptors of a process and its children, by kind (files, sockets, BPF links and maps, ...)."""
    from agentcg.procs import parent_of
    kinds: dict[str, int] = {}
    children = []
    for entry in Path("/proc").iterdir():  # not /proc/PID/task/TID/children: a kernel may not have it
        try:
            if entry.name.isdigit() and parent_of(int(entry.name)) == pid:
                children.append(int(entry.name))
        except (OSError, ValueError):
            continue
    for p in [pid] + children:
        for fd in Path(f"/proc/{p}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
            kind = target if target.startswith("anon_inode:") else kind
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# Tool calls started and ended through the daemon leave nothing behind: no call cgroup, no state file, no
# descriptor of the daemon or its loaders (BPF links and maps included, where the in-kernel policy runs), after
# 1,000 calls (~0.2 s each under TCG).
@pytest.mark.skipif(not Path("/usr/bin/setpriv").exists(), reason="needs setpriv (util-linux)")
@pytest.mark.timeout(1200)
def test_a_thousand_tool_calls_leak_nothing(cg, tmp_path):
    from agentcg.harness.guest import still_running
    config = "metrics_socket: false\ninterval_ms: 50\ncpu_scheduler: weights\nworkloads: [{name: w1, owner: 65534}]\n"
    sock = Path("/run") / f"agentcg-{tmp_path.name}.sock"  # the agent's user must reach it (not so tmp_path)
    with daemon_running(cg, tmp_path, config, exec_socket=sock) as (daemon, root, state):
        time.sleep(1)  # the first ticks open what every tick keeps open
        before = _fds(daemon.pid)
        for done in range(250, 1001, 250):  # in four runs of the client: the host's watchdog sees it progress
            ran = _as_user(65534, root / "w1" / "agent", "/usr/bin/python3", "-c", CHURN, str(sock), "250",
                           timeout=300)
            assert ran.returncode == 0 and ran.stdout.strip() == "0", (ran.stdout, ran.stderr[-2000:])
            still_running(f"{done}/1000 tool calls")
        deadline = time.monotonic() + 10
        while Layout(root, state).calls("w1") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # a tick or two to forget what it kept for the calls
        assert Layout(root, state).calls("w1") == []
        assert sorted(p.name for p in (state / "w1").iterdir()) == ["workload.json"]
        after = _fds(daemon.pid)
        assert after == before, (before, after)
