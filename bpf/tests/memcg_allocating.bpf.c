// SPDX-License-Identifier: GPL-2.0
/* memcg_allocating: a memcg_bpf_ops policy that allocates in its charge hook (a hash map without preallocation:
 * each new key's element comes from the BPF memory allocator, which may charge memory itself). The charge path
 * must survive it, neither deadlocking nor recursing without end; `allocated` counts the hook's inserts. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} allocated SEC(".maps");

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(alloc_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	__u64 key = bpf_ktime_get_ns(), one = 1;
	__u32 zero = 0;
	__u64 *n;

	if (bpf_map_update_elem(&seen, &key, &one, BPF_NOEXIST) == 0) {
		n = bpf_map_lookup_elem(&allocated, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return 0;
}

SEC(".struct_ops.link")
struct memcg_bpf_ops alloc_ops = {
	.memcg_charged = (void *)alloc_charged,
};
