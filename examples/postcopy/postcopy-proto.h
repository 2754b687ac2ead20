/* SPDX-License-Identifier: MIT */
/*
 * The post-copy wire protocol (PROTOCOL.md), shared by postcopy-src and
 * postcopy-dst: message layouts and their little-endian encoding, checks of
 * what was received, whole-message socket I/O, the image checksum and the
 * generated image.
 */
#ifndef POSTCOPY_PROTO_H
#define POSTCOPY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PC_MAGIC "UFFDPCPY" /* 8 bytes on the wire, no terminator */
#define PC_MAGIC_LEN 8
#define PC_VERSION 1

#define PC_HELLO_SIZE 32
#define PC_READY_SIZE 16
#define PC_HDR_SIZE 24
#define PC_MAX_DATA (1u << 20) /* largest DATA payload */
#define PC_MIN_PAGE 4096u

enum pc_type {
	PC_REQUEST = 1, /* destination -> source */
	PC_DATA = 2,    /* source -> destination, payload follows */
	PC_END = 3,     /* source -> destination: every page was sent */
};

#define PC_REQ_URGENT     (1u << 0) /* REQUEST: a faulting thread waits */
#define PC_DATA_REQUESTED (1u << 0) /* DATA: answers a REQUEST */

#define PC_DEFAULT_PORT 7411

struct pc_hello {
	uint32_t version;
	uint32_t page_size;
	uint64_t image_size;
	uint64_t checksum;
};

struct pc_msg {
	uint32_t type;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
};

/* Encoders fill exactly PC_*_SIZE bytes. */
void pc_hello_encode(const struct pc_hello *h, unsigned char *buf);
void pc_ready_encode(unsigned char *buf);
void pc_msg_encode(const struct pc_msg *m, unsigned char *buf);

/*
 * Decoders check everything the message alone can tell and, on a problem,
 * return -EPROTO with the reason in why (a sentence, no newline).
 * pc_msg_decode() checks the type is one `from_source` (or the destination)
 * may send, its flags, alignment to page_size, the range against
 * image_size and, for DATA, the payload limit.
 */
int pc_hello_decode(const unsigned char *buf, struct pc_hello *h, char *why,
		    size_t whylen);
int pc_ready_decode(const unsigned char *buf, char *why, size_t whylen);
int pc_msg_decode(const unsigned char *buf, bool from_source,
		  uint64_t page_size, uint64_t image_size, struct pc_msg *m,
		  char *why, size_t whylen);

/*
 * Sends hdr then payload (may be NULL) in full, without SIGPIPE.
 * 0 or a negative errno (-ETIMEDOUT when a send timeout expired).
 */
int pc_send(int fd, const void *hdr, size_t hlen, const void *payload,
	    size_t plen);
/*
 * Receives exactly len bytes. 0; -ENODATA: the peer closed the connection
 * before the first byte; -EPROTO: it closed in the middle; -ETIMEDOUT: a
 * receive timeout expired; another negative errno.
 */
int pc_recv(int fd, void *buf, size_t len);

/* The protocol's checksum of len bytes (a multiple of 8). */
uint64_t pc_checksum(const void *buf, size_t len);
/* The generated image: len bytes (a multiple of 8) from seed. */
void pc_image_fill(void *buf, size_t len, uint64_t seed);

/* Parses a whole decimal number in [min, max]; false otherwise. */
bool pc_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Monotonic time in nanoseconds. */
uint64_t pc_now_ns(void);

#endif /* POSTCOPY_PROTO_H */
