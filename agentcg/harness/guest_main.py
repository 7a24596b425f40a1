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
from pathlib import Path

from agentcg import features


def prepare_guest() -> None:
    """Mounts the tests expect: bpffs for pinning; cgroup2 is mounted by virtme-ng's init."""
    if not os.path.ismount("/sys/fs/bpf"):
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=False)
    if Path("/proc/sys/kernel/sysrq").exists():
        Path("/proc/sys/kernel/sysrq").write_text("1")


def main(argv: list[str]) -> int:
    rwdir = Path(argv[0])
    run = json.loads((rwdir / "run.json").read_text())
    prepare_guest()
    (rwdir / "features.json").write_text(json.dumps(features.probe(), indent=1))
    env = dict(os.environ, AGENTCG_GUEST="1", AGENTCG_RWDIR=str(rwdir), PYTHONDONTWRITEBYTECODE="1",
               AGENTCG_KERNEL=run["kernel"], AGENTCG_DECLARED=json.dumps(run["declared"]))
    if run.get("bpf_dir"):
        env["AGENTCG_BPF_DIR"] = run["bpf_dir"]
    # Only the plugins the guest needs: autoloading every installed plugin costs seconds under TCG.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "pytest_timeout", "-rs",
           f"--junitxml={rwdir}/junit.xml", f"--timeout={run['test_timeout']}", *run["nodeids"]]
    # Collected in memory and written once: line-by-line writes into a 9p share are very slow.
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    (rwdir / "guest-pytest.log").write_bytes(proc.stdout)
    dmesg = subprocess.run(["dmesg"], capture_output=True)
    (rwdir / "dmesg.txt").write_bytes(dmesg.stdout)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
