"""Tool calls for agents that do not run as root: `agentcg exec` asks the daemon, over a Unix socket any local
process may connect to, to move the caller into a new tool-call cgroup of a workload its uid owns; the caller then
execs the command as itself. Nothing in the path runs the tool as root (the model is `systemd-run --scope`).

The caller's identity is the kernel's (SO_PEERCRED: the connecting process, its uid), never what the request says,
and the process is pinned (a pidfd) before anything is done to it. A request is one JSON line, the answer one:
  {"op": "start", "workload": W, "command": C, "class": K or null}
      the caller must be in W's agent leaf (a tool call cannot start a fresh call to escape its own throttle or
      freeze) and its uid W's owner (`agentcg workload create --owner`, the daemon's `owner:`); it is moved into a
      new call of W, classified and budgeted as `agentcg exec` does for root, and its parent is recorded as the
      call's waiter -> {"ok": true, "call": N}
  {"op": "finish", "workload": W, "call": N}
      from the call's waiter (or root): the call's cgroup is removed -> {"ok": true, "killed_reason": R or null}
Anything else, or a check that fails, is {"ok": false, "error": "..."}. One request at a time, 5 s each.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import struct
from pathlib import Path

from agentcg import sockets
from agentcg.budgets import Budgets
from agentcg.cgroup import Cgroup
from agentcg.classify import CATEGORIES
from agentcg.execclient import DEFAULT_SOCKET, ExecSocketError
from agentcg.layout import Layout, LayoutError, check_name
from agentcg.procs import alive, cgroup_of, parent_of

MAX_REQUEST = 64 * 1024


def peer(conn: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end, as the kernel saw it connect."""
    pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    return pid, uid








class Service:
    """What the socket's requests do (the daemon's layout and budgets); no socket in here, so it can be tested."""

    def __init__(self, layout: Layout, budgets: Budgets, log=None):
        self.layout, self.budgets, self.log = layout, budgets, log

    def answer(self, request, pid: int, uid: int) -> dict:
        try:
            if not isinstance(request, dict) or request.get("op") not in ("start", "finish"):
                raise ExecSocketError("a request is {\"op\": \"start\" | \"finish\", ...}")
            workload = request.get("workload")
            check_name(workload)
            if workload not in self.layout.workloads():
                raise ExecSocketError(f"no workload {workload!r}")
            if uid != 0 and self.layout.owner(workload) != uid:
                raise ExecSocketError(f"workload {workload!r} is not yours (uid {uid})")
            if request["op"] == "start":
                return {"ok": True, "call": self._start(workload, request, pid)}
            return {"ok": True, "killed_reason": self._finish(workload, request, pid, uid)}
        except (ExecSocketError, LayoutError) as e:
            return {"ok": False, "error": str(e)}

    def _start(self, workload: str, request: dict, pid: int) -> str:
        command, cls = request.get("command"), request.get("class")
        if not isinstance(command, str) or not command or len(command) > MAX_REQUEST:
            raise ExecSocketError("command must be a non-empty string")
        if cls is not None and cls not in CATEGORIES:
            raise ExecSocketError(f"class must be one of {', '.join(CATEGORIES)}")
        cls = cls or self.budgets.classify(command)
        leaf = self.layout.workload(workload).path / "agent"
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            raise ExecSocketError("the caller is gone") from None
        try:
            try:
                inside, waiter = cgroup_of(pid) == leaf, parent_of(pid)
            except (OSError, ValueError):
                raise ExecSocketError("the caller is gone") from None
            if not alive(pidfd):
                raise ExecSocketError("the caller is gone")
            if not inside:
                raise ExecSocketError(f"only a process in {workload}'s agent leaf may start a tool call of it")
            cg, meta = self.layout.start_call(workload, command, cls, self.budgets.budget_bytes(cls))
            try:
                cg.write("cgroup.procs", pid)
                if not alive(pidfd):
                    raise ExecSocketError("the caller exited while being moved")
                self.layout.unprotect_call(pid)
            except (OSError, ExecSocketError) as e:
                if not Cgroup(cg.path).populated():
                    self.layout.finish_call(workload, meta.call)
                raise ExecSocketError(f"cannot move the caller into {meta.call}: {e}") from None
            meta.pid, meta.waiter = pid, waiter
            self.layout.save_meta(meta)
        finally:
            os.close(pidfd)
        if self.log:
            self.log.emit(event="call_started_for", workload=workload, call=meta.call, pid=pid, cls=cls)
        return meta.call

    def _finish(self, workload: str, request: dict, pid: int, uid: int) -> str | None:
        call = request.get("call")
        check_name(call, "call")
        meta = self.layout.load_meta(workload, call)
        if meta is None:
            raise ExecSocketError(f"no call {call!r} in {workload!r}")
        if uid != 0 and meta.waiter != pid:
            raise ExecSocketError(f"call {call!r} was not started for this process")
        final = self.layout.finish_call(workload, call)
        return final.killed_reason if final else None


class _Handler(socketserver.StreamRequestHandler):
    timeout = 5

    def handle(self):
        try:
            pid, uid = peer(self.connection)
            line = self.rfile.readline(MAX_REQUEST + 1)
            request = json.loads(line) if line and len(line) <= MAX_REQUEST else None
        except (OSError, ValueError, RecursionError):
            return
        service = self.server.service
        answer = service.answer(request, pid, uid) if service else {"ok": False, "error": "the daemon is starting"}
        try:
            self.wfile.write((json.dumps(answer) + "\n").encode())
        except OSError:
            pass


def serve(service: Service | None, path: Path = DEFAULT_SOCKET):
    """The socket (mode 0666: who may do what is decided per request) served from a thread; stop with stop()."""
    try:
        server = sockets.bind_unix(path, _Handler, 0o666)
    except OSError as e:
        raise ExecSocketError(f"cannot serve tool calls on {path}: {e.strerror or e}") from None
    server.service = service
    return sockets.start(server, "agentcg-exec")


stop = sockets.stop
