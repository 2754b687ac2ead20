// SPDX-License-Identifier: MIT
/*
 * lib/uapi.h, libuffd's private copy of the userfaultfd ABI, against the
 * system's <linux/userfaultfd.h> for everything both define: ioctl numbers,
 * struct layouts, flag and feature bits, event codes; and the public
 * header's constants against the kernel's. Names only newer headers have are
 * checked under #ifdef, so the test builds with any header version.
 *
 * Including libuffd.h, the system header and uapi.h in one file also proves
 * that they do not clash.
 */
#define _GNU_SOURCE
#include "libuffd.h"

#include <linux/userfaultfd.h>

#include "uapi.h"

#include "helpers.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* a == b, both shown on failure */
#define EQ(a, b)                                                              \
	ck_assert_msg((uint64_t)(a) == (uint64_t)(b),                         \
		      "%s = %#" PRIx64 " but %s = %#" PRIx64, #a,             \
		      (uint64_t)(a), #b, (uint64_t)(b))

/* every bit of a is in b */
#define SUBSET(a, b)                                                          \
	ck_assert_msg(((uint64_t)(a) & ~(uint64_t)(b)) == 0,                  \
		      "%s has bits %#" PRIx64 " that %s lacks", #a,           \
		      (uint64_t)(a) & ~(uint64_t)(b), #b)

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)
/* 1 for a signed integer field, 0 for unsigned ones and aggregates (the
 * controlling expression of _Generic is not evaluated) */
#define FIELD_SIGNED(type, field)                                             \
	_Generic(((type *)0)->field, signed char : 1, short : 1, int : 1,     \
		 long : 1, long long : 1, default : 0)

/* The same offset, size and signedness for a field of both structs. */
#define SAME_FIELD(ktype, kfield, ltype, lfield)                              \
	do {                                                                  \
		EQ(offsetof(struct ktype, kfield),                            \
		   offsetof(struct ltype, lfield));                           \
		EQ(FIELD_SIZE(struct ktype, kfield),                          \
		   FIELD_SIZE(struct ltype, lfield));                         \
		ck_assert_msg(FIELD_SIGNED(struct ktype, kfield) ==           \
				      FIELD_SIGNED(struct ltype, lfield),     \
			      "%s.%s and %s.%s differ in signedness", #ktype, \
			      #kfield, #ltype, #lfield);                      \
	} while (0)

#define SAME_SIZE(ktype, ltype) EQ(sizeof(struct ktype), sizeof(struct ltype))

/* ---- ioctl numbers ---- */

START_TEST(test_api_constants)
{
	EQ(KUFFD_API, UFFD_API);
	EQ(KUFFD_USER_MODE_ONLY, UFFD_USER_MODE_ONLY);
	EQ(KUFFD_IO, UFFDIO);
#ifdef USERFAULTFD_IOC_NEW
	EQ(KUFFD_DEV_IOC, USERFAULTFD_IOC);
	EQ(KUFFD_DEV_IOC_NEW, USERFAULTFD_IOC_NEW);
#else
	printf("NOTE: the system header has no USERFAULTFD_IOC_NEW\n");
#endif
}
END_TEST

START_TEST(test_ioctl_numbers)
{
	EQ(KUFFD_NR_API, _UFFDIO_API);
	EQ(KUFFD_NR_REGISTER, _UFFDIO_REGISTER);
	EQ(KUFFD_NR_UNREGISTER, _UFFDIO_UNREGISTER);
	EQ(KUFFD_NR_WAKE, _UFFDIO_WAKE);
	EQ(KUFFD_NR_COPY, _UFFDIO_COPY);
	EQ(KUFFD_NR_ZEROPAGE, _UFFDIO_ZEROPAGE);
	EQ(KUFFD_NR_WRITEPROTECT, _UFFDIO_WRITEPROTECT);
	EQ(KUFFD_NR_CONTINUE, _UFFDIO_CONTINUE);
#ifdef _UFFDIO_MOVE
	EQ(KUFFD_NR_MOVE, _UFFDIO_MOVE);
#endif
#ifdef _UFFDIO_POISON
	EQ(KUFFD_NR_POISON, _UFFDIO_POISON);
#endif

	/* the full request codes: direction, size, type and number */
	EQ(KUFFDIO_API, UFFDIO_API);
	EQ(KUFFDIO_REGISTER, UFFDIO_REGISTER);
	EQ(KUFFDIO_UNREGISTER, UFFDIO_UNREGISTER);
	EQ(KUFFDIO_WAKE, UFFDIO_WAKE);
	EQ(KUFFDIO_COPY, UFFDIO_COPY);
	EQ(KUFFDIO_ZEROPAGE, UFFDIO_ZEROPAGE);
	EQ(KUFFDIO_WRITEPROTECT, UFFDIO_WRITEPROTECT);
	EQ(KUFFDIO_CONTINUE, UFFDIO_CONTINUE);
#ifdef UFFDIO_MOVE
	EQ(KUFFDIO_MOVE, UFFDIO_MOVE);
#endif
#ifdef UFFDIO_POISON
	EQ(KUFFDIO_POISON, UFFDIO_POISON);
#endif
}
END_TEST

/* The ioctls of the newest kernels, where the system header is older:
 * their codes must at least be built from the right number and struct. */
START_TEST(test_new_ioctls_self_consistent)
{
	EQ(_IOC_NR(KUFFDIO_MOVE), KUFFD_NR_MOVE);
	EQ(_IOC_TYPE(KUFFDIO_MOVE), KUFFD_IO);
	EQ(_IOC_SIZE(KUFFDIO_MOVE), sizeof(struct kuffd_move));
	EQ(_IOC_DIR(KUFFDIO_MOVE), _IOC_READ | _IOC_WRITE);
	EQ(_IOC_NR(KUFFDIO_POISON), KUFFD_NR_POISON);
	EQ(_IOC_TYPE(KUFFDIO_POISON), KUFFD_IO);
	EQ(_IOC_SIZE(KUFFDIO_POISON), sizeof(struct kuffd_poison));
	EQ(_IOC_DIR(KUFFDIO_POISON), _IOC_READ | _IOC_WRITE);
	EQ(sizeof(struct kuffd_move), 40);
	EQ(sizeof(struct kuffd_poison), 32);
}
END_TEST

/* libuffd's UFFD_OP_* are 1 << the kernel's ioctl numbers, and the names
 * are the kernel's without "UFFDIO_". */
#define SAME_OP(x)                                                            \
	do {                                                                  \
		EQ(UFFD_OP_##x, UINT64_C(1) << _UFFDIO_##x);                  \
		ck_assert_ptr_nonnull(uffd_op_name(UFFD_OP_##x));             \
		ck_assert_str_eq(uffd_op_name(UFFD_OP_##x), #x);              \
	} while (0)

START_TEST(test_op_bits)
{
	SAME_OP(API);
	SAME_OP(REGISTER);
	SAME_OP(UNREGISTER);
	SAME_OP(WAKE);
	SAME_OP(COPY);
	SAME_OP(ZEROPAGE);
	SAME_OP(WRITEPROTECT);
	SAME_OP(CONTINUE);
#ifdef _UFFDIO_MOVE
	SAME_OP(MOVE);
#endif
#ifdef _UFFDIO_POISON
	SAME_OP(POISON);
#endif
	/* and the private numbers for all of them, old header or new */
	EQ(UFFD_OP_MOVE, UINT64_C(1) << KUFFD_NR_MOVE);
	EQ(UFFD_OP_POISON, UINT64_C(1) << KUFFD_NR_POISON);
	EQ(UFFD_OP_API, UINT64_C(1) << KUFFD_NR_API);

	EQ(UFFD_API_IOCTLS, UFFD_OP_API | UFFD_OP_REGISTER | UFFD_OP_UNREGISTER);
	SUBSET(UFFD_API_RANGE_IOCTLS,
	       UFFD_OP_WAKE | UFFD_OP_COPY | UFFD_OP_ZEROPAGE | UFFD_OP_MOVE |
		       UFFD_OP_WRITEPROTECT | UFFD_OP_CONTINUE |
		       UFFD_OP_POISON);
}
END_TEST

/* ---- struct layouts ---- */

START_TEST(test_struct_msg)
{
	SAME_SIZE(uffd_msg, kuffd_msg);
	EQ(sizeof(struct kuffd_msg), 32);
	SAME_FIELD(uffd_msg, event, kuffd_msg, event);
	SAME_FIELD(uffd_msg, reserved1, kuffd_msg, reserved1);
	SAME_FIELD(uffd_msg, reserved2, kuffd_msg, reserved2);
	SAME_FIELD(uffd_msg, reserved3, kuffd_msg, reserved3);
	SAME_FIELD(uffd_msg, arg, kuffd_msg, arg);
	SAME_FIELD(uffd_msg, arg.pagefault.flags, kuffd_msg,
		   arg.pagefault.flags);
	SAME_FIELD(uffd_msg, arg.pagefault.address, kuffd_msg,
		   arg.pagefault.address);
	SAME_FIELD(uffd_msg, arg.pagefault.feat.ptid, kuffd_msg,
		   arg.pagefault.ptid);
	SAME_FIELD(uffd_msg, arg.fork.ufd, kuffd_msg, arg.fork.ufd);
	SAME_FIELD(uffd_msg, arg.remap.from, kuffd_msg, arg.remap.from);
	SAME_FIELD(uffd_msg, arg.remap.to, kuffd_msg, arg.remap.to);
	SAME_FIELD(uffd_msg, arg.remap.len, kuffd_msg, arg.remap.len);
	SAME_FIELD(uffd_msg, arg.remove.start, kuffd_msg, arg.remove.start);
	SAME_FIELD(uffd_msg, arg.remove.end, kuffd_msg, arg.remove.end);
	SAME_FIELD(uffd_msg, arg.reserved.reserved1, kuffd_msg,
		   arg.reserved.reserved1);
	SAME_FIELD(uffd_msg, arg.reserved.reserved2, kuffd_msg,
		   arg.reserved.reserved2);
	SAME_FIELD(uffd_msg, arg.reserved.reserved3, kuffd_msg,
		   arg.reserved.reserved3);
}
END_TEST

START_TEST(test_struct_api_range_register)
{
	SAME_SIZE(uffdio_api, kuffd_api);
	SAME_FIELD(uffdio_api, api, kuffd_api, api);
	SAME_FIELD(uffdio_api, features, kuffd_api, features);
	SAME_FIELD(uffdio_api, ioctls, kuffd_api, ioctls);

	SAME_SIZE(uffdio_range, kuffd_range);
	SAME_FIELD(uffdio_range, start, kuffd_range, start);
	SAME_FIELD(uffdio_range, len, kuffd_range, len);

	SAME_SIZE(uffdio_register, kuffd_register);
	SAME_FIELD(uffdio_register, range, kuffd_register, range);
	SAME_FIELD(uffdio_register, range.start, kuffd_register, range.start);
	SAME_FIELD(uffdio_register, range.len, kuffd_register, range.len);
	SAME_FIELD(uffdio_register, mode, kuffd_register, mode);
	SAME_FIELD(uffdio_register, ioctls, kuffd_register, ioctls);
}
END_TEST

START_TEST(test_struct_resolve)
{
	SAME_SIZE(uffdio_copy, kuffd_copy);
	SAME_FIELD(uffdio_copy, dst, kuffd_copy, dst);
	SAME_FIELD(uffdio_copy, src, kuffd_copy, src);
	SAME_FIELD(uffdio_copy, len, kuffd_copy, len);
	SAME_FIELD(uffdio_copy, mode, kuffd_copy, mode);
	SAME_FIELD(uffdio_copy, copy, kuffd_copy, copy);

	SAME_SIZE(uffdio_zeropage, kuffd_zeropage);
	SAME_FIELD(uffdio_zeropage, range, kuffd_zeropage, range);
	SAME_FIELD(uffdio_zeropage, range.start, kuffd_zeropage, range.start);
	SAME_FIELD(uffdio_zeropage, range.len, kuffd_zeropage, range.len);
	SAME_FIELD(uffdio_zeropage, mode, kuffd_zeropage, mode);
	SAME_FIELD(uffdio_zeropage, zeropage, kuffd_zeropage, zeropage);

	SAME_SIZE(uffdio_writeprotect, kuffd_writeprotect);
	SAME_FIELD(uffdio_writeprotect, range, kuffd_writeprotect, range);
	SAME_FIELD(uffdio_writeprotect, mode, kuffd_writeprotect, mode);

	SAME_SIZE(uffdio_continue, kuffd_continue);
	SAME_FIELD(uffdio_continue, range, kuffd_continue, range);
	SAME_FIELD(uffdio_continue, mode, kuffd_continue, mode);
	SAME_FIELD(uffdio_continue, mapped, kuffd_continue, mapped);

#ifdef UFFDIO_POISON
	SAME_SIZE(uffdio_poison, kuffd_poison);
	SAME_FIELD(uffdio_poison, range, kuffd_poison, range);
	SAME_FIELD(uffdio_poison, mode, kuffd_poison, mode);
	SAME_FIELD(uffdio_poison, updated, kuffd_poison, updated);
#endif
#ifdef UFFDIO_MOVE
	SAME_SIZE(uffdio_move, kuffd_move);
	SAME_FIELD(uffdio_move, dst, kuffd_move, dst);
	SAME_FIELD(uffdio_move, src, kuffd_move, src);
	SAME_FIELD(uffdio_move, len, kuffd_move, len);
	SAME_FIELD(uffdio_move, mode, kuffd_move, mode);
	SAME_FIELD(uffdio_move, move, kuffd_move, move);
#endif
}
END_TEST

/* ---- mode flags of the resolve ioctls ---- */

START_TEST(test_ioctl_mode_flags)
{
	EQ(KUFFD_COPY_DONTWAKE, UFFDIO_COPY_MODE_DONTWAKE);
	EQ(KUFFD_COPY_WP, UFFDIO_COPY_MODE_WP);
	EQ(KUFFD_ZEROPAGE_DONTWAKE, UFFDIO_ZEROPAGE_MODE_DONTWAKE);
	EQ(KUFFD_WRITEPROTECT_WP, UFFDIO_WRITEPROTECT_MODE_WP);
	EQ(KUFFD_WRITEPROTECT_DONTWAKE, UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	EQ(KUFFD_CONTINUE_DONTWAKE, UFFDIO_CONTINUE_MODE_DONTWAKE);
#ifdef UFFDIO_CONTINUE_MODE_WP
	EQ(KUFFD_CONTINUE_WP, UFFDIO_CONTINUE_MODE_WP);
#endif
#ifdef UFFDIO_POISON_MODE_DONTWAKE
	EQ(KUFFD_POISON_DONTWAKE, UFFDIO_POISON_MODE_DONTWAKE);
#endif
#ifdef UFFDIO_MOVE_MODE_DONTWAKE
	EQ(KUFFD_MOVE_DONTWAKE, UFFDIO_MOVE_MODE_DONTWAKE);
#endif
#ifdef UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
	EQ(KUFFD_MOVE_ALLOW_SRC_HOLES, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
#endif
}
END_TEST

/* ---- feature bits, registration modes, events ---- */

#define SAME_FEATURE(x)                                                       \
	do {                                                                  \
		EQ(UFFD_FEAT_##x, UFFD_FEATURE_##x);                          \
		ck_assert_ptr_nonnull(uffd_feature_name(UFFD_FEAT_##x));      \
		ck_assert_str_eq(uffd_feature_name(UFFD_FEAT_##x), #x);       \
		seen |= UFFD_FEAT_##x;                                        \
	} while (0)

START_TEST(test_feature_bits)
{
	uint64_t seen = 0;

	SAME_FEATURE(PAGEFAULT_FLAG_WP);
	SAME_FEATURE(EVENT_FORK);
	SAME_FEATURE(EVENT_REMAP);
	SAME_FEATURE(EVENT_REMOVE);
	SAME_FEATURE(MISSING_HUGETLBFS);
	SAME_FEATURE(MISSING_SHMEM);
	SAME_FEATURE(EVENT_UNMAP);
	SAME_FEATURE(SIGBUS);
	SAME_FEATURE(THREAD_ID);
	SAME_FEATURE(MINOR_HUGETLBFS);
	SAME_FEATURE(MINOR_SHMEM);
	SAME_FEATURE(EXACT_ADDRESS);
	SAME_FEATURE(WP_HUGETLBFS_SHMEM);
#ifdef UFFD_FEATURE_WP_UNPOPULATED
	SAME_FEATURE(WP_UNPOPULATED);
#endif
#ifdef UFFD_FEATURE_POISON
	SAME_FEATURE(POISON);
#endif
#ifdef UFFD_FEATURE_WP_ASYNC
	SAME_FEATURE(WP_ASYNC);
#endif
#ifdef UFFD_FEATURE_MOVE
	SAME_FEATURE(MOVE);
#endif
	/* every feature the system header lists is one libuffd knows */
	SUBSET(UFFD_API_FEATURES, UFFD_FEAT_KNOWN);
	SUBSET(UFFD_API_FEATURES, seen);
	SUBSET(seen, UFFD_FEAT_KNOWN);
}
END_TEST

/* The public classes split the known features exactly. */
START_TEST(test_feature_classes)
{
	EQ(UFFD_FEAT_BEHAVIOUR & UFFD_FEAT_CAPABILITY, 0);
	EQ(UFFD_FEAT_BEHAVIOUR | UFFD_FEAT_CAPABILITY, UFFD_FEAT_KNOWN);
	EQ(UFFD_FEAT_KNOWN, UFFD_FEAT_PAGEFAULT_FLAG_WP | UFFD_FEAT_EVENT_FORK |
				    UFFD_FEAT_EVENT_REMAP |
				    UFFD_FEAT_EVENT_REMOVE |
				    UFFD_FEAT_MISSING_HUGETLBFS |
				    UFFD_FEAT_MISSING_SHMEM |
				    UFFD_FEAT_EVENT_UNMAP | UFFD_FEAT_SIGBUS |
				    UFFD_FEAT_THREAD_ID |
				    UFFD_FEAT_MINOR_HUGETLBFS |
				    UFFD_FEAT_MINOR_SHMEM |
				    UFFD_FEAT_EXACT_ADDRESS |
				    UFFD_FEAT_WP_HUGETLBFS_SHMEM |
				    UFFD_FEAT_WP_UNPOPULATED |
				    UFFD_FEAT_POISON | UFFD_FEAT_WP_ASYNC |
				    UFFD_FEAT_MOVE);
	/* the kernel's "UFFDIO_API done" marker is not a feature bit */
	EQ(KUFFD_FEATURE_INITIALIZED & UFFD_FEAT_KNOWN, 0);
	EQ(KUFFD_FEATURE_INITIALIZED, UINT64_C(1) << 31);
}
END_TEST

#define SAME_MODE(x)                                                          \
	do {                                                                  \
		EQ(UFFD_MODE_##x, UFFDIO_REGISTER_MODE_##x);                  \
		ck_assert_ptr_nonnull(uffd_mode_name(UFFD_MODE_##x));         \
		ck_assert_str_eq(uffd_mode_name(UFFD_MODE_##x), #x);          \
	} while (0)

START_TEST(test_register_modes)
{
	SAME_MODE(MISSING);
	SAME_MODE(WP);
	SAME_MODE(MINOR);
	EQ(UFFD_MODE_KNOWN,
	   UFFD_MODE_MISSING | UFFD_MODE_WP | UFFD_MODE_MINOR);
	SUBSET(UFFD_API_REGISTER_MODES, UFFD_MODE_KNOWN);
}
END_TEST

START_TEST(test_events)
{
	EQ(KUFFD_EVENT_PAGEFAULT, UFFD_EVENT_PAGEFAULT);
	EQ(KUFFD_EVENT_FORK, UFFD_EVENT_FORK);
	EQ(KUFFD_EVENT_REMAP, UFFD_EVENT_REMAP);
	EQ(KUFFD_EVENT_REMOVE, UFFD_EVENT_REMOVE);
	EQ(KUFFD_EVENT_UNMAP, UFFD_EVENT_UNMAP);

	/* the public event types are the kernel's codes */
	EQ(UFFD_EVENT_TYPE_PAGEFAULT, UFFD_EVENT_PAGEFAULT);
	EQ(UFFD_EVENT_TYPE_FORK, UFFD_EVENT_FORK);
	EQ(UFFD_EVENT_TYPE_REMAP, UFFD_EVENT_REMAP);
	EQ(UFFD_EVENT_TYPE_REMOVE, UFFD_EVENT_REMOVE);
	EQ(UFFD_EVENT_TYPE_UNMAP, UFFD_EVENT_UNMAP);

	EQ(KUFFD_PAGEFAULT_FLAG_WRITE, UFFD_PAGEFAULT_FLAG_WRITE);
	EQ(KUFFD_PAGEFAULT_FLAG_WP, UFFD_PAGEFAULT_FLAG_WP);
	EQ(KUFFD_PAGEFAULT_FLAG_MINOR, UFFD_PAGEFAULT_FLAG_MINOR);
	/* the public fault flags are the kernel's (events.c masks them) */
	EQ(UFFD_FAULT_WRITE, UFFD_PAGEFAULT_FLAG_WRITE);
	EQ(UFFD_FAULT_WP, UFFD_PAGEFAULT_FLAG_WP);
	EQ(UFFD_FAULT_MINOR, UFFD_PAGEFAULT_FLAG_MINOR);
}
END_TEST

static Suite *abi_suite(void)
{
	Suite *s = suite_create("abi");
	TCase *tc;

	tc = tcase_create("ioctls");
	tcase_add_test(tc, test_api_constants);
	tcase_add_test(tc, test_ioctl_numbers);
	tcase_add_test(tc, test_new_ioctls_self_consistent);
	tcase_add_test(tc, test_op_bits);
	tcase_add_test(tc, test_ioctl_mode_flags);
	suite_add_tcase(s, tc);

	tc = tcase_create("structs");
	tcase_add_test(tc, test_struct_msg);
	tcase_add_test(tc, test_struct_api_range_register);
	tcase_add_test(tc, test_struct_resolve);
	suite_add_tcase(s, tc);

	tc = tcase_create("bits");
	tcase_add_test(tc, test_feature_bits);
	tcase_add_test(tc, test_feature_classes);
	tcase_add_test(tc, test_register_modes);
	tcase_add_test(tc, test_events);
	suite_add_tcase(s, tc);

	return s;
}

int main(void)
{
	return run_suite(abi_suite());
}
