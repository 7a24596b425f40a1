/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The ABI between bpf/tests/memcg_test.bpf.c (the memcg_bpf_ops conformance probe) and the tests that drive
 * it through agentcg.enforce.memcg_bpf: the `test_config` map's value and the `counters` map's indexes.
 */
#ifndef AGENTCG_MEMCG_TEST_H
#define AGENTCG_MEMCG_TEST_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

struct memcg_test_config {
	__u64 delay_cgid;	/* cgroup whose charges are delayed */
	__u32 delay_ms;
	__u32 protect_low;	/* below_low answers true for protect_cgid */
	__u64 protect_cgid;
	__u32 protect_min;	/* below_min answers true for protect_cgid */
	__u32 pad;
	__u64 watch_cgid;	/* counted separately (C_*_WATCHED) */
};

/* counters[C_*] */
enum {
	C_CHARGED, C_CHARGED_PAGES, C_UNCHARGED, C_UNCHARGED_PAGES,
	C_ONLINE, C_OFFLINE, C_BELOW_LOW, C_BELOW_MIN, C_DELAYED,
	C_PROTECTED_LOW, C_PROTECTED_MIN, C_CHARGED_WATCHED, C_ONLINE_WATCHED,
	C_CHARGED_WATCHED_PAGES, C_UNCHARGED_WATCHED_PAGES,
	/* the arguments below_low / below_min last received for watch_cgid (pages), and how often */
	C_LOW_WATCHED, C_LOW_ELOW, C_LOW_USAGE, C_MIN_WATCHED, C_MIN_EMIN, C_MIN_USAGE,
	NR_COUNTERS,
};

#endif
