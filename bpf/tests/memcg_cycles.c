// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_cycles: stress the attach and removal paths of memcg_bpf_ops (vmtests/test_memcg_bpf_ops.py), not a
 * product command. One JSON object on stdout; exit 0 on success, 1 on failure.
 *
 *   memcg_cycles attach OBJ --cgroup PATH --count N
 *                (load once; N times attach a link to PATH and drop it again)
 *   memcg_cycles remove OBJ --cgroup PARENT --count N
 *                (N times: mkdir PARENT/rmN, attach there, rmdir it, expect EPOLLHUP)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "../loader/common.h"
#include "../loader/memcg_ops.h"

struct opts {
	const char *obj, *cgroup;
};

/* Load an object; returns the struct_ops map fd or -errno. */
static int load_ops(const char *file, struct bpf_object **objp)
{
	struct bpf_object *obj = bpf_object__open_file(file, NULL);
	struct bpf_map *map, *ops = NULL;
	int err;

	if (!obj)
		return -errno;
	bpf_object__for_each_map(map, obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS)
			ops = map;
	err = ops ? bpf_object__load(obj) : -ENOENT;
	if (err) {
		bpf_object__close(obj);
		return err;
	}
	prime_struct_ops(ops);
	*objp = obj;
	return bpf_map__fd(ops);
}

static int cmd_attach_cycle(struct opts *o, int count)
{
	struct bpf_object *obj;
	int map_fd = load_ops(o->obj, &obj), i, done = 0, err = 0;
	int cg_fd = open(o->cgroup, O_RDONLY | O_DIRECTORY);

	if (map_fd < 0 || cg_fd < 0) {
		err = map_fd < 0 ? -map_fd : errno;
		if (map_fd >= 0)
			bpf_object__close(obj);
		if (cg_fd >= 0)
			close(cg_fd);
		return fail("load", err, o->obj);
	}
	for (i = 0; i < count; i++) {
		int link = link_create(map_fd, cg_fd, BPF_F_CGROUP_FD);

		if (link < 0) {
			err = errno;
			break;
		}
		/* closing the only fd releases the link: dealloc -> unreg */
		close(link);
		done++;
	}
	close(cg_fd);
	bpf_object__close(obj);
	if (err)
		return fail("attach", err, "cycle");
	printf("{\"ok\": true, \"cycles\": %d}\n", done);
	return 0;
}

static int cmd_remove_cycle(struct opts *o, int count)
{
	struct bpf_object *obj;
	char path[PATH_MAX];
	int map_fd = load_ops(o->obj, &obj), i, done = 0, hups = 0, err = 0;

	if (map_fd < 0)
		return fail("load", -map_fd, o->obj);
	for (i = 0; i < count && !err; i++) {
		struct pollfd pfd;
		int cg_fd, link;

		snprintf(path, sizeof(path), "%s/rm%d", o->cgroup, i);
		if (mkdir(path, 0755)) {
			err = errno;
			break;
		}
		cg_fd = open(path, O_RDONLY | O_DIRECTORY);
		link = cg_fd < 0 ? -1 : link_create(map_fd, cg_fd, BPF_F_CGROUP_FD);
		if (link < 0)
			err = errno;
		if (cg_fd >= 0)
			close(cg_fd);
		if (rmdir(path) && !err)
			err = errno;
		if (link >= 0) {
			pfd.fd = link;
			pfd.events = POLLIN;
			if (poll(&pfd, 1, 5000) > 0 && (pfd.revents & POLLHUP))
				hups++;
			close(link);
		}
		done++;
	}
	bpf_object__close(obj);
	if (err)
		return fail("cycle", err, path);
	printf("{\"ok\": true, \"cycles\": %d, \"hups\": %d}\n", done, hups);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = {};
	int i, count = -1;

	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--cgroup") && i + 1 < argc)
			o.cgroup = argv[++i];
		else if (!strcmp(argv[i], "--count") && i + 1 < argc)
			count = atoi(argv[++i]);
		else if (argv[i][0] != '-' && !o.obj)
			o.obj = argv[i];
		else
			break;
	}
	if (argc < 2 || i < argc || !o.obj || !o.cgroup || count < 0) {
		fprintf(stderr, "usage: memcg_cycles attach|remove OBJ --cgroup PATH --count N\n");
		return 2;
	}
	libbpf_set_print(libbpf_print);
	if (!strcmp(argv[1], "attach"))
		return cmd_attach_cycle(&o, count);
	if (!strcmp(argv[1], "remove"))
		return cmd_remove_cycle(&o, count);
	fprintf(stderr, "usage: memcg_cycles attach|remove OBJ --cgroup PATH --count N\n");
	return 2;
}
