// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_policy: AgentCgroup's in-kernel memory policy for hosts running many AI coding agents.
 *
 * Each agent workload is a cgroup with an `agent` leaf (the agent framework, whose minutes of state must
 * survive) and one child cgroup per tool call. User space (agentcg's controller) describes every cgroup it
 * manages in the `policies` map, keyed by cgroup id: priority, tool class, memory budget, flags.
 *
 * What this program decides, on the kernel's charge and reclaim paths:
 *  - memcg_charged (about once per 64-page charge batch): a tool call over its budget is slowed down by a delay
 *    that grows with its overage, base_delay_ms * (1 + 4 * overage / budget), doubled for low priority and
 *    capped at max_delay_ms (the kernel clamps at 2 s). As in agentcg's ladder (agentcg/ladder.py), a budget is
 *    where throttling starts under contention, not a limit: with a reserve set, the call is only delayed while
 *    the headroom under the tightest ancestor limit is below that reserve (twice the reserve for a runaway, over
 *    runaway_factor x its budget), and twice as hard when less than half the reserve is left. The agent leaf
 *    is never delayed; a high-priority tool call only as a runaway (contention alone never slows it). A throttle is reported through the `events` ring buffer
 *    (at most one event per cgroup per event_interval_ns), so user space can escalate: freeze the tool call,
 *    then kill only the tool call.
 *  - below_low / below_min: cgroups flagged PROTECT_LOW / PROTECT_MIN (the agent leaf, high-priority
 *    workloads) count as protected, so reclaim takes from tool calls first.
 * This reacts within one charge batch, where a user-space controller polling PSI reacts in 50 ms to seconds.
 * It cannot create memory: a burst that needs more than the parent has still reaches reclaim and user space.
 * All maps are preallocated: the charge path must not allocate.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "memcg_policy.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 base_delay_ms = 20;
const volatile __u32 max_delay_ms = 2000;
const volatile __u64 event_interval_ns = 100 * 1000 * 1000ULL;
const volatile __u32 runaway_factor = 4;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct policy);
} policies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} events SEC(".maps");

static __always_inline __u64 cgid(struct mem_cgroup *memcg)
{
	return memcg->css.cgroup->kn->id;
}

/* Pages the cgroup can still charge before the tightest limit among itself and its ancestors. */
static __always_inline __u64 headroom(struct mem_cgroup *memcg)
{
	struct page_counter *pc = &memcg->memory;
	__u64 room = ~0ULL;
	int i;

	for (i = 0; i < 16 && pc; i++) {
		__u64 max = pc->max, usage = pc->usage.counter;

		__u64 left = max > usage ? max - usage : 0;

		if (max < (1ULL << 50) && left < room)	/* PAGE_COUNTER_MAX: no limit at this level */
			room = left;
		pc = pc->parent;
	}
	return room;
}

static __always_inline __u32 overage_delay(const struct policy *p, __u64 usage, __u64 room)
{
	__u64 over = usage - p->budget_pages;
	__u64 delay = base_delay_ms + base_delay_ms * 4 * over / p->budget_pages;

	if (p->priority == PRIO_LOW)
		delay *= 2;
	if (p->reserve_pages && room < p->reserve_pages / 2)
		delay *= 2;
	return delay > max_delay_ms ? max_delay_ms : delay;
}

static __always_inline void report(struct policy *p, __u64 id, __u64 usage, __u32 delay, __u64 room)
{
	__u64 now = bpf_ktime_get_ns();
	struct event *e;

	if (now - p->last_event_ns < event_interval_ns)
		return;
	p->last_event_ns = now;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return;
	e->cgid = id;
	e->usage_pages = usage;
	e->budget_pages = p->budget_pages;
	e->delay_ms = delay;
	e->priority = p->priority;
	e->ts_ns = now;
	e->headroom_pages = room;
	bpf_ringbuf_submit(e, 0);
}

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(policy_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	__u64 id = cgid(memcg), usage, room;
	struct policy *p = bpf_map_lookup_elem(&policies, &id);
	bool runaway;
	__u32 delay;

	if (!p || (p->flags & POLICY_AGENT) || !p->budget_pages)
		return 0;
	usage = memcg->memory.usage.counter;
	if (usage <= p->budget_pages)
		return 0;
	runaway = usage > p->budget_pages * runaway_factor;
	if (p->priority == PRIO_HIGH && !runaway)
		return 0;
	room = headroom(memcg);
	/* over budget, but there is room: a budget is not a limit (a runaway is slowed from twice the reserve) */
	if (p->reserve_pages && room >= p->reserve_pages * (runaway ? 2 : 1))
		return 0;
	delay = overage_delay(p, usage, room);
	__sync_fetch_and_add(&p->throttled, 1);
	__sync_fetch_and_add(&p->delay_ms_total, delay);
	report(p, id, usage, delay, room);
	return delay;
}

SEC("struct_ops/below_low")
bool BPF_PROG(policy_below_low, struct mem_cgroup *memcg, unsigned long elow, unsigned long usage)
{
	__u64 id = cgid(memcg);
	struct policy *p = bpf_map_lookup_elem(&policies, &id);

	return p && (p->flags & PROTECT_LOW);
}

SEC("struct_ops/below_min")
bool BPF_PROG(policy_below_min, struct mem_cgroup *memcg, unsigned long emin, unsigned long usage)
{
	__u64 id = cgid(memcg);
	struct policy *p = bpf_map_lookup_elem(&policies, &id);

	return p && (p->flags & PROTECT_MIN);
}

SEC(".struct_ops.link")
struct memcg_bpf_ops agentcg_policy = {
	.memcg_charged = (void *)policy_charged,
	.below_low = (void *)policy_below_low,
	.below_min = (void *)policy_below_min,
};
