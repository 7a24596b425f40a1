"""One header per BPF <-> user-space ABI (bpf/include/): what Python reads from it is what the C compiler makes
of it."""
import shutil
import subprocess

import pytest

from agentcg import bpf_abi
from agentcg.enforce import memcg_bpf, sched
from agentcg.harness import bpfmaps

STRUCTS = [("memcg_policy.h", "policy"), ("memcg_policy.h", "event"), ("memcg_test.h", "memcg_test_config"),
           ("exec_tracer.h", "exec_event"), ("scx_agent.h", "cgroup_class_val"), ("scx_agent.h", "exit_record")]
HEADERS = sorted({h for h, _ in STRUCTS})


def test_every_header_in_bpf_include_is_covered():
    assert sorted(p.name for p in bpf_abi.INCLUDE.glob("*.h")) == HEADERS


@pytest.mark.skipif(not shutil.which("cc"), reason="needs a C compiler")
def test_sizes_offsets_and_constants_agree_with_the_c_compiler(tmp_path):
    checks = []
    for header, name in STRUCTS:
        lay = bpf_abi.layout(header, name)
        checks.append(f"_Static_assert(sizeof(struct {name}) == {lay.size}, \"size of {name}\");")
        for field, offset in zip(lay.fields, lay.offsets):
            checks.append(f"_Static_assert(offsetof(struct {name}, {field}) == {offset}, \"{name}.{field}\");")
    for header in HEADERS:
        for const, value in bpf_abi.constants(header).items():
            checks.append(f"_Static_assert({const} == {value}, \"{const}\");")
    source = tmp_path / "abi.c"
    source.write_text("#include <stddef.h>\n" + "".join(f'#include "{h}"\n' for h in HEADERS) + "\n".join(checks))
    proc = subprocess.run(["cc", "-fsyntax-only", "-Wall", "-I", str(bpf_abi.INCLUDE), str(source)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(checks) > 40


def test_python_takes_its_layouts_and_constants_from_the_headers():
    assert memcg_bpf.Policy.unpack(memcg_bpf.Policy(priority=2, tool_class=3, budget_pages=7).pack()) == \
        memcg_bpf.Policy(priority=2, tool_class=3, budget_pages=7)
    record = bpf_abi.layout("memcg_policy.h", "event").pack(cgid=9, delay_ms=40, headroom_pages=5)
    event = memcg_bpf.parse_event(record + b"\0" * 8)  # ring-buffer records may carry padding
    assert (event.cgid, event.delay_ms, event.headroom_pages) == (9, 40, 5)
    assert bpfmaps.TEST_COUNTERS[:3] == ("charged", "charged_pages", "uncharged")
    assert len(bpfmaps.TEST_COUNTERS) == bpf_abi.constants("memcg_test.h")["NR_COUNTERS"]
    assert (sched.NORMAL, sched.LATENCY, sched.BULK) == (0, 1, 2)
    assert bpf_abi.layout("exec_tracer.h", "exec_event").unpack(
        bpf_abi.layout("exec_tracer.h", "exec_event").pack(pid=1, comm=b"pytest"))["comm"].rstrip(b"\0") == b"pytest"


@pytest.mark.parametrize("text,error", [
    ("struct s { float x; };", "cannot read field"),
    ("struct s { __u32 x[4]; };", "integer arrays"),
    ("struct s { char c; };", "must be an array"),
    ("struct other { __u32 x; };", "has no struct s"),
])
def test_what_the_reader_does_not_understand_is_an_error(tmp_path, monkeypatch, text, error):
    monkeypatch.setattr(bpf_abi, "INCLUDE", tmp_path)
    (tmp_path / "bad.h").write_text(text)
    bpf_abi._source.cache_clear()
    bpf_abi.layout.cache_clear()
    try:
        with pytest.raises(bpf_abi.AbiError, match=error):
            bpf_abi.layout("bad.h", "s")
    finally:
        bpf_abi._source.cache_clear()
        bpf_abi.layout.cache_clear()


def test_padding_follows_natural_alignment(tmp_path, monkeypatch):
    monkeypatch.setattr(bpf_abi, "INCLUDE", tmp_path)
    (tmp_path / "pad.h").write_text("struct s { __u8 a; __u64 b; __u16 c; char d[3]; };")
    bpf_abi._source.cache_clear()
    bpf_abi.layout.cache_clear()
    try:
        lay = bpf_abi.layout("pad.h", "s")
        assert lay.offsets == (0, 8, 16, 18) and lay.size == 24
    finally:
        bpf_abi._source.cache_clear()
        bpf_abi.layout.cache_clear()
