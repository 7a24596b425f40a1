"""Every input surface agentcg reads, fed generated bad input (hypothesis): each answer is the surface's own clear
error (or a valid result), never a traceback and never a hang.

Cases per surface: AGENTCG_FUZZ_EXAMPLES (default 10,000; the generated documents are mutations of a good one,
whole random documents, and raw bytes). A surface's error class is what its CLI turns into one `agentcg: error:`
line; the CLI itself is fuzzed last, through click's runner.
"""
import atexit
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcg import budgets, daemon, hooks
from agentcg.cli import main
from agentcg.config import ConfigError
from agentcg.harness import kbuild, kernels
from agentcg.paths import REPO_ROOT
from agentcg.workloads import traces
from agentcg.workloads.scenario import ScenarioError, load_scenario

pytestmark = pytest.mark.fuzz  # minutes: `make test` runs it (beside the guests), `make unit` does not
EXAMPLES = int(os.environ.get("AGENTCG_FUZZ_EXAMPLES", "10000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# one case taking longer is a hang in the making (quadratic parsing, unbounded loops); CPU time of this process, not
# wall time: CI runs the host tests beside two guests on two cores, and a starved case is not a slow one
CASE_BOUND_S = 2.0
WORK = Path(tempfile.mkdtemp(prefix="agentcg-fuzz-"))  # made at import (the constants below name files in it)
atexit.register(shutil.rmtree, WORK, ignore_errors=True)  # ... so removed at exit, even when no test here ran

NASTY = ["off", "on", "yes", "max", "", "-1", "0", "1e9", ".inf", "../x", "/", "a\nb", "w\n", "[/bold]", "-rf",
         "--help", "recorded:", "recorded:../../etc", "\x00", "\u202e", "x" * 300]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20), st.sampled_from(NASTY))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
DELETE = object()


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _apply(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))  # a deep copy of a JSON-shaped document
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def documents(seed):
    """A good document with one to three values replaced or removed, or any document at all."""
    paths = list(_paths(seed))

    @st.composite
    def mutated(draw):
        doc = seed
        for _ in range(draw(st.integers(1, 3))):
            live = list(_paths(doc))
            path = draw(st.sampled_from(live if live else paths))
            value = draw(st.one_of(VALUES, st.just(DELETE))) if path else draw(VALUES)
            try:
                doc = _apply(doc, path, value)
            except (KeyError, IndexError, TypeError):
                pass
        return doc
    return st.one_of(mutated(), mutated(), mutated(), VALUES)


def yaml_or_bytes(seed):
    """(file bytes, the document or None): YAML of a generated document, or raw bytes."""
    as_yaml = documents(seed).map(lambda d: (yaml.safe_dump(d, allow_unicode=True).encode(), d))
    return st.one_of(as_yaml, as_yaml, as_yaml, st.binary(max_size=200).map(lambda b: (b, None)))


def json_or_bytes(seed):
    as_json = documents(seed).map(lambda d: (json.dumps(d).encode(), d))
    return st.one_of(as_json, as_json, as_json, st.binary(max_size=200).map(lambda b: (b, None)))


def surface(call, errors: tuple[type[BaseException], ...]):
    """Run one case: a valid result or one of the surface's errors, within the bound."""
    started = time.process_time()
    try:
        call()
    except errors:
        pass
    took = time.process_time() - started
    assert took < CASE_BOUND_S, f"one case took {took:.1f} s"


def write(name: str, data: bytes) -> Path:
    path = WORK / name
    path.write_bytes(data)
    return path


# ---- the surfaces ----------------------------------------------------------------------------------------------

DAEMON_SEED = {"root": "/sys/fs/cgroup/agentcg", "state": "/run/agentcg", "interval_ms": 50, "metrics_port": 9707,
               "event_log": "/run/agentcg/events.jsonl",
               "ladder": {"reserve_mib": 64, "runaway_factor": 4, "stall_frac": 0.5, "freeze_after_s": 1,
                          "kill_after_s": 3},
               "workloads": [{"name": "claude-1", "priority": "high", "agent_min_mib": 256, "memory_max_mib": 4096}],
               "memory_policy": "auto", "cpu_scheduler": "weights", "exec_tracer": "off"}


@FUZZ
@given(yaml_or_bytes(DAEMON_SEED))
def test_daemon_config(case):
    path = write("agentcg.yaml", case[0])
    surface(lambda: daemon.load_config(path), (ConfigError,))


@FUZZ
@given(yaml_or_bytes(yaml.safe_load(budgets.DEFAULT_FILE.read_text())))
def test_budgets_config(case):
    path = write("budgets.yaml", case[0])
    surface(lambda: budgets.load_config(path), (ConfigError,))


TRACE_SEED = {"format": traces.FORMAT, "name": "t", "model": "haiku", "meta": {},
              "samples": [[0, 100 << 20, 10.0], [1, 300 << 20, 50.0], [2, 120 << 20, 5.0]],
              "calls": [{"start": 0.5, "end": 1.5, "tool": "Bash", "command": "pytest -x", "id": "c1"}]}


@FUZZ
@given(st.one_of(json_or_bytes(TRACE_SEED).map(lambda c: ("trace.json", c[0])),
                 yaml_or_bytes(TRACE_SEED).map(lambda c: ("trace.yaml", c[0]))))
def test_agentcg_trace_file(case):
    path = write(*case)
    surface(lambda: traces.load(path), (traces.TraceError,))


GOOD_TRACE = WORK / "good-trace.json"
GOOD_TRACE.write_text(json.dumps(TRACE_SEED))
SCENARIO_SEED = {"name": "s", "description": "d", "speed": 50, "mem_scale": 0.05, "budget": {"share_of_peaks": 0.9},
                 "model": {"process": {"base_mib": 100, "step_mib": 64, "mb_as_mib": True}},
                 "agents": [{"trace": str(GOOD_TRACE), "name": "a", "priority": "high"},
                            {"trace": str(GOOD_TRACE), "priority": "low"}]}


@FUZZ
@given(yaml_or_bytes(SCENARIO_SEED))
def test_scenario(case):
    path = write("scenario.yaml", case[0])
    surface(lambda: load_scenario(path, traces_root=WORK / "no-shared-traces"), (ScenarioError,))


KERNELS_SEED = yaml.safe_load((REPO_ROOT / "kernel" / "kernels.yaml").read_text())


def _kernel_table(path: Path) -> None:
    for name, entry in kernels.load_table(path).items():
        if entry["kind"] == "build":
            kbuild.BuildSpec.from_entry(name, entry, REPO_ROOT)


@FUZZ
@given(yaml_or_bytes(KERNELS_SEED))
def test_kernel_table(case):
    path = write("kernels.yaml", case[0])
    surface(lambda: _kernel_table(path), (kernels.KernelError, kbuild.BuildError))


RESOURCES_SEED = {"samples": [{"timestamp": "2026-02-06T18:22:06.839635", "epoch": 1770430926.8, "mem_usage":
                               "11.71MB / 134.5GB", "mem_percent": "0.01%", "cpu_percent": "96.07%"},
                              {"timestamp": "2026-02-06T18:22:07.886360", "epoch": 1770430927.9, "mem_usage":
                               "186MB / 134.5GB", "mem_percent": "0.14%", "cpu_percent": "63.09%"}], "summary": {}}
CALLS_SEED = [{"timestamp": "2026-02-07T02:22:07.000Z", "end_timestamp": "2026-02-07T02:22:07.500Z", "tool": "Bash",
               "id": "toolu_1", "input": {"command": "python -m pytest -x"}, "result_preview": "ok"},
              {"timestamp": "2026-02-07T02:22:07.600Z", "end_timestamp": "2026-02-07T02:22:07.700Z", "tool": "Read",
               "id": "toolu_2", "input": "{'file_path': '/x'}"}]
RESULTS_SEED = {"model": "haiku", "claude_time": 2.0, "total_time": 3.0, "pull_time": 0.5}


@FUZZ
@given(json_or_bytes(RESOURCES_SEED), json_or_bytes(CALLS_SEED), json_or_bytes(RESULTS_SEED))
def test_recorded_run(resources, calls, results):
    run = WORK / "run" / "attempt_1"
    run.mkdir(parents=True, exist_ok=True)
    for name, case in (("resources.json", resources), ("tool_calls.json", calls), ("results.json", results)):
        (run / name).write_bytes(case[0])
    surface(lambda: traces.load_run(run, WORK), (traces.TraceError,))


HOOK_SEED = {"session_id": "s1", "tool_name": "Bash", "tool_use_id": "toolu_1",
             "tool_input": {"command": "python -m pytest -x", "description": "run tests"}}


@FUZZ
@given(json_or_bytes(HOOK_SEED), st.sampled_from(["pre", "post"]))
def test_hook_stdin(case, which):
    env = {"AGENTCG_WORKLOAD": "claude-1", "AGENTCG_EVENTS": str(WORK / "events.jsonl")}
    out = io.StringIO()
    started = time.process_time()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(case[0]), encoding="utf-8", errors="strict"))
        mp.setattr("sys.stdout", out)
        for k, v in env.items():
            mp.setenv(k, v)
        assert hooks.main(which) == 0, "the hook never breaks the agent"
    assert time.process_time() - started < CASE_BOUND_S
    if out.getvalue().strip():
        answer = json.loads(out.getvalue())
        assert isinstance(answer, dict)


def test_classifying_a_huge_quoted_command_is_linear():
    """The hook classifies every Bash command: 1 MB of quoted argument must not take seconds."""
    from agentcg.classify import classify
    started = time.process_time()
    classify("python -c '" + "x" * 1_000_000 + "'")
    classify('echo "' + 'a\\" ' * 200_000 + '"')
    assert time.process_time() - started < CASE_BOUND_S


# ---- the command line ---------------------------------------------------------------------------------------

WORDS = ["status", "analyze", "traces", "summary", "replay", "record", "workload", "create", "remove", "exec",
         "hook", "pre", "post", "bench", "kernels", "vmrun", "daemon", "--json", "--state", "--config", "--priority",
         "--workload", "--out", "--by", "--mem-threshold", "--speed", "--mem-scale", "--policy", "--interval",
         "--duration", "high", "low", "paper-tight", "nope", "-1", "0", "1e999", "nan", "/", "/dev/null",
         str(WORK / "garbage.bin"), str(WORK / "missing"), "--", "-x", "\x00", "a\nb"]
# never run for real here: what needs root, a VM, the network or a long time
REFUSED = {"vmrun", "daemon", "bench", "record", "exec", "test", "vmtest", "demo"}


@settings(max_examples=max(EXAMPLES // 10, 50), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), min_size=1, max_size=6))
def test_cli(argv):
    if argv[0] in REFUSED or (len(argv) > 1 and argv[1] in REFUSED) or "replay" in argv[:2]:
        return
    (WORK / "garbage.bin").write_bytes(b"\xff\xfe\x00garbage: [")
    started = time.process_time()
    result = CliRunner().invoke(main, argv, input="")
    assert time.process_time() - started < 10 * CASE_BOUND_S
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{argv!r}: {type(result.exception).__name__}: {result.exception}\n{result.output[-2000:]}"
    if result.exit_code != 0 and result.exit_code != 2:  # 2: click's own usage error
        assert "agentcg: error:" in result.output and "Traceback" not in result.output, (argv, result.output)



def test_a_trace_path_the_file_system_refuses_is_a_clean_scenario_error(tmp_path):
    """Found by the fuzzer: a 4 KB trace name made stat() fail with ENAMETOOLONG (a traceback)."""
    bad = tmp_path / "s.yaml"
    bad.write_text(f"agents: [{{trace: {'x' * 5000}}}]\n")
    with pytest.raises(ScenarioError, match="File name too long"):
        load_scenario(bad, traces_root=tmp_path)
