/* SPDX-License-Identifier: MIT */
/*
 * libuffd's private copy of the userfaultfd kernel ABI (as of Linux 6.18).
 *
 * Why a copy: distributions ship kernel headers older than the kernels they
 * run (Debian 12: 6.1 headers, no POISON, MOVE, WP_ASYNC), and the public
 * header must not clash with <linux/userfaultfd.h>. Every name here carries a
 * KUFFD_ / kuffd_ prefix, so this file never collides with the system copy;
 * tests/test-abi.c checks the values against the system header where both
 * define them.
 */
#ifndef LIBUFFD_UAPI_H
#define LIBUFFD_UAPI_H

#include <stdint.h>
#include <linux/ioctl.h>

#define KUFFD_API UINT64_C(0xAA)
#define KUFFD_USER_MODE_ONLY 1

/* /dev/userfaultfd */
#define KUFFD_DEV_IOC 0xAA
#define KUFFD_DEV_IOC_NEW _IO(KUFFD_DEV_IOC, 0x00)

/* ioctl numbers; the bit of the kernel's ioctls masks is 1 << number */
#define KUFFD_NR_REGISTER 0x00
#define KUFFD_NR_UNREGISTER 0x01
#define KUFFD_NR_WAKE 0x02
#define KUFFD_NR_COPY 0x03
#define KUFFD_NR_ZEROPAGE 0x04
#define KUFFD_NR_MOVE 0x05
#define KUFFD_NR_WRITEPROTECT 0x06
#define KUFFD_NR_CONTINUE 0x07
#define KUFFD_NR_POISON 0x08
#define KUFFD_NR_API 0x3F

struct kuffd_range {
	uint64_t start;
	uint64_t len;
};

struct kuffd_api {
	uint64_t api;
	uint64_t features;
	uint64_t ioctls;
};

struct kuffd_register {
	struct kuffd_range range;
	uint64_t mode;
	uint64_t ioctls;
};

#define KUFFD_COPY_DONTWAKE (UINT64_C(1) << 0)
#define KUFFD_COPY_WP (UINT64_C(1) << 1)
struct kuffd_copy {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t copy; /* bytes done, or a negative errno when none */
};

#define KUFFD_ZEROPAGE_DONTWAKE (UINT64_C(1) << 0)
struct kuffd_zeropage {
	struct kuffd_range range;
	uint64_t mode;
	int64_t zeropage;
};

#define KUFFD_WRITEPROTECT_WP (UINT64_C(1) << 0)
#define KUFFD_WRITEPROTECT_DONTWAKE (UINT64_C(1) << 1)
struct kuffd_writeprotect {
	struct kuffd_range range;
	uint64_t mode;
};

#define KUFFD_CONTINUE_DONTWAKE (UINT64_C(1) << 0)
#define KUFFD_CONTINUE_WP (UINT64_C(1) << 1)
struct kuffd_continue {
	struct kuffd_range range;
	uint64_t mode;
	int64_t mapped;
};

#define KUFFD_POISON_DONTWAKE (UINT64_C(1) << 0)
struct kuffd_poison {
	struct kuffd_range range;
	uint64_t mode;
	int64_t updated;
};

#define KUFFD_MOVE_DONTWAKE (UINT64_C(1) << 0)
#define KUFFD_MOVE_ALLOW_SRC_HOLES (UINT64_C(1) << 1)
struct kuffd_move {
	uint64_t dst;
	uint64_t src;
	uint64_t len;
	uint64_t mode;
	int64_t move;
};

#define KUFFD_IO 0xAA
#define KUFFDIO_API _IOWR(KUFFD_IO, KUFFD_NR_API, struct kuffd_api)
#define KUFFDIO_REGISTER _IOWR(KUFFD_IO, KUFFD_NR_REGISTER, struct kuffd_register)
/* _IOR for these two is the kernel's historical spelling, kept for ABI */
#define KUFFDIO_UNREGISTER _IOR(KUFFD_IO, KUFFD_NR_UNREGISTER, struct kuffd_range)
#define KUFFDIO_WAKE _IOR(KUFFD_IO, KUFFD_NR_WAKE, struct kuffd_range)
#define KUFFDIO_COPY _IOWR(KUFFD_IO, KUFFD_NR_COPY, struct kuffd_copy)
#define KUFFDIO_ZEROPAGE _IOWR(KUFFD_IO, KUFFD_NR_ZEROPAGE, struct kuffd_zeropage)
#define KUFFDIO_MOVE _IOWR(KUFFD_IO, KUFFD_NR_MOVE, struct kuffd_move)
#define KUFFDIO_WRITEPROTECT \
	_IOWR(KUFFD_IO, KUFFD_NR_WRITEPROTECT, struct kuffd_writeprotect)
#define KUFFDIO_CONTINUE _IOWR(KUFFD_IO, KUFFD_NR_CONTINUE, struct kuffd_continue)
#define KUFFDIO_POISON _IOWR(KUFFD_IO, KUFFD_NR_POISON, struct kuffd_poison)

/* read() message */
#define KUFFD_EVENT_PAGEFAULT 0x12
#define KUFFD_EVENT_FORK 0x13
#define KUFFD_EVENT_REMAP 0x14
#define KUFFD_EVENT_REMOVE 0x15
#define KUFFD_EVENT_UNMAP 0x16

#define KUFFD_PAGEFAULT_FLAG_WRITE (1u << 0)
#define KUFFD_PAGEFAULT_FLAG_WP (1u << 1)
#define KUFFD_PAGEFAULT_FLAG_MINOR (1u << 2)

struct kuffd_msg {
	uint8_t event;
	uint8_t reserved1;
	uint16_t reserved2;
	uint32_t reserved3;
	union {
		struct {
			uint64_t flags;
			uint64_t address;
			uint32_t ptid;
		} pagefault;
		struct {
			uint32_t ufd;
		} fork;
		struct {
			uint64_t from;
			uint64_t to;
			uint64_t len;
		} remap;
		struct {
			uint64_t start;
			uint64_t end;
		} remove;
		struct {
			uint64_t reserved1;
			uint64_t reserved2;
			uint64_t reserved3;
		} reserved;
	} arg;
} __attribute__((packed));

_Static_assert(sizeof(struct kuffd_msg) == 32, "uffd_msg is 32 bytes");
_Static_assert(sizeof(struct kuffd_copy) == 40, "uffdio_copy is 40 bytes");
_Static_assert(sizeof(struct kuffd_move) == 40, "uffdio_move is 40 bytes");
_Static_assert(sizeof(struct kuffd_poison) == 32, "uffdio_poison is 32 bytes");

/* Set in the fdinfo "API:" features once UFFDIO_API has succeeded. */
#define KUFFD_FEATURE_INITIALIZED (UINT64_C(1) << 31)

#endif /* LIBUFFD_UAPI_H */
