// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_cycles: stress the attach and removal paths of memcg_bpf_ops (vmtests/test_memcg_bpf_ops.py), not a
 * product command. One JSON object on stdout; exit 0 on success, 1 on failure.
 *
 *   memcg_cycles attach OBJ --cgroup PATH --count N
 *                (load once; N times attach a link to PATH and drop it again)
 *   memcg_cycles remove OBJ --cgroup PARENT --count N
 *                (N times: mkdir PARENT/rmN, attach there, rmdir it, expect EPOLLHUP)
 *   memcg_cycles inflight OBJ --cgroup PARENT --count N [--chargers K]
 *                (N times: mkdir PARENT/ifN, attach there with every charge delayed, K processes charging and
 *                 uncharging in it; while they charge, detach the link, or kill them and remove the cgroup with
 *                 the link attached and its tmpfs pages still charged, or both at once; the pages are freed
 *                 last, so memcg_uncharged runs on a removed memcg whose link is gone)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
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
#include "memcg_test.h"

struct opts {
	const char *obj, *cgroup;
	int chargers;
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

/* mkdir PATH and attach the ops there: the link's fd, or -errno with no cgroup left behind. */
static int attach_new_cgroup(int map_fd, const char *path)
{
	int cg_fd, link = -1, err;

	if (mkdir(path, 0755))
		return -errno;
	cg_fd = open(path, O_RDONLY | O_DIRECTORY);
	if (cg_fd >= 0)
		link = link_create(map_fd, cg_fd, BPF_F_CGROUP_FD);
	err = errno;
	if (cg_fd >= 0)
		close(cg_fd);
	if (link < 0) {
		rmdir(path);
		return -err;
	}
	return link;
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
		int link;

		snprintf(path, sizeof(path), "%s/rm%d", o->cgroup, i);
		link = attach_new_cgroup(map_fd, path);
		if (link < 0) {
			err = -link;
			break;
		}
		if (rmdir(path))
			err = errno;
		pfd.fd = link;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 5000) > 0 && (pfd.revents & POLLHUP))
			hups++;
		close(link);
		done++;
	}
	bpf_object__close(obj);
	if (err)
		return fail("cycle", err, path);
	printf("{\"ok\": true, \"cycles\": %d, \"hups\": %d}\n", done, hups);
	return 0;
}

/* A charger: enter CG, then charge and uncharge anonymous memory and grow a shared tmpfs file until killed. */
static void charge_forever(const char *cg, int memfd, int ready)
{
	char procs[PATH_MAX + 16], page[4096];
	int fd, round;

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cg);
	fd = open(procs, O_WRONLY);
	if (fd < 0 || write(fd, "0", 1) != 1)
		_exit(3);
	close(fd);
	memset(page, 0xa5, sizeof(page));
	if (write(ready, "r", 1) != 1)
		_exit(3);
	for (round = 0;; round++) {
		size_t len = 1 << 20;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (p != MAP_FAILED) {
			for (size_t off = 0; off < len; off += 4096)
				p[off] = (char)round;
			munmap(p, len);
		}
		/* page cache that outlives the cgroup: charged here, uncharged when the file goes */
		if (round % 4 == 0 && pwrite(memfd, page, sizeof(page), (off_t)(round % 256) * 16 * 4096) < 0)
			_exit(4);
	}
}

struct closer {
	int link;
	unsigned int after_us;
};

static void *close_link_later(void *arg)
{
	struct closer *c = arg;

	usleep(c->after_us);
	close(c->link);
	return NULL;
}

static int set_delay(int cfg_fd, const char *cg, __u32 delay_ms)
{
	struct memcg_test_config c = { .delay_ms = delay_ms };
	struct stat st;
	__u32 zero = 0;

	if (stat(cg, &st))
		return -errno;
	c.delay_cgid = st.st_ino;	/* a cgroup2 directory's inode number is its cgroup id */
	return bpf_map_update_elem(cfg_fd, &zero, &c, 0) ? -errno : 0;
}

static int cmd_inflight_cycle(struct opts *o, int count)
{
	struct bpf_object *obj;
	char path[PATH_MAX];
	pid_t pids[16];
	int map_fd = load_ops(o->obj, &obj), cfg_fd, i, k, err = 0, ways[3] = {};
	int chargers = o->chargers > 0 && o->chargers <= 16 ? o->chargers : 4;

	if (map_fd < 0)
		return fail("load", -map_fd, o->obj);
	cfg_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "test_config"));
	srand(getpid());
	for (i = 0; i < count && !err; i++) {
		int way = i % 3, link, memfd, pipefd[2], threaded = 0;
		struct closer cl;
		pthread_t closer;
		char c;

		snprintf(path, sizeof(path), "%s/if%d", o->cgroup, i);
		link = attach_new_cgroup(map_fd, path);
		if (link < 0) {
			err = -link;
			break;
		}
		memfd = memfd_create("inflight", 0);
		if (memfd < 0 || pipe(pipefd) || (err = -set_delay(cfg_fd, path, 20))) {
			err = err ?: errno;
			break;
		}
		for (k = 0; k < chargers; k++) {
			pids[k] = fork();
			if (pids[k] == 0) {
				close(pipefd[0]);
				charge_forever(path, memfd, pipefd[1]);
			}
		}
		close(pipefd[1]);
		for (k = 0; k < chargers; k++)
			if (read(pipefd[0], &c, 1) != 1)
				err = EPIPE;
		close(pipefd[0]);
		usleep(5000 + rand() % 30000);	/* charges, delayed 20 ms each, are in flight now */
		if (way == 0) {
			/* detach while charging: the hooks' memcgs lose their ops under the chargers */
			close(link);
			usleep(rand() % 10000);
		}
		if (way == 2) {
			/* the link goes while the cgroup is being emptied and removed */
			cl.link = link;
			cl.after_us = rand() % 20000;
			threaded = !pthread_create(&closer, NULL, close_link_later, &cl);
			if (!threaded)
				close(link);
		}
		for (k = 0; k < chargers; k++)
			kill(pids[k], SIGKILL);
		for (k = 0; k < chargers; k++)
			waitpid(pids[k], NULL, 0);
		/* removed with its tmpfs pages still charged to it (and, for way 1, its link attached) */
		while (rmdir(path) && errno == EBUSY)
			usleep(1000);
		if (way == 1) {
			struct pollfd pfd = { .fd = link, .events = POLLIN };

			if (poll(&pfd, 1, 5000) <= 0 || !(pfd.revents & POLLHUP))
				err = ETIMEDOUT;
			close(link);
		}
		if (threaded)
			pthread_join(closer, NULL);
		close(memfd);	/* the last charges go: uncharged from a removed memcg */
		ways[way]++;
	}
	bpf_object__close(obj);
	if (err)
		return fail("cycle", err, path);
	printf("{\"ok\": true, \"cycles\": %d, \"detached_while_charging\": %d, \"removed_while_attached\": %d, "
	       "\"both_at_once\": %d}\n", i, ways[0], ways[1], ways[2]);
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
		else if (!strcmp(argv[i], "--chargers") && i + 1 < argc)
			o.chargers = atoi(argv[++i]);
		else if (argv[i][0] != '-' && !o.obj)
			o.obj = argv[i];
		else
			break;
	}
	if (argc < 2 || i < argc || !o.obj || !o.cgroup || count < 0) {
		fprintf(stderr, "usage: memcg_cycles attach|remove|inflight OBJ --cgroup PATH --count N [--chargers K]\n");
		return 2;
	}
	libbpf_set_print(libbpf_print);
	if (!strcmp(argv[1], "attach"))
		return cmd_attach_cycle(&o, count);
	if (!strcmp(argv[1], "remove"))
		return cmd_remove_cycle(&o, count);
	if (!strcmp(argv[1], "inflight"))
		return cmd_inflight_cycle(&o, count);
	fprintf(stderr, "usage: memcg_cycles attach|remove|inflight OBJ --cgroup PATH --count N [--chargers K]\n");
	return 2;
}
