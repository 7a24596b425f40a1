"""Guests read this checkout's bytecode from a cache the host fills before each boot (agentcg.harness.bytecode)."""
import os
import subprocess
import sys

from agentcg.harness import bytecode, vm
from agentcg.paths import REPO_ROOT


def cached(prefix, source, tag=""):
    return prefix / source.parent.relative_to("/") / f"{source.stem}.{sys.implementation.cache_tag}{tag}.pyc"


def test_warm_compiles_the_package_and_the_rewritten_test_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(bytecode, "PYCACHE", tmp_path)
    assert bytecode.warm() is None
    import pytest
    assert cached(tmp_path, REPO_ROOT / "agentcg" / "ladder.py").is_file()
    assert cached(tmp_path, REPO_ROOT / "agentcg" / "harness" / "guest_main.py").is_file()
    # what pytest imports in the guest, with its assertions rewritten as the guest's pytest would
    assert cached(tmp_path, REPO_ROOT / "vmtests" / "test_cgroup_v2.py", f"-pytest-{pytest.__version__}").is_file()
    assert cached(tmp_path, REPO_ROOT / "agentcg" / "harness" / "guest.py", f"-pytest-{pytest.__version__}").is_file()


def test_an_interpreter_that_may_not_write_bytecode_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(bytecode, "PYCACHE", tmp_path)
    assert bytecode.warm() is None
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **bytecode.guest_env())
    out = subprocess.run([sys.executable, "-v", "-c", "import agentcg.ladder"], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True)
    assert f"code object from '{cached(tmp_path, REPO_ROOT / 'agentcg' / 'ladder.py')}'" in out.stderr


def test_every_guest_command_names_the_cache():
    line = vm.guest_command(["true"], REPO_ROOT / "results")
    assert f"PYTHONPYCACHEPREFIX={bytecode.PYCACHE}" in line
