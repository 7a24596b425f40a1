// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_legacy: a memcg_bpf_ops map without BPF_F_LINK, registered through
 * map update (a global attachment). The kernel must refuse it: memcg ops
 * are only attached to cgroups, through links.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(legacy_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	return 0;
}

SEC(".struct_ops")
struct memcg_bpf_ops legacy_ops = {
	.memcg_charged = (void *)legacy_charged,
};
