// SPDX-License-Identifier: GPL-2.0
/*
 * scx_loader: load bpf/scx_agent.bpf.o, attach it as the system's sched_ext scheduler and keep it attached
 * while user space talks to it through line commands on stdin. Replies and events are one JSON object per line
 * on stdout (flushed at once); libbpf's warnings and the verifier log go to stderr.
 *
 *   scx_loader run OBJ [--slice-us N]
 *
 * prints {"ok": true, "event": "attached", ...}, then reads commands:
 *   class <cgid> <class> <workload>   put a cgroup in cgroup_class    -> {"ok": true, "event": "class", ...}
 *   unclass <cgid>                    drop it                         -> {"ok": true, "event": "unclass", ...}
 *   stats                             the scheduler's counters        -> {"ok": true, "event": "stats", ...}
 *   error                             make the scheduler call scx_bpf_error() (fail-safe test)
 *   quit                              detach and exit 0
 * Every 50 ms it looks at the exit record the scheduler's .exit writes: once the kernel disabled the scheduler
 * (an error, its watchdog, sysrq-S) it prints {"ok": false, "event": "exited", "kind", "reason", "msg"},
 * drops the link and exits 2. stdin EOF, SIGTERM and SIGINT detach cleanly: {"ok": true, "event": "detached"}.
 * A failure to open, load or attach (another scheduler already loaded: EBUSY) prints one line with "ok": false,
 * "stage", "errno" and "error" and exits 1 with nothing attached.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "common.h"
#include "scx_agent.h"

#define POLL_MS 50

#define AGENTCG_STAT_NAME(id, name) name,
static const char *stat_names[] = { AGENTCG_STATS(AGENTCG_STAT_NAME) };
#undef AGENTCG_STAT_NAME
#define NR_STAT_NAMES (sizeof(stat_names) / sizeof(stat_names[0]))

/* Global `name` of section `sec` if its size is `want` */
static void *global_sized(struct bpf_object *obj, const char *sec, const char *name, size_t want)
{
	size_t size = 0;
	void *var = global_var(obj, sec, name, &size);

	return var && size == want ? var : NULL;
}

static void reply_ok(const char *event, const char *fmt_extra, unsigned long long a)
{
	printf("{\"ok\": true, \"event\": \"%s\"", event);
	if (fmt_extra)
		printf(fmt_extra, a);
	printf("}\n");
	fflush(stdout);
}

static void reply_err(const char *cmd, int err, const char *what)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s: %s", what, strerror(err));
	printf("{\"ok\": false, \"event\": \"reply\", \"stage\": \"command\", \"command\": ");
	json_str(cmd, strlen(cmd));
	printf(", \"errno\": %d, \"error\": ", err);
	json_str(buf, sizeof(buf));
	printf("}\n");
	fflush(stdout);
}

static void print_stats(int stats_fd)
{
	uint32_t i;
	uint64_t v;

	printf("{\"ok\": true, \"event\": \"stats\"");
	for (i = 0; i < NR_STAT_NAMES; i++) {
		v = 0;
		bpf_map_lookup_elem(stats_fd, &i, &v);
		printf(", \"%s\": %" PRIu64, stat_names[i], v);
	}
	printf("}\n");
	fflush(stdout);
}

/* One command line; returns 1 on quit. */
static int command(char *line, int class_fd, int stats_fd, volatile uint32_t *force_error)
{
	unsigned long long cgid, cls, workload;
	struct cgroup_class_val val;
	char word[16] = "";

	sscanf(line, "%15s", word);
	if (!strcmp(word, "class")) {
		if (sscanf(line, "class %llu %llu %llu", &cgid, &cls, &workload) != 3) {
			reply_err(line, EINVAL, "usage: class <cgid> <class> <workload>");
			return 0;
		}
		val.class = cls;
		val.workload = workload;
		if (bpf_map_update_elem(class_fd, &cgid, &val, BPF_ANY))
			reply_err(line, errno, "cgroup_class update");
		else
			reply_ok("class", ", \"cgid\": %llu", cgid);
	} else if (!strcmp(word, "unclass")) {
		if (sscanf(line, "unclass %llu", &cgid) != 1) {
			reply_err(line, EINVAL, "usage: unclass <cgid>");
			return 0;
		}
		if (bpf_map_delete_elem(class_fd, &cgid) && errno != ENOENT)
			reply_err(line, errno, "cgroup_class delete");
		else
			reply_ok("unclass", ", \"cgid\": %llu", cgid);
	} else if (!strcmp(word, "stats")) {
		print_stats(stats_fd);
	} else if (!strcmp(word, "error")) {
		*force_error = 1;
		reply_ok("error", NULL, 0);
	} else if (!strcmp(word, "quit")) {
		return 1;
	} else if (word[0]) {
		reply_err(line, EINVAL, "unknown command");
	}
	return 0;
}

static int run(const char *path, unsigned long long slice_us)
{
	volatile struct exit_record *rec;
	volatile uint32_t *force_error;
	struct bpf_map *map, *ops = NULL;
	struct bpf_link *link;
	struct bpf_object *obj;
	uint64_t *slice;
	char buf[4096];
	size_t len = 0;
	int err, class_fd, stats_fd, quit = 0;

	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return fail("open", errno, path);
	bpf_object__for_each_map(map, obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS)
			ops = map;
	slice = global_sized(obj, ".rodata", "slice_ns", sizeof(*slice));
	if (!ops || !slice) {
		bpf_object__close(obj);
		return fail("open", ENOENT, "no sched_ext_ops map or slice_ns in object");
	}
	if (slice_us)
		*slice = slice_us * 1000;
	err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		return fail("load", -err, "bpf_object__load (verifier log on stderr)");
	}
	rec = global_sized(obj, ".bss", "exit_rec", sizeof(struct exit_record));
	force_error = global_sized(obj, ".bss", "force_error", sizeof(uint32_t));
	class_fd = bpf_object__find_map_fd_by_name(obj, "cgroup_class");
	stats_fd = bpf_object__find_map_fd_by_name(obj, "stats");
	if (!rec || !force_error || class_fd < 0 || stats_fd < 0) {
		bpf_object__close(obj);
		return fail("load", ENOENT, "exit_rec, force_error, cgroup_class or stats missing");
	}

	link = bpf_map__attach_struct_ops(ops);
	if (!link) {
		err = errno;
		bpf_object__close(obj);
		return fail("attach", err, err == EBUSY || err == EEXIST ?
			    "bpf_map__attach_struct_ops: another sched_ext scheduler is loaded" :
			    "bpf_map__attach_struct_ops");
	}
	printf("{\"ok\": true, \"event\": \"attached\", \"ops\": \"agentcg\", \"pid\": %d, \"slice_us\": %llu}\n",
	       getpid(), (unsigned long long)(*slice / 1000));
	fflush(stdout);

	while (!quit && !stop_signal && !rec->exited) {
		struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
		int n = poll(&pfd, 1, POLL_MS);
		ssize_t got;
		char *nl;

		if (n <= 0)
			continue;	/* timeout, EINTR: look at the exit record and signals again */
		got = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
		if (got <= 0) {
			if (got < 0 && errno == EINTR)
				continue;
			quit = 1;	/* EOF: our user went away */
			break;
		}
		len += got;
		buf[len] = 0;
		while (!quit && (nl = strchr(buf, '\n'))) {
			*nl = 0;
			quit = command(buf, class_fd, stats_fd, force_error);
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1) {
			reply_err("", E2BIG, "command line too long");
			len = 0;
		}
	}

	if (rec->exited) {
		/* The kernel already reverted to the default scheduler: drop our link and report why. */
		struct exit_record copy = *(struct exit_record *)rec;

		bpf_link__destroy(link);
		bpf_object__close(obj);
		copy.reason[sizeof(copy.reason) - 1] = 0;
		copy.msg[sizeof(copy.msg) - 1] = 0;
		printf("{\"ok\": false, \"event\": \"exited\", \"kind\": %u, \"exit_code\": %" PRId64 ", \"reason\": ",
		       copy.kind, (int64_t)copy.exit_code);
		json_str(copy.reason, sizeof(copy.reason));
		printf(", \"msg\": ");
		json_str(copy.msg, sizeof(copy.msg));
		printf("}\n");
		fflush(stdout);
		return 2;
	}
	bpf_link__destroy(link);	/* unregisters: the kernel reverts every task, then runs .exit */
	printf("{\"ok\": true, \"event\": \"detached\", \"kind\": %u, \"signal\": %d}\n", rec->kind,
	       (int)stop_signal);
	fflush(stdout);
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: poll() returns EINTR */
	unsigned long long slice_us = 0;
	int i;

	if (argc < 3 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: %s run OBJ [--slice-us N]\n", argv[0]);
		return fail("args", EINVAL, "usage: scx_loader run OBJ [--slice-us N]");
	}
	for (i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--slice-us") && i + 1 < argc)
			slice_us = strtoull(argv[++i], NULL, 0);
		else
			return fail("args", EINVAL, argv[i]);
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(libbpf_print);
	return run(argv[2], slice_us);
}
