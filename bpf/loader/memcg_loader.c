// SPDX-License-Identifier: GPL-2.0
/*
 * memcg_loader: load a memcg_bpf_ops object and attach it to a cgroup, pinned
 * in bpffs so the loader can exit; detach, unpin, inspect; a session for a controller
 * (map updates and the ring buffer). Reading and writing maps by their pins is bpftool's job
 * (the tree's own, built with the kernel: agentcg.harness.bpfmaps).
 * Every command prints one JSON object on stdout and exits 0 on success, 1 on
 * failure (with "errno" and "error"). A failed attach leaves nothing behind.
 *
 *   memcg_loader attach OBJ --pin DIR [--cgroup PATH | --no-cgroup] [--override]
 *                [--flags N] [--set VAR=VALUE]...
 *                (the struct_ops map is pinned too, as DIR/ops)
 *   memcg_loader link MAP_PIN --pin DIR [--cgroup PATH] [--override] [--flags N]
 *                (one more link of an attached map, e.g. OTHER_DIR/ops: one map on several cgroups)
 *   memcg_loader detach --pin DIR        (BPF_LINK_DETACH; pins stay)
 *   memcg_loader unpin --pin DIR         (remove pins: the link goes with its last fd)
 *   memcg_loader info --pin DIR [--timeout-ms N]
 *                (link ids, cgroup id, whether it polls EPOLLHUP, waiting up to N ms for it)
 *   memcg_loader ringbuf-drain --pin DIR --map NAME --timeout-ms N   (records as hex)
 *   memcg_loader serve --pin DIR [--map RINGBUF]
 *                (a session for a controller: commands on stdin, one JSON reply line each;
 *                 ring buffer records streamed as they arrive, see cmd_serve)
 * (Stress commands that only tests need are in bpf/tests/memcg_cycles.c.)
 *
 * --set assigns a `const volatile` global (u8/u16/u32/u64) before load; it is
 * how configuration reaches a policy that the verifier then sees as constant.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <dirent.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "common.h"
#include "memcg_ops.h"

#define MAX_SETS 16

struct opts {
	const char *cmd, *obj, *pin, *cgroup, *map;
	const char *sets[MAX_SETS];
	int nr_sets, no_cgroup, override, timeout_ms;
	long long raw_flags;	/* -1: derive from --cgroup/--override */
};

static int set_rodata(struct bpf_object *obj, const char *assignment)
{
	char name[128];
	const char *eq = strchr(assignment, '=');
	unsigned long long value;
	size_t size = 0;
	char *var;

	if (!eq || eq - assignment >= (long)sizeof(name))
		return -EINVAL;
	memcpy(name, assignment, eq - assignment);
	name[eq - assignment] = 0;
	value = strtoull(eq + 1, NULL, 0);
	var = global_var(obj, ".rodata", name, &size);
	if (!var)
		return -ENOENT;
	switch (size) {
	case 1: *(__u8 *)var = value; break;
	case 2: *(__u16 *)var = value; break;
	case 4: *(__u32 *)var = value; break;
	case 8: *(__u64 *)var = value; break;
	default: return -EINVAL;
	}
	return 0;
}

static void unpin_all(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* Where link_map() failed: opening the cgroup, creating the link, or pinning it. */
enum link_stage { LINK_CGROUP, LINK_CREATE, LINK_PIN };

/* What a failure at @stage names in its error line. */
static const char *link_stage_what(enum link_stage stage, const struct opts *o)
{
	switch (stage) {
	case LINK_CGROUP:
		return o->cgroup;
	case LINK_PIN:
		return o->pin;
	default:
		return "BPF_LINK_CREATE";
	}
}

/*
 * Link the loaded struct_ops map @map_fd to o->cgroup (with o's flags) and pin
 * the link as DIR/link. Returns the link fd, or -errno with *stage set.
 */
static int link_map(int map_fd, struct opts *o, __u32 *flags_out, enum link_stage *stage)
{
	char path[PATH_MAX];
	int cg_fd = -1, link_fd, err;
	__u32 flags = 0;

	*stage = LINK_CGROUP;
	if (o->cgroup) {
		cg_fd = open(o->cgroup, O_RDONLY | O_DIRECTORY);
		if (cg_fd < 0)
			return -errno;
		flags |= BPF_F_CGROUP_FD;
	}
	if (o->override)
		flags |= BPF_F_ALLOW_OVERRIDE;
	if (o->raw_flags >= 0)
		flags = o->raw_flags;
	*flags_out = flags;

	link_fd = link_create(map_fd, cg_fd < 0 ? 0 : cg_fd, flags);
	err = link_fd < 0 ? -errno : 0;
	if (cg_fd >= 0)
		close(cg_fd);
	*stage = LINK_CREATE;
	if (err)
		return err;
	*stage = LINK_PIN;
	snprintf(path, sizeof(path), "%s/link", o->pin);
	if ((mkdir(o->pin, 0700) && errno != EEXIST) || bpf_obj_pin(link_fd, path)) {
		err = -errno;
		close(link_fd);
		return err;
	}
	return link_fd;
}

static void print_link(int link_fd, int map_fd, __u32 flags)
{
	struct bpf_link_info li = {};
	struct bpf_map_info info = {};
	__u32 li_len = sizeof(li), info_len = sizeof(info);

	bpf_map_get_info_by_fd(map_fd, &info, &info_len);
	bpf_link_get_info_by_fd(link_fd, &li, &li_len);
	printf("{\"ok\": true, \"link_id\": %u, \"map_id\": %u, \"cgroup_id\": %llu, \"flags\": %u}\n",
	       li.id, info.id, (unsigned long long)li.struct_ops.cgroup_id, flags);
}

static int cmd_link(struct opts *o)
{
	enum link_stage stage;
	__u32 flags;
	int map_fd, link_fd;

	map_fd = bpf_obj_get(o->obj);
	if (map_fd < 0)
		return fail("open", errno, o->obj);
	link_fd = link_map(map_fd, o, &flags, &stage);
	if (link_fd < 0) {
		close(map_fd);
		if (stage == LINK_PIN)
			unpin_all(o->pin);
		return fail(stage == LINK_PIN ? "pin" : "attach", -link_fd, link_stage_what(stage, o));
	}
	print_link(link_fd, map_fd, flags);
	close(link_fd);
	close(map_fd);
	return 0;
}

static int cmd_attach(struct opts *o)
{
	struct bpf_object *obj;
	struct bpf_map *map, *ops = NULL;
	char path[PATH_MAX];
	enum link_stage stage;
	int err, i, link_fd = -1;
	__u32 flags = 0;

	obj = bpf_object__open_file(o->obj, NULL);
	if (!obj)
		return fail("open", errno, o->obj);
	for (i = 0; i < o->nr_sets; i++) {
		err = set_rodata(obj, o->sets[i]);
		if (err) {
			bpf_object__close(obj);
			return fail("config", -err, o->sets[i]);
		}
	}
	bpf_object__for_each_map(map, obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS)
			ops = map;
	if (!ops) {
		bpf_object__close(obj);
		return fail("open", ENOENT, "no struct_ops map in object");
	}
	err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		return fail("load", -err, "bpf_object__load (verifier log on stderr)");
	}

	if (!(bpf_map__map_flags(ops) & BPF_F_LINK)) {
		/* A struct_ops map without BPF_F_LINK registers globally on update. */
		struct bpf_link *l = bpf_map__attach_struct_ops(ops);

		err = l ? 0 : -errno;
		bpf_link__destroy(l);
		bpf_object__close(obj);
		return err ? fail("attach", -err, "global (non-link) registration")
			   : fail("attach", 0, "global registration unexpectedly succeeded");
	}

	prime_struct_ops(ops);
	link_fd = link_map(bpf_map__fd(ops), o, &flags, &stage);
	if (link_fd < 0) {
		err = -link_fd;
		if (stage == LINK_PIN)
			goto undo;
		bpf_object__close(obj);
		return fail("attach", err, link_stage_what(stage, o));
	}
	bpf_object__for_each_map(map, obj) {
		if (strchr(bpf_map__name(map), '.'))
			continue;	/* internal .rodata/.bss maps are not pinned */
		/* the struct_ops map as DIR/ops, for `link` */
		snprintf(path, sizeof(path), "%s/%s", o->pin, map == ops ? "ops" : bpf_map__name(map));
		if (bpf_map__pin(map, path)) {
			err = errno;
			goto undo;
		}
	}
	print_link(link_fd, bpf_map__fd(ops), flags);
	close(link_fd);
	bpf_object__close(obj);
	return 0;

undo:
	unpin_all(o->pin);
	if (link_fd >= 0)
		close(link_fd);
	bpf_object__close(obj);
	return fail("pin", err, o->pin);
}

static int open_link(struct opts *o)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/link", o->pin);
	return bpf_obj_get(path);
}

static int cmd_detach(struct opts *o)
{
	int fd = open_link(o);

	if (fd < 0)
		return fail("open", errno, o->pin);
	if (bpf_link_detach(fd)) {
		int err = errno;

		close(fd);
		return fail("detach", err, "BPF_LINK_DETACH");
	}
	close(fd);
	printf("{\"ok\": true}\n");
	return 0;
}

static int cmd_info(struct opts *o, int timeout_ms)
{
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	struct pollfd pfd;
	int fd = open_link(o), hup;

	if (fd < 0)
		return fail("open", errno, o->pin);
	if (bpf_link_get_info_by_fd(fd, &li, &len)) {
		int err = errno;

		close(fd);
		return fail("info", err, "link info");
	}
	pfd.fd = fd;
	pfd.events = POLLIN;
	hup = poll(&pfd, 1, timeout_ms) > 0 && (pfd.revents & POLLHUP);
	printf("{\"ok\": true, \"link_id\": %u, \"type\": %u, \"map_id\": %u, \"cgroup_id\": %llu, "
	       "\"hup\": %s}\n", li.id, li.type, li.struct_ops.map_id,
	       (unsigned long long)li.struct_ops.cgroup_id, hup ? "true" : "false");
	close(fd);
	return 0;
}

static int open_map(struct opts *o)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", o->pin, o->map);
	return bpf_obj_get(path);
}

static int unhex(const char *hex, unsigned char *out, size_t want)
{
	size_t i;

	if (!hex || strlen(hex) != want * 2)
		return -EINVAL;
	for (i = 0; i < want; i++) {
		unsigned int b;

		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -EINVAL;
		out[i] = b;
	}
	return 0;
}

/* Parse key (and value, if value_hex) for map fd; 0 or -EINVAL. */
static int map_args(int fd, const char *key_hex, const char *value_hex, unsigned char *key, unsigned char *value,
		    __u32 *value_size)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_map_get_info_by_fd(fd, &info, &len) || info.key_size > 64 || info.value_size > 256 ||
	    unhex(key_hex, key, info.key_size) || (value_hex && unhex(value_hex, value, info.value_size)))
		return -EINVAL;
	*value_size = info.value_size;
	return 0;
}

/* update/lookup/delete one element; prints the reply line. */
static int map_op(const char *op, int fd, const char *name, const char *key_hex, const char *value_hex)
{
	unsigned char key[64], value[256];
	__u32 value_size, i;
	int err;

	if (map_args(fd, key_hex, value_hex, key, value, &value_size))
		return fail(op, EINVAL, "key/value hex does not match the map's sizes");
	if (!strcmp(op, "update"))
		err = bpf_map_update_elem(fd, key, value, BPF_ANY) ? errno : 0;
	else if (!strcmp(op, "delete"))
		err = bpf_map_delete_elem(fd, key) ? errno : 0;
	else
		err = bpf_map_lookup_elem(fd, key, value) ? errno : 0;
	if (err)
		return fail(op, err, name);
	printf("{\"ok\": true");
	if (!strcmp(op, "lookup")) {
		printf(", \"value_hex\": \"");
		for (i = 0; i < value_size; i++)
			printf("%02x", value[i]);
		printf("\"");
	}
	printf("}\n");
	return 0;
}

static int print_record(void *ctx, void *data, size_t size)
{
	int *count = ctx;
	size_t i;

	printf("%s\"", (*count)++ ? ", " : "");
	for (i = 0; i < size; i++)
		printf("%02x", ((unsigned char *)data)[i]);
	printf("\"");
	return 0;
}

static int cmd_ringbuf_drain(struct opts *o)
{
	struct ring_buffer *rb;
	int fd = open_map(o), count = 0;

	if (fd < 0)
		return fail("open", errno, o->map);
	printf("{\"ok\": true, \"records\": [");
	rb = ring_buffer__new(fd, print_record, &count, NULL);
	if (rb) {
		ring_buffer__poll(rb, o->timeout_ms);
		ring_buffer__consume(rb);
		ring_buffer__free(rb);
	}
	printf("]}\n");
	close(fd);
	return 0;
}

static int stream_record(void *ctx, void *data, size_t size)
{
	size_t i;

	printf("{\"record\": \"");
	for (i = 0; i < size; i++)
		printf("%02x", ((unsigned char *)data)[i]);
	printf("\"}\n");
	return 0;
}

/*
 * A controller's session with an attached policy: one process instead of one per map update, and ring buffer
 * records pushed as they are produced (poll on the ring buffer's epoll fd), so user space can escalate within
 * a scheduling delay of the kernel's decision. stdin commands, one per line:
 *   update MAP KEYHEX VALUEHEX | lookup MAP KEYHEX | delete MAP KEYHEX
 * Each gets one reply line ({"ok": ...}); records come as {"record": HEX} lines in between. EOF ends it.
 */
static void serve_line(struct opts *o, char *line)
{
	char *save, *op = strtok_r(line, " ", &save), *name = strtok_r(NULL, " ", &save);
	char *key = strtok_r(NULL, " ", &save), *value = strtok_r(NULL, " ", &save);
	struct opts one = *o;
	int fd;

	if (!op || !name || !key || (strcmp(op, "update") && strcmp(op, "lookup") && strcmp(op, "delete")) ||
	    (!strcmp(op, "update") && !value)) {
		fail("serve", EINVAL, "expected: update MAP KEY VALUE | lookup MAP KEY | delete MAP KEY");
		return;
	}
	one.map = name;
	fd = open_map(&one);
	if (fd < 0) {
		fail("open", errno, name);
		return;
	}
	map_op(op, fd, name, key, !strcmp(op, "update") ? value : NULL);
	close(fd);
}

static int cmd_serve(struct opts *o)
{
	struct ring_buffer *rb = NULL;
	char buf[16384];
	size_t have = 0;
	int rfd = -1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (o->map) {
		rfd = open_map(o);
		if (rfd < 0)
			return fail("open", errno, o->map);
		rb = ring_buffer__new(rfd, stream_record, NULL, NULL);
		if (!rb) {
			close(rfd);
			return fail("ringbuf", errno, o->map);
		}
	}
	printf("{\"ok\": true, \"serving\": \"%s\"}\n", o->pin);
	for (;;) {
		struct pollfd pfd[2] = { { .fd = 0, .events = POLLIN },
					 { .fd = rb ? ring_buffer__epoll_fd(rb) : -1, .events = POLLIN } };
		char *nl;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (rb && (pfd[1].revents & POLLIN))
			ring_buffer__consume(rb);
		if (!(pfd[0].revents & (POLLIN | POLLHUP)))
			continue;
		n = read(0, buf + have, sizeof(buf) - 1 - have);
		if (n <= 0)
			break;	/* EOF: the controller is done */
		have += n;
		buf[have] = 0;
		/* stdin is read raw (no stdio buffer) so poll() never misses lines already read */
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			serve_line(o, buf);
			have -= nl + 1 - buf;
			memmove(buf, nl + 1, have + 1);
		}
		if (have == sizeof(buf) - 1) {
			fail("serve", E2BIG, "command line too long");
			have = 0;
		}
	}
	if (rb) {
		ring_buffer__consume(rb);
		ring_buffer__free(rb);
		close(rfd);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: memcg_loader attach OBJ --pin DIR [--cgroup PATH|--no-cgroup] [--override]\n"
			"                    [--flags N] [--set VAR=VALUE]...\n"
			"       memcg_loader link MAP_PIN --pin DIR [--cgroup PATH] [--override] [--flags N]\n"
			"       memcg_loader detach|unpin --pin DIR\n"
			"       memcg_loader info --pin DIR [--timeout-ms N]\n"
			"       memcg_loader ringbuf-drain --pin DIR --map NAME --timeout-ms N\n"
			"       memcg_loader serve --pin DIR [--map RINGBUF]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct opts o = { .raw_flags = -1 };
	int i;

	if (argc < 2)
		return usage();
	o.cmd = argv[1];
	for (i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--pin") && next) o.pin = argv[++i];
		else if (!strcmp(a, "--cgroup") && next) o.cgroup = argv[++i];
		else if (!strcmp(a, "--no-cgroup")) o.no_cgroup = 1;
		else if (!strcmp(a, "--override")) o.override = 1;
		else if (!strcmp(a, "--flags") && next) o.raw_flags = strtoll(argv[++i], NULL, 0);
		else if (!strcmp(a, "--set") && next && o.nr_sets < MAX_SETS) o.sets[o.nr_sets++] = argv[++i];
		else if (!strcmp(a, "--map") && next) o.map = argv[++i];
		else if (!strcmp(a, "--timeout-ms") && next) o.timeout_ms = atoi(argv[++i]);
		else if (a[0] != '-' && !o.obj) o.obj = a;
		else return usage();
	}
	libbpf_set_print(libbpf_print);
	if (!o.pin)
		return usage();
	if (!strcmp(o.cmd, "attach")) {
		if (!o.obj || (!o.cgroup && !o.no_cgroup))
			return usage();
		return cmd_attach(&o);
	}
	if (!strcmp(o.cmd, "link")) {
		if (!o.obj)
			return usage();
		return cmd_link(&o);
	}
	if (!strcmp(o.cmd, "detach"))
		return cmd_detach(&o);
	if (!strcmp(o.cmd, "unpin")) {
		unpin_all(o.pin);
		printf("{\"ok\": true}\n");
		return 0;
	}
	if (!strcmp(o.cmd, "info"))
		return cmd_info(&o, o.timeout_ms);
	if (!strcmp(o.cmd, "serve"))
		return cmd_serve(&o);
	if (!strcmp(o.cmd, "ringbuf-drain") && o.map)
		return cmd_ringbuf_drain(&o);
	return usage();
}
