"""Tool calls an agent starts without `agentcg exec`: exec events from the eBPF tracer become tool-call cgroups.

A tracer reports every exec inside a watched agent leaf; this side, in the controller's process, gives each such
process its own tool-call cgroup (classified and budgeted from its command line, like `agentcg exec`) and moves it
there, so the graduated response applies to it too. Two tracers speak the same line protocol:
  - libbpf: bpf/exec_tracer.bpf.o (tp_btf, CO-RE) loaded by bpf/loader/exec_loader, built with the kernels agentcg
    builds (AGENTCG_BPF_DIR); starts in milliseconds, needs no compiler or headers on the target;
  - bcc: agentcg.enforce.exec_tracer run by Debian's python3 (python3-bpfcc), for stock kernels; compiles its program
    against the running kernel's headers at start (seconds; tens of seconds under TCG).
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from agentcg.budgets import Budgets
from agentcg.cgroup import cgroup_id
from agentcg.controller import EventLog
from agentcg.layout import Layout, LayoutError
from agentcg.paths import IMPORT_ROOT
from agentcg.procs import alive, cgroup_of, descends_from

SYSTEM_PYTHON = "/usr/bin/python3"


BACKENDS = ("libbpf", "bcc")


class TracerError(Exception):
    pass


def libbpf_tracer() -> tuple[Path, Path] | None:
    """The libbpf tracer's loader and object, where agentcg built them for the running kernel."""
    bpf = os.environ.get("AGENTCG_BPF_DIR")
    if not bpf:
        return None
    loader, obj = Path(bpf) / "exec_loader", Path(bpf) / "exec_tracer.bpf.o"
    return (loader, obj) if loader.is_file() and obj.is_file() else None


def tracer_argv(leaves: list[str], backend: str | None = None) -> tuple[list[str], str]:
    """The command that traces execs in `leaves`, and which backend it is (None: libbpf where built, else bcc)."""
    if backend not in (None, *BACKENDS):
        raise TracerError(f"unknown exec tracer {backend!r}: one of {', '.join(BACKENDS)}")
    built = libbpf_tracer()
    if backend in (None, "libbpf") and built:
        return [str(built[0]), "run", str(built[1]), *leaves], "libbpf"
    if backend == "libbpf":
        raise TracerError("no libbpf exec tracer for this kernel: agentcg builds it with its own kernels "
                          "(AGENTCG_BPF_DIR); use the bcc tracer")
    if not Path(SYSTEM_PYTHON).exists():
        raise TracerError(f"{SYSTEM_PYTHON} not found: the exec tracer needs Debian's python3-bpfcc")
    return [SYSTEM_PYTHON, "-m", "agentcg.enforce.exec_tracer", *leaves], "bcc"










def cmdline(pid: int) -> str:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)


class ExecTracer:
    def __init__(self, layout: Layout, budgets: Budgets, log: EventLog, backend: str | None = None):
        self.layout, self.budgets, self.log = layout, budgets, log
        self.backend = backend
        self._partial, self._pending = b"", []
        self._stderr = None
        self.proc: subprocess.Popen | None = None
        self.leaves: dict[int, str] = {}  # agent leaf cgroup id -> workload
        self.moved = 0

    def start(self, workloads: list[str], timeout: float = 180.0) -> None:
        """Load the BPF program and watch the agents' leaves."""
        leaves = []
        for name in workloads:
            leaf = self.layout.workload(name).path / "agent"
            self.leaves[cgroup_id(leaf)] = name
            leaves.append(str(leaf))
        argv, self.backend = tracer_argv(leaves, self.backend)
        env = dict(os.environ, PYTHONPATH=str(IMPORT_ROOT))
        self._stderr = tempfile.TemporaryFile()  # a pipe nobody reads would block a chatty tracer
        self.proc = subprocess.Popen(argv, cwd="/", env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        deadline, first = time.monotonic() + timeout, []
        while not first and time.monotonic() < deadline:
            first = self._read_lines(deadline - time.monotonic())
            if first is None:
                break
        if not first or '"ready"' not in first[0]:
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")[-1500:]
            self.stop()
            said = first[0].strip() if first else "nothing"
            raise TracerError(f"{self.backend} exec tracer did not start within {timeout:.0f} s: {said} {err}")
        self._pending = first[1:]
        self.log.emit(event="tracer_started", workloads=workloads, backend=self.backend)

    def watch(self, workload: str) -> None:
        """Trace execs in one more workload's agent leaf (one made after the tracer started)."""
        leaf = self.layout.workload(workload).path / "agent"
        cgid = cgroup_id(leaf)
        if cgid in self.leaves or self.proc is None:
            return
        self.proc.stdin.write(f"watch {leaf}\n".encode())
        self.proc.stdin.flush()
        self.leaves[cgid] = workload
        self.log.emit(event="tracer_watching", workload=workload)

    def _read_lines(self, timeout: float) -> list[str] | None:
        """The complete lines the tracer wrote within timeout s ([] if none, None at its EOF). Read from the raw
        pipe: a buffered readline() could keep a second line in its buffer while select() sees an empty pipe."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return []
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return None
        *lines, self._partial = (self._partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines if line.strip()]

    def run(self, stop: threading.Event) -> None:
        """Handle the tracer's lines until `stop`; a line that cannot be handled is logged, never the end."""
        for line in self._pending:
            self._handle_line(line)
        while not stop.is_set() and self.proc and self.proc.poll() is None:
            lines = self._read_lines(0.1)
            if lines is None:
                break
            for line in lines:
                self._handle_line(line)
        if not stop.is_set():
            self.log.emit(event="tracer_trouble", backend=self.backend,
                          error=f"the exec tracer exited (status {self.proc.poll() if self.proc else None})")

    def _handle_line(self, line: str) -> None:
        try:
            self.handle(json.loads(line))
        except Exception as e:  # noqa: BLE001 - a dead reader moves nothing: log it and go on
            self.log.emit(event="tracer_trouble", backend=self.backend, error=f"{type(e).__name__}: {e}",
                          line=line[:200])

    def handle(self, event: dict) -> None:
        """Move the process of one exec event into a new tool-call cgroup, if it is still the agent's.

        An event can be old by the time it is read (the ring buffer, this thread, TCG): its process may be gone
        and its pid given to someone else, another tenant's process included. So the pid is pinned first (a
        pidfd: it names that process, or a dead one, for good) and the process must still be in this agent's leaf
        while the pidfd shows it alive; only then is it moved. A process it forked before the move stayed in the
        leaf: those are moved after it."""
        if "dropped" in event or "error" in event:  # the tracer's own trouble: execs it could not report
            self.log.emit(event="tracer_trouble", backend=self.backend, **event)
            return
        workload = self.leaves.get(event.get("cgid"))
        pid = event.get("pid")
        if workload is None or not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
            return
        leaf = self.layout.workload(workload).path / "agent"
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return  # exited before we saw it: nothing left to place
        try:
            self._place(workload, leaf, pid, pidfd, event)
        finally:
            os.close(pidfd)

    def _place(self, workload: str, leaf: Path, pid: int, pidfd: int, event: dict) -> None:
        try:
            command = cmdline(pid) or event.get("comm", "?")
            inside = cgroup_of(pid) == leaf
        except OSError:
            return
        if not alive(pidfd):
            return  # it ended: the pid may already name another process, whose files we just read
        if not inside:
            self.log.emit(event="call_trace_skipped", workload=workload, pid=pid,
                          reason="no longer in the agent's leaf (moved, or its pid reused by another process)")
            return
        cls = self.budgets.classify(command)
        try:
            cg, meta = self.layout.start_call(workload, command, cls, self.budgets.budget_bytes(cls),
                                              launcher="tracer")
        except (LayoutError, OSError) as e:
            self.log.emit(event="call_trace_failed", workload=workload, pid=pid, command=command, error=str(e))
            return
        try:
            cg.write("cgroup.procs", pid)
            if not alive(pidfd):  # it ended between the check and the move (microseconds): the call is left to
                # the controller, which removes it once empty (never killing what a reused pid may have put there)
                self.log.emit(event="call_trace_failed", workload=workload, pid=pid, command=command,
                              error=f"it exited while being moved to {cg.path}")
                return
            self.layout.unprotect_call(pid)
            followers = self._move_forked_before(pid, leaf, cg)
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
                      latency_s=round(time.time() - meta.started, 4), followers=followers)

    def _move_forked_before(self, pid: int, leaf: Path, cg) -> int:
        """Processes still in the agent's leaf that descend from `pid` (forked before it was moved, so left
        behind, fork without exec included) go to its call too. How many were moved."""
        moved = 0
        for _ in range(3):  # a process forking while we look: look again
            stragglers = []
            try:
                procs = [int(x) for x in (leaf / "cgroup.procs").read_text().split()]
            except OSError:
                return moved
            for p in procs:
                if p != pid and descends_from(p, pid):
                    stragglers.append(p)
            if not stragglers:
                return moved
            for p in stragglers:
                try:
                    cg.write("cgroup.procs", p)
                    self.layout.unprotect_call(p)
                    moved += 1
                except OSError:
                    pass  # it ended meanwhile
        return moved

    def stop(self) -> None:
        """Detach: closing its stdin makes either tracer exit; one that does not is killed."""
        if self.proc:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
