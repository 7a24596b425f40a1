"""eBPF exec tracer for stock kernels (BCC): report every exec by a process in a watched cgroup.

Run by Debian's /usr/bin/python3 (BCC's bindings come from python3-bpfcc, not PyPI), so this module uses only the
standard library and bcc. The agentcg controller starts it (agentcg.enforce.tracing) with the agents' leaf cgroups:
an exec inside an agent leaf is a tool process the agent started without `agentcg exec`, and the controller
moves it into a tool-call cgroup. Protocol: one JSON object per line on stdout - {"ready": true} once the
program is loaded, then {"pid", "ppid", "cgid", "comm"} per exec; stdin lines "watch <cgroup-path>" and
"unwatch <cgroup-path>" change the set while it runs. Needs the running kernel's headers (linux-headers-*).
"""
import json
import os
import sys
import threading

from agentcg.cgroup import cgroup_id  # stdlib only: this runs under the system Python with BCC

BPF_TEXT = r"""
#include <linux/sched.h>

struct exec_event {
    u32 pid;
    u32 ppid;
    u64 cgid;
    char comm[TASK_COMM_LEN];
};

BPF_HASH(watched, u64, u8, 4096);
BPF_PERF_OUTPUT(events);

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    u64 cgid = bpf_get_current_cgroup_id();
    struct task_struct *task;
    struct exec_event e = {};

    if (!watched.lookup(&cgid))
        return 0;
    task = (struct task_struct *)bpf_get_current_task();
    e.pid = bpf_get_current_pid_tgid() >> 32;
    e.ppid = task->real_parent->tgid;
    e.cgid = cgid;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    events.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    from bcc import BPF  # deferred: importing this module must not need BCC

    bpf = BPF(text=BPF_TEXT)
    watched = bpf["watched"]

    def update(line: str) -> None:
        verb, _, path = line.strip().partition(" ")
        try:
            key = watched.Key(cgroup_id(path))
        except OSError as e:
            emit({"error": f"{verb} {path}: {e.strerror}"})
            return
        if verb == "watch":
            watched[key] = watched.Leaf(1)
        elif verb == "unwatch":
            watched.pop(key, None)

    for path in sys.argv[1:]:
        update(f"watch {path}")

    def on_event(cpu, data, size):
        e = bpf["events"].event(data)
        emit({"pid": e.pid, "ppid": e.ppid, "cgid": e.cgid, "comm": e.comm.decode(errors="replace")})

    def read_commands() -> None:
        for line in sys.stdin:
            update(line)
        os._exit(0)  # the controller closed our stdin: stop

    bpf["events"].open_perf_buffer(on_event)
    threading.Thread(target=read_commands, daemon=True).start()
    emit({"ready": True})
    while True:
        bpf.perf_buffer_poll(timeout=100)


if __name__ == "__main__":
    sys.exit(main())
