// SPDX-License-Identifier: MIT
/*
 * uffd-bench: libuffd against the raw kernel path and against no
 * userfaultfd at all, in one run. See doc/performance.md.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libuffd.h>

#include "bench.h"

struct bench_opts opts = {
	.reps = 5,
	.restore_reps = 3,
	.rt_faults = 5000,
	.tp_faults = 10000,
	.restore_bytes = (size_t)1 << 30,
	.hugepages = 32,
	.dir = "/var/tmp",
};

static const struct {
	const char *name;
	void (*run)(void);
} scenarios[] = {
	{ "roundtrip", scenario_roundtrip },
	{ "throughput", scenario_throughput },
	{ "restore", scenario_restore },
	{ "memory", scenario_memory },
	{ "sigbus", scenario_sigbus },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: uffd-bench [--quick] [--json] [--reps N] [--dir DIR]\n"
		"                  [--restore-mib N] [--only SCENARIO]\n"
		"Measures libuffd against a hand-written raw userfaultfd loop, "
		"in-thread\nSIGBUS resolution, read() and plain page faults, "
		"alternating them in one run.\n"
		"  --quick        a reduced set, under a minute\n"
		"  --json         JSON on stdout (progress goes to stderr)\n"
		"  --reps N       measured repetitions after one warm-up "
		"(1..%d)\n"
		"  --dir DIR      where the restore image is written (a disk "
		"filesystem,\n                 so that cold means cold; "
		"default /var/tmp)\n"
		"  --restore-mib N  size of the restore image (default 1024)\n"
		"  --only NAME    run only: roundtrip, throughput, restore, "
		"memory, sigbus\n", BENCH_MAX_REPS);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "reps", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "restore-mib", required_argument, NULL, 'm' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	long reps = -1, mib = -1;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'q': opts.quick = true; break;
		case 'j': opts.json = true; break;
		case 'r': reps = strtol(optarg, NULL, 10); break;
		case 'd': opts.dir = optarg; break;
		case 'm': mib = strtol(optarg, NULL, 10); break;
		case 'o': opts.only = optarg; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind < argc || (reps != -1 && (reps < 1 || reps > BENCH_MAX_REPS))
	    || (mib != -1 && (mib < 1 || mib > 65536))) {
		usage(stderr);
		exit(2);
	}
	if (opts.quick) {
		opts.reps = 2;
		opts.restore_reps = 1;
		opts.rt_faults = 300;
		opts.tp_faults = 1000;
		opts.restore_bytes = (size_t)32 << 20;
		opts.hugepages = 4;
	}
	if (reps > 0)
		opts.reps = opts.restore_reps = (unsigned)reps;
	if (mib > 0)
		opts.restore_bytes = (size_t)mib << 20;
}

int main(int argc, char **argv)
{
	char machine[512];

	parse(argc, argv);
	bench_machine_describe(machine, sizeof(machine));
	bench_progress("uffd-bench (libuffd %s) on %s", uffd_version(),
		       machine);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!opts.only || strstr(scenarios[i].name, opts.only))
			scenarios[i].run();
	if (opts.json) {
		bench_print_json();
		return 0;
	}
	printf("uffd-bench: libuffd %s on %s\n%u repetitions after a warm-up,"
	       " references alternated in the same run%s\n\n", uffd_version(),
	       machine, opts.reps, opts.quick ? " (--quick)" : "");
	bench_print();
	return 0;
}
