"""vmtests/flaky.yaml: the known-flaky vmtests, each with a reason (agentcg.harness.flaky)."""
import pytest

from agentcg.harness import flaky


def test_the_repository_list_loads_and_every_entry_has_a_reason():
    for entry in flaky.load():
        assert entry.reason and entry.test.startswith("vmtests/")


def test_an_entry_covers_its_node_id_its_prefixes_and_only_its_kernels(tmp_path):
    path = tmp_path / "flaky.yaml"
    path.write_text("flaky:\n"
                    "  - test: vmtests/test_a.py::test_one\n    reason: r1\n"
                    "  - test: \"vmtests/test_b.py::\"\n    kernels: [agentcg-*]\n    reason: r2\n"
                    "  - test: vmtests/test_c.py::test_p[\n    reason: r3\n")
    entries = flaky.load(path)
    assert flaky.find(entries, "vmtests/test_a.py::test_one", "debian-6.12").reason == "r1"
    assert flaky.find(entries, "vmtests/test_a.py::test_one_more", "debian-6.12") is None
    assert flaky.find(entries, "vmtests/test_b.py::test_x", "agentcg-6.12").reason == "r2"
    assert flaky.find(entries, "vmtests/test_b.py::test_x", "debian-6.12") is None
    assert flaky.find(entries, "vmtests/test_c.py::test_p[zram]", "debian-6.1").reason == "r3"
    assert flaky.find(entries, "vmtests/test_c.py::test_pp", "debian-6.1") is None


@pytest.mark.parametrize("body", [
    "flaky:\n  - test: vmtests/test_a.py::t\n",                       # no reason
    "flaky:\n  - test: vmtests/test_a.py::t\n    reason: '  '\n",     # an empty one
    "flaky:\n  - test: test_a.py::t\n    reason: r\n",                # not a vmtest
    "flaky:\n  - test: vmtests/test_a.py::t\n    reason: r\n    kernels: debian\n",
    "flaky:\n  - test: vmtests/test_a.py::t\n    reason: r\n    retries: 3\n",  # nothing is retried
    "flaky: {}\n", "[1, 2]\n", "flaky: [\n",
])
def test_a_bad_list_is_one_clear_error(tmp_path, body):
    path = tmp_path / "flaky.yaml"
    path.write_text(body)
    with pytest.raises(flaky.FlakyListError, match=str(path)):
        flaky.load(path)
