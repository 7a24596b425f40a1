"""The contract between the guest and the host: per-test JSON records in the shared directory, and the host's
verdict for each test, including the tests a dead or hung VM never finished.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from agentcg.harness import splat

RESULTS_DIR = "tests"
OUTCOMES = ("passed", "failed", "skipped", "error")


@dataclass
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str      # one of OUTCOMES
    message: str = ""  # failure text or skip reason
    duration: float = 0.0


def aggregate(nodeid: str, phases: list[dict]) -> TestRecord:
    """Fold pytest's setup/call/teardown reports ({when, outcome, text, duration}) into one record."""
    duration = sum(p.get("duration", 0.0) for p in phases)
    for p in phases:
        if p["outcome"] == "failed":
            outcome = "failed" if p["when"] == "call" else "error"
            prefix = "" if p["when"] == "call" else f"[{p['when']}] "
            texts = [prefix + p.get("text", "")]
            texts += [f"[{q['when']}] {q.get('text', '')}" for q in phases if q is not p and q["outcome"] == "failed"]
            return TestRecord(nodeid, outcome, "\n".join(texts), duration)
    for p in phases:
        if p["outcome"] == "skipped":
            return TestRecord(nodeid, "skipped", p.get("text", ""), duration)
    if not any(p["when"] == "call" for p in phases):
        return TestRecord(nodeid, "error", "test did not reach its call phase", duration)
    return TestRecord(nodeid, "passed", "", duration)


def write_record(rwdir: Path, index: int, record: TestRecord) -> None:
    out = rwdir / RESULTS_DIR
    out.mkdir(exist_ok=True)
    (out / f"{index:05d}.json").write_text(json.dumps(asdict(record)))


def load_records(rwdir: Path) -> dict[str, TestRecord]:
    """Every well-formed record in the shared directory; a malformed file becomes an error record."""
    records = {}
    for path in sorted((rwdir / RESULTS_DIR).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            rec = TestRecord(**{k: data[k] for k in ("nodeid", "outcome", "message", "duration")})
            if rec.outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {rec.outcome!r}")
        except (ValueError, KeyError, TypeError) as e:
            records[f"<malformed {path.name}>"] = TestRecord(path.name, "error", f"malformed result file: {e}")
            continue
        records[rec.nodeid] = rec
    return records


@dataclass
class VMEnd:
    """How the VM ended, as far as the verdict needs it."""
    guest_exit: int
    killed_reason: str | None
    console_tail: str
    running: str | None  # nodeid the guest reported as running last


def vm_death_reason(end: VMEnd) -> str | None:
    """None when the guest finished normally (wrote its exit code), else why it did not."""
    if end.killed_reason:
        return f"watchdog: {end.killed_reason}"
    if end.guest_exit == 255:
        found = splat.scan(end.console_tail)
        what = f"; console shows {found[0].kind}: {found[0].line}" if found else ""
        return f"the guest ended without writing its exit code (panic or crash){what}"
    return None


def verdict(nodeid: str, records: dict[str, TestRecord], end: VMEnd) -> TestRecord:
    if nodeid in records:
        return records[nodeid]
    death = vm_death_reason(end)
    if death and end.running == nodeid:
        return TestRecord(nodeid, "failed", f"VM died during this test: {death}\n--- console tail ---\n"
                                            f"{end.console_tail}")
    if death:
        return TestRecord(nodeid, "failed", f"not run: the VM ended before this test ({death})")
    return TestRecord(nodeid, "failed", f"the guest finished (exit {end.guest_exit}) without a result for this test"
                                        f"\n--- console tail ---\n{end.console_tail}")


def parse_progress(text: str | None) -> str | None:
    """The progress file holds '<index> <nodeid>' of the test the guest started last (a second line: how far that
    test has got)."""
    if not text or not text.strip():
        return None
    parts = text.strip().splitlines()[0].split(" ", 1)
    return parts[1] if len(parts) == 2 else None


BOOT_STAGES = (  # (name, the guest's mark it ends at), in order; agentcg.harness.guest_main.BootClock makes them
    ("kernel_boot_and_init", "interpreter"),
    ("interpreter_and_imports", "main"),
    ("feature_probe", "probed"),
    ("import_pytest", "pytest_imported"),
    ("pytest_collection", "collected"),
    ("to_first_test", "first_test"),
)


def boot_breakdown(marks: dict, boot_to_first_test_s: float | None) -> dict[str, float] | None:
    """Where boot -> first test went, in seconds per stage, from the guest's marks (seconds since its kernel
    started): what came before the kernel's clock (QEMU and firmware) is the host's measure minus the guest's.
    None when the guest saved no complete set of marks."""
    try:
        ends = [float(marks[mark]) for _, mark in BOOT_STAGES]
    except (KeyError, TypeError, ValueError):
        return None
    out = {"qemu_and_firmware": round(boot_to_first_test_s - ends[-1], 1)} if boot_to_first_test_s else {}
    start = 0.0
    for (name, _), end in zip(BOOT_STAGES, ends):
        out[name] = round(end - start, 1)
        start = end
    return out
