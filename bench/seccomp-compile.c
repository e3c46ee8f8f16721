/*
 * seccomp-compile: times what runc (and crun) spend turning a seccomp
 * profile into BPF with libseccomp: seccomp_init, the extra architectures,
 * one seccomp_rule_add per (rule, syscall name), seccomp_export_bpf. The
 * profile comes pre-flattened by seccomp-compile.sh, one rule per line:
 *   ACTION NAME NARGS [INDEX OP VALUE VALUE_TWO]...
 * (numbers as libseccomp takes them); the first line is
 *   DEFAULT_ACTION NARCHES ARCH_TOKEN...
 * Reading the file is not timed; every run builds the filter from scratch.
 *
 * Usage: seccomp-compile FILE [RUNS [OPTIMIZE]]   (OPTIMIZE: 1 linear, 2 tree; default 2)
 * Build: gcc -O2 -Wall -o seccomp-compile seccomp-compile.c -lseccomp
 */
#define _GNU_SOURCE
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct rule {
	uint32_t action;
	char name[64];
	unsigned nargs;
	struct scmp_arg_cmp args[6];
};

static uint32_t default_action;
static unsigned n_arches;
static uint32_t arches[8];
static struct rule *rules;
static unsigned n_rules;
static int optimize = 2;

static void load(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned cap = 0;

	if (!f || fscanf(f, "%u %u", &default_action, &n_arches) != 2 || n_arches > 8) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	for (unsigned i = 0; i < n_arches; i++)
		if (fscanf(f, "%u", &arches[i]) != 1)
			exit(1);
	for (;;) {
		struct rule r = { 0 };

		if (fscanf(f, "%u %63s %u", &r.action, r.name, &r.nargs) != 3)
			break;
		if (r.nargs > 6)
			exit(1);
		for (unsigned a = 0; a < r.nargs; a++) {
			unsigned idx, op;
			unsigned long long v, v2;

			if (fscanf(f, "%u %u %llu %llu", &idx, &op, &v, &v2) != 4)
				exit(1);
			r.args[a] = (struct scmp_arg_cmp){ idx, op, v, v2 };
		}
		if (n_rules == cap) {
			cap = cap ? cap * 2 : 256;
			rules = realloc(rules, cap * sizeof(*rules));
		}
		rules[n_rules++] = r;
	}
	fclose(f);
}

/* One compilation, as runc does it; returns the BPF size in bytes. */
static long compile(int out)
{
	scmp_filter_ctx ctx = seccomp_init(default_action);
	struct stat st;

	if (!ctx)
		exit(1);
	for (unsigned i = 0; i < n_arches; i++)
		if (arches[i] != seccomp_arch_native())
			seccomp_arch_add(ctx, arches[i]);
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	/* runc asks for the binary tree above 32 rules (crun does not). */
	seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, optimize);
	for (unsigned i = 0; i < n_rules; i++) {
		int nr = seccomp_syscall_resolve_name(rules[i].name);

		if (nr == __NR_SCMP_ERROR)
			continue;
		seccomp_rule_add_array(ctx, rules[i].action, nr, rules[i].nargs, rules[i].args);
	}
	if (ftruncate(out, 0) || lseek(out, 0, SEEK_SET) || seccomp_export_bpf(ctx, out) < 0)
		exit(1);
	seccomp_release(ctx);
	return fstat(out, &st) ? -1 : (long)st.st_size;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	int runs = argc > 2 ? atoi(argv[2]) : 200;
	int out = memfd_create("bpf", 0);
	double *us;
	long size = 0;

	if (argc < 2 || runs < 1 || out < 0) {
		fprintf(stderr, "usage: %s FILE [RUNS]\n", argv[0]);
		return 2;
	}
	if (argc > 3)
		optimize = atoi(argv[3]);
	load(argv[1]);
	us = calloc(runs, sizeof(*us));
	for (int i = 0; i < runs; i++) {
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		size = compile(out);
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	}
	qsort(us, runs, sizeof(*us), cmp);
	printf("libseccomp %d.%d.%d: docker default profile -> %ld BPF instructions; "
	       "compile median %.1f us over %d runs (min %.1f us, optimize %d)\n",
	       seccomp_version()->major, seccomp_version()->minor, seccomp_version()->micro,
	       size / 8, us[runs / 2], runs, us[0], optimize);
	return 0;
}
