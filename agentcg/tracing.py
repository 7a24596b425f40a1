"""Tool calls an agent starts without `agentcg exec`: exec events from the eBPF tracer become tool-call cgroups.

agentcg.exec_tracer (BCC, run by Debian's python3) reports every exec inside a watched agent leaf; this side,
in the controller's process, gives each such process its own tool-call cgroup (classified and budgeted from its
command line, like `agentcg exec`) and moves it there, so the graduated response applies to it too.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
from pathlib import Path

from .budgets import Budgets
from .controller import EventLog
from .kernels import REPO_ROOT
from .layout import Layout, LayoutError

SYSTEM_PYTHON = "/usr/bin/python3"


class TracerError(Exception):
    pass


def cmdline(pid: int) -> str:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


class ExecTracer:
    def __init__(self, layout: Layout, budgets: Budgets, log: EventLog):
        self.layout, self.budgets, self.log = layout, budgets, log
        self.proc: subprocess.Popen | None = None
        self.leaves: dict[int, str] = {}  # agent leaf cgroup id -> workload
        self.moved = 0

    def start(self, workloads: list[str], timeout: float = 180.0) -> None:
        """Load the BPF program (BCC compiles it: seconds) and watch the agents' leaves."""
        if not Path(SYSTEM_PYTHON).exists():
            raise TracerError(f"{SYSTEM_PYTHON} not found: the exec tracer needs Debian's python3-bpfcc")
        leaves = []
        for name in workloads:
            leaf = self.layout.workload(name).path / "agent"
            self.leaves[os.stat(leaf).st_ino] = name
            leaves.append(str(leaf))
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
        self.proc = subprocess.Popen([SYSTEM_PYTHON, "-m", "agentcg.exec_tracer", *leaves], cwd=REPO_ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if '"ready"' not in line:
            self.stop()
            err = self.proc.stderr.read()[-1500:] if self.proc.stderr else ""
            raise TracerError(f"exec tracer did not start within {timeout:.0f} s: {line.strip()} {err}")
        self.log.emit(event="tracer_started", workloads=workloads)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() and self.proc and self.proc.poll() is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    self.handle(json.loads(line))

    def handle(self, event: dict) -> None:
        workload = self.leaves.get(event.get("cgid"))
        if workload is None:
            return
        pid = event["pid"]
        try:
            command = cmdline(pid) or event.get("comm", "?")
        except OSError:
            return  # exited before we saw it: nothing left to place
        cls = self.budgets.classify(command)
        try:
            cg, meta = self.layout.start_call(workload, command, cls, self.budgets.budget_bytes(cls),
                                              launcher="tracer")
        except LayoutError as e:
            self.log.emit(event="call_trace_failed", workload=workload, pid=pid, command=command, error=str(e))
            return
        try:
            cg.write("cgroup.procs", pid)
            self.layout.unprotect_call(pid)
        except OSError as e:
            self.layout.finish_call(workload, meta.call)
            if Path(f"/proc/{pid}").exists():  # still running, yet left in the agent's leaf: say why
                self.log.emit(event="call_trace_failed", workload=workload, pid=pid, command=command,
                              error=f"moving it to {cg.path}: {e.strerror}")
            return
        meta.pid = pid  # after the move: the controller reads an empty call with a pid as finished
        self.layout.save_meta(meta)
        self.moved += 1
        self.log.emit(event="call_traced", workload=workload, call=meta.call, pid=pid, command=command, cls=cls,
                      latency_s=round(time.time() - meta.started, 4))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
