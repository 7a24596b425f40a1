"""Agent run traces: one normalised model (samples + tool calls + run metadata) and the importers that fill it.

Everything downstream (analysis, replay, synthetic workloads) reads a `Trace`, never the recorded files, so the
quirks of the recorded format are handled here and only here:

- memory strings from `podman stats` carry their own unit (`"185.3MB / 134.5GB"`, kB, B, GB, MiB, GiB): the part
  before `/` is the usage; kB/MB/GB are decimal (podman), KiB/MiB/GiB binary;
- CPU strings are percentages of one core (`"62.21%"`, above 100 on several cores);
- samples carry `epoch` (true seconds) and a naive *local* `timestamp`; tool calls carry ISO 8601 UTC ("Z")
  times. Both are put on the epoch clock: samples by `epoch`, calls by their UTC time. A naive call time, or a
  sample without `epoch`, is converted with the host's UTC offset measured on the samples that have both;
- a call's `input` is a dict in some runs and a Python-literal string of a dict in others (parsed with
  `ast.literal_eval`; when that fails the command is unknown, the run is still usable);
- some runs recorded calls with only a start time and no input; `end_timestamp` and `input` are then taken from
  the transcript (`trace.jsonl`: the `tool_result` carrying the call's id, and the `tool_use` block), which is
  also where the original recorder took them from;
- a missing `resources.json`, malformed JSON or no samples makes a run unusable (`TraceError` with the reason);
  a missing `tool_calls.json` gives a trace without calls (`meta["has_calls"] = False`) and a note.

Times in a `Trace` are seconds since the run's first resource sample.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from agentcg.classify import classify_call
from agentcg.config import parse_json, parse_yaml, read_text
from agentcg.paths import REPO_ROOT

TRACES_ENV = "AGENTCG_TRACES"
DELEGATION_TOOLS = frozenset({"Task"})  # a sub-agent in the agent's own process: not a tool process
FORMAT = "agentcg-trace/1"
RUN_FILES = ("resources.json", "tool_calls.json", "results.json", "trace.jsonl")
# Folders whose name says which model ran (results.json of the local runs says "qwen3"; the transcripts and the
# data's README say GLM-4.7-Flash, so the folder wins).
FOLDER_MODELS = {"all_images_haiku": "haiku", "all_images_local": "glm"}
_TASK_CATEGORY = re.compile(r"^(?P<category>[A-Za-z]+(?:_[A-Za-z]+)*)_(?P<difficulty>Easy|Medium|Hard)$")
_MEM = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class TraceError(Exception):
    """A run or trace file that cannot be turned into a usable Trace; the message is the reason."""


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the run's first sample
    mem_bytes: int
    cpu_pct: float  # percent of one core


@dataclass(frozen=True)
class ToolCall:
    start: float  # seconds since the run's first sample
    end: float
    tool: str
    command: str | None = None  # Bash command line, when known
    category: str | None = None  # agentcg.classify category for Bash, the tool name otherwise
    id: str | None = None

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Trace:
    name: str
    model: str | None
    samples: list[Sample]
    calls: list[ToolCall]
    # Run metadata: init_time (= pull_time + permission_fix_time), claude_time, total_time, image_size_bytes,
    # output_tokens, rounds, category/difficulty, has_calls, notes, ... (None or absent when unknown).
    meta: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last resource sample."""
        return self.samples[-1].t - self.samples[0].t if self.samples else 0.0


def default_root() -> Path:
    """The shared recorded traces: $AGENTCG_TRACES, else <repo>/../shared/traces."""
    env = os.environ.get(TRACES_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "traces"


# --- value parsers ------------------------------------------------------------------------------------------

def parse_mem(text: str | int | float) -> int:
    """Bytes in a podman memory field: "185.3MB / 134.5GB" -> 185300000 (the usage, before the "/")."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if not math.isfinite(text) or text < 0:  # JSON's Infinity and NaN parse as floats
            raise ValueError(f"unreadable memory value {text!r}")
        return int(text)
    if not isinstance(text, str):
        raise ValueError(f"memory value {text!r} is not a string")
    m = _MEM.match(text.split("/", 1)[0])
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ValueError(f"unreadable memory value {text!r}")
    return round(float(m.group(1)) * _UNITS[unit])


def parse_cpu(text: str | int | float) -> float:
    """Percent of one core: "62.21%" -> 62.21 (may exceed 100)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        try:
            value = float(text.strip().rstrip("%"))
        except ValueError:
            raise ValueError(f"unreadable CPU value {text!r}") from None
    else:
        raise ValueError(f"CPU value {text!r} is not a string")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"unreadable CPU value {text!r}")
    return value


def parse_time(text: str) -> tuple[float, bool]:
    """(seconds, aware) for an ISO 8601 time: epoch seconds when it has a zone ("Z", "+00:00"), else the naive
    wall-clock time read as if it were UTC (to be shifted by the host offset)."""
    if not isinstance(text, str):
        raise ValueError(f"time {text!r} is not a string")
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc).timestamp(), False
    return dt.timestamp(), True


def host_offset(raw_samples: list) -> float | None:
    """Seconds to add to a naive local time of the recording host to get epoch seconds, measured on the samples
    that carry both `epoch` and `timestamp`, rounded to a quarter hour (time zones are whole quarter hours)."""
    offsets = []
    for s in raw_samples:
        try:
            naive, aware = parse_time(s["timestamp"])
            if not aware and _is_number(s.get("epoch")):
                offsets.append(float(s["epoch"]) - naive)
        except (KeyError, TypeError, ValueError):
            continue
    if not offsets:
        return None
    return round(statistics.median(offsets) / 900) * 900


def command_of(raw_input) -> tuple[str | None, bool]:
    """(command, readable): the `command` of a call input given as a dict or as a Python-literal string of one.
    A string that is not a literal dict gives (None, False); nothing is ever evaluated."""
    if isinstance(raw_input, str):
        try:
            raw_input = ast.literal_eval(raw_input)
        except Exception:  # ValueError, SyntaxError, MemoryError, RecursionError: all mean "not a literal"
            return None, False
    if raw_input is None:
        return None, True
    if not isinstance(raw_input, dict):
        return None, False
    command = raw_input.get("command")
    return (command if isinstance(command, str) else None), True


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# --- the recorded format (podman + Claude Code runs) --------------------------------------------------------

@dataclass
class Transcript:
    """What the analysis needs from a Claude Code `trace.jsonl`, read in one pass.

    rounds: distinct assistant API responses (one `message.id`, which Claude Code writes as one line per content
    block), sub-agent (sidechain) responses included, `<synthetic>` error stubs excluded.
    output_tokens: sum over those responses of `usage.output_tokens` (the largest value seen for the id, as the
    lines of one response repeat its usage).
    """
    rounds: int = 0
    output_tokens: int = 0
    model_id: str | None = None  # most frequent main-chain model
    tool_inputs: dict = field(default_factory=dict)  # tool_use id -> input
    tool_ends: dict = field(default_factory=dict)  # tool_use id -> ISO time of its tool_result
    bad_lines: int = 0


def jsonl_records(path: Path):
    """(line number, record) for every non-blank line of a JSON-lines file (a transcript); record is None for a
    line that is not a JSON object (malformed, or another JSON value)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                entry = None
            yield n, entry if isinstance(entry, dict) else None


def read_transcript(path: Path) -> Transcript:
    out = Transcript()
    tokens: dict[str, int] = {}
    models: Counter = Counter()
    for n, entry in jsonl_records(path):
        if entry is None:
            out.bad_lines += 1
            continue
        kind = entry.get("type")
        message = entry.get("message")
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if kind == "assistant":
            model = message.get("model")
            if model == "<synthetic>":
                continue
            mid = message.get("id") or entry.get("uuid") or f"line{n}"
            usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
            value = usage.get("output_tokens")
            tokens[mid] = max(tokens.get(mid, 0), value if _is_number(value) else 0)
            if model and not entry.get("isSidechain"):
                models[model] += 1
            for block in content if isinstance(content, list) else ():
                if isinstance(block, dict) and block.get("type") == "tool_use" and block.get("id"):
                    out.tool_inputs[block["id"]] = block.get("input")
        elif kind == "user" and isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    out.tool_ends.setdefault(block.get("tool_use_id"), entry.get("timestamp"))
    out.rounds = len(tokens)
    out.output_tokens = int(sum(tokens.values()))
    out.model_id = models.most_common(1)[0][0] if models else None
    return out


def _read_json(path: Path):
    try:
        return parse_json(read_text(path, TraceError), path.name, TraceError)
    except TraceError as e:
        raise TraceError(str(e).replace(str(path), path.name)) from None


def model_family(label: str | None) -> str | None:
    """A short model name from a label or model id: "claude-haiku-4-5-20251001" -> "haiku"."""
    if not label:
        return None
    low = label.lower()
    for family in ("haiku", "sonnet", "opus", "glm", "qwen", "gpt", "gemini", "deepseek"):
        if family in low:
            return family
    return label


def _describe(run_dir: Path, root: Path | None) -> dict:
    """Name, folder, task, attempt and task category from the path."""
    parts = run_dir.parts
    attempt = parts[-1] if re.match(r"^attempt_\d+$", parts[-1]) else None
    task_index = -2 if attempt else -1
    task = parts[task_index] if len(parts) >= -task_index else parts[-1]
    name = "/".join(parts[task_index - 1:])
    if root is not None:
        try:
            relative = run_dir.relative_to(root).as_posix()
            name = name if relative == "." else relative
        except ValueError:
            pass
    folder = parts[task_index - 1] if len(parts) >= 1 - task_index else None
    if not attempt and "/" in name:  # replays/<task>/main: the folder is the top one below root
        folder = name.split("/")[0]
    info = {"name": name, "folder": folder, "task": task, "attempt": attempt, "category": None, "difficulty": None}
    m = _TASK_CATEGORY.match(task)
    if m:
        info["category"], info["difficulty"] = m.group("category"), m.group("difficulty")
    return info


def load_run(run_dir: str | Path, root: str | Path | None = None) -> Trace:
    """One recorded run directory (resources.json, tool_calls.json, results.json, trace.jsonl) as a Trace.

    Raises TraceError (the reason) when the run is unusable: no resources.json, malformed JSON, no readable
    samples, or a replay rather than an agent run. Everything less serious is recorded in meta["notes"].
    """
    run_dir = Path(run_dir)
    root = Path(root) if root is not None else None
    info = _describe(run_dir, root)
    notes: list[str] = []

    results = {}
    if (run_dir / "results.json").is_file():
        results = _read_json(run_dir / "results.json")
        if not isinstance(results, dict):
            raise TraceError("results.json: expected an object")
        if "replay_results" in results:
            raise TraceError("replay of recorded tool calls (no agent, no LLM), not an agent run")
    else:
        notes.append("results.json missing: no run metadata")

    if not (run_dir / "resources.json").is_file():
        raise TraceError("resources.json missing: no resource samples")
    resources = _read_json(run_dir / "resources.json")
    raw_samples = resources.get("samples") if isinstance(resources, dict) else None
    if not isinstance(raw_samples, list):
        raise TraceError("resources.json: no 'samples' list")
    if not raw_samples:
        raise TraceError("resources.json: no samples")
    offset = host_offset([s for s in raw_samples if isinstance(s, dict)])
    points, dropped = [], 0
    for s in raw_samples:
        try:
            epoch = s.get("epoch")
            if not _is_number(epoch):
                naive, aware = parse_time(s["timestamp"])
                if not aware and offset is None:
                    raise ValueError("no epoch and no host offset")
                epoch = naive if aware else naive + offset
            points.append((float(epoch), parse_mem(s["mem_usage"]), parse_cpu(s["cpu_percent"])))
        except (AttributeError, KeyError, TypeError, ValueError):
            dropped += 1
    if dropped:
        notes.append(f"{dropped} unreadable sample(s) dropped")
    if not points:
        raise TraceError(f"resources.json: none of the {len(raw_samples)} samples is readable")
    points.sort(key=lambda p: p[0])
    t0 = points[0][0]
    samples = [Sample(round(e - t0, 6), mem, cpu) for e, mem, cpu in points]

    transcript = None
    if (run_dir / "trace.jsonl").is_file():
        transcript = read_transcript(run_dir / "trace.jsonl")
        if transcript.bad_lines:
            notes.append(f"trace.jsonl: {transcript.bad_lines} malformed line(s) ignored")
    else:
        notes.append("trace.jsonl missing: no token or round counts")

    has_calls = (run_dir / "tool_calls.json").is_file()
    calls: list[ToolCall] = []
    if has_calls:
        raw_calls = _read_json(run_dir / "tool_calls.json")
        if not isinstance(raw_calls, list):
            raise TraceError("tool_calls.json: expected a list of calls")
        calls = _calls(raw_calls, t0, offset, transcript, notes)
    else:
        notes.append("tool_calls.json missing: trace has no tool calls")

    label = results.get("model") if isinstance(results.get("model"), str) else None
    folder_model = next((FOLDER_MODELS[p] for p in run_dir.parts if p in FOLDER_MODELS), None)
    model_id = transcript.model_id if transcript else None
    model = folder_model or model_family(label) or model_family(model_id)
    if label and model_id and model_family(label) != model_family(model_id):
        notes.append(f"results.json says model {label!r}, trace.jsonl shows {model_id!r}")

    pull, fix = finite_number(results.get("pull_time")), finite_number(results.get("permission_fix_time"))
    image = results.get("image_info") if isinstance(results.get("image_info"), dict) else {}
    meta = {
        "source": str(run_dir), "folder": info["folder"], "task": info["task"], "attempt": info["attempt"],
        "category": info["category"], "difficulty": info["difficulty"],
        "model_label": label, "model_id": model_id, "image": results.get("image"),
        "pull_time": pull, "permission_fix_time": fix,
        "init_time": pull + fix if pull is not None and fix is not None else None,
        "claude_time": finite_number(results.get("claude_time")),
        "total_time": finite_number(results.get("total_time")),
        "image_size_bytes": finite_number(image.get("size_bytes")),
        "output_tokens": transcript.output_tokens if transcript else None,
        "rounds": transcript.rounds if transcript else None,
        "has_calls": has_calls, "start_epoch": t0, "notes": notes,
    }
    return Trace(info["name"], model, samples, calls, meta)


def finite_number(x) -> float | None:
    """x as a float when it is a finite JSON number (not a bool), else None."""
    return float(x) if _is_number(x) else None


def _calls(raw_calls: list, t0: float, offset: float | None, transcript: Transcript | None,
           notes: list[str]) -> list[ToolCall]:
    calls, unreadable, no_end, filled, bad_input = [], 0, 0, 0, 0

    def when(text) -> float:
        value, aware = parse_time(text)
        if aware:
            return value
        if offset is None:
            raise ValueError("naive time and no host offset")
        return value + offset

    for raw in raw_calls:
        try:
            tool = raw["tool"]
            if not isinstance(tool, str):
                raise TypeError("tool is not a string")
            start = when(raw["timestamp"])
        except (KeyError, TypeError, ValueError):
            unreadable += 1
            continue
        cid = raw.get("id") if isinstance(raw.get("id"), str) else None
        end_text, raw_input = raw.get("end_timestamp"), raw.get("input")
        if transcript is not None and cid is not None:
            if not end_text and transcript.tool_ends.get(cid):
                end_text, filled = transcript.tool_ends[cid], filled + 1
            if raw_input is None:
                raw_input = transcript.tool_inputs.get(cid)
        try:
            end = when(end_text) if end_text else None
        except (TypeError, ValueError):
            end = None
        if end is None:
            no_end += 1
            end = start
        command, readable = command_of(raw_input)
        bad_input += not readable
        calls.append(ToolCall(round(start - t0, 6), round(max(end, start) - t0, 6), tool, command,
                              classify_call(tool, command), cid))
    if unreadable:
        notes.append(f"{unreadable} unreadable tool call(s) dropped")
    if filled:
        notes.append(f"{filled} call end time(s) taken from trace.jsonl")
    if no_end:
        notes.append(f"{no_end} call(s) without an end time (zero duration)")
    if bad_input:
        notes.append(f"{bad_input} call input(s) unreadable (command unknown)")
    calls.sort(key=lambda c: (c.start, c.end))
    return calls


def find_runs(root: str | Path) -> list[Path]:
    """Directories under root holding any recorded-run file, in sorted order (not descending into them)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if any(f in filenames for f in RUN_FILES):
            found.append(Path(dirpath))
            dirnames.clear()
    return found


def load_all(root: str | Path) -> tuple[list[Trace], list[tuple[Path, str]]]:
    """Every run under root: (usable traces, [(run_dir, reason)] for the skipped ones). Never raises for a run."""
    root = Path(root)
    if not root.is_dir():
        raise TraceError(f"{root}: not a directory")
    traces, skipped = [], []
    for run_dir in find_runs(root):
        try:
            traces.append(load_run(run_dir, root))
        except TraceError as e:
            skipped.append((run_dir, str(e)))
        except Exception as e:  # one odd run must not stop an import of hundreds
            skipped.append((run_dir, f"unexpected {type(e).__name__}: {e}"))
    return traces, skipped


# --- our own compact format ---------------------------------------------------------------------------------

def to_dict(trace: Trace) -> dict:
    return {
        "format": FORMAT, "name": trace.name, "model": trace.model, "meta": trace.meta,
        "samples": [[s.t, s.mem_bytes, s.cpu_pct] for s in trace.samples],
        "calls": [{"start": c.start, "end": c.end, "tool": c.tool, "command": c.command, "category": c.category,
                   "id": c.id} for c in trace.calls],
    }


def save(trace: Trace, path: str | Path) -> None:
    """Write a trace in the agentcg-trace/1 format (YAML for .yaml/.yml, JSON otherwise)."""
    path = Path(path)
    data = json.loads(json.dumps(to_dict(trace), default=str))  # meta values JSON cannot hold become strings
    if path.suffix in (".yaml", ".yml"):
        import yaml
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        path.write_text(json.dumps(data, indent=1) + "\n")


def load(path: str | Path) -> Trace:
    """Read an agentcg-trace/1 file (JSON, or YAML for .yaml/.yml); TraceError names what is wrong."""
    path = Path(path)
    text = read_text(path, TraceError)
    data = parse_yaml(text, path, TraceError) if path.suffix in (".yaml", ".yml") else parse_json(text, path, TraceError)
    try:
        return from_dict(data)
    except TraceError as e:
        raise TraceError(f"{path}: {e}") from None


def from_dict(data) -> Trace:
    """Validate and build a Trace from an agentcg-trace/1 mapping."""
    if not isinstance(data, dict):
        raise TraceError("expected a mapping at the top level")
    if data.get("format") != FORMAT:
        raise TraceError(f"format must be {FORMAT!r}, got {data.get('format')!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise TraceError("name must be a non-empty string")
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise TraceError("model must be a string or null")
    meta = data.get("meta", {})
    if not isinstance(meta, dict):
        raise TraceError("meta must be a mapping")
    raw_samples, raw_calls = data.get("samples"), data.get("calls", [])
    if not isinstance(raw_samples, list) or not raw_samples:
        raise TraceError("samples must be a non-empty list of [t, mem_bytes, cpu_pct]")
    samples = []
    for i, s in enumerate(raw_samples):
        if not (isinstance(s, list) and len(s) == 3 and all(_is_number(x) for x in s)):
            raise TraceError(f"samples[{i}]: expected [t, mem_bytes, cpu_pct] numbers, got {s!r}")
        t, mem, cpu = s
        if float(mem) != int(mem) or mem < 0 or cpu < 0:
            raise TraceError(f"samples[{i}]: mem_bytes must be a whole number >= 0 and cpu_pct >= 0")
        if samples and t < samples[-1].t:
            raise TraceError(f"samples[{i}]: time {t} goes backwards")
        samples.append(Sample(float(t), int(mem), float(cpu)))
    if not isinstance(raw_calls, list):
        raise TraceError("calls must be a list")
    calls = []
    for i, c in enumerate(raw_calls):
        if not isinstance(c, dict):
            raise TraceError(f"calls[{i}]: expected a mapping")
        if not (_is_number(c.get("start")) and _is_number(c.get("end"))):
            raise TraceError(f"calls[{i}]: start and end must be numbers")
        if c["end"] < c["start"]:
            raise TraceError(f"calls[{i}]: end {c['end']} is before start {c['start']}")
        if not isinstance(c.get("tool"), str) or not c["tool"]:
            raise TraceError(f"calls[{i}]: tool must be a non-empty string")
        for key in ("command", "category", "id"):
            if c.get(key) is not None and not isinstance(c[key], str):
                raise TraceError(f"calls[{i}]: {key} must be a string or null")
        category = c["category"] if "category" in c else classify_call(c["tool"], c.get("command"))
        calls.append(ToolCall(float(c["start"]), float(c["end"]), c["tool"], c.get("command"), category,
                              c.get("id")))
    meta = dict(meta)
    meta.setdefault("has_calls", "calls" in data)
    meta.setdefault("notes", [])
    return Trace(name, model, samples, calls, meta)


def summarize(traces: list[Trace], skipped: list[tuple[Path, str]], root: str | Path | None = None) -> dict:
    """Counts per folder (usable, without tool calls, without transcript, skipped), per model, and the skipped
    runs grouped by reason (root, when given, is where the skipped runs were found)."""
    folders: dict[str, dict] = {}

    def row(folder):
        return folders.setdefault(folder or "(none)", {"usable": 0, "without_calls": 0, "without_transcript": 0,
                                                       "skipped": 0})
    for t in traces:
        r = row(t.meta.get("folder"))
        r["usable"] += 1
        r["without_calls"] += not t.meta.get("has_calls", True)
        r["without_transcript"] += t.meta.get("rounds") is None
    by_reason: dict[str, list[str]] = {}
    for path, reason in skipped:
        row(_describe(Path(path), Path(root) if root is not None else None)["folder"])["skipped"] += 1
        by_reason.setdefault(reason, []).append(str(path))
    return {"usable": len(traces), "skipped": len(skipped), "folders": dict(sorted(folders.items())),
            "models": dict(Counter(t.model or "unknown" for t in traces).most_common()),
            "skipped_by_reason": by_reason}
