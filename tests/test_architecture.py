"""The folder tree is the architecture: the product imports nothing from the harness, the workloads, the
evaluation, the analysis or the CLI; those are layered; nothing anywhere imports in a cycle; the README's map
names every package."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

from agentcg.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "agentcg"
NOT_PRODUCT = {"harness", "workloads", "eval", "analysis", "cli", "__main__"}


def _contracts() -> list[dict]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_every_product_module_is_bound_by_the_contract():
    """A new module beside the product's must be named in the contract (or go into a package that is not the
    product): otherwise it could import the harness unchecked."""
    product = {f"agentcg.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in NOT_PRODUCT | {"__init__"}}
    product |= {f"agentcg.{p.name}" for p in PACKAGE.iterdir()
                if (p / "__init__.py").is_file() and p.name not in NOT_PRODUCT}
    forbidden = next(c for c in _contracts() if c["type"] == "forbidden")
    assert product == set(forbidden["source_modules"])


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), lazy imports included."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for m in sorted(graph.modules):
        if m not in index:
            visit(m)
    return out


def test_no_module_imports_in_a_cycle():
    graph = grimp.build_graph("agentcg", include_external_packages=False)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    class Graph:
        modules = {"a", "b", "c"}

        def find_modules_directly_imported_by(self, m):
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[m]
    assert _cycles(Graph()) == [["a", "b"]]


def test_readme_maps_every_package():
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^- `([\w/.]+)`", section, flags=re.M))
    for path in named:
        assert (REPO_ROOT / path).exists(), f"README names {path}, which is not in the tree"
    packages = {f"agentcg/{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top = {f"{p.name}/" for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
           and p.name not in {"results", "build", "agentcg.egg-info"}}
    assert packages | top | {"agentcg/"} <= named, "README's map misses " + ", ".join(
        sorted(packages | top | {"agentcg/"} - named))
