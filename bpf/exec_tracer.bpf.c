// SPDX-License-Identifier: GPL-2.0
/*
 * exec_tracer: report every exec by a process in a watched cgroup (an agent's leaf), so that agentcg can give a
 * tool process the agent started without `agentcg exec` its own tool-call cgroup.
 *
 * User space (bpf/loader/exec_loader.c) fills `watched` with the ids of the agents' leaf cgroups. The program
 * runs on the sched_process_exec tracepoint (BTF-typed: no kernel headers or compiler needed on the target,
 * unlike the BCC tracer agentcg uses on Debian's kernels) and sends one record per exec through a ring buffer.
 * Deciding what the process is (its class, budget and cgroup) stays in user space: the exec has happened, the
 * new image has not run a user instruction that matters before the controller moves it (milliseconds).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "exec_tracer.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);	/* cgroup id (the cgroup directory's inode number) */
	__type(value, __u8);
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

__u64 dropped;	/* records the ring buffer had no room for (user space reports them) */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct exec_event *e;

	if (!bpf_map_lookup_elem(&watched, &cgid))
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	e->pid = BPF_CORE_READ(p, tgid);
	e->ppid = BPF_CORE_READ(p, real_parent, tgid);
	e->cgid = cgid;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
