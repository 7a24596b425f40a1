"""vmtests run inside a VM. On the host, this directory is collected and each test is run in the guest
(agentcg.harness.host); in the guest (AGENTCG_GUEST=1) the tests run for real (agentcg.harness.guest)."""
import os
import uuid

import pytest

if os.environ.get("AGENTCG_GUEST") == "1":
    pytest_plugins = ["agentcg.harness.guest"]
else:
    pytest_plugins = ["agentcg.harness.host"]


@pytest.fixture
def cg():
    """A fresh cgroup under the root with the memory, cpu and pids controllers on; destroyed afterwards."""
    from agentcg.cgroup import ROOT, Cgroup
    root = Cgroup(ROOT)
    root.enable("memory", "cpu", "pids")
    test_cg = root.child(f"agentcg-test-{uuid.uuid4().hex[:8]}")
    yield test_cg
    test_cg.destroy()


@pytest.fixture
def record_measurement(request):
    """record_measurement(name, data): keep a measured number for the host (rwdir/measurements/<name>.json)."""
    import json
    from pathlib import Path

    def record(name, data):
        rwdir = os.environ.get("AGENTCG_RWDIR")
        if rwdir:
            out = Path(rwdir) / "measurements"
            out.mkdir(exist_ok=True)
            (out / f"{name}.json").write_text(json.dumps({"test": request.node.nodeid, **data}, indent=1))
    return record


@pytest.fixture
def pins(cg):
    """A bpffs directory for this test's attachments; every pin left is dropped (links released) at the end."""
    from agentcg.enforce import memcg_bpf
    root = memcg_bpf.BPFFS / f"agentcg-test-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    yield root
    import subprocess
    loader = str(memcg_bpf.bpf_dir() / "memcg_loader")
    for sub in sorted(root.iterdir()) if root.exists() else []:
        subprocess.run([loader, "detach", "--pin", str(sub)], capture_output=True)
        subprocess.run([loader, "unpin", "--pin", str(sub)], capture_output=True)
    if root.exists():
        root.rmdir()


