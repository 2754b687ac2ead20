// SPDX-License-Identifier: MIT
/*
 * uffd-probe: the lscpu of userfaultfd. Says how a userfaultfd can be
 * opened here, which features the kernel has, and for every kind of memory
 * (backend) which combinations of registration modes work, which operations
 * the kernel advertises for them and which of those libuffd's capability
 * probe saw work. --json prints the same as one JSON object.
 *
 * Everything is collected into a struct report first, then rendered as text
 * or JSON, so both always say the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <libuffd.h>

#ifndef UFFD_PROBE_VERSION
#define UFFD_PROBE_STR_(x) #x
#define UFFD_PROBE_STR(x) UFFD_PROBE_STR_(x)
#define UFFD_PROBE_VERSION                                                    \
	UFFD_PROBE_STR(LIBUFFD_VERSION_MAJOR) "."                             \
	UFFD_PROBE_STR(LIBUFFD_VERSION_MINOR) "."                             \
	UFFD_PROBE_STR(LIBUFFD_VERSION_PATCH)
#endif

#define EXIT_NO_UFFD 1
#define EXIT_USAGE 2

#define NR_COMBOS 7      /* every non-empty subset of MISSING, WP, MINOR */
#define WRAP_COLUMN 100  /* text output is wrapped at this column */
#define REASON_SIZE 512

/* ---- options ---------------------------------------------------------- */

struct options {
	bool json;
	bool wp_async;
	bool only_some;                   /* --backend was given */
	bool only[UFFD_BACKEND_COUNT];    /* the backends it named */
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: uffd-probe [--json] [--wp-async] [--backend NAME[,NAME...]]\n"
		"\n"
		"Shows what userfaultfd offers on this machine: how a userfaultfd\n"
		"can be opened, the kernel's features, and for each kind of memory\n"
		"the operations the kernel advertises and those libuffd verified.\n"
		"\n"
		"  -j, --json          print one JSON object instead of text\n"
		"  -b, --backend NAME  only this backend (repeatable, or a comma\n"
		"                      separated list)\n"
		"  -w, --wp-async      probe with UFFD_FEATURE_WP_ASYNC enabled too\n"
		"  -h, --help          print this help and exit\n"
		"  -V, --version       print the version and exit\n"
		"\n"
		"Exit status: 0 probe done, 1 no userfaultfd can be opened,\n"
		"2 bad usage.\n");
}

static void list_backends(FILE *f)
{
	fprintf(f, "valid backends:");
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++)
		fprintf(f, "%s %s", b > 1 ? "," : "",
			uffd_backend_name((enum uffd_backend)b));
	fprintf(f, "\n");
}

/* One backend name; UNKNOWN is a name but cannot be probed. */
static int add_backend(struct options *o, const char *name)
{
	enum uffd_backend b;

	if (uffd_backend_from_name(name, &b) || b == UFFD_BACKEND_UNKNOWN) {
		fprintf(stderr, "uffd-probe: unknown backend \"%s\"\n", name);
		list_backends(stderr);
		return -1;
	}
	o->only[b] = true;
	o->only_some = true;
	return 0;
}

/* A comma separated list of backend names. */
static int add_backends(struct options *o, const char *arg)
{
	const char *p = arg;

	do {
		size_t len = strcspn(p, ",");
		char name[64];

		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, p, len);
		name[len] = '\0';
		if (add_backend(o, name))
			return -1;
		p += strcspn(p, ",");
	} while (*p++ == ',');
	return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "backend", required_argument, NULL, 'b' },
		{ "wp-async", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "jb:whV", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': o->json = true; break;
		case 'w': o->wp_async = true; break;
		case 'b':
			if (add_backends(o, optarg))
				return EXIT_USAGE;
			break;
		case 'h': usage(stdout); return EXIT_SUCCESS;
		case 'V':
			printf("uffd-probe %s (libuffd %s)\n", UFFD_PROBE_VERSION,
			       uffd_version());
			return EXIT_SUCCESS;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "uffd-probe: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	return -1;
}

/* ---- names ------------------------------------------------------------ */

static const char *errno_name(int err)
{
	static const struct { int err; const char *name; } names[] = {
		{ EPERM, "EPERM" },   { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" },
		{ EINTR, "EINTR" },   { EIO, "EIO" },       { ENXIO, "ENXIO" },
		{ EBADF, "EBADF" },   { ECHILD, "ECHILD" }, { EAGAIN, "EAGAIN" },
		{ ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" },
		{ EBUSY, "EBUSY" },   { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" },
		{ EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
		{ ENOTTY, "ENOTTY" }, { ENOSPC, "ENOSPC" }, { ERANGE, "ERANGE" },
		{ ENOSYS, "ENOSYS" }, { ENODATA, "ENODATA" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { EPROTO, "EPROTO" },
	};

	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].err == err)
			return names[i].name;
	return NULL;
}

/* The name, or "" for 0 and errnos without a name here (JSON). */
static const char *errno_name_or_empty(int err)
{
	const char *name = err ? errno_name(err) : NULL;

	return name ? name : "";
}

/* "EINVAL", or "errno 123" for one without a name here. */
static const char *errno_text(int err, char *buf, size_t size)
{
	const char *name = errno_name(err);

	if (name)
		return name;
	snprintf(buf, size, "errno %d", err < 0 ? -err : err);
	return buf;
}

static const char *status_name(enum uffd_caps_status s)
{
	switch (s) {
	case UFFD_CAPS_SUPPORTED: return "supported";
	case UFFD_CAPS_UNSUPPORTED: return "unsupported";
	default: return "unknown";
	}
}

static const char *path_name(enum uffd_open_path p)
{
	switch (p) {
	case UFFD_OPEN_SYSCALL: return "syscall";
	case UFFD_OPEN_DEV: return "dev";
	case UFFD_OPEN_ADOPTED: return "adopted";
	default: return "auto";
	}
}

static const char *path_words(enum uffd_open_path p)
{
	switch (p) {
	case UFFD_OPEN_SYSCALL: return "userfaultfd(2)";
	case UFFD_OPEN_DEV: return "/dev/userfaultfd";
	default: return "?";
	}
}

/* How one advertised operation fared: verified, failed, unverifiable. */
static const char *verdict(int err)
{
	if (!err)
		return "verified";
	return err == -ENODATA ? "unverifiable" : "failed";
}

/* The name of one bit of a mask, "bitN" when the library has none. */
static const char *bit_name(const char *(*name_of)(uint64_t), unsigned bit,
			    char *buf, size_t size)
{
	const char *name = name_of(UINT64_C(1) << bit);

	if (name)
		return name;
	snprintf(buf, size, "bit%u", bit);
	return buf;
}

/* ---- what is collected -------------------------------------------------- */

struct open_result {
	int ret;                  /* 0 or the negative errno */
	enum uffd_open_path used; /* when it worked */
	char reason[REASON_SIZE]; /* uffd_last_error() when it did not */
};

struct open_try {
	const char *key;   /* JSON name */
	const char *words; /* text label */
	enum uffd_open_path path;
	bool user_mode_only;
};

static const struct open_try open_tries[] = {
	{ "syscall", "userfaultfd(2)", UFFD_OPEN_SYSCALL, false },
	{ "syscall-user-mode-only", "userfaultfd(2), user-mode-only",
	  UFFD_OPEN_SYSCALL, true },
	{ "dev", "/dev/userfaultfd", UFFD_OPEN_DEV, false },
};
#define NR_TRIES (sizeof(open_tries) / sizeof(open_tries[0]))

struct backend_report {
	enum uffd_backend backend;
	const struct uffd_caps *caps; /* NULL when uffd_caps_get() failed */
	char error[REASON_SIZE];      /* then why */
};

struct report {
	struct utsname uts;
	struct open_result tries[NR_TRIES];
	struct open_result dflt;     /* AUTO, full handle */
	struct open_result dflt_umo; /* AUTO, user-mode-only: the fallback */
	bool have_handle;
	bool handle_umo;             /* features come from dflt_umo */
	uint64_t supported, enabled, api_ioctls, probe_features;
	bool wp_async;
	size_t nr_backends;
	struct backend_report backends[UFFD_BACKEND_COUNT];
};

static void save_error(char *buf)
{
	snprintf(buf, REASON_SIZE, "%s", uffd_last_error());
}

/* Opens a handle as asked; NULL (with r->reason) when it cannot. */
static struct uffd_handle *open_with(enum uffd_open_path path, bool umo,
				     struct open_result *r)
{
	struct uffd_handle_config *cfg = NULL;
	struct uffd_handle *h = NULL;

	r->ret = uffd_handle_config_new(&cfg);
	if (!r->ret)
		r->ret = uffd_handle_config_set_open_path(cfg, path);
	if (!r->ret)
		r->ret = uffd_handle_config_set_user_mode_only(cfg, umo);
	if (!r->ret)
		r->ret = uffd_handle_new(cfg, &h);
	if (r->ret) {
		save_error(r->reason);
		h = NULL;
	} else {
		r->used = uffd_handle_get_open_path(h);
	}
	uffd_handle_config_free(cfg);
	return h;
}

/* The default handle, or a user-mode-only one when only that opens. */
static struct uffd_handle *open_reference(struct report *r)
{
	struct uffd_handle *h = open_with(UFFD_OPEN_AUTO, false, &r->dflt);

	if (!h) {
		h = open_with(UFFD_OPEN_AUTO, true, &r->dflt_umo);
		r->handle_umo = h != NULL;
	}
	return h;
}

static void collect_open_paths(struct report *r)
{
	for (size_t i = 0; i < NR_TRIES; i++)
		uffd_handle_free(open_with(open_tries[i].path,
					   open_tries[i].user_mode_only,
					   &r->tries[i]));
}

static void collect_backend(struct report *r, enum uffd_backend b)
{
	struct backend_report *br = &r->backends[r->nr_backends++];

	br->backend = b;
	if (uffd_caps_get(r->probe_features, b, &br->caps)) {
		br->caps = NULL;
		save_error(br->error);
	}
}

/* Returns false when no userfaultfd can be opened at all. */
static bool collect(struct report *r, const struct options *o)
{
	struct uffd_handle *h;

	if (uname(&r->uts))
		memset(&r->uts, 0, sizeof(r->uts));
	collect_open_paths(r);
	h = open_reference(r);
	if (!h)
		return false;
	r->have_handle = true;
	r->supported = uffd_handle_get_supported_features(h);
	r->enabled = uffd_handle_get_features(h);
	r->api_ioctls = uffd_handle_get_api_ioctls(h);
	uffd_handle_free(h);
	r->wp_async = o->wp_async;
	r->probe_features = r->enabled | (o->wp_async ? UFFD_FEAT_WP_ASYNC : 0);
	for (int b = 1; b < UFFD_BACKEND_COUNT; b++)
		if (!o->only_some || o->only[b])
			collect_backend(r, (enum uffd_backend)b);
	return true;
}

/* Status and reason of a backend, also when it could not be probed. */
static enum uffd_caps_status br_status(const struct backend_report *br)
{
	return br->caps ? uffd_caps_get_status(br->caps) : UFFD_CAPS_UNKNOWN;
}

static const char *br_reason(const struct backend_report *br)
{
	return br->caps ? uffd_caps_get_reason(br->caps) : br->error;
}

/* The advertised operations of one combination that did not verify. */
static uint64_t unverified(const struct uffd_caps *caps, uint64_t modes)
{
	return uffd_caps_get_advertised(caps, modes) &
	       ~uffd_caps_get_verified(caps, modes);
}

/* ---- text: a table with aligned columns ------------------------------- */

#define MAX_COLS 4

struct row {
	size_t n; /* cells; fewer than the table's columns: the last spans */
	char *cell[MAX_COLS];
};

struct table {
	size_t ncols, nrows, cap;
	struct row *rows;
};

static void *xrealloc(void *p, size_t size)
{
	p = realloc(p, size);
	if (!p) {
		fprintf(stderr, "uffd-probe: out of memory\n");
		exit(EXIT_FAILURE);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t len = strlen(s) + 1;

	return memcpy(xrealloc(NULL, len), s, len);
}

static void table_add(struct table *t, size_t n, const char *const *cells)
{
	struct row *row;

	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->rows = xrealloc(t->rows, t->cap * sizeof(*t->rows));
	}
	row = &t->rows[t->nrows++];
	row->n = n;
	for (size_t i = 0; i < n; i++)
		row->cell[i] = xstrdup(cells[i]);
}

static void table_free(struct table *t)
{
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->rows[r].n; i++)
			free(t->rows[r].cell[i]);
	free(t->rows);
}

/* Prints s from column col, breaking at spaces before WRAP_COLUMN and
 * going on at column col; ends the line. */
static void print_wrapped(const char *s, size_t col)
{
	size_t limit = col + 40 > WRAP_COLUMN ? col + 40 : WRAP_COLUMN;
	size_t at = col;

	while (*s) {
		size_t word = strcspn(s, " ");

		if (at > col && at + 1 + word > limit) {
			printf("\n%*s", (int)col, "");
			at = col;
		} else if (at > col) {
			putchar(' ');
			at++;
		}
		printf("%.*s", (int)word, s);
		at += word;
		s += word;
		s += strspn(s, " ");
	}
	putchar('\n');
}

static void table_widths(const struct table *t, size_t *width)
{
	memset(width, 0, MAX_COLS * sizeof(*width));
	for (size_t r = 0; r < t->nrows; r++) {
		const struct row *row = &t->rows[r];
		/* a spanning last cell sets no width */
		size_t n = row->n < t->ncols ? row->n - 1 : row->n;

		for (size_t i = 0; i < n; i++)
			if (strlen(row->cell[i]) > width[i])
				width[i] = strlen(row->cell[i]);
	}
}

static void table_print(const struct table *t, size_t indent)
{
	size_t width[MAX_COLS];

	table_widths(t, width);
	for (size_t r = 0; r < t->nrows; r++) {
		const struct row *row = &t->rows[r];
		size_t col = indent;

		printf("%*s", (int)indent, "");
		for (size_t i = 0; i + 1 < row->n; i++) {
			printf("%-*s  ", (int)width[i], row->cell[i]);
			col += width[i] + 2;
		}
		print_wrapped(row->cell[row->n - 1], col);
	}
}

/* ---- text: the sections ------------------------------------------------ */

static void text_header(const struct report *r)
{
	printf("uffd-probe %s, libuffd %s, %s %s %s\n\n", UFFD_PROBE_VERSION,
	       uffd_version(), r->uts.sysname, r->uts.release,
	       r->uts.machine);
}

static void open_row(struct table *t, const char *label,
		     const struct open_result *res)
{
	char result[REASON_SIZE + 64], buf[32];
	const char *err = res->ret ? errno_text(res->ret, buf, sizeof(buf)) : "";

	if (!res->ret)
		snprintf(result, sizeof(result), "works");
	else if (strstr(res->reason, err)) /* the reason names it already */
		snprintf(result, sizeof(result), "fails: %s", res->reason);
	else
		snprintf(result, sizeof(result), "fails (%s): %s", err,
			 res->reason);
	table_add(t, 2, (const char *[]){ label, result });
}

static void text_open_paths(const struct report *r)
{
	struct table t = { .ncols = 2 };
	char dflt[128];

	printf("Opening a userfaultfd\n");
	for (size_t i = 0; i < NR_TRIES; i++)
		open_row(&t, open_tries[i].words, &r->tries[i]);
	if (!r->dflt.ret)
		snprintf(dflt, sizeof(dflt), "uses %s",
			 path_words(r->dflt.used));
	else if (!r->dflt_umo.ret)
		snprintf(dflt, sizeof(dflt), "fails; user-mode-only uses %s",
			 path_words(r->dflt_umo.used));
	else
		snprintf(dflt, sizeof(dflt), "fails: no path works");
	table_add(&t, 2, (const char *[]){ "default (AUTO)", dflt });
	table_print(&t, 2);
	table_free(&t);
}

static void feature_row(struct table *t, const char *name, uint64_t bit,
			const struct report *r)
{
	table_add(t, 3, (const char *[]){
		name, (r->supported & bit) ? "yes" : "no",
		(r->enabled & bit) ? "yes" : "no" });
}

static void text_features(const struct report *r)
{
	struct table t = { .ncols = 3 };
	char buf[16], ioctls[128];

	uffd_ops_format(r->api_ioctls, ioctls, sizeof(ioctls));
	printf("\nFeatures (API ioctls: %s%s)\n", ioctls,
	       r->handle_umo ? "; from a user-mode-only handle" : "");
	table_add(&t, 3, (const char *[]){ "FEATURE", "SUPPORTED",
					   "ENABLED BY DEFAULT" });
	for (unsigned bit = 0; bit < 64; bit++) {
		uint64_t b = UINT64_C(1) << bit;

		if ((UFFD_FEAT_KNOWN & b) || (r->supported & b))
			feature_row(&t, bit_name(uffd_feature_name, bit, buf,
						 sizeof(buf)), b, r);
	}
	table_print(&t, 2);
	table_free(&t);
}

/* The verified operations as the shortest clear text: "all" (every
 * advertised one), "all but X,Y", or the list itself. */
static void verified_text(uint64_t adv, uint64_t ver, char *buf,
			  size_t size)
{
	char list[256], missing[256];

	if (ver == adv) {
		snprintf(buf, size, "all");
		return;
	}
	uffd_ops_format(ver, list, sizeof(list));
	uffd_ops_format(adv & ~ver, missing, sizeof(missing));
	if (ver && strlen(missing) + 8 < strlen(list))
		snprintf(buf, size, "all but %s", missing);
	else
		snprintf(buf, size, "%s", list);
}

static void combo_row(struct table *t, const char *name,
		      const struct uffd_caps *caps, uint64_t modes)
{
	uint64_t adv = uffd_caps_get_advertised(caps, modes);
	char mtext[64], atext[256], vtext[300];

	uffd_modes_format(modes, mtext, sizeof(mtext));
	uffd_ops_format(adv, atext, sizeof(atext));
	verified_text(adv, uffd_caps_get_verified(caps, modes), vtext,
		      sizeof(vtext));
	table_add(t, 4, (const char *[]){ name, mtext, atext, vtext });
}

static void backend_rows(struct table *t, const struct backend_report *br)
{
	const char *name = uffd_backend_name(br->backend);
	char text[REASON_SIZE + 32];

	if (br_status(br) != UFFD_CAPS_SUPPORTED) {
		snprintf(text, sizeof(text), "%s: %s",
			 status_name(br_status(br)), br_reason(br));
		table_add(t, 2, (const char *[]){ name, text });
		return;
	}
	for (uint64_t m = 1; m <= NR_COMBOS; m++)
		if (uffd_caps_get_register(br->caps, m) == 0)
			combo_row(t, name, br->caps, m);
}

static void text_matrix(const struct report *r)
{
	struct table t = { .ncols = 4 };

	printf("\nMemory backends (probed with the default handle's "
	       "features%s)\n", r->wp_async ? " + WP_ASYNC" : "");
	printf("  ADVERTISED: what registration reports; VERIFIED: those of them "
	       "the probe saw work\n");
	table_add(&t, 4, (const char *[]){ "BACKEND", "MODES", "ADVERTISED",
					   "VERIFIED" });
	for (size_t i = 0; i < r->nr_backends; i++)
		backend_rows(&t, &r->backends[i]);
	table_print(&t, 2);
	table_free(&t);
}

/* ---- text: mismatches and notes ---------------------------------------- */

/* The combinations (bit m-1 for modes m) where op is advertised, did not
 * verify, and ended with the same error and note as in modes first. */
static unsigned same_outcome(const struct uffd_caps *caps, uint64_t op,
			     uint64_t first)
{
	const char *note, *other;
	int err = uffd_caps_get_op_result(caps, first, op, &note);
	unsigned set = 0;

	for (uint64_t m = first; m <= NR_COMBOS; m++) {
		if (!(unverified(caps, m) & op))
			continue;
		if (uffd_caps_get_op_result(caps, m, op, &other) == err &&
		    !strcmp(note, other))
			set |= 1u << (m - 1);
	}
	return set;
}

/* The combinations that advertise op (bit m-1 for modes m). */
static unsigned advertising(const struct uffd_caps *caps, uint64_t op)
{
	unsigned set = 0;

	for (uint64_t m = 1; m <= NR_COMBOS; m++)
		if (uffd_caps_get_advertised(caps, m) & op)
			set |= 1u << (m - 1);
	return set;
}

/* "with modes MISSING; MISSING,WP", or "with all 7 mode combinations"
 * when the outcome is the same wherever op is advertised. */
static void combos_text(const struct uffd_caps *caps, uint64_t op,
			unsigned set, char *buf, size_t size)
{
	size_t used;

	if (set == advertising(caps, op) && __builtin_popcount(set) > 1) {
		snprintf(buf, size, "with all %d mode combinations",
			 __builtin_popcount(set));
		return;
	}
	used = (size_t)snprintf(buf, size, "with modes");
	for (uint64_t m = 1; m <= NR_COMBOS && used < size; m++) {
		const char *sep = used > strlen("with modes") ? "; " : " ";
		char modes[64];

		if (!(set & (1u << (m - 1))))
			continue;
		uffd_modes_format(m, modes, sizeof(modes));
		used += (size_t)snprintf(buf + used, size - used, "%s%s", sep,
					 modes);
	}
}

static void print_mismatch(const char *name, const struct uffd_caps *caps,
			   uint64_t op, uint64_t first, unsigned set)
{
	const char *note;
	int err = uffd_caps_get_op_result(caps, first, op, &note);
	char combos[256], line[512], buf[32], opbuf[16];

	combos_text(caps, op, set, combos, sizeof(combos));
	snprintf(line, sizeof(line), "%s: %s %s (%s) %s", name,
		 bit_name(uffd_op_name, (unsigned)__builtin_ctzll(op), opbuf,
			  sizeof(opbuf)),
		 err == -ENODATA ? "could not be verified" : "failed",
		 errno_text(err, buf, sizeof(buf)), combos);
	printf("  ");
	print_wrapped(line, 2);
	printf("      ");
	print_wrapped(note, 6);
}

/* Each (op, outcome) once, with every combination it applies to. */
static size_t backend_mismatches(const struct backend_report *br)
{
	const char *name = uffd_backend_name(br->backend);
	size_t count = 0;

	for (unsigned bit = 0; bit < 64; bit++) {
		uint64_t op = UINT64_C(1) << bit;
		unsigned done = 0;

		for (uint64_t m = 1; m <= NR_COMBOS; m++) {
			unsigned set;

			if (!(unverified(br->caps, m) & op) ||
			    (done & (1u << (m - 1))))
				continue;
			set = same_outcome(br->caps, op, m);
			done |= set;
			print_mismatch(name, br->caps, op, m, set);
			count++;
		}
	}
	return count;
}

static void text_mismatches(const struct report *r)
{
	size_t count = 0;

	printf("\nAdvertised but not verified\n");
	for (size_t i = 0; i < r->nr_backends; i++)
		if (br_status(&r->backends[i]) == UFFD_CAPS_SUPPORTED)
			count += backend_mismatches(&r->backends[i]);
	if (!count)
		printf("  none\n");
}

static size_t print_notes(const char *name, const char *notes)
{
	size_t count = 0;

	while (*notes) {
		size_t len = strcspn(notes, "\n");
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)len, notes);
		if (len) {
			printf("  %s: ", name);
			print_wrapped(line, 4 + strlen(name));
			count++;
		}
		notes += len + (notes[len] == '\n');
	}
	return count;
}

static void text_notes(const struct report *r)
{
	size_t count = 0;

	printf("\nProbe notes\n");
	for (size_t i = 0; i < r->nr_backends; i++) {
		const struct backend_report *br = &r->backends[i];

		if (br->caps)
			count += print_notes(uffd_backend_name(br->backend),
					     uffd_caps_get_notes(br->caps));
	}
	if (!count)
		printf("  none\n");
}

static void print_text(const struct report *r)
{
	text_header(r);
	text_open_paths(r);
	if (!r->have_handle)
		return;
	text_features(r);
	text_matrix(r);
	text_mismatches(r);
	text_notes(r);
}

/* ---- JSON -------------------------------------------------------------- */

struct json {
	int depth;
	int inline_depth; /* containers from this depth on stay on one line;
			     0: none */
	bool comma;       /* a value was written at this depth */
};

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		switch (c) {
		case '"': fputs("\\\"", stdout); break;
		case '\\': fputs("\\\\", stdout); break;
		case '\n': fputs("\\n", stdout); break;
		case '\t': fputs("\\t", stdout); break;
		case '\r': fputs("\\r", stdout); break;
		default:
			if (c < 0x20)
				printf("\\u%04x", c);
			else
				putchar(c);
		}
	}
	putchar('"');
}

/* Starts a value: the comma, the new line and the key (NULL in arrays). */
static void json_key(struct json *j, const char *key)
{
	if (j->comma)
		putchar(',');
	if (j->inline_depth && j->depth >= j->inline_depth)
		fputs(j->comma ? " " : "", stdout);
	else if (j->depth)
		printf("\n%*s", 2 * j->depth, "");
	if (key) {
		json_string(key);
		fputs(": ", stdout);
	}
	j->comma = true;
}

static void json_open(struct json *j, const char *key, char bracket)
{
	json_key(j, key);
	putchar(bracket);
	j->depth++;
	j->comma = false;
}

/* An object or array written on one line. */
static void json_open_inline(struct json *j, const char *key, char bracket)
{
	json_open(j, key, bracket);
	j->inline_depth = j->depth;
}

static void json_close(struct json *j, char bracket)
{
	bool empty = !j->comma, was_inline = j->inline_depth &&
					     j->depth >= j->inline_depth;

	if (j->depth == j->inline_depth)
		j->inline_depth = 0;
	j->depth--;
	if (!empty && !was_inline)
		printf("\n%*s", 2 * j->depth, "");
	putchar(bracket);
	j->comma = true;
	if (!j->depth)
		putchar('\n');
}

static void json_str(struct json *j, const char *key, const char *value)
{
	json_key(j, key);
	json_string(value);
}

static void json_int(struct json *j, const char *key, long long value)
{
	json_key(j, key);
	printf("%lld", value);
}

static void json_bool(struct json *j, const char *key, bool value)
{
	json_key(j, key);
	fputs(value ? "true" : "false", stdout);
}

/* The names of a mask's bits on one line: ["MISSING", "WP"]. */
static void json_names(struct json *j, const char *key, uint64_t mask,
		       const char *(*name_of)(uint64_t))
{
	bool first = true;
	char buf[16];

	json_key(j, key);
	putchar('[');
	for (unsigned bit = 0; bit < 64; bit++) {
		if (!(mask & (UINT64_C(1) << bit)))
			continue;
		fputs(first ? "" : ", ", stdout);
		json_string(bit_name(name_of, bit, buf, sizeof(buf)));
		first = false;
	}
	putchar(']');
}

/* A register result: 0, or "-EINVAL" (a number without a name). */
static void json_errno_value(struct json *j, const char *key, int err)
{
	char buf[32];
	const char *name = errno_name(err);

	if (!err || !name) {
		json_int(j, key, err);
		return;
	}
	snprintf(buf, sizeof(buf), "-%s", name);
	json_str(j, key, buf);
}

static void json_header(struct json *j, const struct report *r)
{
	json_str(j, "tool", "uffd-probe");
	json_str(j, "version", UFFD_PROBE_VERSION);
	json_str(j, "libuffd_version", uffd_version());
	json_open(j, "kernel", '{');
	json_str(j, "sysname", r->uts.sysname);
	json_str(j, "release", r->uts.release);
	json_str(j, "machine", r->uts.machine);
	json_close(j, '}');
}

static void json_open_result(struct json *j, const struct open_result *res)
{
	json_bool(j, "works", !res->ret);
	json_int(j, "errno", -res->ret);
	json_str(j, "errno_name", errno_name_or_empty(res->ret));
	json_str(j, "reason", res->ret ? res->reason : "");
}

static void json_open_paths(struct json *j, const struct report *r)
{
	json_open(j, "open_paths", '[');
	for (size_t i = 0; i < NR_TRIES; i++) {
		json_open_inline(j, NULL, '{');
		json_str(j, "name", open_tries[i].key);
		json_str(j, "path", path_name(open_tries[i].path));
		json_bool(j, "user_mode_only", open_tries[i].user_mode_only);
		json_open_result(j, &r->tries[i]);
		json_close(j, '}');
	}
	json_close(j, ']');
	json_open(j, "default", '{');
	json_open_result(j, &r->dflt);
	json_str(j, "path", r->dflt.ret ? "" : path_name(r->dflt.used));
	json_close(j, '}');
}

static void json_features(struct json *j, const struct report *r)
{
	char buf[16];

	json_open(j, "features", '[');
	for (unsigned bit = 0; bit < 64; bit++) {
		uint64_t b = UINT64_C(1) << bit;

		if (!(UFFD_FEAT_KNOWN & b) && !(r->supported & b))
			continue;
		json_open_inline(j, NULL, '{');
		json_str(j, "name", bit_name(uffd_feature_name, bit, buf,
					     sizeof(buf)));
		json_int(j, "bit", bit);
		json_bool(j, "supported", r->supported & b);
		json_bool(j, "enabled", r->enabled & b);
		json_close(j, '}');
	}
	json_close(j, ']');
	json_bool(j, "features_from_user_mode_only_handle", r->handle_umo);
	json_names(j, "api_ioctls", r->api_ioctls, uffd_op_name);
	json_names(j, "probe_features", r->probe_features, uffd_feature_name);
	json_bool(j, "wp_async", r->wp_async);
}

static void json_op(struct json *j, const struct uffd_caps *caps,
		    uint64_t modes, unsigned bit)
{
	const char *note;
	char buf[16];
	int err = uffd_caps_get_op_result(caps, modes, UINT64_C(1) << bit,
					  &note);

	json_open_inline(j, bit_name(uffd_op_name, bit, buf, sizeof(buf)),
			 '{');
	json_str(j, "result", verdict(err));
	json_int(j, "errno", -err);
	json_str(j, "errno_name", errno_name_or_empty(err));
	json_str(j, "note", note);
	json_close(j, '}');
}

static void json_combo(struct json *j, const struct uffd_caps *caps,
		       uint64_t modes)
{
	uint64_t adv = uffd_caps_get_advertised(caps, modes);

	json_open(j, NULL, '{');
	json_names(j, "modes", modes, uffd_mode_name);
	json_errno_value(j, "register", uffd_caps_get_register(caps, modes));
	json_names(j, "advertised", adv, uffd_op_name);
	json_names(j, "verified", uffd_caps_get_verified(caps, modes),
		   uffd_op_name);
	json_open(j, "ops", '{');
	for (unsigned bit = 0; bit < 64; bit++)
		if (adv & (UINT64_C(1) << bit))
			json_op(j, caps, modes, bit);
	json_close(j, '}');
	json_close(j, '}');
}

static void json_notes(struct json *j, const char *notes)
{
	json_open(j, "notes", '[');
	while (*notes) {
		size_t len = strcspn(notes, "\n");
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)len, notes);
		if (len)
			json_str(j, NULL, line);
		notes += len + (notes[len] == '\n');
	}
	json_close(j, ']');
}

static void json_backend(struct json *j, const struct backend_report *br)
{
	enum uffd_caps_status status = br_status(br);

	json_open(j, NULL, '{');
	json_str(j, "name", uffd_backend_name(br->backend));
	json_str(j, "description", uffd_backend_describe(br->backend));
	json_str(j, "status", status_name(status));
	json_str(j, "reason", br_reason(br));
	json_int(j, "page_size",
		 br->caps ? (long long)uffd_caps_get_page_size(br->caps) : 0);
	json_names(j, "modes", br->caps ? uffd_caps_get_modes(br->caps) : 0,
		   uffd_mode_name);
	json_open(j, "combinations", '[');
	for (uint64_t m = 1; status != UFFD_CAPS_UNKNOWN && m <= NR_COMBOS; m++)
		json_combo(j, br->caps, m);
	json_close(j, ']');
	json_notes(j, br->caps ? uffd_caps_get_notes(br->caps) : "");
	json_close(j, '}');
}

static void print_json(const struct report *r, const char *error)
{
	struct json j = { 0 };

	json_open(&j, NULL, '{');
	json_header(&j, r);
	if (error)
		json_str(&j, "error", error);
	json_open_paths(&j, r);
	if (r->have_handle) {
		json_features(&j, r);
		json_open(&j, "backends", '[');
		for (size_t i = 0; i < r->nr_backends; i++)
			json_backend(&j, &r->backends[i]);
		json_close(&j, ']');
	}
	json_close(&j, '}');
}

/* ---- main --------------------------------------------------------------- */

#define NO_UFFD "cannot open a userfaultfd"

/* Why nothing opened: the default path's reason, which names each path. */
static const char *no_uffd_reason(const struct report *r)
{
	return r->dflt.ret ? r->dflt.reason : NO_UFFD;
}

static void print_no_uffd(const struct report *r)
{
	const char *why = no_uffd_reason(r);

	if (!strncmp(why, NO_UFFD, strlen(NO_UFFD)))
		fprintf(stderr, "uffd-probe: %s\n", why);
	else
		fprintf(stderr, "uffd-probe: " NO_UFFD ": %s\n", why);
}

int main(int argc, char **argv)
{
	struct options opts = { 0 };
	struct report *r;
	int status = parse_args(argc, argv, &opts);
	bool ok;

	if (status >= 0)
		return status;
	r = calloc(1, sizeof(*r));
	if (!r) {
		fprintf(stderr, "uffd-probe: out of memory\n");
		return EXIT_FAILURE;
	}
	ok = collect(r, &opts);
	if (!ok)
		print_no_uffd(r);
	if (opts.json)
		print_json(r, ok ? NULL : no_uffd_reason(r));
	else
		print_text(r);
	free(r);
	return ok ? EXIT_SUCCESS : EXIT_NO_UFFD;
}
