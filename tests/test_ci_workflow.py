"""The GitHub Actions workflow is valid YAML, covers the kernel matrix, and only calls what exists."""
import re

import yaml

from agentcg.harness import kernels, report

WORKFLOW = kernels.REPO_ROOT / "ci" / "vmtest.yml"


def load():
    return yaml.safe_load(WORKFLOW.read_text())


def test_workflow_has_the_kernel_matrix():
    wf = load()
    matrix = wf["jobs"]["vmtest"]["strategy"]["matrix"]["kernel"]
    assert set(matrix) == {"debian-6.1", "debian-6.12", "agentcg-6.12", "agentcg-6.12-debug", "6.19-rc5",
                           "bpf-next-rfc-v7"}
    table = kernels.load_table()
    assert all(k in table for k in matrix), "every matrix kernel is a name in kernel/kernels.yaml"


def test_workflow_caches_kernels_by_their_key_and_keeps_artifacts():
    steps = load()["jobs"]["vmtest"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/cache@") for u in uses)
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert "steps.key.outputs.key" in cache["with"]["key"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "GITHUB_STEP_SUMMARY" in runs and "junit.xml" in str(steps)


def test_workflow_only_calls_existing_make_targets():
    makefile = (kernels.REPO_ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, re.M))
    wf_text = WORKFLOW.read_text()
    for target in re.findall(r"run: make (\w[\w-]*)", wf_text):
        assert target in targets, target


JUNIT = """<?xml version="1.0"?><testsuites><testsuite name="pytest">
<testcase classname="vmtests.test_a" name="test_ok" time="1.5"/>
<testcase classname="vmtests.test_a" name="test_bad" time="2"><failure message="[guest failed] boom">x</failure></testcase>
<testcase classname="vmtests.test_a" name="test_skip" time="0"><skipped message="lacks sched_ext"/></testcase>
</testsuite></testsuites>"""


def test_report_counts_and_markdown(tmp_path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    data = report.load(tmp_path)
    assert report.counts(data) == {"passed": 1, "failed": 1, "skipped": 1, "flaky": 0}
    md = report.render(data, markdown=True)
    assert "| `vmtests.test_a::test_bad` | ❌ failed | [guest failed] boom |" in md


def test_report_without_results_is_a_clear_error(tmp_path):
    import pytest
    with pytest.raises(report.ReportError, match="junit.xml is missing"):
        report.load(tmp_path)
