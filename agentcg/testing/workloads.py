"""Workloads for in-guest tests that time memory charges precisely."""
from __future__ import annotations

import subprocess
import sys

from ..cgroup import Cgroup, reap


def touch_timed(cg: Cgroup, kib: int, before_go=None, counters_of=None) -> tuple[float, dict]:
    """Allocate `kib` KiB in cg after the interpreter is up; (seconds of the allocation, counter deltas)."""
    proc = cg.spawn([sys.executable, "-m", "agentcg.memhog", str(kib), "--kib", "--go-on-stdin"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "armed"
    if before_go:
        before_go()
    c0 = counters_of.counters() if counters_of else {}
    proc.stdin.write("go\n")
    proc.stdin.flush()
    line = proc.stdout.readline().split()
    c1 = counters_of.counters() if counters_of else {}
    proc.stdin.close()
    assert reap(proc, timeout=120) == 0
    assert line and line[0] == "touched", line
    return float(line[1]), {k: c1[k] - c0[k] for k in c1}


def keep_replay(name: str, result) -> None:
    """Write a ReplayResult where the host finds it (results/<kernel>/guest/replay/NAME.json), never through
    guest stdout."""
    import os
    from pathlib import Path
    rwdir = os.environ.get("AGENTCG_RWDIR")
    if rwdir:
        out = Path(rwdir) / "replay"
        out.mkdir(exist_ok=True)
        (out / f"{name}.json").write_text(result.to_json())


def scenario_or_skip(name: str):
    """A scenario of fixtures/scenarios; a skip (with the reason) when it needs the recorded traces and
    ../shared/traces is not there."""
    import pytest
    from .. import replay
    try:
        return replay.load_scenario(replay.SCENARIO_DIR / f"{name}.yaml")
    except replay.SharedTracesMissing as e:
        pytest.skip(f"scenario {name} needs the recorded traces: {e}")
