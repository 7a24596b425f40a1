"""Where agentcg's files are: the one home for these locations.

- REPO_ROOT: the checkout (fixtures/, kernel/, bpf/, vmtests/ live there; the package runs from it);
- IMPORT_ROOT: the directory the agentcg package is imported from (PYTHONPATH for helpers another interpreter
  runs, such as the BCC exec tracer under the system Python); the checkout when run from one;
- CACHE_DIR: kernels, build trees, the KVM probe and locks ($AGENTCG_CACHE, else ~/.cache/agentcg);
- BPF_SRC / BPF_INCLUDE: the BPF programs and their one header per ABI.
"""
from __future__ import annotations

import os
from pathlib import Path

IMPORT_ROOT = Path(__file__).resolve().parent.parent
REPO_ROOT = IMPORT_ROOT
CACHE_DIR = Path(os.environ.get("AGENTCG_CACHE", Path.home() / ".cache" / "agentcg"))
BPF_SRC = REPO_ROOT / "bpf"
BPF_INCLUDE = BPF_SRC / "include"
