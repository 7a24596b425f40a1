"""Debian packages the harness installs on demand (kernel images and headers, kernel build dependencies).

One home for apt: `make test` resolves kernels and builds ours in parallel, and two apt-get runs at once fail on
dpkg's lock, so every install here takes a lock of ours first and waits its turn.
"""
from __future__ import annotations

import fcntl
import os
import subprocess

from .paths import CACHE_DIR

LOCK = CACHE_DIR / "apt.lock"


class AptError(Exception):
    pass


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace", env=env)
    except FileNotFoundError:
        raise AptError(f"{cmd[0]} is not available: install {' '.join(cmd[-1:])} by hand")


def install(packages: list[str]) -> None:
    """apt-get install, with one `apt-get update` and a second try when the lists are stale."""
    if os.geteuid() != 0:
        raise AptError(f"installing {' '.join(packages)} needs root (apt-get install)")
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        if _run(cmd).returncode == 0:
            return
        update(locked=True)
        proc = _run(cmd)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise AptError(f"apt-get install {' '.join(packages)} failed ({proc.returncode}):\n{tail}")


def update(locked: bool = False) -> None:
    """apt-get update (under our lock unless the caller holds it)."""
    if not locked:
        LOCK.parent.mkdir(parents=True, exist_ok=True)
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return update(locked=True)
    proc = _run(["apt-get", "update", "-q"])
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise AptError(f"apt-get update failed ({proc.returncode}):\n{tail}")
