// SPDX-License-Identifier: GPL-2.0
/* memcg_bad_helper: a memcg_bpf_ops program calling a helper outside the base set (bpf_get_stackid, a tracing
 * helper). The verifier must reject it: memcg hooks get the base helpers only. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, 8 * sizeof(__u64));
} stacks SEC(".maps");

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(stack_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	return bpf_get_stackid(ctx, &stacks, 0) < 0 ? 0 : 0;
}

SEC(".struct_ops.link")
struct memcg_bpf_ops stack_ops = {
	.memcg_charged = (void *)stack_charged,
};
