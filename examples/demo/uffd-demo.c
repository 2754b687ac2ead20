// SPDX-License-Identifier: MIT
/*
 * uffd-demo: what the kernel offers, then a few faults served by hand.
 *
 * A worker thread reads 8 pages of an anonymous region that has no data
 * yet; the main thread receives each fault and resolves it: COPY from a
 * "snapshot" for even pages, ZEROPAGE for odd ones. Then the region is
 * write-protected and a write is caught and let through. Every byte is
 * checked at the end; the exit status says whether all went right.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libuffd.h>

#define PAGES 8

struct demo {
	struct uffd_handle *h;
	char *region;   /* registered, starts empty */
	char *snapshot; /* where page contents come from */
	size_t ps;
};

static const char *open_path_name(enum uffd_open_path p)
{
	switch (p) {
	case UFFD_OPEN_SYSCALL: return "userfaultfd(2)";
	case UFFD_OPEN_DEV: return "/dev/userfaultfd";
	case UFFD_OPEN_ADOPTED: return "adopted fd";
	default: return "?";
	}
}

static void print_features(const struct uffd_handle *h)
{
	char buf[1024];

	printf("libuffd %s, opened through %s\n", uffd_version(),
	       open_path_name(uffd_handle_get_open_path(h)));
	uffd_features_format(uffd_handle_get_supported_features(h), buf,
			     sizeof(buf));
	printf("kernel supports: %s\n", buf);
	uffd_features_format(uffd_handle_get_features(h), buf, sizeof(buf));
	printf("enabled here:    %s\n", buf);
}

static void *reader(void *arg)
{
	struct demo *d = arg;
	unsigned long sum = 0;

	for (int i = 0; i < PAGES; i++)
		sum += (unsigned char)d->region[(size_t)i * d->ps];
	return (void *)sum;
}

static int next_fault(struct uffd_handle *h, struct uffd_event *ev)
{
	struct pollfd pfd = { uffd_handle_get_fd(h), POLLIN, 0 };
	int n;

	do {
		if (poll(&pfd, 1, 5000) != 1) {
			fprintf(stderr, "no fault arrived within 5 s\n");
			return -ETIMEDOUT;
		}
		n = uffd_handle_read_events(h, ev, 1);
	} while (n == 0);
	return n < 0 ? n : 0;
}

static int serve_reads(struct demo *d)
{
	for (int served = 0; served < PAGES; served++) {
		struct uffd_event ev;
		size_t page;
		char *addr;
		int ret = next_fault(d->h, &ev);

		if (ret)
			return ret;
		addr = (char *)(uintptr_t)ev.fault.address;
		page = (size_t)(addr - d->region) / d->ps;
		if (page % 2 == 0) {
			ret = uffd_handle_copy(d->h, addr,
					       d->snapshot + page * d->ps, d->ps,
					       0, NULL);
			printf("fault on page %zu (%s) -> COPY\n", page,
			       ev.flags & UFFD_FAULT_WRITE ? "write" : "read");
		} else {
			ret = uffd_handle_zeropage(d->h, addr, d->ps, 0, NULL);
			printf("fault on page %zu (%s) -> ZEROPAGE\n", page,
			       ev.flags & UFFD_FAULT_WRITE ? "write" : "read");
		}
		if (ret) {
			fprintf(stderr, "resolve: %s\n", uffd_last_error());
			return ret;
		}
	}
	return 0;
}

static void *writer(void *arg)
{
	struct demo *d = arg;

	d->region[0] = 'W';
	return NULL;
}

static int serve_write_protect(struct demo *d)
{
	struct uffd_event ev;
	pthread_t t;
	int ret;

	ret = uffd_handle_writeprotect(d->h, d->region, PAGES * d->ps, true, 0);
	if (ret)
		return ret;
	pthread_create(&t, NULL, writer, d);
	ret = next_fault(d->h, &ev);
	if (!ret) {
		printf("write to a protected page (flags%s%s) -> unprotect\n",
		       ev.flags & UFFD_FAULT_WP ? " WP" : "",
		       ev.flags & UFFD_FAULT_WRITE ? " WRITE" : "");
		ret = uffd_handle_writeprotect(d->h, d->region, d->ps, false, 0);
	}
	pthread_join(t, NULL);
	return ret;
}

static int verify(const struct demo *d)
{
	for (size_t i = 0; i < PAGES * d->ps; i++) {
		size_t page = i / d->ps;
		char want = page % 2 ? 0 : d->snapshot[i];

		if (i == 0)
			want = 'W';
		if (d->region[i] != want) {
			fprintf(stderr, "byte %zu is %d, expected %d\n", i,
				d->region[i], want);
			return -1;
		}
	}
	return 0;
}

int main(void)
{
	struct demo d = { .ps = (size_t)sysconf(_SC_PAGESIZE) };
	size_t len = PAGES * d.ps;
	uint64_t ops;
	pthread_t t;
	int ret;

	if (uffd_handle_new(NULL, &d.h)) {
		fprintf(stderr, "cannot open a userfaultfd: %s\n",
			uffd_last_error());
		return 1;
	}
	print_features(d.h);
	d.region = mmap(NULL, len, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	d.snapshot = malloc(len);
	if (d.region == MAP_FAILED || !d.snapshot)
		return 1;
	for (size_t i = 0; i < len; i++)
		d.snapshot[i] = (char)('a' + i / d.ps);
	ret = uffd_handle_register(d.h, d.region, len,
				   UFFD_MODE_MISSING | UFFD_MODE_WP, &ops);
	if (ret) {
		fprintf(stderr, "register: %s\n", uffd_last_error());
		return 1;
	}
	{
		char names[256];

		uffd_ops_format(ops, names, sizeof(names));
		printf("registered %zu KiB (MISSING|WP): allowed %s\n",
		       len / 1024, names);
	}
	pthread_create(&t, NULL, reader, &d);
	ret = serve_reads(&d);
	pthread_join(t, NULL);
	if (!ret)
		ret = serve_write_protect(&d);
	if (!ret)
		ret = verify(&d);
	printf("%s\n", ret ? "demo FAILED" : "all pages verified: ok");
	uffd_handle_free(d.h);
	munmap(d.region, len);
	free(d.snapshot);
	return ret ? 1 : 0;
}
