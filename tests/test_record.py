import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentcg import hooks
from agentcg.cli import main
from agentcg.workloads import record, traces
from agentcg.workloads.record import CgroupSource, Event, RecordError

MB = 1_000_000
E0 = 1770000000.0  # wall clock of the fake clock at mono 0
REPO = Path(__file__).resolve().parent.parent


class FakeClock:
    """Time moves only in wait(); on_wait(clock) runs after each move (to change the fake cgroup between
    samples); wait() reports a stop from the stop_at-th call on."""

    def __init__(self, on_wait=None, stop_at=None):
        self.t, self.waits, self.on_wait, self.stop_at = 0.0, 0, on_wait, stop_at

    def wall(self):
        return E0 + self.t

    def mono(self):
        return self.t

    def wait(self, seconds):
        self.t += max(seconds, 0.0)
        self.waits += 1
        if self.on_wait:
            self.on_wait(self)
        return self.stop_at is not None and self.waits >= self.stop_at


def fake_cgroup(root: Path, mem=100 * MB, usage=0, procs=(), name="cg") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    if mem is not None:
        (d / "memory.current").write_text(f"{mem}\n")
    if usage is not None:
        set_usage(d, usage)
    return d


def set_usage(cg: Path, usec: int) -> None:
    (cg / "cpu.stat").write_text(f"usage_usec {usec}\nuser_usec {usec}\nsystem_usec 0\n")


def usage(cg: Path) -> int:
    return int((cg / "cpu.stat").read_text().split()[1])


def changing(cg: Path, mems_mb, cpu_pct):
    """on_wait that sets memory.current to mems_mb[i] and adds cpu_pct[i] % of the elapsed time to usage_usec
    before the i-th sample."""
    last = [0.0]

    def on_wait(clock):
        i = clock.waits - 1
        if i < len(mems_mb):
            (cg / "memory.current").write_text(f"{int(mems_mb[i] * MB)}\n")
            set_usage(cg, usage(cg) + round(cpu_pct[i] / 100 * (clock.t - last[0]) * 1e6))
        last[0] = clock.t
    return on_wait


def fake_stat(proc: Path, pid: int, ticks=(0, 0), start=1000, state="S", comm="agent (x) y"):
    (proc / str(pid)).mkdir(parents=True, exist_ok=True)
    (proc / str(pid) / "stat").write_text(
        f"{pid} ({comm}) {state} 1 {pid} {pid} 0 -1 4194304 100 0 0 0 {ticks[0]} {ticks[1]} 0 0 20 0 1 0 "
        f"{start} 1000 100\n")


def mountinfo(proc: Path, *lines: str) -> None:
    (proc / "self").mkdir(parents=True, exist_ok=True)
    (proc / "self" / "mountinfo").write_text(
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n" + "".join(line + "\n" for line in lines))


def v2_mount(mount: Path, root="/") -> str:
    return f"41 31 0:38 {root} {str(mount).replace(' ', chr(92) + '040')} rw,relatime - cgroup2 cgroup2 rw"


# --- sampling -------------------------------------------------------------------------------------------------

def test_samples_follow_memory_current_and_cpu_stat(tmp_path):
    cg = fake_cgroup(tmp_path)
    src = CgroupSource(cg)
    assert (src.memory_source, src.cpu_source) == ("memory.current", "cpu.stat")
    clock = FakeClock(changing(cg, [150, 900, 200], [50, 200, 0]))
    rec = record.sample(src, 1.0, duration=3.0, clock=clock)
    assert rec.stop_reason == "duration"
    assert [e - E0 for e, _, _ in rec.samples] == [1.0, 2.0, 3.0]
    assert [m for _, m, _ in rec.samples] == [150 * MB, 900 * MB, 200 * MB]
    assert [c for _, _, c in rec.samples] == pytest.approx([50.0, 200.0, 0.0])
    assert (rec.start, rec.end) == (E0, E0 + 3.0)


def test_sub_second_interval_and_a_duration_off_the_grid(tmp_path):
    src = CgroupSource(fake_cgroup(tmp_path))
    rec = record.sample(src, 0.1, duration=0.35, clock=FakeClock())
    assert [round(e - E0, 6) for e, _, _ in rec.samples] == [0.1, 0.2, 0.3, 0.35]
    rec = record.sample(src, 1.0, duration=0.5, clock=FakeClock())  # shorter than one interval: one sample
    assert [e - E0 for e, _, _ in rec.samples] == [0.5]


def test_a_slow_sample_skips_the_missed_grid_points(tmp_path):
    src = CgroupSource(fake_cgroup(tmp_path))

    class Slow(FakeClock):
        def wall(self):  # reading the wall clock happens during a sample: make the second one take 2.5 s
            if self.waits == 2 and self.t < 10:
                self.t += 2.5
            return E0 + self.t
    rec = record.sample(src, 1.0, duration=6.0, clock=Slow())
    assert [e - E0 for e, _, _ in rec.samples] == [1.0, 4.5, 5.0, 6.0]


def test_stop_writes_what_was_collected_with_a_last_sample(tmp_path):
    cg = fake_cgroup(tmp_path)
    clock = FakeClock(changing(cg, [1, 2, 3], [0, 0, 0]), stop_at=3)
    rec = record.sample(CgroupSource(cg), 1.0, clock=clock)
    assert rec.stop_reason == "signal"
    assert [m for _, m, _ in rec.samples] == [1 * MB, 2 * MB, 3 * MB]


def test_recording_stops_when_the_cgroup_is_removed(tmp_path):
    cg = fake_cgroup(tmp_path)

    def on_wait(clock):
        if clock.waits == 3:
            for f in cg.iterdir():
                f.unlink()
            cg.rmdir()
    rec = record.sample(CgroupSource(cg), 1.0, clock=FakeClock(on_wait))
    assert rec.stop_reason == "cgroup removed"
    assert len(rec.samples) == 2


@pytest.mark.parametrize("how", ["exit", "zombie", "pid reused"])
def test_recording_stops_when_the_pid_exits(tmp_path, how):
    proc = tmp_path / "proc"
    fake_stat(proc, 4242)
    cg = fake_cgroup(tmp_path, procs=[4242])

    def on_wait(clock):
        if clock.waits == 2:
            if how == "exit":
                (proc / "4242" / "stat").unlink()
            else:
                fake_stat(proc, 4242, state="Z" if how == "zombie" else "S", start=1000 if how == "zombie" else 5)
    rec = record.sample(CgroupSource(cg, proc, pid=4242), 0.5, clock=FakeClock(on_wait))
    assert rec.stop_reason == "pid 4242 exited"
    assert len(rec.samples) == 1


def test_fallbacks_without_memory_and_cpu_files(tmp_path):
    """No memory controller, no cpu.stat: VmRSS and utime+stime of the processes of the cgroup and its children;
    a new process counts its whole CPU time, an exited one drops out, a pid listed but gone is ignored."""
    proc = tmp_path / "proc"
    cg = fake_cgroup(tmp_path, mem=None, usage=None, procs=[10, 12])
    (cg / "child").mkdir()
    (cg / "child" / "cgroup.procs").write_text("11\n")
    for pid, kb in ((10, 1000), (11, 500)):
        fake_stat(proc, pid, ticks=(100, 50))
        (proc / str(pid) / "status").write_text(f"Name:\tx\nVmRSS:\t  {kb} kB\nThreads:\t1\n")
    tick = 1e6 / record.CLK_TCK
    src = CgroupSource(cg, proc)
    assert (src.memory_source, src.cpu_source) == ("VmRSS", "proc-stat")
    assert src.memory() == 1500 * 1024
    assert sorted(src.pids()) == [10, 11, 12]

    def on_wait(clock):
        if clock.waits == 1:  # +30 ticks in 10, +20 in 11
            fake_stat(proc, 10, ticks=(120, 60))
            fake_stat(proc, 11, ticks=(110, 60))
        if clock.waits == 2:  # 11 exits, 13 (40 ticks) appears
            (cg / "child" / "cgroup.procs").write_text("13\n")
            fake_stat(proc, 13, ticks=(40, 0))
    rec = record.sample(src, 1.0, duration=2.0, clock=FakeClock(on_wait))
    assert [c for _, _, c in rec.samples] == pytest.approx([50 * tick / 1e4, 40 * tick / 1e4])
    assert [m for _, m, _ in rec.samples] == [1500 * 1024, 1000 * 1024]


# --- tool events ----------------------------------------------------------------------------------------------

def start(cid, t, tool="Bash", command=None):
    return Event("start", cid, E0 + t, tool, command)


def end(cid, t):
    return Event("end", cid, E0 + t)


def test_parse_event():
    assert record.parse_event('{"event": "start", "id": 7, "tool": "Bash", "command": "ls", "time": 5}') == \
        Event("start", "7", 5.0, "Bash", "ls")
    assert record.parse_event('{"event": "end", "id": "a", "time": 6.5, "tool": "X"}') == Event("end", "a", 6.5)
    for bad in ('[1]', '{"event": "begin", "id": "a", "time": 1}', '{"event": "end", "time": 1}',
                '{"event": "end", "id": "a", "time": "now"}', '{"event": "end", "id": true, "time": 1}',
                '{"event": "start", "id": "a", "time": 1}', '{"event": "end", "id": "a", "time": NaN}',
                '{"event": "start", "id": "a", "tool": "Bash", "command": 3, "time": 1}', '{"event": "st'):
        with pytest.raises(ValueError):
            record.parse_event(bad)


def test_read_events_counts_malformed_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    hooks.append_event(path, "start", "a", "Bash", "pytest", when=E0 + 1)
    with open(path, "a") as f:
        f.write("\n{not json\n[]\n" + json.dumps({"event": "end", "id": "a"}) + "\n")
    hooks.append_event(path, "end", "a", when=E0 + 2)
    with open(path, "a") as f:
        f.write('{"event": "start", "id": "b", "tool": "Read", "ti')  # a writer caught mid-line
    events, skipped = record.read_events(path)
    assert events == [start("a", 1, command="pytest"), end("a", 2)]
    assert skipped == 4
    assert record.read_events(tmp_path / "missing.jsonl") == ([], 0)


def test_pairing_by_id_in_time_order():
    events = [start("b", 3, "Read"), start("a", 1, command="pytest"), end("a", 4), end("b", 3.5),
              end("zzz", 5),  # no start
              start("c", 6, "Edit")]  # still open at the end
    p = record.pair_events(events, E0, E0 + 10)
    assert [(c.id, c.tool, c.command, c.start - E0, c.end - E0, c.closed_at_end) for c in p.calls] == [
        ("a", "Bash", "pytest", 1, 4, False), ("b", "Read", None, 3, 3.5, False), ("c", "Edit", None, 6, 10, True)]
    assert (p.unmatched_starts, p.unmatched_ends, p.superseded_starts, p.outside) == (1, 1, 0, 0)


def test_pairing_drops_reused_ids_stale_starts_and_calls_outside_the_recording():
    events = [start("old", -100), start("1", -50), end("1", -40),  # an earlier session: killed, and done
              start("1", 1), start("1", 2), end("1", 3),  # id reused: the later start wins
              start("x", 5), end("x", 30),  # ends after the recording: kept
              start("y", -5), end("y", 1)]  # began before it: kept
    p = record.pair_events(events, E0, E0 + 10)
    assert [(c.id, c.start - E0, c.end - E0) for c in p.calls] == [("y", -5, 1), ("1", 2, 3), ("x", 5, 30)]
    assert (p.unmatched_starts, p.unmatched_ends, p.superseded_starts, p.outside) == (0, 0, 1, 2)


# --- locating the cgroup --------------------------------------------------------------------------------------

def test_cgroup2_mounts_hybrid_and_escaped():
    text = ("31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
            "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
            "50 31 0:38 /agent.slice /mnt/my\\040cg rw - cgroup2 none rw\n")
    assert record.cgroup2_mounts(text) == [(Path("/sys/fs/cgroup/unified"), "/"),
                                           (Path("/mnt/my cg"), "/agent.slice")]


@pytest.mark.parametrize("layout", ["unified", "hybrid", "namespaced root", "space in mount"])
def test_pid_to_cgroup_path(tmp_path, layout):
    proc = tmp_path / "proc"
    mount = tmp_path / ("cg root" if layout == "space in mount" else "cgroup")
    target = fake_cgroup(mount, name="agent.slice/run-1")
    rel, root = "/agent.slice/run-1", "/"
    if layout == "namespaced root":
        target = fake_cgroup(mount, name="run-1")
        root = "/agent.slice"
    lines = [v2_mount(mount, root)]
    cgroup_lines = f"0::{rel}\n"
    if layout == "hybrid":
        lines.insert(0, f"35 31 0:32 / {tmp_path}/v1mem rw - cgroup cgroup rw,memory")
        cgroup_lines = f"4:memory:/something\n1:name=systemd:/x\n{cgroup_lines}"
    mountinfo(proc, *lines)
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cgroup").write_text(cgroup_lines)
    assert record.cgroup_of_pid(4242, proc) == target


def test_pid_to_cgroup_errors(tmp_path):
    proc = tmp_path / "proc"
    mount = tmp_path / "cgroup"
    fake_cgroup(mount, name="a")
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "cgroup").write_text("4:memory:/a\n")
    (proc / "2").mkdir()
    (proc / "2" / "cgroup").write_text("0::/gone\n")
    (proc / "3").mkdir()
    (proc / "3" / "cgroup").write_text("0::/a\n")
    mountinfo(proc, v2_mount(mount))
    with pytest.raises(RecordError, match="no process with pid 99"):
        record.cgroup_of_pid(99, proc)
    with pytest.raises(RecordError, match="no cgroup v2 hierarchy"):
        record.cgroup_of_pid(1, proc)
    with pytest.raises(RecordError, match="not visible under any cgroup2 mount"):
        record.cgroup_of_pid(2, proc)
    assert record.cgroup_of_pid(3, proc) == mount / "a"
    mountinfo(proc)  # no cgroup2 mount at all
    with pytest.raises(RecordError, match="no cgroup2 file system"):
        record.cgroup_of_pid(3, proc)


def test_cgroup_argument_as_a_path_inside_the_hierarchy(tmp_path):
    proc = tmp_path / "proc"
    mount = tmp_path / "cgroup"
    cg = fake_cgroup(mount, name="agent.slice/run-1")
    mountinfo(proc, v2_mount(mount))
    assert record.resolve_cgroup(str(cg), proc) == cg
    assert record.resolve_cgroup("/agent.slice/run-1", proc) == cg
    with pytest.raises(RecordError, match="not a cgroup directory"):
        record.resolve_cgroup(str(tmp_path), proc)


# --- the whole recording: output, round trip, errors -----------------------------------------------------------

def test_round_trip_record_then_load_run_and_analyze(tmp_path):
    cg = fake_cgroup(tmp_path)
    events = tmp_path / "events.jsonl"
    hooks.append_event(events, "start", "t1", "Bash", "cd /testbed && python -m pytest -x", when=E0 + 1.5)
    hooks.append_event(events, "end", "t1", when=E0 + 3.5)
    hooks.append_event(events, "start", "t2", "Edit", None, when=E0 + 4.2)
    with open(events, "a") as f:
        f.write("garbage\n")
    clock = FakeClock(changing(cg, [180, 185, 900, 1200, 190, 186], [90, 10, 150, 120, 5, 5]))
    out = tmp_path / "runs" / "task-1"
    out.parent.mkdir()
    summary = record.run(out, cgroup=str(cg), interval=1.0, duration=6.0, tool_events=events, clock=clock)
    assert (summary.samples, summary.calls, summary.stop_reason) == (6, 2, "duration")
    assert summary.notes == ["1 malformed event line(s) skipped",
                             "1 call(s) without an end closed at the recording's end"]
    assert sorted(p.name for p in out.iterdir()) == ["resources.json", "results.json", "tool_calls.json"]
    assert [p.name for p in out.parent.iterdir()] == ["task-1"]  # no temporary directory left

    raw = json.loads((out / "resources.json").read_text())["samples"][2]
    assert raw["mem_usage"] == "900.000MB / max" and raw["cpu_percent"] == "150.00%"
    assert raw["epoch"] == E0 + 3
    calls = json.loads((out / "tool_calls.json").read_text())
    assert calls[0]["timestamp"] == "2026-02-02T02:40:01.500000Z"

    trace = traces.load_run(out)
    assert [s.t for s in trace.samples] == [0, 1, 2, 3, 4, 5]
    assert [s.mem_bytes for s in trace.samples] == [180 * MB, 185 * MB, 900 * MB, 1200 * MB, 190 * MB, 186 * MB]
    assert [s.cpu_pct for s in trace.samples] == pytest.approx([90, 10, 150, 120, 5, 5])
    assert [(c.tool, c.command, c.category, c.start, c.end) for c in trace.calls] == [
        ("Bash", "cd /testbed && python -m pytest -x", "test", 0.5, 2.5), ("Edit", None, "Edit", 3.2, 5.0)]
    assert trace.meta["has_calls"] is True
    results = json.loads((out / "results.json").read_text())
    assert results["memory_source"] == "memory.current" and results["cpu_source"] == "cpu.stat"
    assert results["stop_reason"] == "duration" and results["interval"] == 1.0
    assert results["tool_events"]["skipped_lines"] == 1 and results["tool_events"]["unmatched_starts_closed"] == 1

    from agentcg.analysis import analyze
    assert analyze.call_spike(trace, trace.calls[0]) == 900 * MB - 180 * MB  # samples at 1, 2 s vs the one at 0
    result = CliRunner().invoke(main, ["analyze", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.output)
    assert rep["runs"] == 1 and rep["tables"]["bash_spikes"]["unknown"]["test"]["max_mb"] == pytest.approx(720)


def test_without_events_file_there_is_no_tool_calls_json(tmp_path):
    cg = fake_cgroup(tmp_path, mem=None)  # and the VmRSS fallback is reported in results.json
    summary = record.run(tmp_path / "out", cgroup=str(cg), interval=0.5, duration=1.0, clock=FakeClock(),
                         proc=tmp_path / "proc")
    assert summary.calls is None
    assert not (tmp_path / "out" / "tool_calls.json").exists()
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["memory_source"] == "VmRSS" and "VmRSS" in results["notes"][0]
    assert traces.load_run(tmp_path / "out").meta["has_calls"] is False


def test_events_file_never_written_gives_no_calls_and_a_note(tmp_path):
    cg = fake_cgroup(tmp_path)
    summary = record.run(tmp_path / "out", cgroup=str(cg), duration=1.0, tool_events=tmp_path / "none.jsonl",
                         clock=FakeClock())
    assert summary.calls == 0 and "never written" in summary.notes[0]
    assert json.loads((tmp_path / "out" / "tool_calls.json").read_text()) == []


def test_record_by_pid_through_a_fake_proc(tmp_path):
    proc = tmp_path / "proc"
    mount = tmp_path / "cgroup"
    cg = fake_cgroup(mount, name="agent", procs=[4242])
    mountinfo(proc, v2_mount(mount))
    fake_stat(proc, 4242)
    (proc / "4242" / "cgroup").write_text("0::/agent\n")
    summary = record.run(tmp_path / "out", pid=4242, interval=1.0, duration=2.0, proc=proc, clock=FakeClock())
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (summary.samples, results["cgroup"], results["pid"]) == (2, str(cg), 4242)


def test_an_empty_out_dir_is_accepted(tmp_path):
    cg = fake_cgroup(tmp_path)
    (tmp_path / "out").mkdir()
    record.run(tmp_path / "out", cgroup=str(cg), duration=1.0, clock=FakeClock())
    assert (tmp_path / "out" / "resources.json").is_file()


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_failure_while_recording_leaves_nothing_behind(tmp_path):
    cg = fake_cgroup(tmp_path)

    def on_wait(clock):
        if clock.waits == 2:
            (cg / "memory.current").write_text("garbage\n")
    before = listing(tmp_path)
    with pytest.raises(RecordError, match="cannot read"):
        record.run(tmp_path / "out", cgroup=str(cg), clock=FakeClock(on_wait))
    assert listing(tmp_path) == before


def test_cgroup_gone_before_the_first_sample_is_an_error(tmp_path):
    cg = fake_cgroup(tmp_path)
    before = [p for p in listing(tmp_path) if not p.startswith("cg")]

    def on_wait(clock):
        for f in cg.iterdir():
            f.unlink()
        cg.rmdir()
    with pytest.raises(RecordError, match="no sample was taken .*cgroup removed"):
        record.run(tmp_path / "out", cgroup=str(cg), clock=FakeClock(on_wait))
    assert listing(tmp_path) == before


@pytest.mark.parametrize("args, message", [
    (["--interval", "0"], "--interval must be a positive"),
    (["--interval", "-1"], "--interval must be a positive"),
    (["--duration", "0"], "--duration must be a positive"),
    (["--pid", "1"], "exactly one of --cgroup"),
    (["--cgroup", "{tmp}/notacgroup"], "not a cgroup directory"),
    (["--out", "{tmp}/missing/out"], "no such directory"),
    (["--out", "{tmp}/full"], "exists and is not empty"),
    (["--out", "{tmp}/file"], "exists and is not a directory"),
    (["--tool-events", "{tmp}/notacgroup"], "not a regular file"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, args, message):
    cg = fake_cgroup(tmp_path)
    (tmp_path / "notacgroup").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "file").write_text("x")
    base = {"--cgroup": str(cg), "--out": str(tmp_path / "out"), "--duration": "1"}
    given = {args[i]: args[i + 1].format(tmp=tmp_path) for i in range(0, len(args), 2)}
    argv = [x for k, v in {**base, **given}.items() for x in (k, v)]
    before = listing(tmp_path)
    result = CliRunner().invoke(main, ["record", *argv])
    assert result.exit_code == 2
    assert result.output.count("agentcg: error:") == 1 and message in result.output
    assert listing(tmp_path) == before


def test_no_such_pid_and_unwritable_out(tmp_path):
    result = CliRunner().invoke(main, ["record", "--pid", "2147483647", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no process with pid 2147483647" in result.output
    cg = fake_cgroup(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores the mode; a read-only file system does not
            locked = Path("/proc")
        result = CliRunner().invoke(main, ["record", "--cgroup", str(cg), "--out", str(locked / "o")])
        assert result.exit_code == 2 and "cannot create the output there" in result.output
    finally:
        (tmp_path / "locked").chmod(0o700)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_recording_and_writes_it(tmp_path, sig):
    """A real `agentcg record` process on a fake cgroup, stopped like an interactive user or a supervisor does."""
    cg = fake_cgroup(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "agentcg", "record", "--cgroup", str(cg), "--out",
                             str(tmp_path / "out"), "--interval", "0.05"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr.readline().startswith("recording ")
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped: signal" in out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["stop_reason"] == "signal" and results["samples"] >= 2
    assert len(traces.load_run(tmp_path / "out").samples) == results["samples"]


def test_real_recording_of_this_process_cgroup(tmp_path):
    try:
        record.cgroup_of_pid(os.getpid())
    except RecordError as e:
        pytest.skip(f"no usable cgroup v2 here: {e}")
    result = CliRunner().invoke(main, ["record", "--pid", str(os.getpid()), "--out", str(tmp_path / "own"),
                                       "--interval", "0.1", "--duration", "0.3"])
    assert result.exit_code == 0, result.output
    trace = traces.load_run(tmp_path / "own")
    assert len(trace.samples) >= 2
    assert all(s.mem_bytes > 0 for s in trace.samples)
    assert trace.duration == pytest.approx(0.2, abs=0.15)
