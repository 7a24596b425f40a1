"""CPU scheduling for tool calls: agentcg's sched_ext scheduler (bpf/scx_agent.bpf.c) and its cpu.weight fallback.

Interactive tool calls (git, explore, other commands, the agent framework) are LATENCY; test suites, builds,
installs and Python scripts are BULK. With sched_ext, `SchedExt` keeps `bpf/loader/scx_loader` running: it
attaches the scheduler and holds it while we send it the class of each tool-call cgroup. Without sched_ext, or
once the kernel reverted to its default scheduler (an error in ours, the kernel's watchdog), the same classes
become cpu.weight values (`apply_cpu_weight`).
"""
from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from agentcg import bpf_abi
from agentcg.cgroup import cgroup_id

SCHED_EXT = Path("/sys/kernel/sched_ext")

_ABI = bpf_abi.constants("scx_agent.h")  # the scheduler's classes (bpf/include/scx_agent.h)
NORMAL, LATENCY, BULK = _ABI["CLASS_NORMAL"], _ABI["CLASS_LATENCY"], _ABI["CLASS_BULK"]
# agentcg.classify categories, plus "agent" (the agent framework's own cgroup).
_CLASSES = {"test": BULK, "install": BULK, "build": BULK, "python": BULK,
            "git": LATENCY, "explore": LATENCY, "other": LATENCY, "agent": LATENCY}
CPU_WEIGHT = {NORMAL: 100, LATENCY: 200, BULK: 50}


class SchedError(Exception):
    def __init__(self, message: str, stage: str = "?", errno: int = 0):
        super().__init__(message)
        self.stage, self.errno = stage, errno


def sched_class(category: str) -> int:
    """The scheduling class of a tool-call category (unknown categories, e.g. non-Bash tools: NORMAL)."""
    return _CLASSES.get(category, NORMAL)


def apply_cpu_weight(cgroup: Path, cls: int) -> None:
    """The fallback without sched_ext: the class as the tool-call cgroup's cpu.weight."""
    (Path(cgroup) / "cpu.weight").write_text(str(CPU_WEIGHT.get(cls, CPU_WEIGHT[NORMAL])))


def kernel_state(root: Path = SCHED_EXT) -> str:
    """sched_ext's state ("enabled", "disabled", "enabling", "disabling"), "unsupported" without sched_ext."""
    try:
        return (root / "state").read_text().strip()
    except FileNotFoundError:
        return "unsupported"


def available(root: Path = SCHED_EXT) -> bool:
    """The kernel has sched_ext and no BPF scheduler is loaded."""
    return kernel_state(root) == "disabled"


def loader_argv(bpf_dir: Path, slice_us: int | None = None) -> list[str]:
    argv = [str(Path(bpf_dir) / "scx_loader"), "run", str(Path(bpf_dir) / "scx_agent.bpf.o")]
    return argv + ["--slice-us", str(slice_us)] if slice_us else argv


def parse_line(line: str) -> dict:
    """One line of the loader's stdout as a dict; a line that is not a JSON object is reported as an error."""
    try:
        msg = json.loads(line)
    except ValueError:
        msg = None
    if not isinstance(msg, dict):
        return {"ok": False, "event": "garbage", "error": f"not a JSON object from the loader: {line.strip()!r}"}
    return msg


def exit_reason(msg: dict) -> str:
    """The text of an "exited" event: the kernel's reason and the scheduler's message."""
    reason = msg.get("reason") or "unknown"
    return f"{reason}: {msg['msg']}" if msg.get("msg") else reason


class SchedExt:
    """agentcg's sched_ext scheduler, attached for as long as this object's loader process runs."""

    def __init__(self, argv: list[str] | None = None, start_timeout: float = 30.0, reply_timeout: float = 10.0):
        self._argv = argv  # None: bpf_dir/scx_loader (tests pass a fake loader)
        self.start_timeout, self.reply_timeout = start_timeout, reply_timeout
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._lines: queue.Queue = queue.Queue()
        self._one_command = threading.Lock()  # the controller's thread and its callers share one loader session
        self._reader: threading.Thread | None = None
        self._exit: str | None = None
        self._returncode: int | None = None
        self.attached: dict | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------------

    def start(self, bpf_dir: Path | None = None, slice_us: int | None = None) -> None:
        """Start the loader and wait until the scheduler is attached; SchedError with the loader's message if not."""
        if self._proc is not None:
            raise SchedError("already started", "start")
        argv = self._argv or loader_argv(Path(bpf_dir), slice_us)
        self._stderr = tempfile.TemporaryFile()
        self._exit = self._returncode = None
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                          text=True, bufsize=1)
        except OSError as e:
            self._stderr.close()
            raise SchedError(f"cannot run {argv[0]}: {e}", "spawn", e.errno or 0)
        self._reader = threading.Thread(target=self._read, args=(self._proc.stdout,), daemon=True)
        self._reader.start()
        msg = self._next(self.start_timeout)
        if msg is None or not msg.get("ok") or msg.get("event") != "attached":
            error = self._failure(msg, "no attached line within %.0f s" % self.start_timeout)
            self.stop(timeout=1.0)
            raise error
        self.attached = msg

    def stop(self, timeout: float = 15.0) -> None:
        """Detach (the kernel reverts to its default scheduler) and reap the loader; idempotent.

        The loader is asked to quit; one that does not within `timeout` s gets SIGTERM (it detaches on it too),
        then SIGKILL (the kernel drops the link with its last fd)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self._reader is not None:
            self._reader.join(timeout=5)
        with self._one_command:  # the loader is gone: a command still waiting has its EOF by now
            self._poll_locked()  # keeps why it stopped, if it stopped before we asked
        self._returncode = proc.returncode
        if self._stderr is not None:
            self._stderr.close()
        self._proc = self._reader = self._stderr = None

    @property
    def returncode(self) -> int | None:
        """The loader's exit status once it exited (0: detached, 2: the kernel disabled the scheduler), else None."""
        return self._proc.poll() if self._proc is not None else self._returncode

    @property
    def running(self) -> bool:
        return self._proc is not None and self.poll() is None

    def poll(self) -> str | None:
        """None while the scheduler runs; why it stopped once the kernel reverted or the loader died."""
        if not self._one_command.acquire(blocking=False):
            return self._exit  # a command is waiting for its reply: draining here would swallow it
        try:
            return self._poll_locked()
        finally:
            self._one_command.release()

    def _poll_locked(self) -> str | None:
        if self._exit is None:
            self._drain()
        if self._exit is None and self._proc is not None and self._proc.poll() is not None:
            self._reader.join(timeout=5)
            self._drain()
            if self._exit is None:
                self._exit = f"loader exited with status {self._proc.returncode}: {self._stderr_tail()}"
        return self._exit

    # ---- commands -------------------------------------------------------------------------------------------

    def set_class(self, cgroup: Path, cls: int, workload: int = 0) -> None:
        self._command(f"class {cgroup_id(cgroup)} {int(cls)} {int(workload)}", "class")

    def forget(self, cgroup: Path) -> None:
        """Drop a cgroup from the scheduler's map (before or after it is removed: its id is the directory's)."""
        try:
            cgid = cgroup_id(cgroup)
        except FileNotFoundError:
            return
        self._command(f"unclass {cgid}", "unclass")

    def forget_id(self, cgid: int) -> None:
        self._command(f"unclass {int(cgid)}", "unclass")

    def stats(self) -> dict:
        msg = self._command("stats", "stats")
        return {k: v for k, v in msg.items() if k not in ("ok", "event")}

    def force_error(self) -> None:
        """Make the scheduler call scx_bpf_error(): the kernel reverts to its default scheduler (fail-safe test).
        The revert can overtake the loader's reply: an exit for the forced error is the command's success."""
        try:
            self._command("error", "error")
        except SchedError:
            if "error forced by user space" not in str(self._exit or ""):
                raise

    # ---- internals ------------------------------------------------------------------------------------------

    def _read(self, stdout) -> None:
        for line in stdout:
            if line.strip():
                self._lines.put(parse_line(line))
        self._lines.put(None)  # EOF

    def _note(self, msg: dict | None) -> dict | None:
        if msg is not None and msg.get("event") == "exited":
            self._exit = exit_reason(msg)
        return msg

    def _drain(self) -> None:
        while True:
            try:
                msg = self._lines.get_nowait()
            except queue.Empty:
                return
            self._note(msg)

    def _next(self, timeout: float) -> dict | None:
        """The next line (None on EOF or timeout); "exited" events are noted on the way."""
        try:
            return self._note(self._lines.get(timeout=timeout))
        except queue.Empty:
            return None

    def _command(self, line: str, event: str) -> dict:
        with self._one_command:  # a reply belongs to the command that asked for it
            return self._command_locked(line, event)

    def _command_locked(self, line: str, event: str) -> dict:
        if self._proc is None:
            raise SchedError("scheduler not started", "command")
        if self._poll_locked() is not None:
            raise SchedError(f"scheduler not running: {self._exit}", "command")
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise SchedError(f"loader gone: {e}", "command")
        deadline = time.monotonic() + self.reply_timeout
        while True:
            msg = self._next(max(0.0, deadline - time.monotonic()))
            if msg is None:
                raise self._failure(msg, f"no reply to {line!r}")
            if msg.get("event") == "exited":
                raise SchedError(f"scheduler exited: {self._exit}", "command")
            if not msg.get("ok"):
                raise SchedError(msg.get("error", str(msg)), msg.get("stage", "command"), msg.get("errno", 0))
            if msg.get("event") == event:
                return msg

    def _failure(self, msg: dict | None, fallback: str) -> SchedError:
        if msg is not None and msg.get("event") == "exited":
            return SchedError(f"scheduler exited: {exit_reason(msg)}", "exited")
        if msg is not None:
            detail = self._stderr_tail(1000)
            text = msg.get("error", str(msg)) + (f"\n{detail}" if detail else "")
            return SchedError(text, msg.get("stage", "?"), msg.get("errno", 0))
        if self._proc is not None:
            try:
                self._proc.wait(timeout=1.0)  # stdout closed: the loader is exiting
            except subprocess.TimeoutExpired:
                pass
        if self._proc is not None and self._proc.poll() is not None:
            return SchedError(f"loader exited with status {self._proc.returncode}: {self._stderr_tail()}", "loader")
        return SchedError(fallback, "timeout")

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-limit:].strip()
