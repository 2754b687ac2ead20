// SPDX-License-Identifier: MIT
/*
 * lazy-restore: restore a memory image lazily, and compare with an eager
 * read() of the same image.
 *
 * A restored process should run as soon as possible, not after its whole
 * memory has been read. Here the memory is registered with userfaultfd and
 * served by the libuffd loop: a page is read from the image when it is first
 * touched (with readahead around it) while background prefetch reads the
 * rest, so the first touch is served at once and the restore completes on
 * its own. Two ways are shown:
 *  - anon:  anonymous memory, pages COPYed in from the image file;
 *  - memfd: a memfd mapped twice; the loop reads the image straight into
 *           the page cache through the second, unregistered mapping (the
 *           alias) and maps the pages with CONTINUE: the data is copied once.
 * Each is timed (first touch, complete restore while the program touches
 * all its memory) against an eager read() into anonymous memory, and every
 * byte is checked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libuffd.h>

#define MAX_SIZE_MIB 16384
#define CHUNK ((size_t)1 << 20)

enum { MODE_ANON = 1, MODE_MEMFD = 2, MODE_BOTH = 3 };

struct image {
	int fd;
	uint64_t size;    /* bytes in the file */
	size_t len;       /* memory to restore: size rounded up to a page */
	bool generated;   /* contents known: gen_fill() */
	const char *name; /* for messages */
};

struct result {
	const char *method;
	double setup_ms; /* until the loop serves the memory */
	double first_ms, total_ms;
	uint64_t faults, prefetched;
	bool ok;
	bool lazy;
};

static size_t ps;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: lazy-restore [--mode anon|memfd|both] [--size MiB] "
		"[--image FILE]\n"
		"  Restores a memory image lazily with userfaultfd and compares "
		"with an\n"
		"  eager read() of it; every byte is verified.\n"
		"  --mode M     anon: COPY into anonymous memory; memfd: fill "
		"the page\n"
		"               cache through an alias, map with CONTINUE; "
		"both (default)\n"
		"  --size MiB   size of the generated image, 1..%d (default "
		"64)\n"
		"  --image FILE restore this file instead of a generated one "
		"(its\n"
		"               whole length; not with --size)\n"
		"  --help       this text\n",
		MAX_SIZE_MIB);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- the generated image: 64-bit words, each a hash of its index ---- */

static uint64_t gen_word(uint64_t i)
{
	uint64_t z = i + UINT64_C(0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Fills buf with bytes [off, off+n) of the generated image (off and n are
 * multiples of 8). */
static void gen_fill(void *buf, uint64_t off, size_t n)
{
	uint64_t *w = buf;

	for (size_t i = 0; i < n / 8; i++)
		w[i] = gen_word(off / 8 + i);
}

/* The file is unlinked at once: nothing is left behind, even on a crash. */
static int image_generate(struct image *img, size_t mib)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	char *buf = malloc(CHUNK);

	snprintf(path, sizeof(path), "%s/lazy-restore-XXXXXX",
		 dir && *dir ? dir : "/tmp");
	img->fd = buf ? mkostemp(path, O_CLOEXEC) : -1;
	if (img->fd < 0) {
		fprintf(stderr, "lazy-restore: cannot create %s: %s\n", path,
			strerror(buf ? errno : ENOMEM));
		free(buf);
		return -1;
	}
	unlink(path);
	img->size = (uint64_t)mib << 20;
	img->len = (size_t)img->size;
	img->generated = true;
	img->name = "a generated image";
	for (uint64_t off = 0; off < img->size; off += CHUNK) {
		gen_fill(buf, off, CHUNK);
		if (pwrite(img->fd, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK) {
			fprintf(stderr, "lazy-restore: writing the image: "
					"%s\n", strerror(errno ? errno : ENOSPC));
			free(buf);
			return -1;
		}
	}
	free(buf);
	return 0;
}

static int image_open(struct image *img, const char *path)
{
	struct stat st;

	img->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (img->fd < 0 || fstat(img->fd, &st)) {
		fprintf(stderr, "lazy-restore: %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > ((uint64_t)MAX_SIZE_MIB << 20)) {
		fprintf(stderr, "lazy-restore: %s: not a regular file of 1 "
				"byte to %d MiB\n", path, MAX_SIZE_MIB);
		return -1;
	}
	img->size = (uint64_t)st.st_size;
	img->len = (size_t)((img->size + ps - 1) / ps * ps);
	img->name = path;
	return 0;
}

/* Reads the file once, so that every method below reads it from the page
 * cache and the comparison is about memory, not the disk. */
static int image_warm(const struct image *img)
{
	char *buf = malloc(CHUNK);
	uint64_t off = 0;
	ssize_t n = 1;

	while (buf && off < img->size &&
	       (n = pread(img->fd, buf, CHUNK, (off_t)off)) > 0)
		off += (uint64_t)n;
	free(buf);
	if (off < img->size) {
		fprintf(stderr, "lazy-restore: reading %s: %s\n", img->name,
			!buf ? strerror(ENOMEM) :
			n < 0 ? strerror(errno) : "it shrank");
		return -1;
	}
	return 0;
}

/* ---- options ---- */

static int parse_number(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno || *end || end == s || *s == '-' || *v < 1 || *v > max
		       ? -1 : 0;
}

static int parse_args(int argc, char **argv, int *mode, unsigned long *mib,
		      const char **image)
{
	static const struct option opts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },
		{ "image", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool size_given = false;
	int c;

	while ((c = getopt_long(argc, argv, "m:s:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!strcmp(optarg, "anon"))
				*mode = MODE_ANON;
			else if (!strcmp(optarg, "memfd"))
				*mode = MODE_MEMFD;
			else if (!strcmp(optarg, "both"))
				*mode = MODE_BOTH;
			else {
				fprintf(stderr, "lazy-restore: --mode is anon, "
						"memfd or both, not '%s'\n",
					optarg);
				return -1;
			}
			break;
		case 's':
			if (parse_number(optarg, MAX_SIZE_MIB, mib)) {
				fprintf(stderr, "lazy-restore: --size wants "
						"MiB from 1 to %d, not '%s'\n",
					MAX_SIZE_MIB, optarg);
				return -1;
			}
			size_given = true;
			break;
		case 'i':
			*image = optarg;
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
		fprintf(stderr, "lazy-restore: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	if (size_given && *image) {
		fprintf(stderr, "lazy-restore: --size is for the generated "
				"image; --image restores the whole file\n");
		return -1;
	}
	return 0;
}

/* ---- checking ---- */

/* Compares mem with the reference, page by page; says where it differs
 * (base: where mem is in the image). */
static bool same_as(const char *what, const unsigned char *mem,
		    const unsigned char *ref, size_t len, size_t base)
{
	for (size_t off = 0; off < len; off += ps) {
		if (memcmp(mem + off, ref + off, ps) == 0)
			continue;
		while (mem[off] == ref[off])
			off++;
		fprintf(stderr, "lazy-restore: %s: byte %zu is %#x, the image "
				"has %#x\n", what, base + off, mem[off],
			ref[off]);
		return false;
	}
	return true;
}

static bool matches_generator(const unsigned char *mem, size_t len)
{
	unsigned char *want = malloc(CHUNK);
	bool ok = want != NULL;

	for (size_t off = 0; ok && off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		gen_fill(want, off, n);
		ok = same_as("eager read()", mem + off, want, n, off);
	}
	free(want);
	return ok;
}

/* ---- eager: read() the whole image, then run ---- */

static unsigned char *restore_eager(const struct image *img, struct result *r)
{
	double t0 = now_ms();
	unsigned char *mem = mmap(NULL, img->len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t got = 0;
	ssize_t n = 1;

	if (mem == MAP_FAILED) {
		perror("lazy-restore: mmap");
		return NULL;
	}
	if (lseek(img->fd, 0, SEEK_SET) == 0)
		while (got < img->size &&
		       (n = read(img->fd, mem + got, img->size - got)) > 0)
			got += (uint64_t)n;
	if (got < img->size) {
		fprintf(stderr, "lazy-restore: read(): %s\n",
			n < 0 ? strerror(errno) : "short file");
		munmap(mem, img->len);
		return NULL;
	}
	r->total_ms = r->first_ms = now_ms() - t0;
	r->ok = !img->generated || matches_generator(mem, img->len);
	return mem;
}

/* ---- lazy: userfaultfd and the loop ---- */

struct lazy {
	const struct image *img;
	int mode;
	struct uffd_handle *h;
	struct uffd_loop *loop;
	int memfd;
	unsigned char *mem;   /* what the program uses (registered) */
	unsigned char *alias; /* memfd mode: the same pages, unregistered */
};

static int lazy_map(struct lazy *z)
{
	size_t len = z->img->len;

	if (z->mode == MODE_ANON) {
		z->mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return z->mem == MAP_FAILED ? -errno : 0;
	}
	z->memfd = memfd_create("lazy-restore", MFD_CLOEXEC);
	if (z->memfd < 0 || ftruncate(z->memfd, (off_t)len))
		return -errno;
	z->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, z->memfd,
		      0);
	if (z->mem == MAP_FAILED)
		return -errno;
	z->alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
			z->memfd, 0);
	return z->alias == MAP_FAILED ? -errno : 0;
}

static void lazy_free(struct lazy *z)
{
	uffd_loop_free(z->loop);
	uffd_handle_free(z->h);
	if (z->mem && z->mem != MAP_FAILED)
		munmap(z->mem, z->img->len);
	if (z->alias && z->alias != MAP_FAILED)
		munmap(z->alias, z->img->len);
	if (z->memfd >= 0)
		close(z->memfd);
}

/* One worker per CPU: a handler on the faulting thread's CPU answers much
 * faster than one that has to be woken on another. */
static unsigned worker_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 4 ? 4 : (unsigned)n;
}

static int lazy_start(struct lazy *z)
{
	struct uffd_loop_config *lc = NULL;
	struct uffd_region_config *rc = NULL;
	struct uffd_source *src = NULL;
	int ret;

	ret = uffd_handle_new(NULL, &z->h);
	if (!ret)
		ret = uffd_loop_config_new(&lc);
	if (!ret)
		ret = uffd_loop_config_set_threads(lc, worker_count());
	if (!ret)
		ret = uffd_loop_new(z->h, lc, &z->loop);
	if (!ret)
		ret = uffd_source_new_fd(z->img->fd, 0, z->img->len, &src);
	if (!ret)
		ret = uffd_region_config_new(&rc);
	if (!ret)
		ret = uffd_region_config_set_range(rc, z->mem, z->img->len);
	if (!ret)
		ret = uffd_region_config_set_source(rc, src, 0);
	if (!ret)
		ret = uffd_region_config_set_prefetch(rc, true);
	/* MISSING: the page cache starts empty, so the first touch of a page
	 * is a missing fault; the loop then fills the page through the alias
	 * and maps it with CONTINUE, which needs MINOR too */
	if (!ret && z->mode == MODE_MEMFD)
		ret = uffd_region_config_set_modes(rc, UFFD_MODE_MISSING |
						       UFFD_MODE_MINOR);
	if (!ret && z->mode == MODE_MEMFD)
		ret = uffd_region_config_set_alias(rc, z->alias);
	if (!ret)
		ret = uffd_loop_add_region(z->loop, rc, NULL);
	if (!ret)
		ret = uffd_loop_start(z->loop);
	uffd_region_config_free(rc);
	uffd_source_free(src);
	uffd_loop_config_free(lc);
	return ret;
}

/* A step through the pages coprime with their number: every page once, in
 * an order far from sequential, like a program that resumes and wanders. */
static size_t scatter_step(size_t pages)
{
	size_t step = 7919, a, b;

	for (;; step += 2) {
		for (a = step, b = pages; b;) {
			size_t t = a % b;

			a = b;
			b = t;
		}
		if (a == 1)
			return step % pages ? step : 1;
	}
}

static void touch_all(const unsigned char *mem, size_t pages)
{
	size_t step = scatter_step(pages), p = 0;

	for (size_t i = 0; i < pages; i++, p = (p + step) % pages)
		(void)*(const volatile unsigned char *)(mem + p * ps);
}

static int restore_lazy(const struct image *img, int mode,
			const unsigned char *ref, struct result *r)
{
	struct lazy z = { .img = img, .mode = mode, .memfd = -1 };
	struct uffd_loop_stats st;
	double t0 = now_ms();
	int ret;

	ret = lazy_map(&z);
	if (ret) {
		fprintf(stderr, "lazy-restore: %s memory: %s\n",
			mode == MODE_ANON ? "anonymous" : "memfd",
			strerror(-ret));
		goto out;
	}
	ret = lazy_start(&z);
	if (ret) {
		fprintf(stderr, "lazy-restore: %s\n", uffd_last_error());
		goto out;
	}
	r->setup_ms = now_ms() - t0;
	(void)*(volatile unsigned char *)z.mem; /* the first touch */
	r->first_ms = now_ms() - t0;
	touch_all(z.mem, img->len / ps);
	ret = uffd_loop_wait_complete(z.loop, -1);
	r->total_ms = now_ms() - t0;
	if (ret) {
		fprintf(stderr, "lazy-restore: waiting for the restore: %s\n",
			uffd_last_error());
		goto out;
	}
	ret = uffd_loop_get_stats(z.loop, &st, sizeof(st));
	if (!ret) {
		r->faults = st.faults_missing + st.faults_minor;
		r->prefetched = st.prefetch_pages;
		r->ok = st.fetch_failures == 0 && st.pages_poisoned == 0 &&
			same_as(r->method, z.mem, ref, img->len, 0);
	}
out:
	lazy_free(&z);
	return ret;
}

/* ---- report ---- */

static void print_table(const struct result *res, size_t n, size_t len)
{
	printf("  %-22s %11s %12s %12s %7s %7s %10s  %s\n", "method", "setup",
	       "first touch", "total", "MiB/s", "faults", "prefetched",
	       "check");
	for (size_t i = 0; i < n; i++) {
		const struct result *r = &res[i];
		double mibs = r->total_ms > 0 ? (double)len / (1 << 20) /
							(r->total_ms / 1e3)
					      : 0;

		printf("  %-22s ", r->method);
		if (r->lazy)
			printf("%8.2f ms", r->setup_ms);
		else
			printf("%11s", "-");
		printf(" %9.2f ms %9.2f ms %7.0f ", r->first_ms, r->total_ms,
		       mibs);
		if (r->lazy)
			printf("%7" PRIu64 " %10" PRIu64, r->faults,
			       r->prefetched);
		else
			printf("%7s %10s", "-", "-");
		printf("  %s\n", r->ok ? "ok" : "FAILED");
	}
}

/* The eager copy, one restored copy and the image's page cache are in
 * memory at once: refuse sizes that would push the machine into swap. */
static int check_memory(size_t len)
{
	uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * ps;

	if (phys && len > phys / 3) {
		fprintf(stderr, "lazy-restore: %zu MiB is too much here: this "
				"needs about 3 times that (this machine has "
				"%llu MiB)\n", len >> 20,
			(unsigned long long)(phys >> 20));
		return -1;
	}
	return 0;
}

static int run(const struct image *img, int mode)
{
	struct result res[3] = {
		{ .method = "eager read()" },
		{ .method = "anon, COPY", .lazy = true },
		{ .method = "memfd, MINOR+CONTINUE", .lazy = true },
	};
	bool ok;
	size_t n = 1;
	unsigned char *ref;

	if (image_warm(img))
		return -1;
	ref = restore_eager(img, &res[0]);
	if (!ref)
		return -1;
	ok = res[0].ok;
	if (mode & MODE_ANON) {
		res[n] = res[1];
		ok &= !restore_lazy(img, MODE_ANON, ref, &res[n]) &&
		      res[n].ok;
		n++;
	}
	if (mode & MODE_MEMFD) {
		res[n] = res[2];
		ok &= !restore_lazy(img, MODE_MEMFD, ref, &res[n]) &&
		      res[n].ok;
		n++;
	}
	printf("lazy restore of %s: %zu KiB, %zu pages\n", img->name,
	       img->len >> 10, img->len / ps);
	print_table(res, n, img->len);
	for (size_t i = 0; i < n; i++) {
		if (!res[i].ok)
			continue;
		printf("%s: all %zu bytes verified", res[i].method, img->len);
		if (img->generated)
			printf(" (against the generator)\n");
		else if (img->size == img->len)
			printf(" (against the file)\n");
		else
			printf(" (the file's %llu, then zeros)\n",
			       (unsigned long long)img->size);
	}
	munmap(ref, img->len);
	return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct image img = { .fd = -1 };
	const char *path = NULL;
	unsigned long mib = 64;
	int mode = MODE_BOTH, ret;

	ps = (size_t)sysconf(_SC_PAGESIZE);
	if (parse_args(argc, argv, &mode, &mib, &path))
		return 2;
	if (path)
		ret = image_open(&img, path) || check_memory(img.len);
	else
		ret = check_memory(mib << 20) || image_generate(&img, mib);
	if (!ret)
		ret = run(&img, mode);
	if (img.fd >= 0)
		close(img.fd);
	if (ret)
		printf("lazy-restore FAILED\n");
	return ret ? 1 : 0;
}
