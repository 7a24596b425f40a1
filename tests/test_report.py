"""`agentcg report --compare A B`: what changed between two kernels' results, or two commits' results/ trees."""
from click.testing import CliRunner

from agentcg.cli import main
from agentcg.harness import report


def junit(path, **cases):
    """cases: name=outcome (passed, failed, skipped)."""
    body = {"passed": "", "failed": '<failure message="boom"/>', "skipped": '<skipped message="no"/>'}
    path.mkdir(parents=True, exist_ok=True)
    (path / "junit.xml").write_text("<testsuites><testsuite>" + "".join(
        f'<testcase classname="vmtests.test_x" name="{n}" time="1">{body[o]}</testcase>' for n, o in cases.items())
        + "</testsuite></testsuites>")


def test_compare_names_regressions_fixes_and_tests_only_one_side_ran(tmp_path):
    junit(tmp_path / "a", t1="passed", t2="failed", t3="passed", t4="skipped", gone="passed")
    junit(tmp_path / "b", t1="failed", t2="passed", t3="passed", t4="passed", new="passed")
    diff = report.compare(report.outcomes(tmp_path / "a"), report.outcomes(tmp_path / "b"))
    assert list(diff)[:2] == ["passed->failed", "failed->passed"]
    assert diff == {"passed->failed": ["vmtests.test_x::t1"], "failed->passed": ["vmtests.test_x::t2"],
                    "skipped->passed": ["vmtests.test_x::t4"], "only in A": ["vmtests.test_x::gone"],
                    "only in B": ["vmtests.test_x::new"]}


def test_a_results_tree_is_compared_per_kernel_with_its_shards_as_one(tmp_path):
    junit(tmp_path / "a" / "debian-6.12-1", t1="passed")
    junit(tmp_path / "a" / "debian-6.12-2", t2="passed")
    junit(tmp_path / "a" / "agentcg-6.12", t1="passed")
    junit(tmp_path / "b" / "debian-6.12", t1="passed", t2="failed")
    junit(tmp_path / "b" / "agentcg-6.12", t1="passed")
    diff = report.compare(report.outcomes(tmp_path / "a"), report.outcomes(tmp_path / "b"))
    assert diff == {"passed->failed": ["debian-6.12: vmtests.test_x::t2"]}


def test_the_command_exits_1_on_a_regression_and_0_without(tmp_path):
    junit(tmp_path / "a", t1="passed")
    junit(tmp_path / "b", t1="failed")
    runner = CliRunner()
    worse = runner.invoke(main, ["report", "--compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert worse.exit_code == 1 and "1 passed->failed" in worse.output and "vmtests.test_x::t1" in worse.output
    better = runner.invoke(main, ["report", "--compare", str(tmp_path / "b"), str(tmp_path / "a")])
    assert better.exit_code == 0 and "1 failed->passed" in better.output


def test_nothing_to_compare_is_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    junit(tmp_path / "a", t1="passed")
    out = CliRunner().invoke(main, ["report", "--compare", str(tmp_path / "empty"), str(tmp_path / "a")])
    assert out.exit_code == 2 and out.output.startswith("agentcg: error:") and "no junit.xml" in out.output
    assert CliRunner().invoke(main, ["report"]).exit_code == 2


def test_a_known_flaky_failure_is_neither_a_pass_nor_a_skip(tmp_path):
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite><testcase classname="vmtests.test_x" name="t1" time="1">'
        '<skipped type="pytest.xfail" message="known flaky on debian-6.12 (vmtests/flaky.yaml: r)"/></testcase>'
        '</testsuite></testsuites>')
    data = report.load(tmp_path)
    assert report.counts(data) == {"passed": 0, "failed": 0, "skipped": 0, "flaky": 1}
    assert "1 known flaky failures" in report.render(data)
