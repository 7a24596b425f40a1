"""Claude Code hooks: tool-call boundaries from the agent itself.

Install ci/claude-code-hooks.json into the agent's Claude Code settings (`.claude/settings.json`). For every
tool use Claude Code runs `agentcg hook pre` before and `agentcg hook post` after, with the hook's JSON on stdin:
- with AGENTCG_EVENTS set, both append a start/end event (tool, command, tool_use_id) for `agentcg record`;
- with AGENTCG_WORKLOAD set, `pre` rewrites a Bash command to run through `agentcg exec --workload ...`
  (PreToolUse `updatedInput`), so the command runs as its own tool call under agentcg's graduated response,
  and a kill by agentcg comes back to the agent as the tool's output ("killed by agentcg: <reason>").
A hook must never break the agent: on malformed input it prints nothing and exits 0.

The rewrite never widens what the user allowed. Claude Code matches its permission rules against the command as
rewritten (so a rule written for `rm -rf:*` would not match `agentcg exec ... bash -c 'rm -rf ...'`), and a hook's
"allow" skips the prompt the user would otherwise see. So the hook reads the user's rules itself (managed, user,
project and local settings) and matches them against the command as typed, each `&&`/`;`/`|` part of it:
- a deny rule matches any part: no rewrite, Claude Code's own deny rule then blocks the command as typed;
- an ask rule matches any part: rewritten with "ask" (the user is prompted, and sees the wrapped command);
- allow rules cover every part: rewritten with "allow" (the user allowed this command already);
- otherwise: rewritten with no decision, so Claude Code asks (or not) exactly as its mode says.
Rules: `Bash` and `Bash(*)` match everything, `Bash(prefix:*)` a prefix, a `*` inside matches any text, anything
else the exact command. A command that is already `agentcg exec ...` (one simple command, parsed, not a prefix
test) is left alone.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

from agentcg.classify import classify, split_segments

WRAPPER = "agentcg exec"
MANAGED_SETTINGS = Path("/etc/claude-code/managed-settings.json")


def pre(payload: dict, env: dict) -> dict | None:
    """The PreToolUse answer (None: no change) for one hook payload."""
    _record(payload, "start", env)
    tool, tool_input = payload.get("tool_name"), payload.get("tool_input")
    command = tool_input.get("command") if isinstance(tool_input, dict) else None
    workload = env.get("AGENTCG_WORKLOAD")
    wrapper = env.get("AGENTCG_EXEC", WRAPPER)
    if tool != "Bash" or not isinstance(command, str) or not command.strip() or not workload \
            or already_wrapped(command, wrapper):
        return None
    verdict = permission_verdict(command, rules_for(payload.get("cwd"), env))
    if verdict == "deny":
        return None
    wrapped = (f"{wrapper} --workload {shlex.quote(workload)} "
               f"--class {classify(command)} -- bash -c {shlex.quote(command)}")
    out = {"hookEventName": "PreToolUse", "updatedInput": {**tool_input, "command": wrapped}}
    if verdict in ("ask", "allow"):
        out["permissionDecision"] = verdict
        out["permissionDecisionReason"] = f"your {verdict} rule for this command; run as an agentcg tool call"
    return {"hookSpecificOutput": out}


def already_wrapped(command: str, wrapper: str = WRAPPER) -> bool:
    """The command is one simple `agentcg exec ...` command: no second command after it, no substitution."""
    if any(ch in command for ch in "`\n") or "$(" in command:
        return False
    segments = split_segments(command)
    if len(segments) != 1 or len(segments[0]) != 1:
        return False
    try:
        words, head = shlex.split(segments[0][0]), shlex.split(wrapper)
    except ValueError:
        return False
    return bool(head) and words[:len(head)] == head


# ---- the user's permission rules --------------------------------------------------------------------------

def rules_for(cwd, env: dict) -> dict[str, list[str]]:
    """The Bash rule patterns of every settings file Claude Code reads for this session, by kind."""
    files = [MANAGED_SETTINGS]
    if env.get("HOME"):
        files.append(Path(env["HOME"]) / ".claude" / "settings.json")
    if isinstance(cwd, str) and cwd.startswith("/"):
        files += [Path(cwd) / ".claude" / "settings.json", Path(cwd) / ".claude" / "settings.local.json"]
    rules: dict[str, list[str]] = {"deny": [], "ask": [], "allow": []}
    for path in files:
        try:
            data = json.loads(path.read_bytes()[:1 << 20].decode("utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        perms = data.get("permissions") if isinstance(data, dict) else None
        for kind in rules:
            entries = perms.get(kind) if isinstance(perms, dict) else None
            for rule in entries if isinstance(entries, list) else ():
                pattern = _bash_pattern(rule)
                if pattern is not None:
                    rules[kind].append(pattern)
    return rules


def _bash_pattern(rule) -> str | None:
    """The command pattern of a Bash rule ("*" for all of Bash), None for a rule about another tool."""
    if not isinstance(rule, str):
        return None
    rule = rule.strip()
    if rule == "Bash":
        return "*"
    if rule.startswith("Bash(") and rule.endswith(")"):
        inner = rule[5:-1].strip()
        return inner[:-2] + "*" if inner.endswith(":*") else inner or "*"
    return None


def permission_verdict(command: str, rules: dict[str, list[str]]) -> str | None:
    """deny > ask > allow, as Claude Code orders them; None: no rule says anything about this command."""
    parts = [stage for segment in split_segments(command) for stage in segment] or [command.strip()]

    def matches(pattern: str, text: str) -> bool:  # "*" is any text; nothing else is special
        if "*" not in pattern:
            return text.strip() == pattern
        return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), text.strip(), re.S) is not None
    for kind in ("deny", "ask"):
        if any(matches(p, text) for p in rules.get(kind, []) for text in parts + [command]):
            return kind
    allow = rules.get("allow", [])
    if allow and all(any(matches(p, t) for p in allow) for t in parts):  # a prefix rule never covers `x && y`
        return "allow"
    return None


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
