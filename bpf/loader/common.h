/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What agentcg's loaders share: JSON output (one object per line on stdout, strings escaped), the failure reply,
 * libbpf's log on stderr without debug noise, the stop flag their signal handlers set, and finding a BPF global
 * (a `const volatile` in .rodata before load, or a .bss variable) by name through the object's BTF.
 */
#ifndef AGENTCG_LOADER_COMMON_H
#define AGENTCG_LOADER_COMMON_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t stop_signal;

static inline void on_signal(int sig)
{
	stop_signal = sig;
}

/* s (at most max bytes) as a JSON string literal: quotes, backslashes, control and non-ASCII bytes escaped */
static inline void json_str(const char *s, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < max && s[i]; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

/* {"ok": false, "stage", "errno", "error": "<what>: <strerror>"}; returns 1 (the exit status of a failure) */
static inline int fail(const char *stage, int err, const char *what)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "%s: %s", what, strerror(err));
	printf("{\"ok\": false, \"stage\": ");
	json_str(stage, 64);
	printf(", \"errno\": %d, \"error\": ", err);
	json_str(buf, sizeof(buf));
	printf("}\n");
	fflush(stdout);
	return 1;
}

/* libbpf's warnings (a failed load's verifier log among them) on stderr; debug output dropped */
static inline int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_DEBUG ? 0 : vfprintf(stderr, fmt, args);
}

/* Address and size of global `name` in the initial data of section `sec` (".rodata", ".bss"); NULL if absent. */
static inline void *global_var(struct bpf_object *obj, const char *sec, const char *name, size_t *var_size)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *t;
	struct bpf_map *map;
	size_t size;
	char *data;
	int id, i;

	map = bpf_object__find_map_by_name(obj, sec);	/* an internal map's real name is its section's */
	if (!btf || !map)
		return NULL;
	id = btf__find_by_name_kind(btf, sec, BTF_KIND_DATASEC);
	data = bpf_map__initial_value(map, &size);
	if (id < 0 || !data)
		return NULL;
	t = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(t);
	for (i = 0; i < btf_vlen(t); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->offset + vs->size > size)
			return NULL;
		*var_size = vs->size;
		return data + vs->offset;
	}
	return NULL;
}

#endif
