"""vmtests/flaky.yaml: the known-flaky vmtests, each with its reason (BPF CI's deny list, without the skipping).

A listed test runs like any other, once; its failure is reported as known flaky (xfail, with the reason) rather
than failing the run (agentcg.harness.host). Nothing is retried.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from agentcg.paths import REPO_ROOT

FLAKY_FILE = REPO_ROOT / "vmtests" / "flaky.yaml"


class FlakyListError(ValueError):
    pass


@dataclass(frozen=True)
class Flaky:
    test: str
    reason: str
    kernels: tuple[str, ...] = ("*",)

    def covers(self, nodeid: str, kernel: str) -> bool:
        hit = nodeid == self.test or (self.test.endswith(("::", "[")) and nodeid.startswith(self.test))
        return hit and any(fnmatch.fnmatch(kernel, k) for k in self.kernels)


def load(path: Path = FLAKY_FILE) -> list[Flaky]:
    """`flaky: [{test, reason, kernels?}]`; every entry needs a reason."""
    from agentcg.config import ConfigError, parse_yaml, read_text
    try:
        data = parse_yaml(read_text(path), path)
    except ConfigError as e:
        raise FlakyListError(str(e)) from None
    entries = data.get("flaky") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FlakyListError(f"{path}: expected a mapping with a list `flaky`")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) - {"test", "reason", "kernels"} \
                or not isinstance(entry.get("test"), str) or not entry["test"].startswith("vmtests/") \
                or not isinstance(entry.get("reason"), str) or not entry["reason"].strip():
            raise FlakyListError(f"{path}: entry {i}: needs `test` (a vmtests/ node id) and a `reason` "
                                 "(and optionally `kernels`)")
        kernels = entry.get("kernels", ["*"])
        if not isinstance(kernels, list) or not kernels or not all(isinstance(k, str) for k in kernels):
            raise FlakyListError(f"{path}: entry {i}: `kernels` is a list of globs")
        out.append(Flaky(entry["test"], entry["reason"].strip(), tuple(kernels)))
    return out


def find(entries: list[Flaky], nodeid: str, kernel: str) -> Flaky | None:
    return next((e for e in entries if e.covers(nodeid, kernel)), None)
