// SPDX-License-Identifier: GPL-2.0
/* memcg_bad_write: a memcg_bpf_ops program that writes through its memcg argument. The verifier must reject it:
 * policies may read the memcg, never change it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(writer_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	memcg->oom_group = true;
	return 0;
}

SEC(".struct_ops.link")
struct memcg_bpf_ops writer_ops = {
	.memcg_charged = (void *)writer_charged,
};
