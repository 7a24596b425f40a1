"""Entry point inside the VM: prepare the guest, run pytest on the selected vmtests, write results to rwdir.

Usage (by agentcg.harness.host): python -m agentcg.harness.guest_main RWDIR
RWDIR/run.json says which tests to run and what the kernel declares. The guest's shell line
(agentcg.harness.vm.guest_command) writes the exit code to RWDIR/exit_code last, so the host reads a guest that
died half-way as a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from agentcg import features


def prepare_guest() -> None:
    """Mounts the tests expect: bpffs for pinning; cgroup2 is mounted by virtme-ng's init."""
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
    if Path("/proc/sys/kernel/sysrq").exists():
        Path("/proc/sys/kernel/sysrq").write_text("1")


BOOT_FILE = "boot.json"


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def process_start() -> float:
    """When this interpreter's process started, in seconds since boot (/proc/self/stat, field 22)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


class BootClock:
    """Where the guest's seconds go before its first test, on the guest's clock (seconds since its kernel
    started), saved to rwdir/boot.json for the host's summary (agentcg.harness.host). A pytest plugin for the
    marks pytest makes."""

    def __init__(self, rwdir: Path):
        self.path = rwdir / BOOT_FILE
        self.marks = {"interpreter": process_start(), "main": uptime()}

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, uptime())

    def save(self) -> None:
        self.path.write_text(json.dumps({k: round(v, 2) for k, v in self.marks.items()}))

    def pytest_collection_finish(self, session) -> None:
        self.mark("collected")

    def pytest_runtest_logstart(self, nodeid, location) -> None:
        if "first_test" not in self.marks:
            self.mark("first_test")
            self.save()


def main(argv: list[str]) -> int:
    rwdir = Path(argv[0])
    clock = BootClock(rwdir)
    run = json.loads((rwdir / "run.json").read_text())
    prepare_guest()
    (rwdir / "features.json").write_text(json.dumps(features.probe(), indent=1))
    clock.mark("probed")
    sys.dont_write_bytecode = True  # no .pyc into the host's tree (pytest's rewritten tests included)
    os.environ.update(AGENTCG_GUEST="1", AGENTCG_RWDIR=str(rwdir), PYTHONDONTWRITEBYTECODE="1",
                      AGENTCG_KERNEL=run["kernel"], AGENTCG_DECLARED=json.dumps(run["declared"]))
    if run.get("bpf_dir"):
        os.environ["AGENTCG_BPF_DIR"] = run["bpf_dir"]
    # Only the plugins the guest needs: autoloading every installed plugin costs seconds under TCG.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    args = ["-p", "no:cacheprovider", "-p", "pytest_timeout", "-rs", f"--junitxml={rwdir}/junit.xml",
            f"--timeout={run['test_timeout']}", *run["nodeids"]]
    # pytest runs in this interpreter: under TCG a second one costs seconds to start and to import what this one
    # has. Its output goes to the guest's tmpfs and into the shared directory once at the end: line-by-line
    # writes into a 9p share are very slow.
    with tempfile.TemporaryFile(prefix="agentcg-pytest-") as log:
        code = _run_pytest(args, log, clock)
        log.seek(0)
        (rwdir / "guest-pytest.log").write_bytes(log.read())
    dmesg = subprocess.run(["dmesg"], capture_output=True)
    (rwdir / "dmesg.txt").write_bytes(dmesg.stdout)
    return code


def _run_pytest(args: list[str], log, clock: BootClock) -> int:
    """pytest.main(args) with this process's stdout and stderr (the file descriptors: tests' subprocesses
    inherit them) going to `log`, restored afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        import pytest
        clock.mark("pytest_imported")
        code = int(pytest.main(args, plugins=[clock]))
        sys.stdout.flush()
        sys.stderr.flush()
        return code
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
