"""Which enforcement mechanisms the daemon uses on this host: the one place that decision is made.

Three choices, each `auto` by default (the exec tracer: off), each logged with its reason:
  - memory: `kernel` (bpf/memcg_policy on the charge path, agentcg.enforce.inkernel) where the kernel has memcg_bpf_ops in
    the layout our policy is built for (BTF) and its BPF objects are built, else `user` (the ladder alone);
  - cpu: `sched_ext` (bpf/scx_agent, agentcg.enforce.sched) where the kernel has sched_ext, no other BPF scheduler is
    loaded and the loader is built, else `weights` (cpu.weight per tool class, always set);
  - exec tracer: `libbpf` (built with agentcg's kernels) or `bcc` (Debian's python3-bpfcc) catches tool processes
    an agent starts without `agentcg exec`.
Asking for a mechanism by name where it cannot run is an error (one message, nothing left attached); `auto`
falls back and says why.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from agentcg.cgroup import cgroup_id
from agentcg.enforce import sched

MEMORY_CHOICES = ("auto", "kernel", "user")
CPU_CHOICES = ("auto", "sched_ext", "weights")
TRACER_CHOICES = ("off", "auto", "libbpf", "bcc")


class MechanismError(Exception):
    pass


def why_no_kernel_memory() -> str | None:
    from agentcg.enforce.inkernel import why_not
    return why_not()


def why_no_sched_ext() -> str | None:
    state = sched.kernel_state()
    if state == "unsupported":
        return "the kernel has no sched_ext"
    if state != "disabled":
        return f"sched_ext is {state}: another BPF scheduler is loaded"
    from agentcg.enforce.memcg_bpf import LoaderError, bpf_dir
    try:
        loader = bpf_dir() / "scx_loader"
    except LoaderError as e:
        return str(e)
    return None if loader.is_file() else f"{loader} is not built"


def pick(wanted: str, choices: tuple[str, ...], preferred: str, fallback: str, why_not) -> tuple[str, str]:
    """(mechanism, reason) for a setting: `auto` takes `preferred` when why_not() says nothing against it."""
    if wanted not in choices:
        raise MechanismError(f"unknown setting {wanted!r}: one of {', '.join(choices)}")
    if wanted == fallback:
        return fallback, "configured"
    reason = why_not()
    if reason is None:
        return preferred, "available" if wanted == "auto" else "configured"
    if wanted == preferred:
        raise MechanismError(f"{preferred} was asked for but cannot run: {reason}")
    return fallback, reason


@dataclass
class Mechanisms:
    """The chosen mechanisms, started: hand `inkernel` and `scheduler` to the Controller, run the tracer."""
    memory: str = "user"
    cpu: str = "weights"
    tracer: str = "off"
    reasons: dict = field(default_factory=dict)
    inkernel: object = None
    scheduler: sched.SchedExt | None = None
    exec_tracer: object = None
    _threads: list = field(default_factory=list)

    def summary(self) -> dict:
        return {"memory": self.memory, "cpu": self.cpu, "tracer": self.tracer, "reasons": self.reasons}

    def close(self) -> None:
        """Detach everything started; safe after a partial start."""
        for stop, thread in self._threads:  # the tracer's reader first: it reads the pipe stop() closes
            stop.set()
            thread.join(timeout=5)
        self._threads.clear()
        if self.exec_tracer is not None:
            self.exec_tracer.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.inkernel is not None:
            self.inkernel.close()
        self.exec_tracer = self.scheduler = self.inkernel = None


def start(memory: str, cpu: str, tracer: str, root: Path, reserve_bytes: int) -> Mechanisms:
    """Choose and start the memory policy and scheduler for the tree at `root` (the tracer starts later, with
    the controller it reports to: start_tracer)."""
    mem, mem_why = pick(memory, MEMORY_CHOICES, "kernel", "user", why_no_kernel_memory)
    cpu_m, cpu_why = pick(cpu, CPU_CHOICES, "sched_ext", "weights", why_no_sched_ext)
    if tracer not in TRACER_CHOICES:
        raise MechanismError(f"unknown exec tracer {tracer!r}: one of {', '.join(TRACER_CHOICES)}")
    m = Mechanisms(memory=mem, cpu=cpu_m, tracer=tracer, reasons={"memory": mem_why, "cpu": cpu_why})
    try:
        if mem == "kernel":
            from agentcg.enforce.inkernel import InKernelError, InKernelPolicy
            try:
                m.inkernel = InKernelPolicy(root, reserve_bytes, pin_name=f"agentcg-root-{cgroup_id(root)}").open()
            except InKernelError as e:
                raise MechanismError(str(e)) from e
        if cpu_m == "sched_ext":
            from agentcg.enforce.memcg_bpf import bpf_dir
            scheduler = sched.SchedExt()
            try:
                scheduler.start(bpf_dir())
            except sched.SchedError as e:
                raise MechanismError(f"sched_ext scheduler: {e}") from e
            m.scheduler = scheduler
    except BaseException:
        m.close()
        raise
    return m


def start_tracer(m: Mechanisms, layout, budgets, log, workloads: list[str]) -> None:
    """Start the exec tracer on the workloads' agent leaves (nothing when it is off); workloads made later are
    added as the controller finds them (Controller.tracer, ExecTracer.watch)."""
    if m.tracer == "off":
        return
    from agentcg.enforce.tracing import ExecTracer, TracerError
    tracer = ExecTracer(layout, budgets, log, backend=None if m.tracer == "auto" else m.tracer)
    try:
        tracer.start(workloads)
    except TracerError as e:
        if m.tracer != "auto":
            raise MechanismError(str(e)) from e
        m.tracer, m.reasons["tracer"] = "off", str(e)  # auto: run without it, and say why
        return
    m.exec_tracer, m.tracer = tracer, tracer.backend
    m.reasons["tracer"] = "configured"
    stop = threading.Event()
    thread = threading.Thread(target=tracer.run, args=(stop,), daemon=True)
    thread.start()
    m._threads.append((stop, thread))
