"""`agentcg record`: sample a running agent's cgroup v2 (memory and CPU) and its tool-call boundaries into a
recorded-run directory, so that `agentcg analyze DIR` characterises a live run with exactly the definitions used
for the shared podman recordings (agentcg.workloads.traces reads the directory; nothing here re-implements a metric).

Sampling. Every `interval` seconds (default 1 s, the rate of the podman recordings) one sample is taken:
- memory: `memory.current` of the cgroup (hierarchical: the cgroup and everything below it, page cache
  included). Without the memory controller (a hybrid v1/v2 host, the root cgroup, a cgroup whose parent does
  not delegate it) the fallback is the sum of VmRSS of the processes in the cgroup and its descendants; that
  counts shared pages once per process and page cache not at all, so it is not comparable with memory.current.
  results.json says which one was used (`memory_source`);
- CPU: the increase of `usage_usec` in `cpu.stat` over the wall-clock time between two samples, in percent of
  one core (100% = one core busy, above 100 with several). Without cpu.stat the fallback follows utime+stime of
  each process (from /proc/PID/stat, keyed by pid and start time): a process that appears counts its whole CPU
  time, one that exits loses its last interval (`cpu_source` says which one was used).
A burst shorter than the interval can fall entirely between two samples: at 1 s a `pytest` that peaks for half a
second is often invisible and call_spike() (agentcg.analysis.analyze) cannot observe calls shorter than the interval.
Use `--interval 0.1` to see tool bursts; each sample reads a few small files (the fallbacks read two files per
process), so 0.1 s costs little. Samples are scheduled on a fixed grid (no drift); a sample that takes longer
than the interval skips the grid points it missed instead of sampling in a burst.

Tool-call boundaries come from a JSON-lines events file that hooks (e.g. Claude Code PreToolUse/PostToolUse) or
the `agentcg exec` wrapper append to, one object per line (`agentcg.hooks.append_event()` writes one):

    {"event": "start", "id": "toolu_01", "tool": "Bash", "command": "python -m pytest", "time": 1770000000.25}
    {"event": "end",   "id": "toolu_01", "time": 1770000004.5}

- event: "start" or "end"; id: a string (or integer) naming the call, the same in its start and its end;
  tool: the tool name, required on a start (an end's tool and command, if given, are ignored);
  command: the command line (Bash) or null/absent; time: epoch seconds (float).
- The file is read once, when the recording stops. Lines that are not such objects (truncated, not JSON, a
  missing field) are skipped and counted; blank lines are ignored.
- Events are paired by id in time order. An end without an open start is dropped (counted); a start whose id
  is already open supersedes the older start, which is dropped (counted: an id reused by a killed session).
  A start still open at the end is closed at the recording's end, unless it began before the recording did
  (a stale leftover of an earlier session: dropped, counted). Calls entirely outside the recording are dropped
  (counted), so one events file can be shared by many recordings.

Output DIR holds the recorded-run layout agentcg.workloads.traces.load_run reads:
- resources.json: {"samples": [{"epoch", "timestamp" (naive local time, as the podman recorder wrote it),
  "mem_usage": "123.456MB / <memory.max or max>", "mem_bytes", "cpu_percent": "12.50%"}]};
- tool_calls.json (only with an events file): [{"id", "tool", "timestamp", "end_timestamp" (ISO 8601 UTC "Z"),
  "input": {"command": ...}}];
- results.json: what was recorded and how (cgroup, pid, interval, start/end, stop reason, memory/CPU source,
  event counts, notes). It has no init_time/claude_time: the recorder does not know when the agent started
  working, so analyze's latency split stays empty for a recording.
Files are written into a hidden temporary directory beside DIR that is renamed to DIR at the end, so DIR appears
complete or not at all (DIR may exist if empty; a non-empty DIR is refused rather than overwritten).

Stopping: after `duration` seconds, on SIGINT/SIGTERM (what was collected is written, with one last sample), or
when the cgroup is removed or the recorded pid exits.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from agentcg.cgroup import parse_keyed
from agentcg.stopping import Stop

PROC = Path("/proc")
MB = 1_000_000
CLK_TCK = os.sysconf("SC_CLK_TCK")


class RecordError(Exception):
    """Bad input or an unrecordable target; the message is the reason."""


# --- tool events ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    kind: str  # "start" | "end"
    id: str
    time: float  # epoch seconds
    tool: str | None = None
    command: str | None = None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def parse_event(line: str) -> Event:
    """One events-file line as an Event; ValueError (the reason) for anything else."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    kind, cid, when = data.get("event"), data.get("id"), data.get("time")
    if kind not in ("start", "end"):
        raise ValueError(f"event must be 'start' or 'end', got {kind!r}")
    if isinstance(cid, int) and not isinstance(cid, bool):
        cid = str(cid)
    if not isinstance(cid, str) or not cid:
        raise ValueError("id must be a non-empty string")
    if not _finite(when) or when <= 0:
        raise ValueError("time must be epoch seconds")
    if kind == "end":
        return Event(kind, cid, float(when))
    tool, command = data.get("tool"), data.get("command")
    if not isinstance(tool, str) or not tool:
        raise ValueError("a start needs a tool name")
    if command is not None and not isinstance(command, str):
        raise ValueError("command must be a string or null")
    return Event(kind, cid, float(when), tool, command)


def read_events(path: str | Path) -> tuple[list[Event], int]:
    """(events, skipped lines) of an events file; a missing file is an empty one."""
    events, skipped = [], 0
    try:
        f = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], 0
    except OSError as e:
        raise RecordError(f"{path}: cannot read the events file ({e.strerror})") from None
    with f:
        for line in f:
            if not line.strip():
                continue
            try:
                events.append(parse_event(line))
            except (ValueError, RecursionError):
                skipped += 1
    return events, skipped


@dataclass(frozen=True)
class Call:
    id: str
    tool: str
    command: str | None
    start: float  # epoch seconds
    end: float
    closed_at_end: bool = False  # no end event: closed when the recording stopped


@dataclass
class Pairing:
    calls: list[Call] = field(default_factory=list)
    unmatched_starts: int = 0  # closed at the recording's end
    unmatched_ends: int = 0  # dropped
    superseded_starts: int = 0  # dropped: a later start reused the id
    outside: int = 0  # dropped: entirely outside the recording (or a stale open start from before it)


def pair_events(events: list[Event], start: float, end: float) -> Pairing:
    """Calls from events, for a recording from `start` to `end` (epoch seconds); see the module docstring."""
    out = Pairing()
    open_: dict[str, Event] = {}
    calls = []
    for ev in sorted(events, key=lambda e: e.time):  # stable: same-time events keep their file order
        if ev.kind == "start":
            if ev.id in open_:
                out.superseded_starts += 1
            open_[ev.id] = ev
        elif ev.id in open_:
            s = open_.pop(ev.id)
            calls.append(Call(s.id, s.tool, s.command, s.time, ev.time))
        else:
            out.unmatched_ends += 1
    for s in open_.values():
        if s.time < start:
            out.outside += 1
        else:
            out.unmatched_starts += 1
            calls.append(Call(s.id, s.tool, s.command, s.time, max(end, s.time), closed_at_end=True))
    for c in sorted(calls, key=lambda c: (c.start, c.end)):
        if c.end < start or c.start > end:
            out.outside += 1
        else:
            out.calls.append(c)
    return out


# --- finding the cgroup ---------------------------------------------------------------------------------------

def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def cgroup2_mounts(mountinfo: str) -> list[tuple[Path, str]]:
    """(mount point, root inside the hierarchy) of every cgroup2 mount in a mountinfo text. On a hybrid host the
    v2 hierarchy is mounted at /sys/fs/cgroup/unified; in a container its root may be a sub-cgroup."""
    out = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()[:1]
        if sep and fstype == ["cgroup2"] and len(fields) >= 5:
            out.append((Path(_unescape(fields[4])), _unescape(fields[3])))
    return out


def _cgroup2_mounts(proc: Path) -> list[tuple[Path, str]]:
    try:
        mounts = cgroup2_mounts((proc / "self" / "mountinfo").read_text())
    except OSError as e:
        raise RecordError(f"cannot read {proc / 'self' / 'mountinfo'} ({e.strerror})") from None
    if not mounts:
        raise RecordError("no cgroup2 file system is mounted (see /proc/self/mountinfo)")
    return mounts


def _in_mount(mount: Path, root: str, rel: str) -> Path | None:
    """Where cgroup `rel` (a path in the hierarchy) is seen through a mount of the hierarchy's `root`."""
    root = root.rstrip("/")
    if root and rel != root and not rel.startswith(root + "/"):
        return None
    return mount / rel[len(root):].lstrip("/")


def is_cgroup(path: Path) -> bool:
    return (path / "cgroup.procs").is_file()


def cgroup_of_pid(pid: int, proc: Path = PROC) -> Path:
    """The directory of pid's cgroup v2 (the `0::` line of /proc/PID/cgroup) under the cgroup2 mount."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except FileNotFoundError:
        raise RecordError(f"no process with pid {pid}") from None
    except OSError as e:
        raise RecordError(f"cannot read {proc / str(pid) / 'cgroup'} ({e.strerror})") from None
    rel = next((line[3:] for line in text.splitlines() if line.startswith("0::")), None)
    if rel is None:
        raise RecordError(f"pid {pid} is in no cgroup v2 hierarchy (no '0::' line in /proc/{pid}/cgroup)")
    for mount, root in _cgroup2_mounts(proc):
        path = _in_mount(mount, root, rel)
        if path is not None and is_cgroup(path):
            return path
    raise RecordError(f"pid {pid}'s cgroup {rel} is not visible under any cgroup2 mount")


def resolve_cgroup(arg: str, proc: Path = PROC) -> Path:
    """A cgroup directory given as a path, or as a path inside the cgroup2 hierarchy ("agent.slice/run-1")."""
    path = Path(arg)
    if is_cgroup(path):
        return path
    try:
        mounts = _cgroup2_mounts(proc)
    except RecordError:
        mounts = []
    for mount, _root in mounts:
        if is_cgroup(mount / arg.lstrip("/")):
            return mount / arg.lstrip("/")
    raise RecordError(f"{arg}: not a cgroup directory (no cgroup.procs there or under a cgroup2 mount)")


# --- reading a cgroup -----------------------------------------------------------------------------------------

def _proc_stat(proc: Path, pid: int) -> tuple[str, int, int] | None:
    """(state, utime+stime ticks, start time) of a process, None when it is gone. The command name may hold
    spaces and parentheses, so fields are counted after its last ')'."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[11]) + int(fields[12]), int(fields[19])
    except (IndexError, ValueError):
        return None


def _vm_rss(proc: Path, pid: int) -> int:
    """Resident bytes of a process (0 for kernel threads and processes that are gone)."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return 0
    m = re.search(r"^VmRSS:\s+(\d+)\s*kB", text, re.M)
    return int(m.group(1)) * 1024 if m else 0


class CgroupSource:
    """The counters of one cgroup, read from its directory (and /proc for the fallbacks). Paths are injectable so
    that tests can use a fake cgroup and a fake /proc."""

    def __init__(self, path: str | Path, proc: Path = PROC, pid: int | None = None):
        self.path = Path(path)
        self.proc = Path(proc)
        self.pid = pid
        if not is_cgroup(self.path):
            raise RecordError(f"{self.path}: not a cgroup directory (no cgroup.procs)")
        self.memory_source = "memory.current" if (self.path / "memory.current").is_file() else "VmRSS"
        self.cpu_source = "cpu.stat" if "usage_usec" in self._cpu_stat() else "proc-stat"
        self._ticks: dict[tuple[int, int], int] | None = None
        self._total_ticks = 0
        self._pid_start = None
        if pid is not None:
            st = _proc_stat(self.proc, pid)
            if st is None:
                raise RecordError(f"no process with pid {pid}")
            self._pid_start = st[2]

    def _cpu_stat(self) -> dict[str, int]:
        try:
            return parse_keyed((self.path / "cpu.stat").read_text())
        except FileNotFoundError:
            return {}

    def gone(self) -> str | None:
        """Why the recording cannot go on (the cgroup was removed, the pid exited), or None."""
        if not is_cgroup(self.path):
            return "cgroup removed"
        if self.pid is not None:
            st = _proc_stat(self.proc, self.pid)
            if st is None or st[2] != self._pid_start or st[0] in ("Z", "X"):
                return f"pid {self.pid} exited"
        return None

    def pids(self) -> list[int]:
        """Processes in the cgroup and its descendants (cgroup.procs lists only a cgroup's own)."""
        out = []
        for dirpath, _dirs, files in os.walk(self.path):
            if "cgroup.procs" in files:
                try:
                    out += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
                except (OSError, ValueError):  # a child removed while we walk
                    continue
        return out

    def memory_limit(self) -> int | None:
        try:
            text = (self.path / "memory.max").read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def memory(self) -> int:
        """Bytes: memory.current, else the sum of VmRSS of the cgroup's processes."""
        if self.memory_source == "memory.current":
            return int((self.path / "memory.current").read_text())
        return sum(_vm_rss(self.proc, pid) for pid in self.pids())

    def cpu_usec(self) -> float:
        """A cumulative CPU-time counter in microseconds (only its increase between two readings means
        anything): cpu.stat usage_usec, else the summed per-process increases of utime+stime."""
        if self.cpu_source == "cpu.stat":
            return float(parse_keyed((self.path / "cpu.stat").read_text())["usage_usec"])
        ticks = {}
        for pid in self.pids():
            st = _proc_stat(self.proc, pid)
            if st is not None:
                ticks[(pid, st[2])] = st[1]
        if self._ticks is None:
            self._total_ticks = sum(ticks.values())
        else:
            self._total_ticks += sum(max(0, t - self._ticks.get(k, 0)) for k, t in ticks.items())
        self._ticks = ticks
        return self._total_ticks * 1e6 / CLK_TCK


# --- the sampling loop ----------------------------------------------------------------------------------------

class Clock:
    """Wall and monotonic time, and a wait that returns True as soon as `stop` is set (a signal handler sets it,
    so Ctrl-C ends even a long interval at once). Tests substitute a fake clock."""

    def __init__(self, stop: Stop):
        self.stop = stop

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def wait(self, seconds: float) -> bool:
        return self.stop.wait(seconds) if seconds > 0 else self.stop.is_set()


@dataclass
class Recording:
    source: CgroupSource
    interval: float
    samples: list[tuple[float, int, float]]  # (epoch, mem_bytes, cpu_pct)
    start: float  # epoch
    end: float
    stop_reason: str
    memory_limit: int | None = None


def sample(source: CgroupSource, interval: float, duration: float | None = None, clock=None) -> Recording:
    """Sample until `duration` elapses, the clock's stop is set, or the source is gone."""
    clock = clock or Clock(Stop())
    limit = source.memory_limit()
    prev_cpu, prev_m = source.cpu_usec(), clock.mono()
    start_m, start = prev_m, clock.wall()
    deadline = start_m + duration if duration else math.inf
    due = start_m + interval
    samples: list[tuple[float, int, float]] = []
    while True:
        target = min(due, deadline)
        stopped = clock.wait(target - clock.mono())
        if not stopped and clock.mono() < target:
            continue  # woke a little early
        reason = source.gone()
        if reason:
            break
        if stopped:
            reason = "signal"
            if clock.mono() <= prev_m:
                break
        try:
            cpu = source.cpu_usec()
            m, epoch = clock.mono(), clock.wall()
            mem = source.memory()
        except (OSError, KeyError, ValueError) as e:
            reason = source.gone()
            if reason:  # removed between the check and the read
                break
            raise RecordError(f"cannot read {source.path}: {e}") from None
        gone = source.gone()
        if gone:  # removed while being read: the fallbacks would have read an empty cgroup
            reason = gone
            break
        pct = max(0.0, (cpu - prev_cpu) / ((m - prev_m) * 1e6) * 100) if m > prev_m else 0.0
        samples.append((epoch, mem, pct))
        prev_cpu, prev_m = cpu, m
        if stopped:
            break
        if target >= deadline:
            reason = "duration"
            break
        while due <= clock.mono():
            due += interval
    return Recording(source, interval, samples, start, clock.wall(), reason, limit)


# --- writing the run directory --------------------------------------------------------------------------------

def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _mb(value: int) -> str:
    return f"{value / MB:.3f}MB"


def resources_json(rec: Recording) -> dict:
    limit = _mb(rec.memory_limit) if rec.memory_limit is not None else "max"
    return {"samples": [{"epoch": round(epoch, 6), "timestamp": datetime.fromtimestamp(epoch).isoformat(),
                         "mem_usage": f"{_mb(mem)} / {limit}", "mem_bytes": mem, "cpu_percent": f"{cpu:.2f}%"}
                        for epoch, mem, cpu in rec.samples]}


def tool_calls_json(pairing: Pairing) -> list[dict]:
    out = []
    for c in pairing.calls:
        call = {"id": c.id, "tool": c.tool, "timestamp": iso_utc(c.start), "end_timestamp": iso_utc(c.end),
                "input": {"command": c.command} if c.command is not None else {}}
        if c.closed_at_end:
            call["closed_at_recording_end"] = True
        out.append(call)
    return out


_MEMORY_NOTES = {
    "memory.current": "memory is memory.current (the cgroup and its descendants, page cache included)",
    "VmRSS": "no memory controller (memory.current missing): memory is the sum of VmRSS of the cgroup's "
             "processes (shared pages once per process, page cache not counted)",
}
_CPU_NOTES = {
    "cpu.stat": "CPU is the increase of cpu.stat usage_usec over wall time (100% = one core)",
    "proc-stat": "cpu.stat missing: CPU is the increase of utime+stime of the cgroup's processes from "
                 "/proc/PID/stat (a process's last interval is lost when it exits)",
}


def results_json(rec: Recording, events_file: Path | None, pairing: Pairing | None, skipped: int,
                 notes: list[str]) -> dict:
    out = {
        "recorder": "agentcg record", "cgroup": str(rec.source.path), "pid": rec.source.pid,
        "interval": rec.interval, "start_epoch": rec.start, "end_epoch": rec.end, "start": iso_utc(rec.start),
        "end": iso_utc(rec.end), "total_time": rec.end - rec.start, "stop_reason": rec.stop_reason,
        "samples": len(rec.samples), "memory_source": rec.source.memory_source,
        "cpu_source": rec.source.cpu_source, "memory_limit_bytes": rec.memory_limit,
        "notes": [_MEMORY_NOTES[rec.source.memory_source], _CPU_NOTES[rec.source.cpu_source]] + notes,
    }
    if events_file is not None and pairing is not None:
        out["tool_events"] = {"file": str(events_file), "calls": len(pairing.calls), "skipped_lines": skipped,
                              "unmatched_starts_closed": pairing.unmatched_starts,
                              "unmatched_ends_dropped": pairing.unmatched_ends,
                              "superseded_starts_dropped": pairing.superseded_starts,
                              "outside_recording_dropped": pairing.outside}
    return out


class OutputDir:
    """DIR written all at once: files go to a hidden temporary directory beside it, renamed to DIR at the end.
    Creating that directory up front proves DIR's parent is writable before any sampling starts."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise RecordError(f"{self.out}: exists and is not a directory")
        if self.out.is_dir() and any(self.out.iterdir()):
            raise RecordError(f"{self.out}: exists and is not empty (refusing to overwrite a recording)")
        parent = self.out.absolute().parent
        if not parent.is_dir():
            raise RecordError(f"{parent}: no such directory (the output's parent must exist)")
        try:
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.partial-", dir=parent))
        except OSError as e:
            raise RecordError(f"{parent}: cannot create the output there ({e.strerror})") from None

    def commit(self, files: dict[str, object]) -> None:
        try:
            for name, data in files.items():
                with open(self.tmp / name, "w", encoding="utf-8") as f:
                    json.dump(data, f, indent=1)
                    f.write("\n")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp made it private
            os.rename(self.tmp, self.out)  # replaces DIR only when DIR is an empty directory
        except OSError as e:
            self.discard()
            raise RecordError(f"{self.out}: cannot write the recording ({e.strerror or e})") from None

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- the command ----------------------------------------------------------------------------------------------

@dataclass
class Summary:
    out: Path
    samples: int
    seconds: float
    stop_reason: str
    memory_source: str
    cpu_source: str
    calls: int | None  # None without an events file
    notes: list[str]


def run(out: str | Path, cgroup: str | None = None, pid: int | None = None, interval: float = 1.0,
        duration: float | None = None, tool_events: str | Path | None = None, proc: Path = PROC,
        clock=None, log: Callable[[str], None] | None = None) -> Summary:
    """Validate, record, pair the tool events and write DIR; RecordError (nothing written) on bad input."""
    if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
        raise RecordError(f"--interval must be a positive number of seconds, got {interval}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise RecordError(f"--duration must be a positive number of seconds, got {duration}")
    if (cgroup is None) == (pid is None):
        raise RecordError("give exactly one of --cgroup PATH and --pid PID")
    if pid is not None:
        source = CgroupSource(cgroup_of_pid(pid, proc), proc, pid)
    else:
        source = CgroupSource(resolve_cgroup(cgroup, proc), proc)
    events_file = Path(tool_events) if tool_events is not None else None
    if events_file is not None and events_file.exists() and not events_file.is_file():
        raise RecordError(f"{events_file}: the tool events file is not a regular file")

    output = OutputDir(out)
    try:
        stop = Stop()
        with _stop_on_signals(stop):
            if log:  # once signals are handled: a wrapper may send SIGTERM as soon as it sees this line
                log(f"recording {source.path} every {interval:g} s"
                    + (f" for {duration:g} s" if duration else "") + " (Ctrl-C to stop)")
            rec = sample(source, interval, duration, clock or Clock(stop))
        if not rec.samples:
            raise RecordError(f"no sample was taken before the recording stopped ({rec.stop_reason})")
        files: dict[str, object] = {"resources.json": resources_json(rec)}
        notes: list[str] = []
        pairing, skipped = None, 0
        if events_file is not None:
            if not events_file.exists():
                notes.append(f"tool events file {events_file} was never written: no tool calls")
            events, skipped = read_events(events_file)
            pairing = pair_events(events, rec.start, rec.end)
            files["tool_calls.json"] = tool_calls_json(pairing)
        files["results.json"] = results_json(rec, events_file, pairing, skipped, notes)
        output.commit(files)
    except BaseException:
        output.discard()
        raise
    if pairing is not None:
        counts = [(skipped, "malformed event line(s) skipped"),
                  (pairing.unmatched_starts, "call(s) without an end closed at the recording's end"),
                  (pairing.unmatched_ends, "end(s) without a start dropped"),
                  (pairing.superseded_starts, "start(s) superseded by a reused id dropped"),
                  (pairing.outside, "call(s) outside the recording dropped")]
        notes += [f"{n} {what}" for n, what in counts if n]
    return Summary(output.out, len(rec.samples), rec.end - rec.start, rec.stop_reason, source.memory_source,
                   source.cpu_source, len(pairing.calls) if pairing is not None else None, notes)


class _stop_on_signals:
    """While active, SIGINT and SIGTERM set `stop` (the recording ends and is written) instead of killing."""

    def __init__(self, stop: Stop):
        self.stop = stop
        self.saved: dict = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        return False
