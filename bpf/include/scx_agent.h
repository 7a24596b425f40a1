/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ABI between bpf/scx_agent.bpf.c and bpf/loader/scx_loader.c (and, for the classes, agentcg.enforce.sched): the
 * `cgroup_class` map's value, the exit record the loader reads from .bss, and the `stats` counters.
 */
#ifndef AGENTCG_SCX_AGENT_H
#define AGENTCG_SCX_AGENT_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

enum { CLASS_NORMAL = 0, CLASS_LATENCY = 1, CLASS_BULK = 2, NR_CLASSES = 3 };

/* cgroup_class[cgroup id] */
struct cgroup_class_val {
	__u32 class;		/* CLASS_* */
	__u32 workload;		/* the controller numbers workloads from 1 */
};

/* why the scheduler stopped: written by .exit, read by the loader through the mmapped .bss */
struct exit_record {
	__u32 exited;		/* 1 once .exit ran */
	__u32 kind;		/* enum scx_exit_kind */
	__s64 exit_code;
	char reason[64];
	char msg[256];
};

/* stats[STAT_*], one u64 each; the loader's `stats` command prints them under these names */
#define AGENTCG_STATS(X)							\
	X(STAT_ENQ_NORMAL, "enq_normal") X(STAT_ENQ_LATENCY, "enq_latency")	\
	X(STAT_ENQ_BULK, "enq_bulk") X(STAT_DISP_NORMAL, "dispatch_normal")	\
	X(STAT_DISP_LATENCY, "dispatch_latency") X(STAT_DISP_BULK, "dispatch_bulk") \
	X(STAT_DIRECT, "direct") X(STAT_PREEMPT_LOCAL, "preempt_local")		\
	X(STAT_PREEMPT_KICKS, "preempt_kicks") X(STAT_STARVED_FIRST, "starved_first") \
	X(STAT_PARENT_HITS, "parent_hits") X(STAT_BULK_KEPT, "bulk_kept")

#define AGENTCG_STAT_ID(id, name) id,
enum { AGENTCG_STATS(AGENTCG_STAT_ID) NR_AGENTCG_STATS };
#undef AGENTCG_STAT_ID

#endif
