"""Debian packages the harness installs on demand (kernel images and headers, kernel build dependencies).

One home for apt: `make test` resolves kernels and builds ours in parallel, and two apt-get runs at once fail on
dpkg's lock, so every install here takes a lock of ours first and waits its turn.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess

from agentcg.paths import CACHE_DIR

LOCK = CACHE_DIR / "apt.lock"


class AptError(Exception):
    pass


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    except FileNotFoundError:
        raise AptError(f"{cmd[0]} is not available: install {' '.join(cmd[-1:])} by hand")


@contextlib.contextmanager
def _locked():
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise AptError(f"{what} failed ({proc.returncode}):\n{tail}")


def install(packages: list[str]) -> None:
    """apt-get install, with one `apt-get update` and a second try when the lists are stale."""
    if os.geteuid() != 0:
        raise AptError(f"installing {' '.join(packages)} needs root (apt-get install)")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    with _locked():
        if _run(cmd).returncode == 0:
            return
        _check(_run(["apt-get", "update", "-q"]), "apt-get update")
        _check(_run(cmd), f"apt-get install {' '.join(packages)}")


def update() -> None:
    with _locked():
        _check(_run(["apt-get", "update", "-q"]), "apt-get update")
