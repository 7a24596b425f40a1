"""Helpers the in-guest tests use to run scenarios of fixtures/scenarios and keep their results."""
from __future__ import annotations


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


def scenario_or_skip(name: str, seed: int | None = None):
    """A scenario of fixtures/scenarios; a skip (with the reason) when it needs the recorded traces and
    ../shared/traces is not there."""
    import pytest

    from agentcg.workloads.scenario import SCENARIO_DIR, SharedTracesMissing, load_scenario
    try:
        return load_scenario(SCENARIO_DIR / f"{name}.yaml", seed=seed)
    except SharedTracesMissing as e:
        pytest.skip(f"scenario {name} needs the recorded traces: {e}")
