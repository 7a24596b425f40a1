"""What agentcg keeps as root beside code an AI wrote: its names, its state files and how it shows them."""
import json
import os

import pytest
from click.testing import CliRunner

from agentcg.cli import main
from agentcg.layout import LayoutError, check_name
from agentcg.statefile import write_atomic


@pytest.mark.parametrize("name", ["w\n", "w\nx", "", ".w", "-w", "w/x", "w x", "w" * 65, None, 3])
def test_a_name_is_the_whole_string_or_refused(name):
    with pytest.raises(LayoutError, match="invalid workload name"):
        check_name(name)


def test_names_agentcg_makes_itself_pass():
    assert check_name("claude-1") == "claude-1" and check_name("call-000000000001", "call")


def test_a_state_file_is_written_whole_and_private(tmp_path):
    path = tmp_path / "call-1.json"
    write_atomic(path, "{}")
    write_atomic(path, json.dumps({"a": 1}))
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["call-1.json"], "no temporary file is left behind"


def test_a_link_planted_at_the_old_temporary_name_or_the_target_is_never_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "call-1.tmp").symlink_to(victim)       # the fixed name writers used before
    (tmp_path / "call-1.json").symlink_to(victim)      # the target itself
    write_atomic(tmp_path / "call-1.json", "new")
    assert victim.read_text() == "keep"
    assert not (tmp_path / "call-1.json").is_symlink() and (tmp_path / "call-1.json").read_text() == "new"


def status_file(tmp_path, command: str, reason: str) -> str:
    (tmp_path / "status.json").write_text(json.dumps({
        "ticks": 1, "decisions": 1, "budgets_mib": {"test": 32},
        "workloads": {"w1": {"priority": "low", "usage": 1 << 20, "headroom": 2 << 20, "pressure_some_avg10": 0.0,
                             "calls": {"call-1": {"stage": "running", "usage": 0, "budget": 0, "cls": "test",
                                                  "command": command, "pressure_some_avg10": 0.0}}}},
        "recent": [{"event": "decision", "workload": "w1", "call": "call-1", "action": "kill", "reason": reason}]}))
    return str(tmp_path)


def test_status_shows_agent_text_as_text_not_markup(tmp_path):
    command = "echo [/bold] [conceal]secret[/conceal] [link=http://x]y[/link]"
    result = CliRunner().invoke(main, ["status", "--state", status_file(tmp_path, command, "x[/]")],
                                terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "[conceal]secret[/conceal]" in result.output and "x[/]" in result.output


def test_status_cuts_a_huge_reason_instead_of_rendering_it(tmp_path):
    result = CliRunner().invoke(main, ["status", "--state", status_file(tmp_path, "pytest", "r" * 100_000)],
                                terminal_width=200)
    assert result.exit_code == 0 and "(100000 characters)" in result.output


def test_status_of_a_foreign_file_is_one_error_line(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"ticks": 1}))
    result = CliRunner().invoke(main, ["status", "--state", str(tmp_path)])
    assert result.exit_code != 0 and result.output.startswith("agentcg: error:") and "Traceback" not in result.output
