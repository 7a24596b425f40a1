"""Compiled bytecode for guests, made on the host before each boot.

PYTHONDONTWRITEBYTECODE=1 is set here and in CI, so nothing ever writes a .pyc of this checkout: every guest
compiled each module it imported, and pytest rewrote the assertions of every test module, at each boot, under
TCG. The host now compiles them first into one cache outside the checkout (PYTHONPYCACHEPREFIX, which Python
and pytest's assertion rewriter both honour), and guests read it through the shared root file system; they
still write nothing. A stale entry is never used: Python checks each source's mtime and size against its .pyc.
"""
from __future__ import annotations

import os
import subprocess
import sys

from agentcg.paths import CACHE_DIR, REPO_ROOT

PYCACHE = CACHE_DIR / "pycache"
PACKAGES = ("agentcg",)  # compiled as plain modules
TESTS = "vmtests"  # collected as the guest collects them, so their assertion-rewritten code is cached too


def guest_env() -> dict[str, str]:
    """What a guest's interpreter needs to read the cache."""
    return {"PYTHONPYCACHEPREFIX": str(PYCACHE)}


def warm(timeout: float = 300.0) -> str | None:
    """Bring the cache up to date with this checkout (a few stats per file when nothing changed). Returns None,
    or why it could not (the guest then compiles for itself, as before: slower, never wrong)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(guest_env())
    steps = [
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *(str(REPO_ROOT / p) for p in PACKAGES)],
        # the guest's plugin (AGENTCG_GUEST=1) and pytest's rewrite of each test module, without running any
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-p", "pytest_timeout",
         str(REPO_ROOT / TESTS)],
    ]
    env_for = [env, dict(env, AGENTCG_GUEST="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")]
    try:
        PYCACHE.mkdir(parents=True, exist_ok=True)
        for argv, step_env in zip(steps, env_for):
            done = subprocess.run(argv, env=step_env, cwd=REPO_ROOT, capture_output=True, text=True,
                                  timeout=timeout)
            if done.returncode not in (0, 5):  # 5: pytest collected nothing
                return f"{argv[2]} exited {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None
