/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ABI between bpf/memcg_policy.bpf.c and user space: the `policies` map's value, the `events` ring
 * buffer's record and their constants. agentcg.enforce.memcg_bpf reads its layouts and constants from this file
 * (agentcg.bpf_abi), so this is the one place they are written.
 */
#ifndef AGENTCG_MEMCG_POLICY_H
#define AGENTCG_MEMCG_POLICY_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

enum { PRIO_LOW = 0, PRIO_NORMAL = 1, PRIO_HIGH = 2 };
enum { POLICY_AGENT = 1, PROTECT_LOW = 2, PROTECT_MIN = 4 };

/* policies[cgroup id]: what user space says of one cgroup it manages */
struct policy {
	__u32 priority;		/* PRIO_* */
	__u32 class;		/* tool class (agentcg.classify), for user space's bookkeeping */
	__u64 budget_pages;
	__u32 flags;		/* POLICY_AGENT, PROTECT_LOW, PROTECT_MIN */
	__u32 reserve_pages;	/* 0: delay whenever over budget */
	/* written by the program */
	__u64 last_event_ns;
	__u64 throttled;
	__u64 delay_ms_total;
};

/* one throttle, at most one per cgroup per event_interval_ns */
struct event {
	__u64 cgid;
	__u64 usage_pages;
	__u64 budget_pages;
	__u32 delay_ms;
	__u32 priority;
	__u64 ts_ns;
	__u64 headroom_pages;
};

#endif
