"""Claude Code hooks: tool-call boundaries from the agent itself.

Install ci/claude-code-hooks.json into the agent's Claude Code settings (`.claude/settings.json`). For every
tool use Claude Code runs `agentcg hook pre` before and `agentcg hook post` after, with the hook's JSON on stdin:
- with AGENTCG_EVENTS set, both append a start/end event (tool, command, tool_use_id) for `agentcg record`;
- with AGENTCG_WORKLOAD set, `pre` rewrites a Bash command to run through `agentcg exec --workload ...`
  (PreToolUse `updatedInput`), so the command runs as its own tool call under agentcg's graduated response,
  and a kill by agentcg comes back to the agent as the tool's output ("killed by agentcg: <reason>").
A hook must never break the agent: on malformed input it prints nothing and exits 0.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

from agentcg.classify import classify

WRAPPER = "agentcg exec"


def pre(payload: dict, env: dict) -> dict | None:
    """The PreToolUse answer (None: no change) for one hook payload."""
    _record(payload, "start", env)
    tool, tool_input = payload.get("tool_name"), payload.get("tool_input") or {}
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    workload = env.get("AGENTCG_WORKLOAD")
    if tool != "Bash" or not command or not workload or command.startswith(WRAPPER):
        return None
    wrapped = (f"{env.get('AGENTCG_EXEC', WRAPPER)} --workload {shlex.quote(workload)} "
               f"--class {classify(command)} -- bash -c {shlex.quote(command)}")
    return {"hookSpecificOutput": {"hookEventName": "PreToolUse", "permissionDecision": "allow",
                                   "permissionDecisionReason": "run as an agentcg tool call",
                                   "updatedInput": {**tool_input, "command": wrapped}}}


def post(payload: dict, env: dict) -> None:
    _record(payload, "end", env)


def _record(payload: dict, event: str, env: dict) -> None:
    path = env.get("AGENTCG_EVENTS")
    if not path:
        return
    tool_input = payload.get("tool_input") or {}
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    append_event(path, event, str(payload.get("tool_use_id") or payload.get("session_id") or "?"),
                 tool=payload.get("tool_name"), command=command)


def main(which: str) -> int:
    try:
        payload = json.loads(sys.stdin.read() or "{}")
        if not isinstance(payload, dict):
            return 0
        if which == "pre":
            answer = pre(payload, dict(os.environ))
            if answer:
                print(json.dumps(answer))
        else:
            post(payload, dict(os.environ))
    except (ValueError, OSError):
        pass  # never break the agent over bookkeeping
    return 0


def append_event(path: str | Path, event: str, id: str, tool: str | None = None, command: str | None = None,
                 when: float | None = None) -> None:
    """Append one event line (for hooks and wrappers). One write() on an O_APPEND file: concurrent writers of
    lines this short do not interleave."""
    record = {"event": event, "id": id, "tool": tool, "command": command,
              "time": time.time() if when is None else when}
    line = (json.dumps(record) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
