// SPDX-License-Identifier: MIT
/*
 * Results: rows of samples grouped by scenario, their medians and ratios,
 * the targets, and the two output formats (an aligned table, JSON).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define MAX_ROWS 256
#define MAX_NOTES 32
#define MAX_TARGETS 16

struct bench_target {
	char what[120];
	char group[128];
	char name[96];
	unsigned ref;
	double threshold;
};

static struct bench_row rows[MAX_ROWS];
static unsigned nrows;
static char notes[MAX_NOTES][200];
static unsigned nnotes;
static struct bench_target targets[MAX_TARGETS];
static unsigned ntargets;

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "uffd-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	/* stderr, so --json output on stdout stays one document */
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const struct bench_row *bench_find(const char *group, const char *name)
{
	for (unsigned i = 0; i < nrows; i++)
		if (!strcmp(rows[i].group, group) && !strcmp(rows[i].name, name))
			return &rows[i];
	return NULL;
}

struct bench_row *bench_row(const char *group, const char *name,
			    const char *unit, enum bench_kind kind)
{
	struct bench_row *row = (struct bench_row *)bench_find(group, name);

	if (row)
		return row;
	if (nrows == MAX_ROWS)
		bench_die("too many result rows");
	row = &rows[nrows++];
	snprintf(row->group, sizeof(row->group), "%s", group);
	snprintf(row->name, sizeof(row->name), "%s", name);
	row->unit = unit;
	row->kind = kind;
	return row;
}

void bench_row_refs(struct bench_row *row, const char *ref0, const char *ref1)
{
	snprintf(row->ref[0], sizeof(row->ref[0]), "%s", ref0 ? ref0 : "");
	snprintf(row->ref[1], sizeof(row->ref[1]), "%s", ref1 ? ref1 : "");
}

void bench_add(struct bench_row *row, double value)
{
	if (row->n < BENCH_MAX_REPS)
		row->v[row->n++] = value;
}

void bench_skip(const char *group, const char *name, const char *fmt, ...)
{
	struct bench_row *row = bench_row(group, name, "", BENCH_TIME);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(row->note, sizeof(row->note), fmt, ap);
	va_end(ap);
}

void bench_note(const char *fmt, ...)
{
	va_list ap;

	if (nnotes == MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(notes[nnotes++], sizeof(notes[0]), fmt, ap);
	va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(const struct bench_row *row)
{
	double s[BENCH_MAX_REPS];

	if (!row || !row->n)
		return NAN;
	memcpy(s, row->v, row->n * sizeof(double));
	qsort(s, row->n, sizeof(double), cmp_double);
	return row->n % 2 ? s[row->n / 2]
			  : (s[row->n / 2 - 1] + s[row->n / 2]) / 2;
}

static double row_min(const struct bench_row *row)
{
	double m = row->v[0];

	for (unsigned i = 1; i < row->n; i++)
		m = row->v[i] < m ? row->v[i] : m;
	return m;
}

static double row_max(const struct bench_row *row)
{
	double m = row->v[0];

	for (unsigned i = 1; i < row->n; i++)
		m = row->v[i] > m ? row->v[i] : m;
	return m;
}

/* Speed relative to a reference: >= 1 means at least as fast. */
double bench_ratio(const struct bench_row *row, unsigned ref)
{
	const struct bench_row *r;
	double a, b;

	if (ref > 1 || !row->ref[ref][0])
		return NAN;
	r = bench_find(row->group, row->ref[ref]);
	a = bench_median(row);
	b = bench_median(r);
	if (isnan(a) || isnan(b) || a <= 0 || b <= 0)
		return NAN;
	return row->kind == BENCH_RATE ? a / b : b / a;
}

void bench_target(const char *what, const char *group, const char *name,
		  unsigned ref, double threshold)
{
	struct bench_target *t;

	if (ntargets == MAX_TARGETS)
		return;
	t = &targets[ntargets++];
	snprintf(t->what, sizeof(t->what), "%s", what);
	snprintf(t->group, sizeof(t->group), "%s", group);
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->ref = ref;
	t->threshold = threshold;
}

/* The target's measured ratio (NAN when not measured). */
static double target_value(const struct bench_target *t)
{
	const struct bench_row *row = bench_find(t->group, t->name);

	return row ? bench_ratio(row, t->ref) : NAN;
}

static void fmt_value(char *buf, size_t size, double v)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else if (v >= 100)
		snprintf(buf, size, "%.0f", v);
	else if (v >= 10)
		snprintf(buf, size, "%.1f", v);
	else
		snprintf(buf, size, "%.2f", v);
}

static void print_ratio(const struct bench_row *row, unsigned ref)
{
	double r = bench_ratio(row, ref);
	char buf[48];

	buf[0] = 0;
	if (!isnan(r))
		snprintf(buf, sizeof(buf), "%.2fx %.20s", r, row->ref[ref]);
	printf("  %-27s", buf);
}

static void print_row(const struct bench_row *row)
{
	char med[32], lo[32], hi[32], range[72];

	if (!row->n) {
		printf("  %-32s  skipped: %s\n", row->name,
		       row->note[0] ? row->note : "not measured");
		return;
	}
	fmt_value(med, sizeof(med), bench_median(row));
	fmt_value(lo, sizeof(lo), row_min(row));
	fmt_value(hi, sizeof(hi), row_max(row));
	snprintf(range, sizeof(range), "%s-%s", lo, hi);
	printf("  %-32s %8s %-15s %-8s", row->name, med, range, row->unit);
	print_ratio(row, 0);
	print_ratio(row, 1);
	printf("\n");
}

static void print_targets(void)
{
	printf("\nTargets\n");
	for (unsigned i = 0; i < ntargets; i++) {
		const struct bench_target *t = &targets[i];
		double v = target_value(t);
		const char *verdict = isnan(v)		  ? "NOT MEASURED"
				      : v >= t->threshold ? "met"
							  : "MISSED";

		printf("  %-64s %6.2f (need >= %.2f)  %s\n", t->what, v,
		       t->threshold, verdict);
	}
}

void bench_print(void)
{
	const char *group = "";

	printf("%-34s %8s %-15s %-8s  %s\n", "scenario / case", "median",
	       "min-max", "unit", "speed relative to references");
	for (unsigned i = 0; i < nrows; i++) {
		if (strcmp(group, rows[i].group)) {
			group = rows[i].group;
			printf("\n%s\n", group);
		}
		print_row(&rows[i]);
	}
	print_targets();
	if (nnotes)
		printf("\nNotes\n");
	for (unsigned i = 0; i < nnotes; i++)
		printf("  - %s\n", notes[i]);
}

static void json_str(const char *key, const char *s, bool comma)
{
	printf("\"%s\": \"", key);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	printf("\"%s", comma ? ", " : "");
}

static void json_num(const char *key, double v, bool comma)
{
	if (isnan(v))
		printf("\"%s\": null%s", key, comma ? ", " : "");
	else
		printf("\"%s\": %.6g%s", key, v, comma ? ", " : "");
}

static void json_row(const struct bench_row *row, bool last)
{
	printf("    {");
	json_str("scenario", row->group, true);
	json_str("case", row->name, true);
	json_str("unit", row->unit, true);
	if (!row->n) {
		json_str("skipped", row->note, false);
		printf("}%s\n", last ? "" : ",");
		return;
	}
	json_num("median", bench_median(row), true);
	json_num("min", row_min(row), true);
	json_num("max", row_max(row), true);
	printf("\"samples\": [");
	for (unsigned i = 0; i < row->n; i++)
		printf("%.6g%s", row->v[i], i + 1 < row->n ? ", " : "");
	printf("], \"references\": [");
	for (unsigned r = 0; r < 2; r++) {
		if (!row->ref[r][0])
			continue;
		printf("%s{", r ? ", " : "");
		json_str("case", row->ref[r], true);
		json_num("speed_ratio", bench_ratio(row, r), false);
		printf("}");
	}
	printf("]}%s\n", last ? "" : ",");
}

void bench_print_json(void)
{
	char machine[512];

	bench_machine_describe(machine, sizeof(machine));
	printf("{\n  ");
	json_str("tool", "uffd-bench", true);
	json_str("machine", machine, true);
	printf("\"quick\": %s, \"repetitions\": %u,\n  \"results\": [\n",
	       opts.quick ? "true" : "false", opts.reps);
	for (unsigned i = 0; i < nrows; i++)
		json_row(&rows[i], i + 1 == nrows);
	printf("  ],\n  \"targets\": [\n");
	for (unsigned i = 0; i < ntargets; i++) {
		double v = target_value(&targets[i]);

		printf("    {");
		json_str("target", targets[i].what, true);
		json_num("value", v, true);
		json_num("threshold", targets[i].threshold, true);
		printf("\"met\": %s}%s\n",
		       isnan(v) ? "null" : v >= targets[i].threshold ? "true"
								     : "false",
		       i + 1 == ntargets ? "" : ",");
	}
	printf("  ],\n  \"notes\": [");
	for (unsigned i = 0; i < nnotes; i++) {
		printf("%s\n    {", i ? "," : "");
		json_str("note", notes[i], false);
		printf("}");
	}
	printf("\n  ]\n}\n");
}
