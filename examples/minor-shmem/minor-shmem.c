// SPDX-License-Identifier: MIT
/*
 * minor-shmem: MINOR faults and UFFDIO_CONTINUE on a memfd, shown twice.
 *
 * A memfd is mapped twice: the "view" is registered with userfaultfd, the
 * "alias" is not. A MINOR fault is raised when the view touches a page that
 * the page cache already has but the view has not mapped yet; the handler
 * may change the page through the alias, then CONTINUE maps that very page
 * into the view. The data is written once, into the page cache, and never
 * copied again: both mappings end up on the same physical page.
 *
 * Part 1 does it by hand with a handle. Part 2 lets the loop do it with an
 * alias region: pages already in the page cache fault MINOR and are mapped
 * as they are, missing ones are filled through the alias from a source and
 * then mapped with CONTINUE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libuffd.h>

#define MAX_PAGES 4096

struct shm {
	int fd;
	char *view;  /* registered */
	char *alias; /* the same pages, never registered */
	size_t len;
};

static size_t ps;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: minor-shmem [--pages N]\n"
		"  MINOR faults on a memfd mapped twice, resolved with CONTINUE:\n"
		"  first by hand, then by the libuffd loop with an alias region.\n"
		"  --pages N   pages per part, 2..%d (default 4)\n"
		"  --help      this text\n",
		MAX_PAGES);
}

static int parse_args(int argc, char **argv, size_t *pages)
{
	static const struct option opts[] = {
		{ "pages", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
		char *end;
		unsigned long v;

		switch (c) {
		case 'p':
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 2 ||
			    v > MAX_PAGES) {
				fprintf(stderr, "minor-shmem: --pages wants a "
						"number from 2 to %d, not '%s'\n",
					MAX_PAGES, optarg);
				return -1;
			}
			*pages = v;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "minor-shmem: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static int shm_open_twice(struct shm *s, size_t len)
{
	s->len = len;
	s->fd = memfd_create("minor-shmem", MFD_CLOEXEC);
	if (s->fd < 0 || ftruncate(s->fd, (off_t)len)) {
		perror("minor-shmem: memfd");
		return -1;
	}
	s->view = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
	s->alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd,
			0);
	if (s->view == MAP_FAILED || s->alias == MAP_FAILED) {
		perror("minor-shmem: mmap");
		return -1;
	}
	return 0;
}

static void shm_close(struct shm *s)
{
	if (s->view && s->view != MAP_FAILED)
		munmap(s->view, s->len);
	if (s->alias && s->alias != MAP_FAILED)
		munmap(s->alias, s->len);
	if (s->fd >= 0)
		close(s->fd);
}

/* Fills a page with a text line, then a byte pattern derived from it, so a
 * page of another version or another index cannot pass for it. */
static void fill_page(char *page, const char *what, size_t index)
{
	int n = snprintf(page, ps, "%s page %zu", what, index);

	for (size_t i = (size_t)n + 1; i < ps; i++)
		page[i] = (char)(i * 7 + index * 13 + (unsigned char)what[0]);
}

static int check_page(const char *page, const char *what, size_t index,
		      const char *where)
{
	char *want = malloc(ps);
	int bad;

	if (!want)
		return -1;
	fill_page(want, what, index);
	bad = memcmp(page, want, ps) != 0;
	if (bad)
		fprintf(stderr, "minor-shmem: %s page %zu holds '%.40s', "
				"expected '%s page %zu'\n",
			where, index, page, what, index);
	free(want);
	return bad ? -1 : 0;
}

/* addr's entry in /proc/self/pagemap (0 if it cannot be read). */
static uint64_t pagemap_entry(const void *addr)
{
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	off_t off = (off_t)((uintptr_t)addr / ps * sizeof(entry));

	if (fd < 0)
		return 0;
	if (pread(fd, &entry, sizeof(entry), off) != sizeof(entry))
		entry = 0;
	close(fd);
	return entry;
}

/* Whether this mapping maps the page (bit 63, present); mincore() would
 * only say whether the page cache has it. */
static bool mapped(const void *addr)
{
	return pagemap_entry(addr) >> 63;
}

/* The physical frame behind addr: bits 0-54 of a present entry, 0 when
 * not present or hidden (they are, without CAP_SYS_ADMIN). */
static uint64_t pfn_of(const void *addr)
{
	uint64_t entry = pagemap_entry(addr);

	return entry >> 63 ? entry & ((UINT64_C(1) << 55) - 1) : 0;
}

/*
 * One copy: the view and the alias must show the same physical page. With
 * PFNs visible (root) compare them; in any case a write through one must
 * be seen through the other, both ways.
 */
static int check_one_copy(struct shm *s, size_t pages, const char *part)
{
	size_t same_pfn = 0, hidden = 0;

	for (size_t i = 0; i < pages; i++) {
		char *v = s->view + i * ps, *a = s->alias + i * ps;
		uint64_t pv = pfn_of(v), pa = pfn_of(a);
		char keep = v[ps - 1];

		if (!pv || !pa)
			hidden++;
		else if (pv == pa)
			same_pfn++;
		else {
			fprintf(stderr, "minor-shmem: %s: page %zu is frame "
					"%#llx in the view but %#llx in the "
					"alias: it was copied\n",
				part, i, (unsigned long long)pv,
				(unsigned long long)pa);
			return -1;
		}
		v[ps - 1] = (char)~keep;
		if (a[ps - 1] != (char)~keep) {
			fprintf(stderr, "minor-shmem: %s: a write to page %zu "
					"of the view is not seen through the "
					"alias\n", part, i);
			return -1;
		}
		a[ps - 1] = keep;
		if (v[ps - 1] != keep) {
			fprintf(stderr, "minor-shmem: %s: a write to page %zu "
					"of the alias is not seen through the "
					"view\n", part, i);
			return -1;
		}
	}
	if (hidden)
		printf("  one copy: writes through either mapping are seen "
		       "through the other (PFNs hidden for %zu pages)\n",
		       hidden);
	else
		printf("  one copy: view and alias map the same %zu physical "
		       "pages, writes are seen both ways\n", same_pfn);
	return 0;
}

/* ---- part 1: by hand ---- */

struct reader {
	const char *mem;
	size_t pages;
	char first[MAX_PAGES][32]; /* what each page began with */
};

static void *read_pages(void *arg)
{
	struct reader *r = arg;

	for (size_t i = 0; i < r->pages; i++)
		snprintf(r->first[i], sizeof(r->first[i]), "%s",
			 r->mem + i * ps);
	return NULL;
}

/* Blocks until the next event: the reader always raises one, and the smoke
 * test's own timeout is the guard against a reader that never does. */
static int next_event(struct uffd_handle *h, struct uffd_event *ev)
{
	struct pollfd pfd = { uffd_handle_get_fd(h), POLLIN, 0 };
	int n;

	do {
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			perror("minor-shmem: poll");
			return -errno;
		}
		n = uffd_handle_read_events(h, ev, 1);
	} while (n == 0);
	if (n < 0)
		fprintf(stderr, "minor-shmem: reading events: %s\n",
			uffd_last_error());
	return n < 0 ? n : 0;
}

static int serve_by_hand(struct uffd_handle *h, struct shm *s, size_t pages)
{
	for (size_t served = 0; served < pages; served++) {
		struct uffd_event ev;
		size_t i;
		int ret = next_event(h, &ev);

		if (ret)
			return ret;
		i = (size_t)(ev.fault.address - (uintptr_t)s->view) / ps;
		if (ev.type != UFFD_EVENT_TYPE_PAGEFAULT || i >= pages ||
		    !(ev.flags & UFFD_FAULT_MINOR)) {
			fprintf(stderr, "minor-shmem: unexpected event type "
					"%#x flags %#x at %#llx\n",
				ev.type, ev.flags,
				(unsigned long long)ev.fault.address);
			return -EPROTO;
		}
		printf("  fault: %s of page %zu, MINOR (in the page cache, "
		       "not mapped in the view)\n",
		       ev.flags & UFFD_FAULT_WRITE ? "write" : "read", i);
		fill_page(s->alias + i * ps, "fresh", i);
		printf("  page %zu rewritten through the alias: 'fresh page "
		       "%zu'\n", i, i);
		ret = uffd_handle_continue(h, s->view + i * ps, ps, 0, NULL);
		if (ret) {
			fprintf(stderr, "minor-shmem: CONTINUE: %s\n",
				uffd_last_error());
			return ret;
		}
		printf("  CONTINUE page %zu: the view maps that page, the "
		       "reader is woken\n", i);
	}
	return 0;
}

static int part_by_hand(struct uffd_handle *h, size_t pages)
{
	struct shm s = { .fd = -1 };
	struct reader *r = calloc(1, sizeof(*r));
	uint64_t ops;
	char names[256];
	pthread_t t;
	int ret = -1;

	printf("part 1: by hand, with the handle\n");
	if (!r || shm_open_twice(&s, pages * ps))
		goto out;
	for (size_t i = 0; i < pages; i++)
		fill_page(s.alias + i * ps, "stale", i);
	printf("  %zu pages written through the alias: 'stale page N' is "
	       "in the page cache\n", pages);
	if (mapped(s.view)) {
		fprintf(stderr, "minor-shmem: the view maps page 0 before "
				"it was touched\n");
		goto out;
	}
	ret = uffd_handle_register(h, s.view, s.len, UFFD_MODE_MINOR, &ops);
	if (ret) {
		fprintf(stderr, "minor-shmem: register MINOR: %s\n",
			uffd_last_error());
		goto out;
	}
	uffd_ops_format(ops, names, sizeof(names));
	printf("  view registered MINOR: the kernel advertises %s\n", names);
	/* the kernel's list over-reports; libuffd's is what was verified to
	 * work on this kind of memory */
	if (!uffd_handle_get_range_ops(h, s.view, s.len, &ops, NULL)) {
		uffd_ops_format(ops, names, sizeof(names));
		printf("  libuffd allows %s\n", names);
	}

	r->mem = s.view;
	r->pages = pages;
	ret = pthread_create(&t, NULL, read_pages, r);
	if (ret) {
		fprintf(stderr, "minor-shmem: pthread_create: %s\n",
			strerror(ret));
		ret = -1;
		goto out;
	}
	printf("  a reader thread reads every page of the view\n");
	ret = serve_by_hand(h, &s, pages);
	if (ret) {
		/* never leave the reader asleep: dropping the registration
		 * wakes it, and it reads the page cache as it is */
		uffd_handle_unregister(h, s.view, s.len);
	}
	pthread_join(t, NULL);
	if (ret)
		goto out;
	for (size_t i = 0; i < pages && !ret; i++) {
		char want[32];

		snprintf(want, sizeof(want), "fresh page %zu", i);
		if (strcmp(r->first[i], want)) {
			fprintf(stderr, "minor-shmem: the reader saw '%s' in "
					"page %zu, expected '%s'\n",
				r->first[i], i, want);
			ret = -1;
		}
		if (!ret)
			ret = check_page(s.view + i * ps, "fresh", i, "view");
	}
	if (!ret)
		printf("  the reader saw the fresh data in all %zu pages: "
		       "verified\n", pages);
	if (!ret)
		ret = check_one_copy(&s, pages, "part 1");
	if (uffd_handle_unregister(h, s.view, s.len) && !ret) {
		fprintf(stderr, "minor-shmem: unregister: %s\n",
			uffd_last_error());
		ret = -1;
	}
out:
	shm_close(&s);
	free(r);
	return ret;
}

/* ---- part 2: the loop and an alias region ---- */

static int run_loop_region(struct uffd_loop *loop, struct shm *s,
			   const char *image, size_t pages)
{
	struct uffd_region_config *cfg = NULL;
	struct uffd_source *src = NULL;
	int ret;

	ret = uffd_source_new_buffer(image, s->len, &src);
	if (!ret)
		ret = uffd_region_config_new(&cfg);
	if (!ret)
		ret = uffd_region_config_set_range(cfg, s->view, s->len);
	if (!ret)
		ret = uffd_region_config_set_modes(cfg, UFFD_MODE_MISSING |
							UFFD_MODE_MINOR);
	if (!ret)
		ret = uffd_region_config_set_source(cfg, src, 0);
	if (!ret)
		ret = uffd_region_config_set_alias(cfg, s->alias);
	/* one fault per page, so the counts below are exact */
	if (!ret)
		ret = uffd_region_config_set_readahead(cfg, 0, false);
	if (!ret)
		ret = uffd_loop_add_region(loop, cfg, NULL);
	if (!ret)
		ret = uffd_loop_start(loop);
	uffd_region_config_free(cfg);
	uffd_source_free(src);
	if (ret) {
		fprintf(stderr, "minor-shmem: setting up the loop: %s\n",
			uffd_last_error());
		return ret;
	}
	printf("  view registered MISSING|MINOR as a loop region with the "
	       "alias and the image as source\n");
	for (size_t i = 0; i < pages; i++)
		(void)*(volatile char *)(s->view + i * ps);
	printf("  main thread read all %zu pages of the view\n", pages);
	ret = uffd_loop_stop(loop);
	if (ret)
		fprintf(stderr, "minor-shmem: stopping the loop: %s\n",
			uffd_last_error());
	return ret;
}

static int check_loop_result(struct uffd_loop *loop, struct shm *s,
			     size_t pages, size_t cached)
{
	struct uffd_loop_stats st;
	int ret = 0;

	if (uffd_loop_get_stats(loop, &st, sizeof(st))) {
		fprintf(stderr, "minor-shmem: stats: %s\n", uffd_last_error());
		return -1;
	}
	printf("  loop: %llu MINOR faults mapped as they were, %llu MISSING "
	       "faults filled through the alias, %llu pages resolved\n",
	       (unsigned long long)st.faults_minor,
	       (unsigned long long)st.faults_missing,
	       (unsigned long long)st.pages_resolved);
	if (st.faults_minor != cached || st.faults_missing != pages - cached ||
	    st.pages_resolved != pages) {
		fprintf(stderr, "minor-shmem: expected %zu MINOR and %zu "
				"MISSING faults\n", cached, pages - cached);
		return -1;
	}
	for (size_t i = 0; i < pages && !ret; i++)
		ret = check_page(s->view + i * ps,
				 i < cached ? "prepared" : "image", i, "view");
	if (!ret)
		printf("  pages 0-%zu hold 'prepared', pages %zu-%zu hold "
		       "'image': verified\n", cached - 1, cached, pages - 1);
	return ret;
}

static int part_loop(struct uffd_handle *h, size_t pages)
{
	size_t cached = pages / 2;
	struct shm s = { .fd = -1 };
	struct uffd_loop *loop = NULL;
	char *image = malloc(pages * ps);
	int ret = -1;

	printf("part 2: the loop with an alias region\n");
	if (!image || shm_open_twice(&s, pages * ps))
		goto out;
	for (size_t i = 0; i < pages; i++)
		fill_page(image + i * ps, "image", i);
	for (size_t i = 0; i < cached; i++)
		fill_page(s.alias + i * ps, "prepared", i);
	printf("  pages 0-%zu prepared through the alias (in the page "
	       "cache), pages %zu-%zu not there yet\n",
	       cached - 1, cached, pages - 1);
	ret = uffd_loop_new(h, NULL, &loop);
	if (ret) {
		fprintf(stderr, "minor-shmem: loop: %s\n", uffd_last_error());
		goto out;
	}
	ret = run_loop_region(loop, &s, image, pages);
	if (!ret)
		ret = check_loop_result(loop, &s, pages, cached);
	if (!ret)
		ret = check_one_copy(&s, pages, "part 2");
out:
	uffd_loop_free(loop);
	shm_close(&s);
	free(image);
	return ret;
}

int main(int argc, char **argv)
{
	struct uffd_handle_config *cfg = NULL;
	struct uffd_handle *h = NULL;
	size_t pages = 4;
	int ret;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (parse_args(argc, argv, &pages))
		return 2;
	/* MINOR on shmem is a capability feature: on by default, but
	 * requiring it turns "not supported" into a clear message */
	ret = uffd_handle_config_new(&cfg);
	if (!ret)
		ret = uffd_handle_config_require_features(
			cfg, UFFD_FEAT_MINOR_SHMEM);
	if (!ret)
		ret = uffd_handle_new(cfg, &h);
	uffd_handle_config_free(cfg);
	if (ret) {
		fprintf(stderr, "minor-shmem: cannot open a userfaultfd: %s\n",
			uffd_last_error());
		return 1;
	}
	ret = part_by_hand(h, pages);
	if (!ret)
		ret = part_loop(h, pages);
	uffd_handle_free(h);
	printf("%s\n", ret ? "minor-shmem FAILED" :
			     "minor-shmem: both parts verified: ok");
	return ret ? 1 : 0;
}
