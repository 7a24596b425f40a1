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
 *    runaway_factor x its budget), and twice as hard when less than half the reserve is left. A high-priority
 *    tool call is delayed only as a runaway (contention alone never slows it). A throttle is reported through
 *    the `events` ring buffer (at most one event per cgroup per event_interval_ns), so user space can escalate:
 *    freeze the tool call, then kill only the tool call.
 *  - the agents' turn (memcg_charged on an agent leaf with a reserve): an agent is never killed for memory, but
 *    when agents grow together while the headroom under their shared limit is below their reserve, only one
 *    keeps growing: the one holding the turn (the first to charge in the shortage, or one of higher priority).
 *    The others wait, delayed on every charge batch (max_delay_ms once less than half the reserve is left),
 *    until the shortage is over (the headroom is back at the holder's reserve). Without swap, two bursts that
 *    do not fit together can only be taken one after the other: letting both creep on would run the parent out
 *    of memory with nothing but agents in it, and one caught at its peak cannot give memory back. A
 *    high-priority agent takes the turn but never waits. One turn per attachment: it is meant for agents under
 *    one shared limit (agentcg's root, the paper's parent).
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
/* The agent whose growth goes on in a shortage (0: none), its priority and reserve. Updated without atomics: two
 * agents racing for a free turn may both charge one batch before one of them waits. */
__u64 turn_cgid;
__u32 turn_prio;
__u64 turn_reserve;

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

static __always_inline __u32 charge_delayed(struct policy *p, __u64 id, __u64 usage, __u32 delay, __u64 room)
{
	__sync_fetch_and_add(&p->throttled, 1);
	__sync_fetch_and_add(&p->delay_ms_total, delay);
	report(p, id, usage, delay, room);
	return delay;
}

/* An agent leaf charged: go on, or wait for the turn (see the header comment). */
static __always_inline __u32 agent_turn(struct policy *p, __u64 id, struct mem_cgroup *memcg)
{
	__u64 room;

	if (!p->reserve_pages)
		return 0;
	room = headroom(memcg);
	if (turn_cgid && room >= turn_reserve)
		turn_cgid = 0;	/* the shortage is over */
	if (room >= p->reserve_pages)
		return 0;
	if (!turn_cgid || turn_cgid == id || p->priority > turn_prio) {
		turn_cgid = id;
		turn_prio = p->priority;
		turn_reserve = p->reserve_pages;
		return 0;
	}
	if (p->priority == PRIO_HIGH)
		return 0;
	return charge_delayed(p, id, memcg->memory.usage.counter,
			      room < p->reserve_pages / 2 ? max_delay_ms : base_delay_ms * 4, room);
}

SEC("struct_ops/memcg_charged")
unsigned int BPF_PROG(policy_charged, struct mem_cgroup *memcg, unsigned int nr_pages)
{
	__u64 id = cgid(memcg), usage, room;
	struct policy *p = bpf_map_lookup_elem(&policies, &id);
	bool runaway;
	__u32 delay;

	if (!p)
		return 0;
	if (p->flags & POLICY_AGENT)
		return agent_turn(p, id, memcg);
	if (!p->budget_pages)
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
	return charge_delayed(p, id, usage, delay, room);
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
