"""Summaries of a kernel's vmtest results (host JUnit + summary.json), for terminals and CI step summaries, and
what changed between two results (`agentcg report --compare A B`: two kernels, or two commits' results/)."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path


class ReportError(Exception):
    pass


def load(results_dir: str | Path) -> dict:
    results_dir = Path(results_dir)
    junit = results_dir / "junit.xml"
    if not junit.is_file():
        raise ReportError(f"{junit} is missing: run `agentcg vmtest` first")
    try:
        root = ET.parse(junit).getroot()
    except ET.ParseError as e:
        raise ReportError(f"{junit} is not valid JUnit XML: {e}")
    cases = []
    for case in root.iter("testcase"):
        outcome = "passed"
        message = ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = "failed" if tag != "skipped" else "flaky" if node.get("type") == "pytest.xfail" \
                    else "skipped"  # xfail: a failure vmtests/flaky.yaml lists, with its reason
                message = (node.get("message") or "").splitlines()[0][:160] if node.get("message") else ""
                break
        cases.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "message": message, "time": float(case.get("time") or 0)})
    summary_path = results_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"kernel": summary.get("kernel", results_dir.name), "summary": summary, "cases": cases}


def counts(data: dict) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "skipped": 0, "flaky": 0}
    for c in data["cases"]:
        out[c["outcome"]] += 1
    return out


def render(data: dict, markdown: bool = False) -> str:
    n = counts(data)
    s = data["summary"]
    head = (f"kernel {data['kernel']}: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped"
            f"{', %d known flaky failures' % n['flaky'] if n['flaky'] else ''}; "
            f"boot->first test {s.get('boot_to_first_test_s', '?')} s, VM {s.get('vm_wall_s', '?')} s, "
            f"accel {s.get('accel', '?')}")
    if not markdown:
        lines = [head] + [f"  {c['outcome']:8} {c['name']}  {c['message']}" for c in data["cases"]]
        return "\n".join(lines)
    rows = [f"### {head}", "", "| test | outcome | note |", "|---|---|---|"]
    icon = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "flaky": "⚠️"}
    for c in data["cases"]:
        rows.append(f"| `{c['name']}` | {icon[c['outcome']]} {c['outcome']} | {c['message'].replace('|', '/')} |")
    return "\n".join(rows)


SHARD = re.compile(r"-\d+$")  # results/<kernel>-<n>: one shard of a kernel's suite (agentcg.harness.suite)


def outcomes(path: str | Path) -> dict[str, str]:
    """{test: outcome} of one kernel's results directory (its junit.xml), or of a whole results/ tree: every
    kernel's directory in it, each test named `<kernel>: <test>` (a kernel's shards are one kernel)."""
    path = Path(path)
    if (path / "junit.xml").is_file():
        return {c["name"]: c["outcome"] for c in load(path)["cases"]}
    found = {}
    for sub in sorted(p for p in path.iterdir() if (p / "junit.xml").is_file()) if path.is_dir() else []:
        kernel = SHARD.sub("", sub.name)
        found.update({f"{kernel}: {c['name']}": c["outcome"] for c in load(sub)["cases"]})
    if not found:
        raise ReportError(f"{path}: no junit.xml in it or in a directory under it: run `agentcg vmtest` first")
    return found


def compare(a: dict[str, str], b: dict[str, str]) -> dict[str, list[str]]:
    """What changed from A to B, as kci-dev compares KernelCI runs: each test whose outcome differs, under
    `<from>-><to>` (passed->failed first: the regressions), and tests only one side ran."""
    changed: dict[str, list[str]] = {}
    for name in sorted(a.keys() & b.keys()):
        if a[name] != b[name]:
            changed.setdefault(f"{a[name]}->{b[name]}", []).append(name)
    out = {k: changed[k] for k in sorted(changed, key=lambda k: (k != "passed->failed", k != "failed->passed", k))}
    if a.keys() - b.keys():
        out["only in A"] = sorted(a.keys() - b.keys())
    if b.keys() - a.keys():
        out["only in B"] = sorted(b.keys() - a.keys())
    return out


def render_compare(a_name: str, b_name: str, diff: dict[str, list[str]], same: int) -> str:
    lines = [f"A = {a_name}", f"B = {b_name}",
             f"{len(diff.get('passed->failed', []))} passed->failed, {len(diff.get('failed->passed', []))} "
             f"failed->passed, {same} unchanged"]
    for kind, names in diff.items():
        lines.append(f"{kind.upper()} ({len(names)}):")
        lines += [f"  {n}" for n in names]
    return "\n".join(lines)
