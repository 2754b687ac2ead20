// SPDX-License-Identifier: MIT
/*
 * The name tables for features, registration modes and operations: single
 * bit names, lookups by name (with and without the kernel's prefix, in any
 * case), mask formatting and its buffer handling; and uffd_version().
 */
#define _GNU_SOURCE
#include "helpers.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* One table under test: the library's functions and the expected names. */
struct table {
	const char *what;
	const char *prefix; /* the kernel's spelling before the name */
	const char *const *names; /* by bit number, NULL = no name */
	unsigned count;
	const char *(*name)(uint64_t bit);
	int (*from_name)(const char *name, uint64_t *bit);
	int (*format)(uint64_t mask, char *buf, size_t size);
};

/* The kernel's UFFD_FEATURE_* names, by bit, without the prefix. */
static const char *const feature_names[] = {
	"PAGEFAULT_FLAG_WP",  "EVENT_FORK",	 "EVENT_REMAP",
	"EVENT_REMOVE",	      "MISSING_HUGETLBFS", "MISSING_SHMEM",
	"EVENT_UNMAP",	      "SIGBUS",		 "THREAD_ID",
	"MINOR_HUGETLBFS",    "MINOR_SHMEM",	 "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED",	 "POISON",
	"WP_ASYNC",	      "MOVE",
};

static const char *const mode_names[] = { "MISSING", "WP", "MINOR" };

/* _UFFDIO_* ioctl numbers are the bit positions. */
static const char *const op_names[64] = {
	[0] = "REGISTER",     [1] = "UNREGISTER", [2] = "WAKE",
	[3] = "COPY",	      [4] = "ZEROPAGE",	  [5] = "MOVE",
	[6] = "WRITEPROTECT", [7] = "CONTINUE",	  [8] = "POISON",
	[63] = "API",
};

static const struct table tables[] = {
	{ "feature", "UFFD_FEATURE_", feature_names, 17, uffd_feature_name,
	  uffd_feature_from_name, uffd_features_format },
	{ "mode", "UFFDIO_REGISTER_MODE_", mode_names, 3, uffd_mode_name,
	  uffd_mode_from_name, uffd_modes_format },
	{ "op", "UFFDIO_", op_names, 64, uffd_op_name, uffd_op_from_name,
	  uffd_ops_format },
};

static const char *expected_name(const struct table *t, unsigned bit)
{
	return bit < t->count ? t->names[bit] : NULL;
}

static void lower(char *dst, const char *src, size_t size)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < size; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

/* ---- the tables themselves ---- */

START_TEST(test_table_sizes)
{
	/* the tables above agree with the public masks */
	ck_assert_uint_eq(UFFD_FEAT_KNOWN, (UINT64_C(1) << 17) - 1);
	ck_assert_uint_eq(UFFD_MODE_KNOWN, (UINT64_C(1) << 3) - 1);
	ck_assert_uint_eq(UFFD_FEAT_MOVE, UINT64_C(1) << 16);
	ck_assert_uint_eq(UFFD_MODE_MINOR, UINT64_C(1) << 2);
	ck_assert_uint_eq(UFFD_OP_POISON, UINT64_C(1) << 8);
	ck_assert_uint_eq(UFFD_OP_API, UINT64_C(1) << 63);
}
END_TEST

START_TEST(test_name_every_bit)
{
	const struct table *t = &tables[_i];

	for (unsigned bit = 0; bit < 64; bit++) {
		const char *want = expected_name(t, bit);
		const char *got = t->name(UINT64_C(1) << bit);

		if (!want) {
			ck_assert_msg(got == NULL, "%s bit %u is named \"%s\"",
				      t->what, bit, got);
			continue;
		}
		ck_assert_msg(got != NULL, "%s bit %u has no name", t->what,
			      bit);
		ck_assert_str_eq(got, want);
	}
}
END_TEST

START_TEST(test_name_not_one_bit)
{
	const struct table *t = &tables[_i];

	ck_assert_ptr_null(t->name(0));
	ck_assert_ptr_null(t->name(UINT64_C(3)));	   /* two known bits */
	ck_assert_ptr_null(t->name(UINT64_C(1) << 20)); /* unknown bit */
	ck_assert_ptr_null(t->name(UINT64_MAX));
}
END_TEST

START_TEST(test_specific_names)
{
	ck_assert_str_eq(uffd_feature_name(UFFD_FEAT_PAGEFAULT_FLAG_WP),
			 "PAGEFAULT_FLAG_WP");
	ck_assert_str_eq(uffd_feature_name(UFFD_FEAT_MOVE), "MOVE");
	ck_assert_str_eq(uffd_mode_name(UFFD_MODE_WP), "WP");
	ck_assert_str_eq(uffd_op_name(UFFD_OP_COPY), "COPY");
	ck_assert_str_eq(uffd_op_name(UFFD_OP_API), "API");
	ck_assert_ptr_null(uffd_op_name(UINT64_C(1) << 9));
	ck_assert_ptr_null(uffd_op_name(UINT64_C(1) << 62));
	ck_assert_ptr_null(uffd_feature_name(UINT64_C(1) << 17));
	ck_assert_ptr_null(uffd_mode_name(UINT64_C(1) << 3));
}
END_TEST

/* ---- lookups ---- */

START_TEST(test_from_name_round_trip)
{
	const struct table *t = &tables[_i];
	char buf[128], low[128];

	for (unsigned bit = 0; bit < t->count; bit++) {
		const char *name = t->names[bit];
		uint64_t got;

		if (!name)
			continue;
		got = 0;
		ck_assert_int_eq(t->from_name(name, &got), 0);
		ck_assert_uint_eq(got, UINT64_C(1) << bit);

		/* case-insensitive */
		lower(low, name, sizeof(low));
		got = 0;
		ck_assert_int_eq(t->from_name(low, &got), 0);
		ck_assert_uint_eq(got, UINT64_C(1) << bit);

		/* the kernel spelling, in either case */
		snprintf(buf, sizeof(buf), "%s%s", t->prefix, name);
		got = 0;
		ck_assert_msg(t->from_name(buf, &got) == 0, "%s: %s", buf,
			      uffd_last_error());
		ck_assert_uint_eq(got, UINT64_C(1) << bit);
		lower(low, buf, sizeof(low));
		got = 0;
		ck_assert_int_eq(t->from_name(low, &got), 0);
		ck_assert_uint_eq(got, UINT64_C(1) << bit);

		/* and the name of the bit is the name looked up */
		ck_assert_str_eq(t->name(got), name);
	}
}
END_TEST

START_TEST(test_from_name_examples)
{
	uint64_t bit = 0;

	ck_assert_int_eq(uffd_feature_from_name("UFFD_FEATURE_MOVE", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_FEAT_MOVE);
	ck_assert_int_eq(uffd_feature_from_name("Thread_Id", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_FEAT_THREAD_ID);
	ck_assert_int_eq(uffd_mode_from_name("UFFDIO_REGISTER_MODE_WP", &bit),
			 0);
	ck_assert_uint_eq(bit, UFFD_MODE_WP);
	ck_assert_int_eq(uffd_mode_from_name("minor", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_MODE_MINOR);
	ck_assert_int_eq(uffd_op_from_name("UFFDIO_COPY", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_OP_COPY);
	ck_assert_int_eq(uffd_op_from_name("uffdio_api", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_OP_API);
	ck_assert_int_eq(uffd_op_from_name("WriteProtect", &bit), 0);
	ck_assert_uint_eq(bit, UFFD_OP_WRITEPROTECT);
}
END_TEST

START_TEST(test_from_name_unknown)
{
	const struct table *t = &tables[_i];
	uint64_t bit = 0xdead;
	char buf[64];

	ck_assert_uffd_err(t->from_name("NOPE", &bit), ENOENT, "NOPE");
	ck_assert_uint_eq(bit, 0xdead); /* untouched on failure */
	ck_assert_int_eq(t->from_name("", &bit), -ENOENT);
	ck_assert_int_eq(t->from_name(t->prefix, &bit), -ENOENT);
	/* a name with trailing garbage is no name */
	snprintf(buf, sizeof(buf), "%sX", t->names[0]);
	ck_assert_int_eq(t->from_name(buf, &bit), -ENOENT);
	ck_assert_uint_eq(bit, 0xdead);
}
END_TEST

START_TEST(test_from_name_wrong_table)
{
	uint64_t bit = 0;

	/* names of one table are not names of another */
	ck_assert_int_eq(uffd_feature_from_name("COPY", &bit), -ENOENT);
	ck_assert_int_eq(uffd_mode_from_name("UFFD_FEATURE_MINOR_SHMEM", &bit),
			 -ENOENT);
	ck_assert_int_eq(uffd_mode_from_name("REGISTER", &bit), -ENOENT);
	ck_assert_int_eq(uffd_op_from_name("UFFDIO_REGISTER_MODE_WP", &bit),
			 -ENOENT);
	ck_assert_int_eq(uffd_op_from_name("MISSING", &bit), -ENOENT);
	/* a prefix of another table is not stripped */
	ck_assert_int_eq(uffd_feature_from_name("UFFDIO_MOVE", &bit), -ENOENT);
}
END_TEST

START_TEST(test_from_name_null)
{
	const struct table *t = &tables[_i];
	uint64_t bit = 0;

	ck_assert_uffd_err(t->from_name(NULL, &bit), EINVAL, "NULL");
	ck_assert_uffd_err(t->from_name(t->names[0], NULL), EINVAL, "NULL");
	ck_assert_uffd_err(t->from_name(NULL, NULL), EINVAL, "NULL");
}
END_TEST

/* ---- formatting ---- */

START_TEST(test_format_none)
{
	const struct table *t = &tables[_i];
	char buf[8];

	memset(buf, 'X', sizeof(buf));
	ck_assert_int_eq(t->format(0, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "none");
	ck_assert_int_eq(t->format(0, buf, 5), 0);
	ck_assert_str_eq(buf, "none");
	memset(buf, 'X', sizeof(buf));
	ck_assert_int_eq(t->format(0, buf, 4), -ENOSPC);
	ck_assert_uint_lt(strnlen(buf, 4), 4);
	ck_assert_int_eq(buf[4], 'X'); /* nothing written past size */
}
END_TEST

/* Every known bit, in bit order, comma separated. */
START_TEST(test_format_all_known)
{
	const struct table *t = &tables[_i];
	char want[512] = "", got[512];
	uint64_t mask = 0;

	for (unsigned bit = 0; bit < t->count; bit++) {
		if (!t->names[bit])
			continue;
		mask |= UINT64_C(1) << bit;
		if (want[0])
			strcat(want, ",");
		strcat(want, t->names[bit]);
	}
	ck_assert_int_eq(t->format(mask, got, sizeof(got)), 0);
	ck_assert_str_eq(got, want);

	/* each bit alone is its name */
	for (unsigned bit = 0; bit < 64; bit++) {
		char unknown[16];
		const char *name = expected_name(t, bit);

		ck_assert_int_eq(t->format(UINT64_C(1) << bit, got,
					   sizeof(got)), 0);
		snprintf(unknown, sizeof(unknown), "bit%u", bit);
		if (!name)
			name = unknown;
		ck_assert_str_eq(got, name);
	}
}
END_TEST

START_TEST(test_format_examples)
{
	char buf[1024];

	ck_assert_int_eq(uffd_features_format(UFFD_FEAT_MISSING_SHMEM |
						      UFFD_FEAT_MOVE |
						      UINT64_C(1) << 20,
					      buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "MISSING_SHMEM,MOVE,bit20");
	ck_assert_int_eq(uffd_features_format(UINT64_C(1) << 63 |
						      UFFD_FEAT_PAGEFAULT_FLAG_WP,
					      buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "PAGEFAULT_FLAG_WP,bit63");
	ck_assert_int_eq(uffd_features_format(UFFD_FEAT_BEHAVIOUR, buf,
					      sizeof(buf)), 0);
	ck_assert_str_eq(buf, "EVENT_FORK,EVENT_REMAP,EVENT_REMOVE,"
			      "EVENT_UNMAP,SIGBUS,THREAD_ID,EXACT_ADDRESS,"
			      "WP_ASYNC");

	ck_assert_int_eq(uffd_modes_format(UFFD_MODE_KNOWN, buf, sizeof(buf)),
			 0);
	ck_assert_str_eq(buf, "MISSING,WP,MINOR");
	ck_assert_int_eq(uffd_modes_format(UFFD_MODE_WP | UINT64_C(1) << 5, buf,
					   sizeof(buf)), 0);
	ck_assert_str_eq(buf, "WP,bit5");

	ck_assert_int_eq(uffd_ops_format(UFFD_OP_API | UFFD_OP_REGISTER |
						 UFFD_OP_UNREGISTER,
					 buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "REGISTER,UNREGISTER,API");
	ck_assert_int_eq(uffd_ops_format(UFFD_OP_COPY | UINT64_C(1) << 9 |
						 UFFD_OP_POISON,
					 buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "COPY,POISON,bit9");
	ck_assert_int_eq(uffd_ops_format(UINT64_MAX, buf, sizeof(buf)), 0);
	ck_assert_ptr_nonnull(strstr(buf, "REGISTER,UNREGISTER,WAKE,COPY,"
					  "ZEROPAGE,MOVE,WRITEPROTECT,"
					  "CONTINUE,POISON,bit9,"));
	ck_assert_ptr_nonnull(strstr(buf, ",bit62,API"));
}
END_TEST

/* Every size from 1 to the exact need: -ENOSPC with a terminated prefix of
 * the full text, nothing written past size; the exact need works. */
START_TEST(test_format_too_small)
{
	const uint64_t mask = UFFD_FEAT_MISSING_SHMEM | UFFD_FEAT_MOVE |
			      UINT64_C(1) << 20;
	const char *full = "MISSING_SHMEM,MOVE,bit20";
	size_t need = strlen(full) + 1;
	char buf[64];

	for (size_t size = 1; size < need; size++) {
		memset(buf, 'X', sizeof(buf));
		ck_assert_msg(uffd_features_format(mask, buf, size) == -ENOSPC,
			      "size %zu", size);
		ck_assert_msg(memchr(buf, '\0', size) != NULL,
			      "size %zu: not terminated", size);
		ck_assert_msg(strncmp(buf, full, strlen(buf)) == 0,
			      "size %zu: \"%s\" is not a prefix", size, buf);
		ck_assert_int_eq(buf[size], 'X');
	}
	memset(buf, 'X', sizeof(buf));
	ck_assert_int_eq(uffd_features_format(mask, buf, need), 0);
	ck_assert_str_eq(buf, full);
	ck_assert_int_eq(buf[need], 'X');
}
END_TEST

START_TEST(test_format_too_small_each_table)
{
	const struct table *t = &tables[_i];
	char buf[8];

	memset(buf, 'X', sizeof(buf));
	ck_assert_int_eq(t->format(UINT64_C(3), buf, 3), -ENOSPC);
	ck_assert_uint_lt(strnlen(buf, 3), 3);
	ck_assert_int_eq(buf[3], 'X');
	memset(buf, 'X', sizeof(buf));
	ck_assert_int_eq(t->format(UINT64_C(1) << 40, buf, 1), -ENOSPC);
	ck_assert_int_eq(buf[0], '\0');
	ck_assert_int_eq(buf[1], 'X');
}
END_TEST

START_TEST(test_format_bad_buffer)
{
	const struct table *t = &tables[_i];
	char buf[16] = "untouched";

	ck_assert_uffd_err(t->format(1, buf, 0), EINVAL, "size 0");
	ck_assert_str_eq(buf, "untouched");
	ck_assert_uffd_err(t->format(1, NULL, 16), EINVAL, "NULL");
	ck_assert_uffd_err(t->format(0, NULL, 0), EINVAL, "NULL");
}
END_TEST

/* ---- version ---- */

START_TEST(test_version)
{
	char want[32];

	snprintf(want, sizeof(want), "%d.%d.%d", LIBUFFD_VERSION_MAJOR,
		 LIBUFFD_VERSION_MINOR, LIBUFFD_VERSION_PATCH);
	ck_assert_ptr_nonnull(uffd_version());
	ck_assert_str_eq(uffd_version(), want);
	ck_assert_str_eq(uffd_version(), "0.1.0");
}
END_TEST

static Suite *names_suite(void)
{
	Suite *s = suite_create("names");
	int n = (int)(sizeof(tables) / sizeof(tables[0]));
	TCase *tc;

	tc = tcase_create("name");
	tcase_add_test(tc, test_table_sizes);
	tcase_add_loop_test(tc, test_name_every_bit, 0, n);
	tcase_add_loop_test(tc, test_name_not_one_bit, 0, n);
	tcase_add_test(tc, test_specific_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("from_name");
	tcase_add_loop_test(tc, test_from_name_round_trip, 0, n);
	tcase_add_test(tc, test_from_name_examples);
	tcase_add_loop_test(tc, test_from_name_unknown, 0, n);
	tcase_add_test(tc, test_from_name_wrong_table);
	tcase_add_loop_test(tc, test_from_name_null, 0, n);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	tcase_add_loop_test(tc, test_format_none, 0, n);
	tcase_add_loop_test(tc, test_format_all_known, 0, n);
	tcase_add_test(tc, test_format_examples);
	tcase_add_test(tc, test_format_too_small);
	tcase_add_loop_test(tc, test_format_too_small_each_table, 0, n);
	tcase_add_loop_test(tc, test_format_bad_buffer, 0, n);
	suite_add_tcase(s, tc);

	tc = tcase_create("version");
	tcase_add_test(tc, test_version);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	return run_suite(names_suite());
}
