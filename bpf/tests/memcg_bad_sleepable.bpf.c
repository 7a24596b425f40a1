// SPDX-License-Identifier: GPL-2.0
/* memcg_bad_sleepable: a sleepable memcg_bpf_ops program. The verifier must reject it: hooks run in the charge
 * path and under RCU. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/memcg_charged")
unsigned int BPF_PROG(sleepy_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	return 0;
}

SEC(".struct_ops.link")
struct memcg_bpf_ops sleepy_ops = {
	.memcg_charged = (void *)sleepy_charged,
};
