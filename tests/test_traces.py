import json
import os
import time
from pathlib import Path

import pytest

from agentcg.workloads import traces
from agentcg.workloads.traces import Sample, ToolCall, Trace, TraceError

# 1770000000 is 2026-02-02T02:40:00Z, i.e. 2026-02-01T18:40:00 on a UTC-8 host.
E0 = 1770000000.0


def sample(i, mem="185.3MB / 134.5GB", cpu="10.00%", epoch=True):
    s = {"timestamp": f"2026-02-01T18:40:{i:02d}.000000", "mem_usage": mem, "mem_percent": "0.14%",
         "cpu_percent": cpu}
    if epoch:
        s["epoch"] = E0 + i
    return s


def call(start, end=None, tool="Bash", input=None, id="toolu_1"):
    c = {"timestamp": start, "tool": tool, "id": id}
    if end is not None:
        c["end_timestamp"] = end
    if input is not None:
        c["input"] = input
    return c


def assistant(mid, tokens, *blocks, model="claude-haiku-4-5-20251001", sidechain=False):
    return {"type": "assistant", "isSidechain": sidechain, "timestamp": "2026-02-02T02:40:01.000Z",
            "message": {"id": mid, "model": model, "usage": {"output_tokens": tokens}, "content": list(blocks)}}


def result(tool_use_id, when):
    return {"type": "user", "timestamp": when,
            "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use_id}]}}


def make_run(root: Path, folder="all_images_haiku", task="org__repo-1", samples=None, calls=None,
             results=None, transcript=None, attempt="attempt_1") -> Path:
    d = root / folder / task / attempt
    d.mkdir(parents=True)
    if samples is not None:
        (d / "resources.json").write_text(json.dumps({"samples": samples, "summary": {}}))
    if calls is not None:
        (d / "tool_calls.json").write_text(json.dumps(calls))
    if results is not None:
        (d / "results.json").write_text(json.dumps(results))
    if transcript is not None:
        (d / "trace.jsonl").write_text("".join(
            (line if isinstance(line, str) else json.dumps(line)) + "\n" for line in transcript))
    return d


RESULTS = {"model": "haiku", "pull_time": 12.5, "permission_fix_time": 87.5, "claude_time": 300.0,
           "total_time": 400.0, "image_info": {"size_bytes": 18543410093}}


# --- value parsers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("185.3MB / 134.5GB", 185_300_000),
    ("11.71MB / 134.5GB", 11_710_000),
    ("114.7kB / 16.19GB", 114_700),
    ("512KB", 512_000),
    ("100B / 16.19GB", 100),
    ("0B / 16GB", 0),
    ("4.06GB / 16.19GB", 4_060_000_000),
    ("2MiB / 1GiB", 2 * 2**20),
    ("1.5GiB", 3 * 2**29),
    ("1KiB", 1024),
])
def test_parse_mem_units(text, expected):
    assert traces.parse_mem(text) == expected


@pytest.mark.parametrize("text", ["--", "", "12 parsecs", "MB", None, float("inf"), float("nan"), -1])
def test_parse_mem_rejects_garbage(text):
    with pytest.raises(ValueError):
        traces.parse_mem(text)


def test_parse_cpu():
    assert traces.parse_cpu("62.21%") == 62.21
    assert traces.parse_cpu("250.5%") == 250.5  # several cores
    assert traces.parse_cpu(" 0.00% ") == 0.0
    for bad in ("--", "", "abc%", "-3%", None):
        with pytest.raises(ValueError):
            traces.parse_cpu(bad)


def test_parse_time_aware_and_naive():
    assert traces.parse_time("2026-02-02T02:40:01.500Z") == (E0 + 1.5, True)
    assert traces.parse_time("2026-02-01T18:40:00") == (E0 - 8 * 3600, False)


def test_command_of_dict_literal_string_and_garbage(tmp_path):
    assert traces.command_of({"command": "git diff"}) == ("git diff", True)
    assert traces.command_of("{'command': 'ls -la', 'description': 'list'}") == ("ls -la", True)
    assert traces.command_of({"file_path": "/x"}) == (None, True)
    assert traces.command_of(None) == (None, True)
    assert traces.command_of("{'command': 'ls'") == (None, False)  # truncated
    assert traces.command_of("['ls']") == (None, False)  # a literal, but not a dict
    marker = tmp_path / "evaluated"
    assert traces.command_of(f"__import__('pathlib').Path('{marker}').touch()") == (None, False)
    assert not marker.exists()  # literal_eval never runs code


# --- load_run -----------------------------------------------------------------------------------------------

def test_load_run_aligns_utc_calls_with_epoch_samples(tmp_path):
    d = make_run(tmp_path, samples=[sample(i) for i in range(4)], results=RESULTS,
                 calls=[call("2026-02-02T02:40:01.500Z", "2026-02-02T02:40:02.250Z",
                             input={"command": "python -m pytest tests"})])
    t = traces.load_run(d, tmp_path)
    assert t.name == "all_images_haiku/org__repo-1/attempt_1"
    assert t.model == "haiku"
    assert [s.t for s in t.samples] == [0.0, 1.0, 2.0, 3.0]
    assert t.samples[0] == Sample(0.0, 185_300_000, 10.0)
    # the naive sample timestamps are 8 h behind UTC; the call must still land 1.5 s into the run
    assert t.calls == [ToolCall(1.5, 2.25, "Bash", "python -m pytest tests", "test", "toolu_1")]
    assert t.meta["init_time"] == 100.0 and t.meta["claude_time"] == 300.0 and t.meta["total_time"] == 400.0
    assert t.meta["image_size_bytes"] == 18543410093
    assert t.meta["has_calls"] is True
    assert t.meta["start_epoch"] == E0
    assert t.duration == 3.0


def test_samples_are_sorted_and_unreadable_ones_dropped(tmp_path):
    samples = [sample(2, mem="300MB / 1GB"), sample(0), sample(1, mem="--"), sample(3, cpu="n/a")]
    t = traces.load_run(make_run(tmp_path, samples=samples, calls=[], results=RESULTS), tmp_path)
    assert [(s.t, s.mem_bytes) for s in t.samples] == [(0.0, 185_300_000), (2.0, 300_000_000)]
    assert "2 unreadable sample(s) dropped" in t.meta["notes"]


def test_sample_without_epoch_uses_the_host_offset(tmp_path):
    samples = [sample(0), sample(1), sample(2, epoch=False)]
    t = traces.load_run(make_run(tmp_path, samples=samples, calls=[], results=RESULTS), tmp_path)
    assert [s.t for s in t.samples] == [0.0, 1.0, 2.0]


def test_no_epoch_at_all_is_skipped(tmp_path):
    d = make_run(tmp_path, samples=[sample(0, epoch=False)], calls=[], results=RESULTS)
    with pytest.raises(TraceError, match="none of the 1 samples"):
        traces.load_run(d)


def test_naive_call_time_is_taken_as_host_local(tmp_path):
    d = make_run(tmp_path, samples=[sample(i) for i in range(4)], results=RESULTS,
                 calls=[call("2026-02-01T18:40:02.000000", "2026-02-01T18:40:03.000000", tool="Read")])
    t = traces.load_run(d)
    assert (t.calls[0].start, t.calls[0].end, t.calls[0].category) == (2.0, 3.0, "Read")


def test_input_as_literal_string_and_unreadable_string(tmp_path):
    calls = [call("2026-02-02T02:40:01Z", "2026-02-02T02:40:02Z", input="{'command': 'git diff', 'x': 1}",
                  id="a"),
             call("2026-02-02T02:40:02Z", "2026-02-02T02:40:03Z", input="{'command': 'git dif", id="b")]
    t = traces.load_run(make_run(tmp_path, samples=[sample(i) for i in range(4)], calls=calls, results=RESULTS))
    assert [(c.command, c.category) for c in t.calls] == [("git diff", "git"), (None, None)]
    assert "1 call input(s) unreadable (command unknown)" in t.meta["notes"]


def test_missing_resources_is_a_reason(tmp_path):
    d = make_run(tmp_path, calls=[], results=RESULTS)
    with pytest.raises(TraceError, match="resources.json missing"):
        traces.load_run(d)


def test_missing_tool_calls_gives_a_trace_without_calls(tmp_path):
    t = traces.load_run(make_run(tmp_path, samples=[sample(0)], results=RESULTS))
    assert t.calls == [] and t.meta["has_calls"] is False
    assert "tool_calls.json missing: trace has no tool calls" in t.meta["notes"]


@pytest.mark.parametrize("broken", ["resources.json", "tool_calls.json", "results.json"])
def test_malformed_json_is_a_reason(tmp_path, broken):
    d = make_run(tmp_path, samples=[sample(0)], calls=[], results=RESULTS)
    (d / broken).write_text('{"samples": [')
    with pytest.raises(TraceError, match=f"{broken}: malformed JSON"):
        traces.load_run(d)


@pytest.mark.parametrize("content,reason", [
    ({"samples": []}, "no samples"),
    ({"summary": {}}, "no 'samples' list"),
    ([1, 2], "no 'samples' list"),
])
def test_empty_or_shapeless_resources(tmp_path, content, reason):
    d = make_run(tmp_path, calls=[], results=RESULTS)
    (d / "resources.json").write_text(json.dumps(content))
    with pytest.raises(TraceError, match=reason):
        traces.load_run(d)


def test_tool_calls_not_a_list(tmp_path):
    d = make_run(tmp_path, samples=[sample(0)], calls={"calls": []}, results=RESULTS)
    with pytest.raises(TraceError, match="expected a list"):
        traces.load_run(d)


def test_replay_runs_are_not_agent_runs(tmp_path):
    d = make_run(tmp_path, folder="replays", samples=[sample(0)], calls=[], results={"replay_results": []})
    with pytest.raises(TraceError, match="replay"):
        traces.load_run(d)


def test_model_from_folder_wins_over_a_wrong_label(tmp_path):
    transcript = [assistant("m1", 5, model="unsloth/GLM-4.7-Flash-GGUF:Q4_K_M")]
    d = make_run(tmp_path, folder="all_images_local", samples=[sample(0)], calls=[],
                 results=dict(RESULTS, model="qwen3"), transcript=transcript)
    t = traces.load_run(d)
    assert t.model == "glm"
    assert t.meta["model_label"] == "qwen3" and t.meta["model_id"] == "unsloth/GLM-4.7-Flash-GGUF:Q4_K_M"
    assert any("results.json says model 'qwen3'" in n for n in t.meta["notes"])


def test_model_from_results_then_transcript(tmp_path):
    d = make_run(tmp_path, folder="elsewhere", samples=[sample(0)], calls=[], results=dict(RESULTS, model="opus"))
    assert traces.load_run(d).model == "opus"
    results = {k: v for k, v in RESULTS.items() if k != "model"}
    d = make_run(tmp_path, folder="batch", task="Medical_Bio_Hard", samples=[sample(0)], calls=[],
                 results=results, transcript=[assistant("m1", 1)])
    t = traces.load_run(d)
    assert t.model == "haiku"
    assert (t.meta["category"], t.meta["difficulty"]) == ("Medical_Bio", "Hard")
    d = make_run(tmp_path, folder="nowhere", samples=[sample(0)], calls=[])
    t = traces.load_run(d)
    assert t.model is None and t.meta["claude_time"] is None and t.meta["init_time"] is None
    assert "results.json missing: no run metadata" in t.meta["notes"]


def test_transcript_rounds_and_tokens(tmp_path):
    transcript = [
        {"type": "queue-operation", "operation": "dequeue"},
        # one API response written as two lines (one per content block) counts once, with its largest usage
        assistant("m1", 10, {"type": "text", "text": "hi"}),
        assistant("m1", 12, {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}}),
        result("t1", "2026-02-02T02:40:02.000Z"),
        assistant("m2", 30, sidechain=True, model="claude-sonnet-4-5"),  # a sub-agent round counts too
        assistant("m3", 99, model="<synthetic>"),  # an error stub does not
        "{not json",
        assistant("m4", 5),
    ]
    d = make_run(tmp_path, samples=[sample(0)], calls=[], results=RESULTS, transcript=transcript)
    t = traces.load_run(d)
    assert (t.meta["rounds"], t.meta["output_tokens"]) == (3, 12 + 30 + 5)
    assert t.meta["model_id"] == "claude-haiku-4-5-20251001"  # main chain only
    assert "trace.jsonl: 1 malformed line(s) ignored" in t.meta["notes"]


def test_missing_transcript_gives_none(tmp_path):
    t = traces.load_run(make_run(tmp_path, samples=[sample(0)], calls=[], results=RESULTS))
    assert t.meta["rounds"] is None and t.meta["output_tokens"] is None
    assert "trace.jsonl missing: no token or round counts" in t.meta["notes"]


def test_calls_without_end_or_input_are_completed_from_the_transcript(tmp_path):
    calls = [call("2026-02-02T02:40:01.000Z", id="t1"), call("2026-02-02T02:40:02.000Z", id="t2", tool="Read")]
    transcript = [
        assistant("m1", 1, {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "pip install x"}}),
        result("t1", "2026-02-02T02:40:01.750Z"),
    ]
    d = make_run(tmp_path, folder="batch", samples=[sample(i) for i in range(4)], calls=calls, results=RESULTS,
                 transcript=transcript)
    t = traces.load_run(d)
    assert t.calls[0] == ToolCall(1.0, 1.75, "Bash", "pip install x", "install", "t1")
    assert (t.calls[1].start, t.calls[1].end) == (2.0, 2.0)  # no end anywhere: zero duration, noted
    assert "1 call end time(s) taken from trace.jsonl" in t.meta["notes"]
    assert "1 call(s) without an end time (zero duration)" in t.meta["notes"]


def test_unreadable_calls_are_dropped_not_fatal(tmp_path):
    calls = [{"tool": "Bash"}, {"timestamp": "yesterday", "tool": "Bash"}, "junk",
             call("2026-02-02T02:40:01Z", "2026-02-02T02:40:01Z", tool="Read")]
    t = traces.load_run(make_run(tmp_path, samples=[sample(0)], calls=calls, results=RESULTS))
    assert [c.tool for c in t.calls] == ["Read"]
    assert "3 unreadable tool call(s) dropped" in t.meta["notes"]


# --- load_all -----------------------------------------------------------------------------------------------

def test_load_all_reports_every_skipped_run(tmp_path):
    make_run(tmp_path, task="good", samples=[sample(0)], calls=[], results=RESULTS)
    make_run(tmp_path, task="nocalls", samples=[sample(0)], results=RESULTS)
    make_run(tmp_path, task="nores", calls=[], results=RESULTS)
    bad = make_run(tmp_path, task="bad", samples=[sample(0)], calls=[], results=RESULTS)
    (bad / "tool_calls.json").write_text("[{")
    make_run(tmp_path, task="empty", samples=[], calls=[], results=RESULTS)
    (tmp_path / "all_images_haiku" / "progress.json").write_text("{}")  # not a run
    found, skipped = traces.load_all(tmp_path)
    assert sorted(t.meta["task"] for t in found) == ["good", "nocalls"]
    reasons = {Path(d).parent.name: r for d, r in skipped}
    assert set(reasons) == {"nores", "bad", "empty"}
    assert "resources.json missing" in reasons["nores"]
    assert "tool_calls.json: malformed JSON" in reasons["bad"]
    assert "no samples" in reasons["empty"]
    summary = traces.summarize(found, skipped, tmp_path)
    assert summary["folders"] == {"all_images_haiku": {"usable": 2, "without_calls": 1, "without_transcript": 2,
                                                       "skipped": 3}}


def test_load_all_needs_a_directory(tmp_path):
    with pytest.raises(TraceError, match="not a directory"):
        traces.load_all(tmp_path / "missing")


def test_default_root_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv(traces.TRACES_ENV, str(tmp_path))
    assert traces.default_root() == tmp_path
    monkeypatch.delenv(traces.TRACES_ENV)
    assert traces.default_root() == traces.REPO_ROOT.parent / "shared" / "traces"


# --- our compact format -------------------------------------------------------------------------------------

def small_trace():
    return Trace("synthetic/one", "haiku", [Sample(0.0, 185_000_000, 5.0), Sample(1.0, 700_000_000, 90.0)],
                 [ToolCall(0.5, 1.5, "Bash", "pytest -x", "test", "c1"), ToolCall(1.5, 1.6, "Read", None, "Read")],
                 {"claude_time": 2.0, "init_time": 1.0})


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_load_round_trip(tmp_path, suffix):
    t = small_trace()
    traces.save(t, tmp_path / f"t{suffix}")
    back = traces.load(tmp_path / f"t{suffix}")
    assert (back.name, back.model, back.samples, back.calls) == (t.name, t.model, t.samples, t.calls)
    assert back.meta["claude_time"] == 2.0


def test_load_classifies_calls_without_a_category(tmp_path):
    data = {"format": "agentcg-trace/1", "name": "x", "samples": [[0, 1, 0]],
            "calls": [{"start": 0, "end": 1, "tool": "Bash", "command": "pip install numpy"}]}
    (tmp_path / "t.json").write_text(json.dumps(data))
    assert traces.load(tmp_path / "t.json").calls[0].category == "install"


GOOD = {"format": "agentcg-trace/1", "name": "x", "samples": [[0, 1, 0], [1, 2, 3.5]],
        "calls": [{"start": 0, "end": 1, "tool": "Bash"}]}


@pytest.mark.parametrize("change,message", [
    ({"format": "agentcg-trace/2"}, "format must be 'agentcg-trace/1'"),
    ({"name": ""}, "name must be a non-empty string"),
    ({"model": 3}, "model must be a string"),
    ({"meta": []}, "meta must be a mapping"),
    ({"samples": []}, "samples must be a non-empty list"),
    ({"samples": [[0, 1]]}, r"samples\[0\]: expected \[t, mem_bytes, cpu_pct\]"),
    ({"samples": [[0, "1MB", 0]]}, r"samples\[0\]"),
    ({"samples": [[0, 1.5, 0]]}, "whole number"),
    ({"samples": [[0, -1, 0]]}, "whole number"),
    ({"samples": [[1, 1, 0], [0, 1, 0]]}, "goes backwards"),
    ({"calls": {}}, "calls must be a list"),
    ({"calls": ["x"]}, r"calls\[0\]: expected a mapping"),
    ({"calls": [{"start": 0, "tool": "Bash"}]}, "start and end must be numbers"),
    ({"calls": [{"start": 2, "end": 1, "tool": "Bash"}]}, "before start"),
    ({"calls": [{"start": 0, "end": 1}]}, "tool must be a non-empty string"),
    ({"calls": [{"start": 0, "end": 1, "tool": "Bash", "command": ["ls"]}]}, "command must be a string"),
])
def test_load_validation(tmp_path, change, message):
    (tmp_path / "t.json").write_text(json.dumps(dict(GOOD, **change)))
    with pytest.raises(TraceError, match=message):
        traces.load(tmp_path / "t.json")


def test_load_malformed_files(tmp_path):
    (tmp_path / "a.json").write_text("{")
    with pytest.raises(TraceError, match="malformed JSON"):
        traces.load(tmp_path / "a.json")
    (tmp_path / "b.yaml").write_text("a: [")
    with pytest.raises(TraceError, match="not valid YAML"):
        traces.load(tmp_path / "b.yaml")
    (tmp_path / "c.json").write_text("[]")
    with pytest.raises(TraceError, match="mapping at the top level"):
        traces.load(tmp_path / "c.json")
    with pytest.raises(TraceError, match="cannot read"):
        traces.load(tmp_path / "missing.json")


# --- the shared recorded traces -----------------------------------------------------------------------------

SHARED = Path(os.environ.get(traces.TRACES_ENV) or traces.REPO_ROOT.parent / "shared" / "traces")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared traces not present at {SHARED}")
def test_import_all_shared_traces():
    started = time.monotonic()
    found, skipped = traces.load_all(SHARED)
    assert time.monotonic() - started < 30
    assert len(found) > 100
    assert all(reason for _, reason in skipped)
    assert not any(reason.startswith("unexpected") for _, reason in skipped), skipped
    models = {t.model for t in found}
    assert {"haiku", "glm"} <= models
    for t in found:
        assert t.samples and all(b.t >= a.t for a, b in zip(t.samples, t.samples[1:]))
        assert all(c.end >= c.start for c in t.calls)
        # calls are aligned with the samples: they fall inside the sampled span (give or take a few seconds)
        assert all(-5 < c.start < t.duration + 60 for c in t.calls), t.name
    with_calls = [t for t in found if t.calls]
    assert len(with_calls) > 100
    bash = [c for t in with_calls for c in t.calls if c.tool == "Bash"]
    assert sum(c.command is not None for c in bash) / len(bash) > 0.95
