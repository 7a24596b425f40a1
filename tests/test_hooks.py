"""Claude Code hooks: boundaries recorded, Bash commands wrapped into agentcg tool calls, never an error."""
import json
import shlex
import subprocess
import sys

from agentcg import hooks

PAYLOAD = {"session_id": "s1", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_use_id": "toolu_1",
           "tool_input": {"command": "cd repo && python -m pytest -q 'tests/a b.py'", "description": "run tests"}}


def test_bash_command_is_wrapped_as_a_classified_tool_call():
    answer = hooks.pre(PAYLOAD, {"AGENTCG_WORKLOAD": "claude-1"})
    out = answer["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse" and out["permissionDecision"] == "allow"
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
