"""Drive memcg_bpf_ops policies from Python through the C loader (bpf/loader/memcg_loader.c).

BPF objects and the loader are built per kernel against that kernel's own vmlinux.h and libbpf (see
agentcg.harness.kbuild.build_bpf_toolchain and bpf/Makefile): a kernel's `<cache>/tools` directory yields `<cache>/bpf`.
Attachments are pinned in bpffs, so the loader exits after each command and Python keeps only a pin path.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from agentcg import bpf_abi

BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_CGROUP_FD = 1 << 7
BPFFS = Path("/sys/fs/bpf")


class LoaderError(Exception):
    def __init__(self, stage: str, errno: int, message: str):
        super().__init__(f"{stage}: {message}")
        self.stage, self.errno = stage, errno


def bpf_dir() -> Path:
    """In the guest: where the host built this kernel's objects (AGENTCG_BPF_DIR)."""
    value = os.environ.get("AGENTCG_BPF_DIR")
    if not value:
        raise LoaderError("setup", 0, "AGENTCG_BPF_DIR is not set: the kernel under test has no built BPF objects")
    return Path(value)


def _loader(*args: str, timeout: float = 600, tool: str = "memcg_loader") -> dict:
    """Run one of bpf/'s JSON-speaking tools (memcg_loader, or a test tool of bpf/tests/) and return its answer."""
    proc = subprocess.run([str(bpf_dir() / tool), *args], capture_output=True, text=True, timeout=timeout)
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise LoaderError("loader", 0, f"no JSON from loader (exit {proc.returncode}): {proc.stderr[-2000:]}")
    if not result.get("ok"):
        raise LoaderError(result.get("stage", "?"), result.get("errno", 0),
                          f"{result.get('error', '?')}\n{proc.stderr[-3000:]}")
    return result


def ensure_bpffs() -> None:
    """Pins need bpffs at /sys/fs/bpf; systemd mounts it, a bare VM or container may not have."""
    if os.path.ismount(BPFFS):
        return
    proc = subprocess.run(["mount", "-t", "bpf", "bpf", str(BPFFS)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LoaderError("setup", 0, f"bpffs is not mounted at {BPFFS} and mounting it failed: "
                                      f"{proc.stderr.strip()}")


def obj(name: str) -> Path:
    return bpf_dir() / f"{name}.bpf.o"


@dataclass
class Attachment:
    pin: Path
    link_id: int
    map_id: int
    cgroup_id: int

    @property
    def ops_map(self) -> Path:
        """The struct_ops map's pin (attachments made by `attach`): what `link` attaches again."""
        return self.pin / "ops"

    def info(self) -> dict:
        return _loader("info", "--pin", str(self.pin))

    def wait_hup(self, timeout_ms: int) -> bool:
        return _loader("info", "--pin", str(self.pin), "--timeout-ms", str(timeout_ms))["hup"]

    def detach(self) -> None:
        _loader("detach", "--pin", str(self.pin))

    def release(self) -> None:
        """Detach now, then drop the pins (closing the last fd alone may release the link a little later)."""
        self.detach()
        self.unpin()

    def unpin(self) -> None:
        """Drop the pins; the link is released (and detached) with its last reference."""
        _loader("unpin", "--pin", str(self.pin))


def attach(obj_path: Path, cgroup: Path | None, pin: Path, override: bool = False, flags: int | None = None,
           sets: dict[str, int] | None = None) -> Attachment:
    """Load obj_path and attach its struct_ops map to `cgroup` (None: a link without a cgroup)."""
    args = ["attach", str(obj_path), "--pin", str(pin)]
    args += ["--cgroup", str(cgroup)] if cgroup is not None else ["--no-cgroup"]
    if override:
        args.append("--override")
    if flags is not None:
        args += ["--flags", str(flags)]
    for name, value in (sets or {}).items():
        args += ["--set", f"{name}={value}"]
    r = _loader(*args)
    return Attachment(pin, r["link_id"], r["map_id"], r["cgroup_id"])


def link(ops_map: Path, cgroup: Path | None, pin: Path, override: bool = False) -> Attachment:
    """One more link of an attached struct_ops map (an Attachment's `ops_map`) to `cgroup`: one policy, its maps
    shared, on several cgroups. The new Attachment's pins hold only its link."""
    args = ["link", str(ops_map), "--pin", str(pin)]
    args += ["--cgroup", str(cgroup)] if cgroup is not None else []
    if override:
        args.append("--override")
    r = _loader(*args)
    return Attachment(pin, r["link_id"], r["map_id"], r["cgroup_id"])


# ---- bpf/memcg_policy.bpf.c: AgentCgroup's policy (its ABI: bpf/include/memcg_policy.h) ---------------------

_ABI = bpf_abi.constants("memcg_policy.h")
PRIO_LOW, PRIO_NORMAL, PRIO_HIGH = _ABI["PRIO_LOW"], _ABI["PRIO_NORMAL"], _ABI["PRIO_HIGH"]


def priority_code(priority: str) -> int:
    """A priority's code in the policy map (agentcg.vocab's names; PRIO_NORMAL for an unknown one)."""
    return _ABI.get(f"PRIO_{priority.upper()}", PRIO_NORMAL)

POLICY_AGENT, PROTECT_LOW, PROTECT_MIN = _ABI["POLICY_AGENT"], _ABI["PROTECT_LOW"], _ABI["PROTECT_MIN"]
_POLICY = bpf_abi.layout("memcg_policy.h", "policy")
_EVENT = bpf_abi.layout("memcg_policy.h", "event")


@dataclass
class Policy:
    priority: int = PRIO_NORMAL
    tool_class: int = 0
    budget_pages: int = 0
    flags: int = 0
    reserve_pages: int = 0  # 0: delay whenever over budget; else only while headroom is below it
    last_event_ns: int = 0
    throttled: int = 0
    delay_ms_total: int = 0

    # struct policy's field `class` is a Python keyword: it is tool_class here; every other name is the header's
    def pack(self) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if k != "tool_class"}
        return _POLICY.pack(**fields, **{"class": self.tool_class})

    @classmethod
    def unpack(cls, data: bytes) -> "Policy":
        fields = _POLICY.unpack(data)
        return cls(tool_class=fields.pop("class"), **fields)


@dataclass
class ThrottleEvent:
    cgid: int
    usage_pages: int
    budget_pages: int
    delay_ms: int
    priority: int
    ts_ns: int
    headroom_pages: int


def parse_event(record: bytes) -> ThrottleEvent:
    return ThrottleEvent(**_EVENT.unpack(record))


def drain_events(att: Attachment, timeout_ms: int = 0) -> list[ThrottleEvent]:
    r = _loader("ringbuf-drain", "--pin", str(att.pin), "--map", "events", "--timeout-ms", str(timeout_ms))
    return [parse_event(bytes.fromhex(h)) for h in r["records"]]
