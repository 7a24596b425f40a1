"""agentcg.enforce.sched without a kernel: class mapping, the cpu.weight fallback, sched_ext state, and the driver's handling
of the loader's JSON lines (with a fake loader script standing in for bpf/loader/scx_loader)."""
import os
import stat
import sys
import textwrap
import time

import pytest

from agentcg import classify
from agentcg.enforce import sched
from agentcg.enforce.sched import BULK, LATENCY, NORMAL, SchedError, SchedExt


# Test suites, installs, builds and scripts are bulk; git, exploring, other commands and the agent are latency.
def test_every_category_has_a_class():
    for category in classify.CATEGORIES + ("agent",):
        assert sched.sched_class(category) in (LATENCY, BULK), category
    assert [sched.sched_class(c) for c in ("test", "install", "build", "python")] == [BULK] * 4
    assert [sched.sched_class(c) for c in ("git", "explore", "other", "agent")] == [LATENCY] * 4
    assert sched.sched_class("Read") == NORMAL


# Without sched_ext the class becomes the tool call's cpu.weight: latency above the default 100, bulk below.
def test_cpu_weight_fallback(tmp_path):
    for cls, weight in ((LATENCY, "200"), (BULK, "50"), (NORMAL, "100"), (7, "100")):
        sched.apply_cpu_weight(tmp_path, cls)
        assert (tmp_path / "cpu.weight").read_text() == weight


# available() only when the kernel has sched_ext and no scheduler is loaded.
def test_kernel_state_and_availability(tmp_path):
    assert sched.kernel_state(tmp_path / "missing") == "unsupported"
    assert not sched.available(tmp_path / "missing")
    (tmp_path / "state").write_text("enabled\n")
    assert sched.kernel_state(tmp_path) == "enabled" and not sched.available(tmp_path)
    (tmp_path / "state").write_text("disabled\n")
    assert sched.available(tmp_path)


def test_parse_line_and_exit_reason():
    assert sched.parse_line('{"ok": true, "event": "attached"}\n') == {"ok": True, "event": "attached"}
    assert sched.parse_line("libbpf: noise")["ok"] is False
    assert sched.parse_line("[1, 2]")["event"] == "garbage"
    assert sched.exit_reason({"reason": "scx_bpf_error", "msg": "boom"}) == "scx_bpf_error: boom"
    assert sched.exit_reason({"reason": "unregistered from user space", "msg": ""}) == "unregistered from user space"


def test_loader_argv():
    argv = sched.loader_argv("/b", slice_us=5000)
    assert argv == ["/b/scx_loader", "run", "/b/scx_agent.bpf.o", "--slice-us", "5000"]
    assert sched.loader_argv("/b")[-1] == "/b/scx_agent.bpf.o"


def fake_loader(tmp_path, body: str) -> list[str]:
    """A script speaking the loader's protocol; `body` runs after `import json, sys`."""
    path = tmp_path / "fake_loader.py"
    path.write_text("import json, sys, time\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return [sys.executable, str(path)]


SERVER = """
def out(**kw):
    print(json.dumps(kw), flush=True)
out(ok=True, event="attached", ops="agentcg", pid=0, slice_us=20000)
classes = {}
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "class":
        classes[cmd[1]] = cmd[2]
        out(ok=True, event="class", cgid=int(cmd[1]))
    elif cmd[0] == "unclass":
        out(ok=True, event="unclass", cgid=int(cmd[1]))
    elif cmd[0] == "stats":
        out(ok=True, event="stats", enq_latency=len(classes), classes=classes)
    elif cmd[0] == "error":
        out(ok=True, event="error")
        out(ok=False, event="exited", kind=1025, exit_code=0, reason="scx_bpf_error", msg="forced")
        sys.exit(2)
    elif cmd[0] == "quit":
        break
out(ok=True, event="detached", kind=64, signal=0)
"""


# The driver waits for "attached", sends one command per call and reads its reply.
def test_driver_commands_and_clean_stop(tmp_path):
    s = SchedExt(argv=fake_loader(tmp_path, SERVER))
    s.start()
    assert s.running and s.poll() is None and s.attached["ops"] == "agentcg"
    s.set_class(tmp_path, LATENCY, 3)
    stats = s.stats()
    assert stats["classes"] == {str(os.stat(tmp_path).st_ino): str(LATENCY)}
    s.forget(tmp_path)
    s.forget(tmp_path / "gone")  # a removed cgroup: nothing to send
    s.stop()
    assert not s.running and s.returncode == 0
    s.stop()  # idempotent


# A kernel revert ("exited" event) is what poll() returns; the loader's exit status is kept; commands then fail.
def test_driver_reports_scheduler_exit(tmp_path):
    s = SchedExt(argv=fake_loader(tmp_path, SERVER))
    s.start()
    s.force_error()
    deadline = time.monotonic() + 10
    while s.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.poll() == "scx_bpf_error: forced"
    while s.returncode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert s.returncode == 2 and not s.running
    with pytest.raises(SchedError, match="not running"):
        s.stats()
    s.stop()
    assert s.poll() == "scx_bpf_error: forced"


# The kernel's revert can overtake the loader's reply to "error": that exit is the forced error's success;
# an exit for any other reason is still an error.
@pytest.mark.parametrize("msg, ok", [("error forced by user space (pid 7)", True), ("runnable task stall", False)])
def test_force_error_when_the_exit_overtakes_the_reply(tmp_path, msg, ok):
    body = SERVER.replace("""        out(ok=True, event="error")
        out(ok=False, event="exited", kind=1025, exit_code=0, reason="scx_bpf_error", msg="forced")""",
                          f"""        out(ok=False, event="exited", kind=1025, exit_code=0, reason="scx_bpf_error", msg="{msg}")""")
    s = SchedExt(argv=fake_loader(tmp_path, body))
    s.start()
    try:
        if ok:
            s.force_error()
        else:
            with pytest.raises(SchedError, match="scheduler exited"):
                s.force_error()
        assert msg in s.poll()
    finally:
        s.stop()


# The controller's thread polls the scheduler every tick while another thread waits for a reply: polling must
# never take that reply off the queue (the waiting command then failed with "no reply").
def test_polling_does_not_steal_a_pending_reply(tmp_path):
    import queue
    import threading

    class SlowWaiter(queue.Queue):  # the waiting thread is descheduled for a while before it reads its reply
        def get(self, block=True, timeout=None):
            if block:
                time.sleep(0.1)
            return super().get(block, timeout)

    s = SchedExt(argv=fake_loader(tmp_path, SERVER))
    s._lines = SlowWaiter()
    s.start()
    done = threading.Event()
    try:
        def poll_until_done():
            while not done.is_set():
                assert s.poll() is None
                time.sleep(0.005)
        poller = threading.Thread(target=poll_until_done)
        poller.start()
        try:
            for _ in range(3):
                assert "classes" in s.stats()
        finally:
            done.set()
            poller.join()
    finally:
        s.stop()


# A load or attach failure is a SchedError carrying the loader's stage, errno, message and stderr.
def test_start_failure_raises_loader_error(tmp_path):
    body = """
    sys.stderr.write("libbpf: map 'agentcg_ops': failed to attach\\n")
    print(json.dumps({"ok": False, "stage": "attach", "errno": 16,
                      "error": "bpf_map__attach_struct_ops: another sched_ext scheduler is loaded: busy"}), flush=True)
    sys.exit(1)
    """
    s = SchedExt(argv=fake_loader(tmp_path, body))
    with pytest.raises(SchedError) as info:
        s.start()
    assert info.value.stage == "attach" and info.value.errno == 16
    assert "another sched_ext scheduler" in str(info.value) and "failed to attach" in str(info.value)
    assert not s.running and s.returncode == 1


# A loader that dies without a word, prints garbage, or never attaches is an error too, never a hang.
@pytest.mark.parametrize("body,match", [
    ("sys.stderr.write('segfault-ish\\n'); sys.exit(139)\n", "status 139: segfault-ish"),
    ("print('not json', flush=True); time.sleep(30)\n", "not a JSON object"),
    ("time.sleep(30)\n", "no attached line"),
])
def test_start_failure_modes(tmp_path, body, match):
    s = SchedExt(argv=fake_loader(tmp_path, body), start_timeout=2)
    with pytest.raises(SchedError, match=match):
        s.start()
    assert not s.running


def test_missing_loader_binary(tmp_path):
    s = SchedExt(argv=[str(tmp_path / "nope")])
    with pytest.raises(SchedError, match="cannot run"):
        s.start()
    assert not s.running


# The driver, started before the loader attached, is told why through the exit event even at start.
def test_exit_during_start(tmp_path):
    body = """
    print(json.dumps({"ok": False, "event": "exited", "kind": 1024, "reason": "runtime error", "msg": "x"}), flush=True)
    sys.exit(2)
    """
    s = SchedExt(argv=fake_loader(tmp_path, body))
    with pytest.raises(SchedError, match="runtime error: x"):
        s.start()
