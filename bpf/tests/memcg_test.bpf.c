// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_test: the conformance suite's probe for memcg_bpf_ops.
 *
 * Every hook counts its calls (counters map) so tests can see which ops are
 * effective for a cgroup, and does what the config map asks for one cgroup
 * at a time: a fixed charge delay, below_low / below_min protection. It
 * decides nothing by itself; the tests set the config from user space.
 * All maps are arrays (preallocated): the charge path must not allocate.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memcg_test.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct memcg_test_config);
} test_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NR_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void bump(__u32 idx, __u64 by)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		__sync_fetch_and_add(v, by);
}

static __always_inline void put(__u32 idx, __u64 val)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);

	if (v)
		*v = val;
}

static __always_inline struct memcg_test_config *cfg(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&test_config, &zero);
}

static __always_inline __u64 cgid(struct mem_cgroup *memcg)
{
	return memcg->css.cgroup->kn->id;
}

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(test_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	struct memcg_test_config *c = cfg();
	__u64 id = cgid(memcg);

	bump(C_CHARGED, 1);
	bump(C_CHARGED_PAGES, nr_pages);
	if (!c)
		return 0;
	if (id == c->watch_cgid) {
		bump(C_CHARGED_WATCHED, 1);
		bump(C_CHARGED_WATCHED_PAGES, nr_pages);
	}
	if (c->delay_ms && id == c->delay_cgid) {
		bump(C_DELAYED, 1);
		return c->delay_ms;
	}
	return 0;
}

SEC("struct_ops/memcg_uncharged")
void BPF_PROG(test_uncharged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	struct memcg_test_config *c = cfg();

	bump(C_UNCHARGED, 1);
	bump(C_UNCHARGED_PAGES, nr_pages);
	if (c && c->watch_cgid && cgid(memcg) == c->watch_cgid)
		bump(C_UNCHARGED_WATCHED_PAGES, nr_pages);
}

SEC("struct_ops/below_low")
bool BPF_PROG(test_below_low, struct mem_cgroup *memcg, unsigned long elow,
	      unsigned long usage)
{
	struct memcg_test_config *c = cfg();

	bump(C_BELOW_LOW, 1);
	if (c && c->watch_cgid && cgid(memcg) == c->watch_cgid) {
		bump(C_LOW_WATCHED, 1);
		put(C_LOW_ELOW, elow);
		put(C_LOW_USAGE, usage);
	}
	if (c && c->protect_low && cgid(memcg) == c->protect_cgid) {
		bump(C_PROTECTED_LOW, 1);
		return true;
	}
	return false;
}

SEC("struct_ops/below_min")
bool BPF_PROG(test_below_min, struct mem_cgroup *memcg, unsigned long emin,
	      unsigned long usage)
{
	struct memcg_test_config *c = cfg();

	bump(C_BELOW_MIN, 1);
	if (c && c->watch_cgid && cgid(memcg) == c->watch_cgid) {
		bump(C_MIN_WATCHED, 1);
		put(C_MIN_EMIN, emin);
		put(C_MIN_USAGE, usage);
	}
	if (c && c->protect_min && cgid(memcg) == c->protect_cgid) {
		bump(C_PROTECTED_MIN, 1);
		return true;
	}
	return false;
}

SEC("struct_ops/handle_cgroup_online")
void BPF_PROG(test_online, struct mem_cgroup *memcg)
{
	struct memcg_test_config *c = cfg();

	bump(C_ONLINE, 1);
	if (c && c->watch_cgid && cgid(memcg) == c->watch_cgid)
		bump(C_ONLINE_WATCHED, 1);
}

SEC("struct_ops/handle_cgroup_offline")
void BPF_PROG(test_offline, struct mem_cgroup *memcg)
{
	bump(C_OFFLINE, 1);
}

SEC(".struct_ops.link")
struct memcg_bpf_ops test_ops = {
	.memcg_charged = (void *)test_charged,
	.memcg_uncharged = (void *)test_uncharged,
	.below_low = (void *)test_below_low,
	.below_min = (void *)test_below_min,
	.handle_cgroup_online = (void *)test_online,
	.handle_cgroup_offline = (void *)test_offline,
};
