"""Summaries of a kernel's vmtest results (host JUnit + summary.json), for terminals and CI step summaries."""
from __future__ import annotations

import json
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
                outcome = "skipped" if tag == "skipped" else "failed"
                message = (node.get("message") or "").splitlines()[0][:160] if node.get("message") else ""
                break
        cases.append({"name": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "message": message, "time": float(case.get("time") or 0)})
    summary_path = results_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"kernel": summary.get("kernel", results_dir.name), "summary": summary, "cases": cases}


def counts(data: dict) -> dict[str, int]:
    out = {"passed": 0, "failed": 0, "skipped": 0}
    for c in data["cases"]:
        out[c["outcome"]] += 1
    return out


def render(data: dict, markdown: bool = False) -> str:
    n = counts(data)
    s = data["summary"]
    head = (f"kernel {data['kernel']}: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped; "
            f"boot->first test {s.get('boot_to_first_test_s', '?')} s, VM {s.get('vm_wall_s', '?')} s, "
            f"accel {s.get('accel', '?')}")
    if not markdown:
        lines = [head] + [f"  {c['outcome']:8} {c['name']}  {c['message']}" for c in data["cases"]]
        return "\n".join(lines)
    rows = [f"### {head}", "", "| test | outcome | note |", "|---|---|---|"]
    icon = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}
    for c in data["cases"]:
        rows.append(f"| `{c['name']}` | {icon[c['outcome']]} {c['outcome']} | {c['message'].replace('|', '/')} |")
    return "\n".join(rows)
