/* SPDX-License-Identifier: GPL-2.0 */
/* The ABI between bpf/exec_tracer.bpf.c and bpf/loader/exec_loader.c: one `events` ring buffer record. */
#ifndef AGENTCG_EXEC_TRACER_H
#define AGENTCG_EXEC_TRACER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

struct exec_event {
	__u32 pid;
	__u32 ppid;
	__u64 cgid;	/* the cgroup the process runs in when it execs */
	char comm[16];
};

#endif
