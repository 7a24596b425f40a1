/* SPDX-License-Identifier: GPL-2.0 */
/* Attaching a memcg_bpf_ops struct_ops map to a cgroup: shared by memcg_loader and bpf/tests/memcg_cycles. */
#ifndef AGENTCG_MEMCG_OPS_H
#define AGENTCG_MEMCG_OPS_H

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/libbpf.h>

#ifndef BPF_F_CGROUP_FD
#define BPF_F_CGROUP_FD (1U << 7)
#endif

/*
 * libbpf (up to the 1.5 in 6.12's tools/) writes a struct_ops map's value, which
 * makes it ready for BPF_LINK_CREATE, only inside bpf_map__attach_struct_ops().
 * That link has no cgroup, which memcg_bpf_ops refuses (-EINVAL): call it once to
 * write the value, then create the cgroup link ourselves.
 */
static inline void prime_struct_ops(struct bpf_map *ops)
{
	struct bpf_link *l = bpf_map__attach_struct_ops(ops);

	/* should the kernel accept a link without a cgroup, do not keep it */
	if (l)
		bpf_link__destroy(l);
}

static inline int link_create(int map_fd, int target_fd, __u32 flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.link_create.map_fd = map_fd;
	attr.link_create.target_fd = target_fd;
	attr.link_create.attach_type = BPF_STRUCT_OPS;
	attr.link_create.flags = flags;
	return syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

#endif
