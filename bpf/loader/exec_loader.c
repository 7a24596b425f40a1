// SPDX-License-Identifier: GPL-2.0
/*
 * exec_loader: load bpf/exec_tracer.bpf.o, watch agents' leaf cgroups and print one JSON line per exec there.
 *
 *   exec_loader run OBJ [CGROUP_PATH...]
 *
 * prints {"ready": true, "pid": N} once the program is attached and the given cgroups are watched, then
 *   {"pid": P, "ppid": Q, "cgid": C, "comm": "..."}   for every exec by a process in a watched cgroup
 *   {"dropped": N}                                   when the ring buffer had to drop records (running total)
 * and reads line commands on stdin:
 *   watch PATH / unwatch PATH     add or remove a cgroup      (a bad path: {"error": "..."})
 * stdin EOF, SIGTERM and SIGINT detach and exit 0. The protocol is the BCC tracer's (agentcg/exec_tracer.py),
 * so agentcg.enforce.tracing drives either. A failure to open, load or attach prints one line with "ok": false,
 * "stage", "errno" and "error" and exits 1 with nothing attached.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "common.h"
#include "exec_tracer.h"

#define POLL_MS 100

static int on_event(void *ctx, void *data, size_t size)
{
	const struct exec_event *e = data;

	if (size < sizeof(*e))
		return 0;
	printf("{\"pid\": %u, \"ppid\": %u, \"cgid\": %" PRIu64 ", \"comm\": ", e->pid, e->ppid, (uint64_t)e->cgid);
	json_str(e->comm, sizeof(e->comm));
	printf("}\n");
	fflush(stdout);
	return 0;
}

/* "watch PATH" / "unwatch PATH": a cgroup's id is its directory's inode number. */
static void command(char *line, int watched_fd)
{
	char verb[16] = "", buf[600];
	const char *path;
	struct stat st;
	uint8_t one = 1;
	uint64_t id;

	if (sscanf(line, "%15s", verb) != 1)
		return;
	path = line + strlen(verb);
	while (*path == ' ')
		path++;
	if (strcmp(verb, "watch") && strcmp(verb, "unwatch")) {
		snprintf(buf, sizeof(buf), "unknown command %s", verb);
	} else if (stat(path, &st)) {
		snprintf(buf, sizeof(buf), "%s %s: %s", verb, path, strerror(errno));
	} else {
		id = st.st_ino;
		if (!strcmp(verb, "watch") ? !bpf_map_update_elem(watched_fd, &id, &one, BPF_ANY) :
		    (!bpf_map_delete_elem(watched_fd, &id) || errno == ENOENT))
			return;
		snprintf(buf, sizeof(buf), "%s %s: %s", verb, path, strerror(errno));
	}
	printf("{\"error\": ");
	json_str(buf, sizeof(buf));
	printf("}\n");
	fflush(stdout);
}

static int run(const char *path, int ncg, char **cgroups)
{
	uint64_t *dropped, reported = 0;
	struct ring_buffer *rb = NULL;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link = NULL;
	struct bpf_map *bss;
	char buf[4096], line[700];
	size_t len = 0;
	int err, watched_fd, i;

	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		return fail("open", errno, path);
	err = bpf_object__load(obj);
	if (err) {
		bpf_object__close(obj);
		return fail("load", -err, "bpf_object__load (verifier log on stderr)");
	}
	prog = bpf_object__find_program_by_name(obj, "on_exec");
	watched_fd = bpf_object__find_map_fd_by_name(obj, "watched");
	bss = bpf_object__find_map_by_name(obj, ".bss");
	dropped = bss ? bpf_map__initial_value(bss, &(size_t){0}) : NULL;
	if (!prog || watched_fd < 0) {
		bpf_object__close(obj);
		return fail("load", ENOENT, "on_exec or watched missing from object");
	}
	for (i = 0; i < ncg; i++) {
		snprintf(line, sizeof(line), "watch %s", cgroups[i]);
		command(line, watched_fd);
	}
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "events"), on_event, NULL, NULL);
	if (!rb) {
		err = errno;
		bpf_object__close(obj);
		return fail("load", err, "ring_buffer__new");
	}
	link = bpf_program__attach(prog);
	if (!link) {
		err = errno;
		ring_buffer__free(rb);
		bpf_object__close(obj);
		return fail("attach", err, "bpf_program__attach(tp_btf/sched_process_exec)");
	}
	printf("{\"ready\": true, \"pid\": %d}\n", getpid());
	fflush(stdout);

	while (!stop_signal) {
		struct pollfd pfd[2] = {
			{ .fd = STDIN_FILENO, .events = POLLIN },
			{ .fd = ring_buffer__epoll_fd(rb), .events = POLLIN },
		};
		ssize_t got;
		char *nl;

		if (poll(pfd, 2, POLL_MS) < 0 && errno != EINTR)
			break;
		ring_buffer__consume(rb);
		if (dropped && *dropped != reported) {
			reported = *dropped;
			printf("{\"dropped\": %" PRIu64 "}\n", reported);
			fflush(stdout);
		}
		if (!(pfd[0].revents & (POLLIN | POLLHUP)))
			continue;
		got = read(STDIN_FILENO, buf + len, sizeof(buf) - 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;	/* EOF: our user went away */
		len += got;
		buf[len] = 0;
		while ((nl = strchr(buf, '\n'))) {
			*nl = 0;
			command(buf, watched_fd);
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len + 1);
		}
		if (len == sizeof(buf) - 1)
			len = 0;	/* a line this long is no path: drop it */
	}
	bpf_link__destroy(link);
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART: poll() returns EINTR */

	if (argc < 3 || strcmp(argv[1], "run")) {
		fprintf(stderr, "usage: %s run OBJ [CGROUP_PATH...]\n", argv[0]);
		return fail("args", EINVAL, "usage: exec_loader run OBJ [CGROUP_PATH...]");
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	libbpf_set_print(libbpf_print);
	return run(argv[2], argc - 3, argv + 3);
}
