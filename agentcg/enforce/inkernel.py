"""The in-kernel path of the controller: bpf/memcg_policy.bpf.c attached to agentcg's root, its maps kept in step
with the tree, its throttle events streamed back.

Picked when the running kernel has memcg_bpf_ops in the layout our policy is built for (v7, read from BTF) and
the BPF objects for this kernel are built; otherwise the controller runs the user-space path alone (`why_not`
says why). The decisions stay where they are: agentcg.ladder decides freeze and kill in user space; the kernel
adds the first rung, a delay on the charge path within one charge batch of a tool call going over its budget
while its workload is short of headroom (the ladder's throttle condition, with the same priority-scaled
reserve); and the agents' turn: while their shared headroom is short one agent grows at a time, the others
below high priority wait (agentcg.ladder.agent_turns is the same rule in user space). Its ring-buffer events
wake the controller at once instead of at its next tick.

One link at the root: copy-down inheritance gives every workload and tool cgroup created later the same ops, so
a new tool call needs one map update, not an attach. The link is pinned (bpffs) and dropped on close.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import time
import uuid
from collections import deque
from pathlib import Path

from agentcg import features
from agentcg.cgroup import Cgroup, cgroup_id
from agentcg.enforce import memcg_bpf
from agentcg.enforce.memcg_bpf import POLICY_AGENT, PRIO_HIGH, PROTECT_LOW, PROTECT_MIN, Policy, ThrottleEvent
from agentcg.ladder import reserve_for
from agentcg.vocab import PAGE

REPLY_TIMEOUT_S = 10.0
DEFAULT_DELAYS_MS = (20, 2000)  # a delayed charge batch waits base..max ms (grows with how far over it is)


class InKernelError(Exception):
    pass


def why_not(probed: dict | None = None) -> str | None:
    """None when the in-kernel path can run here, else the reason it cannot."""
    probed = probed if probed is not None else features.probe()
    if not probed["features"].get("memcg_bpf_ops"):
        return "the kernel has no memcg_bpf_ops (BTF)"
    variant = probed["memcg_bpf_ops"].get("variant")
    if variant != "v7":
        return f"memcg_bpf_ops layout {variant or 'unknown'}: agentcg's policy is built for v7"
    try:
        obj = memcg_bpf.obj("memcg_policy")
    except memcg_bpf.LoaderError as e:
        return str(e)
    if not obj.exists():
        return f"{obj} is not built"
    return None


class InKernelPolicy:
    """A session with the attached policy: map updates and the event stream through one `memcg_loader serve`."""

    def __init__(self, root: Path, reserve_bytes: int, base_delay_ms: int = DEFAULT_DELAYS_MS[0],
                 max_delay_ms: int = DEFAULT_DELAYS_MS[1], pin_name: str | None = None):
        """pin_name: a fixed name under bpffs (the daemon's, one per root), so a session that was killed before it
        could detach is found and replaced by the next; default a fresh one."""
        self.root, self.reserve_bytes = Path(root), reserve_bytes
        self.sets = {"base_delay_ms": base_delay_ms, "max_delay_ms": max_delay_ms}
        self.pin = memcg_bpf.BPFFS / (pin_name or f"agentcg-{uuid.uuid4().hex[:8]}")
        self.att: memcg_bpf.Attachment | None = None
        self.proc: subprocess.Popen | None = None
        self.ids: dict[int, Path] = {}   # cgroup id -> path, for the events
        self._buf = b""
        self._replies: deque[dict] = deque()
        self._events: deque[ThrottleEvent] = deque()

    # ---- life cycle ---------------------------------------------------------------------------------------

    def open(self) -> "InKernelPolicy":
        try:
            memcg_bpf.ensure_bpffs()
            if self.pin.exists():
                self._release_leftover()
            self.pin.mkdir()
            self.att = memcg_bpf.attach(memcg_bpf.obj("memcg_policy"), self.root, self.pin, sets=self.sets)
            self.proc = subprocess.Popen([str(memcg_bpf.bpf_dir() / "memcg_loader"), "serve", "--pin",
                                          str(self.pin), "--map", "events"], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            os.set_blocking(self.proc.stdout.fileno(), False)
            first = self._reply()
            if not first.get("ok"):
                raise InKernelError(f"memcg_loader serve: {first.get('error')}")
        except (OSError, memcg_bpf.LoaderError, InKernelError) as e:
            self.close()
            raise InKernelError(f"cannot attach the in-kernel policy to {self.root}: {e}") from e
        return self

    def _release_leftover(self) -> None:
        """Detach and unpin what a killed session left at this pin (its link still holds the root)."""
        leftover = memcg_bpf.Attachment(self.pin, 0, 0, 0)
        try:
            leftover.detach()
        except memcg_bpf.LoaderError:
            pass  # nothing attached any more: only the pins are left
        try:
            leftover.unpin()
        except memcg_bpf.LoaderError:
            pass
        if self.pin.exists():
            for stale in self.pin.iterdir():
                stale.unlink()
            self.pin.rmdir()

    def close(self) -> None:
        """Stop the session, detach and unpin; safe to call twice and after a failed open."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        if self.att is not None:
            try:
                self.att.release()
            except memcg_bpf.LoaderError:
                pass
            self.att = None
        if self.pin.exists():
            for leftover in self.pin.iterdir():
                leftover.unlink()
            self.pin.rmdir()

    def __enter__(self) -> "InKernelPolicy":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def fileno(self) -> int:
        """Readable when events (or replies) arrived: the controller's loop waits on it."""
        return self.proc.stdout.fileno()

    # ---- what user space tells the policy ----------------------------------------------------------------

    def track_call(self, cg: Cgroup, budget: int, priority: str, tool_class: int = 0) -> None:
        reserve = reserve_for(self.reserve_bytes, priority)
        self._set(cg.path, Policy(priority=memcg_bpf.priority_code(priority), tool_class=tool_class,
                                  budget_pages=max(1, budget // PAGE), reserve_pages=max(1, reserve // PAGE)))

    def track_workload(self, wl: Cgroup, priority: str) -> None:
        """The agent leaf is protected from reclaim and, below high priority, waits for its turn to grow while
        the shared headroom is under its priority's reserve (the policy's agents' turn); a high-priority
        workload is protected as a whole (below_low), and its agent leaf also from reclaim at memory.min
        strength."""
        agent_flags = POLICY_AGENT | PROTECT_LOW | (PROTECT_MIN if priority == "high" else 0)
        reserve = reserve_for(self.reserve_bytes, priority)
        self._set(wl.path / "agent", Policy(priority=memcg_bpf.priority_code(priority), flags=agent_flags,
                                            reserve_pages=reserve // PAGE))
        if priority == "high":
            self._set(wl.path, Policy(priority=PRIO_HIGH, flags=PROTECT_LOW))

    def track(self, path: Path, policy: Policy) -> None:
        """Give one cgroup a policy as it is (the other track_* methods compose agentcg's own)."""
        self._set(path, policy)

    def forget(self, path: Path) -> None:
        cgid = self._cgid(path)
        if cgid is not None:
            self.forget_id(cgid)

    def forget_id(self, cgid: int) -> None:
        """Drop a cgroup's policy by id (also once its directory is gone)."""
        if cgid not in self.ids:
            return
        self.ids.pop(cgid, None)
        self._request(f"delete policies {cgid.to_bytes(8, 'little').hex()}", missing_ok=True)

    def stats(self, path: Path) -> Policy | None:
        cgid = self._cgid(path)
        if cgid is None:
            return None
        r = self._request(f"lookup policies {cgid.to_bytes(8, 'little').hex()}", missing_ok=True)
        return Policy.unpack(bytes.fromhex(r["value_hex"])) if r.get("ok") else None

    # ---- what the policy tells user space ----------------------------------------------------------------

    def pending(self) -> bool:
        return bool(self._events)

    def events(self) -> list[tuple[ThrottleEvent, Path | None]]:
        """Throttle events that arrived since the last call, with the cgroup each is about (None: unknown)."""
        self._pump(0)
        out = [(e, self.ids.get(e.cgid)) for e in self._events]
        self._events.clear()
        return out

    # ---- plumbing ---------------------------------------------------------------------------------------

    @staticmethod
    def _cgid(path: Path) -> int | None:
        try:
            return cgroup_id(path)
        except OSError:
            return None

    def _set(self, path: Path, policy: Policy) -> None:
        cgid = self._cgid(path)
        if cgid is None:
            return  # gone already
        self._request(f"update policies {cgid.to_bytes(8, 'little').hex()} {policy.pack().hex()}")
        self.ids[cgid] = path

    def _request(self, line: str, missing_ok: bool = False) -> dict:
        if self.proc is None:
            raise InKernelError("the in-kernel policy session is closed")
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError as e:
            raise InKernelError("memcg_loader serve exited") from e
        reply = self._reply()
        if not reply.get("ok") and not (missing_ok and reply.get("errno") == 2):
            raise InKernelError(f"{line.split()[0]}: {reply.get('error')}")
        return reply

    def _reply(self) -> dict:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while not self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InKernelError("memcg_loader serve did not answer")
            if not self._pump(left) and self.proc.poll() is not None:
                raise InKernelError(f"memcg_loader serve exited ({self.proc.returncode})")
        return self._replies.popleft()

    def _pump(self, timeout: float) -> bool:
        """Read what the loader wrote; False on EOF."""
        fd = self.proc.stdout.fileno()
        if not select.select([fd], [], [], timeout)[0]:
            return True
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for raw in lines:
            msg = json.loads(raw)
            if "record" in msg:
                self._events.append(memcg_bpf.parse_event(bytes.fromhex(msg["record"])))
            else:
                self._replies.append(msg)
        return True
