// SPDX-License-Identifier: MIT
/*
 * The NBD page source against a real nbdkit: a lazy restore of a file
 * image (each driver), an export whose size is not a whole number of
 * pages, a server that takes small reads only (fetches are cut), read
 * errors injected while the loop serves, a server killed mid-restore, a
 * loop freed while reads hang in a paused server, and argument checking.
 *
 * nbdkit is started by socket activation: the test binds and listens on
 * the Unix socket itself before nbdkit even runs, so a client can connect
 * at once and nothing waits for the server to be "up". Its path comes in
 * NBDKIT. Nothing sleeps: the only waits are the loop's bounded
 * wait_complete and reads of the server's own replies.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "libuffd.h"

/* ---- nbdkit ------------------------------------------------------------- */

struct server {
	pid_t pid;
	char dir[64];   /* a private temporary directory */
	char sock[128]; /* the NBD socket in it */
	char uri[192];
};

/* dir/name into out. */
static void in_dir(const struct server *sv, const char *name, char *out,
		   size_t size)
{
	int n = snprintf(out, size, "%s/%s", sv->dir, name);

	ck_assert(n > 0 && (size_t)n < size);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	ck_assert(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	ck_assert_msg(!bind(fd, (struct sockaddr *)&sa, sizeof(sa)),
		      "bind %s: %s", path, strerror(errno));
	ck_assert_msg(!listen(fd, 16), "listen: %s", strerror(errno));
	return fd;
}

/* In the child: the listening socket becomes fd 3, as socket activation
 * wants, and nbdkit replaces us. */
static void exec_nbdkit(int lfd, const char *const *args)
{
	const char *nbdkit = getenv("NBDKIT");
	const char *argv[32] = { "nbdkit", "--exit-with-parent" };
	char pid[24];
	size_t n = 2;

	if (lfd == 3)
		fcntl(3, F_SETFD, 0);
	else if (dup2(lfd, 3) < 0)
		_exit(126);
	for (; *args && n < 31; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("LISTEN_PID", pid, 1);
	setenv("LISTEN_FDS", "1", 1);
	unsetenv("LISTEN_FDNAMES");
	execvp(nbdkit ? nbdkit : "nbdkit", (char *const *)argv);
	_exit(127);
}

static void server_kill(struct server *sv)
{
	int status;

	if (sv->pid <= 0)
		return;
	kill(sv->pid, SIGKILL);
	ck_assert_int_eq(waitpid(sv->pid, &status, 0), sv->pid);
	sv->pid = 0;
}

/* Kills the server and removes its directory and what is in it. */
static void server_stop(struct server *sv, const char *const *files)
{
	char path[192];

	server_kill(sv);
	unlink(sv->sock);
	for (; files && *files; files++) {
		in_dir(sv, *files, path, sizeof(path));
		unlink(path);
	}
	rmdir(sv->dir);
}

/* ---- images ------------------------------------------------------------ */

static unsigned char image_byte(uint64_t off)
{
	uint64_t x = (off / 8 + 1) * UINT64_C(0x9e3779b97f4a7c15);

	x ^= x >> 31;
	return (unsigned char)(x >> (8 * (off % 8)));
}

/* dir/image.raw of len bytes; returns its path in out. */
static void make_image(const struct server *sv, size_t len, char *out,
		       size_t size)
{
	unsigned char *buf = malloc(len);
	int fd;

	ck_assert_ptr_nonnull(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = image_byte(i);
	in_dir(sv, "image.raw", out, size);
	fd = open(out, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "open %s: %s", out, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

/* The server's directory must exist before the image goes in it, and the
 * image before the server: so the directory is made first. */
static void server_dir(struct server *sv)
{
	strcpy(sv->dir, "/tmp/libuffd-test-nbd-XXXXXX");
	ck_assert_msg(mkdtemp(sv->dir), "mkdtemp: %s", strerror(errno));
}

/* Starts nbdkit with args (plugin, its parameters, filters) on a fresh
 * socket in the directory made by server_dir(); sv->uri reaches it. */
static void server_start_in(struct server *sv, const char *const *args)
{
	int lfd;

	in_dir(sv, "nbd.sock", sv->sock, sizeof(sv->sock));
	snprintf(sv->uri, sizeof(sv->uri), "nbd+unix:///?socket=%s",
		 sv->sock);
	lfd = listen_unix(sv->sock);
	sv->pid = fork();
	ck_assert_int_ge(sv->pid, 0);
	if (!sv->pid)
		exec_nbdkit(lfd, args);
	close(lfd);
}

/* Asserts that [p, p+len) holds image bytes [off, off+len), with bytes
 * at or past image_len zero. Reading faults the pages in. */
static void check_image(const unsigned char *p, size_t len, uint64_t off,
			uint64_t image_len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char want = off + i < image_len ? image_byte(off + i)
							 : 0;

		if (p[i] != want)
			ck_abort_msg("byte %zu (page %zu) is %#x, expected %#x",
				     i, i / test_page(), p[i], want);
	}
}

/* ---- the loop ---------------------------------------------------------- */

static struct uffd_source *nbd_source(const char *uri, uint64_t *size)
{
	struct uffd_source *src = NULL;
	int ret = uffd_source_new_nbd(uri, size, &src);

	ck_assert_msg(ret == 0, "uffd_source_new_nbd(%s): %s", uri,
		      uffd_last_error());
	ck_assert_ptr_nonnull(src);
	return src;
}

/* What the loop's error callback saw. */
struct errors {
	pthread_mutex_t lock;
	unsigned count;
	int first;
	uint64_t first_offset;
};

static void on_error(void *arg, struct uffd_region *region, uint64_t offset,
		     int err)
{
	struct errors *e = arg;

	pthread_mutex_lock(&e->lock);
	if (!e->count++) {
		e->first = err;
		e->first_offset = offset;
	}
	pthread_mutex_unlock(&e->lock);
}

static unsigned errors_count(struct errors *e)
{
	unsigned n;

	pthread_mutex_lock(&e->lock);
	n = e->count;
	pthread_mutex_unlock(&e->lock);
	return n;
}

/* A loop on driver (NULL after a SKIP line when it was not built), with
 * threads workers, failures mapped to zeros and reported to errs. */
static struct uffd_loop *new_loop(struct uffd_handle *h,
				  enum uffd_loop_driver driver,
				  unsigned threads, struct errors *errs)
{
	struct uffd_loop_config *cfg = NULL;
	struct uffd_loop *loop = NULL;
	int ret;

	ck_assert_int_eq(uffd_loop_config_new(&cfg), 0);
	ret = uffd_loop_config_set_driver(cfg, driver);
	if (ret == -ENOTSUP) {
		printf("SKIP: io_uring driver not built\n");
		uffd_loop_config_free(cfg);
		return NULL;
	}
	ck_assert_int_eq(ret, 0);
	ck_assert_int_eq(uffd_loop_config_set_threads(cfg, threads), 0);
	ck_assert_int_eq(uffd_loop_config_set_fail_policy(cfg,
							  UFFD_FAIL_ZERO), 0);
	if (errs)
		ck_assert_int_eq(uffd_loop_config_set_error_callback(
					 cfg, on_error, errs), 0);
	ret = uffd_loop_new(h, cfg, &loop);
	uffd_loop_config_free(cfg);
	ck_assert_msg(ret == 0, "uffd_loop_new: %s", uffd_last_error());
	return loop;
}

/* Adds [mem, mem+len) served from src; the caller's reference to src is
 * dropped here, as the header asks. */
static void add_region(struct uffd_loop *loop, void *mem, size_t len,
		       struct uffd_source *src, bool prefetch)
{
	struct uffd_region_config *rc = NULL;
	int ret;

	ck_assert_int_eq(uffd_region_config_new(&rc), 0);
	ck_assert_int_eq(uffd_region_config_set_range(rc, mem, len), 0);
	ck_assert_int_eq(uffd_region_config_set_source(rc, src, 0), 0);
	ck_assert_int_eq(uffd_region_config_set_prefetch(rc, prefetch), 0);
	ret = uffd_loop_add_region(loop, rc, NULL);
	uffd_region_config_free(rc);
	uffd_source_free(src);
	ck_assert_msg(ret == 0, "add_region: %s", uffd_last_error());
}

static void get_stats(struct uffd_loop *loop, struct uffd_loop_stats *st)
{
	ck_assert_int_eq(uffd_loop_get_stats(loop, st, sizeof(*st)), 0);
}

/* ---- tests -------------------------------------------------------------- */

static const char *const image_files[] = { "image.raw", NULL };

/*
 * A lazy restore: the region is touched in a scattered order while the
 * loop prefetches the rest, then checked whole once the loop says it is
 * complete. Runs once per driver (_i).
 */
START_TEST(restore_image)
{
	static const enum uffd_loop_driver drivers[] = { UFFD_DRIVER_POLL,
							 UFFD_DRIVER_URING };
	const size_t ps = test_page(), npages = 512, len = npages * ps;
	char image[128], file_arg[160];
	const char *args[] = { "file", file_arg, NULL };
	struct uffd_loop_stats st;
	struct server sv;
	struct uffd_handle *h = open_handle();
	struct errors errs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uffd_loop *loop = new_loop(h, drivers[_i], 2, &errs);
	unsigned char *mem;
	uint64_t size = 0;

	if (!loop) {
		uffd_handle_free(h);
		return;
	}
	server_dir(&sv);
	make_image(&sv, len, image, sizeof(image));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	server_start_in(&sv, args);

	mem = map_anon(len);
	add_region(loop, mem, len, nbd_source(sv.uri, &size), true);
	ck_assert_uint_eq(size, len);
	ck_assert_int_eq(uffd_loop_start(loop), 0);
	/* a stride that visits every page once, out of order */
	for (size_t k = 0, i = 0; k < npages; k++, i = (i + 97) % npages)
		check_image(mem + i * ps, ps, i * ps, len);
	ck_assert_msg(uffd_loop_wait_complete(loop, TEST_WAIT_MS) == 0,
		      "wait_complete: %s", uffd_last_error());
	check_image(mem, len, 0, len);
	get_stats(loop, &st);
	ck_assert_uint_eq(st.pages_resolved, npages);
	ck_assert_uint_eq(st.fetch_failures, 0);
	ck_assert_uint_eq(errors_count(&errs), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(mem, len);
	server_stop(&sv, image_files);
}
END_TEST

/* An export of 3 pages and 100 bytes behind a 5-page region: the rest of
 * the fourth page and the fifth read as zeros, and no read asks the server
 * for bytes past its end (nbdkit would fail it). */
START_TEST(short_export)
{
	const size_t ps = test_page(), len = 5 * ps, image_len = 3 * ps + 100;
	char image[128], file_arg[160];
	const char *args[] = { "file", file_arg, NULL };
	struct server sv;
	struct uffd_handle *h = open_handle();
	struct errors errs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uffd_loop *loop = new_loop(h, UFFD_DRIVER_POLL, 1, &errs);
	unsigned char *mem;
	uint64_t size = 0;

	server_dir(&sv);
	make_image(&sv, image_len, image, sizeof(image));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	server_start_in(&sv, args);

	mem = map_anon(len);
	add_region(loop, mem, len, nbd_source(sv.uri, &size), false);
	ck_assert_uint_eq(size, image_len);
	ck_assert_int_eq(uffd_loop_start(loop), 0);
	/* the last page first: a fetch entirely past the end */
	check_image(mem + 4 * ps, ps, 4 * ps, image_len);
	check_image(mem, len, 0, image_len);
	ck_assert_uint_eq(errors_count(&errs), 0);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(mem, len);
	server_stop(&sv, image_files);
}
END_TEST

/* A server that refuses reads over half a page (blocksize-policy, in
 * error mode): every fetch, one page or a readahead or prefetch window of
 * many, must be cut into reads it accepts. */
START_TEST(small_reads)
{
	const size_t ps = test_page(), npages = 256, len = npages * ps;
	char image[128], file_arg[160], max_arg[64];
	const char *args[] = { "--filter=blocksize-policy", "file", file_arg,
			       max_arg, "blocksize-preferred=512",
			       "blocksize-error-policy=error", NULL };
	struct uffd_loop_stats st;
	struct server sv;
	struct uffd_handle *h = open_handle();
	struct errors errs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uffd_loop *loop = new_loop(h, UFFD_DRIVER_POLL, 1, &errs);
	unsigned char *mem;

	server_dir(&sv);
	make_image(&sv, len, image, sizeof(image));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	snprintf(max_arg, sizeof(max_arg), "blocksize-maximum=%zu", ps / 2);
	server_start_in(&sv, args);

	mem = map_anon(len);
	add_region(loop, mem, len, nbd_source(sv.uri, NULL), true);
	ck_assert_int_eq(uffd_loop_start(loop), 0);
	check_image(mem, len, 0, len);
	ck_assert_msg(uffd_loop_wait_complete(loop, TEST_WAIT_MS) == 0,
		      "wait_complete: %s", uffd_last_error());
	get_stats(loop, &st);
	ck_assert_uint_eq(st.fetch_failures, 0);
	ck_assert_msg(errors_count(&errs) == 0, "%u errors, first %d",
		      errors_count(&errs), errs.first);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(mem, len);
	server_stop(&sv, image_files);
}
END_TEST

/*
 * Read errors injected by the server (the error filter fails every read
 * while dir/fail exists): a page read before is intact, a page read after
 * gets the failure policy (zeros here) and the error callback hears EIO
 * for its offset.
 */
START_TEST(read_errors)
{
	static const char *const files[] = { "image.raw", "fail", NULL };
	const size_t ps = test_page(), len = 16 * ps;
	char image[128], file_arg[160], fail[128], fail_arg[160];
	const char *args[] = { "--filter=error", "file", file_arg,
			       "error-pread-rate=100%", fail_arg, NULL };
	struct uffd_loop_stats st;
	struct server sv;
	struct uffd_handle *h = open_handle();
	struct errors errs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uffd_loop *loop = new_loop(h, UFFD_DRIVER_POLL, 1, &errs);
	struct uffd_region_config *rc = NULL;
	unsigned char *mem;
	int fd;

	server_dir(&sv);
	make_image(&sv, len, image, sizeof(image));
	in_dir(&sv, "fail", fail, sizeof(fail));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	snprintf(fail_arg, sizeof(fail_arg), "error-pread-file=%s", fail);
	server_start_in(&sv, args);

	mem = map_anon(len);
	/* one page per fetch, so the failure is exactly the page asked for */
	ck_assert_int_eq(uffd_region_config_new(&rc), 0);
	ck_assert_int_eq(uffd_region_config_set_range(rc, mem, len), 0);
	{
		struct uffd_source *src = nbd_source(sv.uri, NULL);

		ck_assert_int_eq(uffd_region_config_set_source(rc, src, 0), 0);
		uffd_source_free(src);
	}
	ck_assert_int_eq(uffd_region_config_set_readahead(rc, 0, false), 0);
	ck_assert_int_eq(uffd_loop_add_region(loop, rc, NULL), 0);
	uffd_region_config_free(rc);
	ck_assert_int_eq(uffd_loop_start(loop), 0);

	check_image(mem + 2 * ps, ps, 2 * ps, len);
	fd = open(fail, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	for (size_t i = 0; i < ps; i++)
		ck_assert_uint_eq(mem[9 * ps + i], 0);
	ck_assert_uint_eq(errors_count(&errs), 1);
	ck_assert_int_eq(errs.first, -EIO);
	ck_assert_uint_eq(errs.first_offset, 9 * ps);
	get_stats(loop, &st);
	ck_assert_uint_eq(st.fetch_failures, 1);
	ck_assert_uint_eq(st.pages_zeroed, 1);
	/* the page read before the failures is still there */
	check_image(mem + 2 * ps, ps, 2 * ps, len);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(mem, len);
	server_stop(&sv, files);
}
END_TEST

/* The server is killed after the first page: the next fault still ends
 * (zeros, by policy) with an error reported, and everything is freed
 * without waiting for the dead server. */
START_TEST(server_dies)
{
	const size_t ps = test_page(), len = 64 * ps;
	char image[128], file_arg[160];
	const char *args[] = { "file", file_arg, NULL };
	struct server sv;
	struct uffd_handle *h = open_handle();
	struct errors errs = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct uffd_loop *loop = new_loop(h, UFFD_DRIVER_POLL, 1, &errs);
	unsigned char *mem;

	server_dir(&sv);
	make_image(&sv, len, image, sizeof(image));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	server_start_in(&sv, args);

	mem = map_anon(len);
	add_region(loop, mem, len, nbd_source(sv.uri, NULL), false);
	ck_assert_int_eq(uffd_loop_start(loop), 0);
	check_image(mem, ps, 0, len);
	server_kill(&sv);
	for (size_t i = 0; i < ps; i++)
		ck_assert_uint_eq(mem[40 * ps + i], 0);
	ck_assert_uint_ge(errors_count(&errs), 1);
	ck_assert_msg(errs.first_offset == 40 * ps, "error at %#llx",
		      (unsigned long long)errs.first_offset);

	uffd_loop_free(loop);
	uffd_handle_free(h);
	munmap(mem, len);
	server_stop(&sv, image_files);
}
END_TEST

/* Sends a command to the pause filter and waits for its acknowledgement
 * (the same letter in upper case). */
static void pause_command(const char *ctl, char cmd)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char ack = 0;

	ck_assert_int_ge(fd, 0);
	strcpy(sa.sun_path, ctl);
	ck_assert_msg(!connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
		      "connect %s: %s", ctl, strerror(errno));
	ck_assert_int_eq(write(fd, &cmd, 1), 1);
	ck_assert_int_eq(read(fd, &ack, 1), 1);
	ck_assert_int_eq(ack, cmd - 'a' + 'A');
	close(fd);
}

/*
 * The server is paused, so prefetch reads (and a faulting thread's) hang
 * there; freeing the loop drops the last reference to the source, which
 * must cut the connections, see every read end, and return: no hang, no
 * late completion into the freed loop (ASan), no fd left open. The
 * thread that faulted is let go by the unregistration.
 */
START_TEST(free_with_reads_in_flight)
{
	static const char *const files[] = { "image.raw", "ctl", NULL };
	const size_t ps = test_page(), len = 256 * ps;
	char image[128], file_arg[160], ctl[128], ctl_arg[160];
	const char *args[] = { "--filter=pause", "file", file_arg, ctl_arg,
			       NULL };
	struct server sv;
	int fds = count_fds();
	struct uffd_handle *h = open_handle();
	struct uffd_loop *loop = new_loop(h, UFFD_DRIVER_POLL, 1, NULL);
	struct toucher t;
	unsigned char *mem;

	server_dir(&sv);
	make_image(&sv, len, image, sizeof(image));
	in_dir(&sv, "ctl", ctl, sizeof(ctl));
	snprintf(file_arg, sizeof(file_arg), "file=%s", image);
	snprintf(ctl_arg, sizeof(ctl_arg), "pause-control=%s", ctl);
	server_start_in(&sv, args);

	mem = map_anon(len);
	/* connected: nbdkit is serving, so its control socket is there */
	add_region(loop, mem, len, nbd_source(sv.uri, NULL), true);
	pause_command(ctl, 'p');
	ck_assert_int_eq(uffd_loop_start(loop), 0);
	toucher_start(&t, mem + 100 * ps, false, 0);

	uffd_loop_free(loop);
	toucher_join(&t);
	ck_assert_msg(t.seen == 0 || t.seen == image_byte(100 * ps),
		      "the faulting thread read %#x", t.seen);
	uffd_handle_free(h);
	ck_assert_int_eq(count_fds(), fds);
	munmap(mem, len);
	server_stop(&sv, files);
}
END_TEST

START_TEST(bad_input)
{
	struct server sv = { .pid = 0 };
	struct uffd_source *src = NULL;
	struct uffd_handle *h;
	struct uffd_sigbus *sb = NULL;
	struct uffd_region_config *rc = NULL;
	char missing[128];
	uint64_t size = 7;
	int fds = count_fds(), ret;

	ck_assert_uffd_err(uffd_source_new_nbd(NULL, NULL, &src), EINVAL,
			   "NULL");
	ck_assert_uffd_err(uffd_source_new_nbd("nbd://localhost", NULL, NULL),
			   EINVAL, "NULL");
	/* not an NBD URI at all */
	ret = uffd_source_new_nbd("http://example.invalid/disk", &size, &src);
	ck_assert_msg(ret < 0, "an http URI was accepted");
	ck_assert_ptr_null(src);
	ck_assert_uint_eq(size, 7);
	ck_assert_msg(strstr(uffd_last_error(), "http://example.invalid"),
		      "reason: %s", uffd_last_error());
	ret = uffd_source_new_nbd("", NULL, &src);
	ck_assert_msg(ret < 0, "an empty URI was accepted");
	/* a socket nobody listens on */
	server_dir(&sv);
	in_dir(&sv, "none.sock", missing, sizeof(missing));
	snprintf(sv.uri, sizeof(sv.uri), "nbd+unix:///?socket=%s", missing);
	ret = uffd_source_new_nbd(sv.uri, NULL, &src);
	ck_assert_msg(ret == -ENOENT || ret == -ECONNREFUSED,
		      "missing socket: %d (%s)", ret, uffd_last_error());
	ck_assert_msg(strstr(uffd_last_error(), "cannot connect"),
		      "reason: %s", uffd_last_error());
	ck_assert_int_eq(count_fds(), fds);

	/* a live source is still a custom one: not for in-thread SIGBUS
	 * resolution */
	{
		char image[128], file_arg[160];
		const char *args[] = { "file", file_arg, NULL };
		void *mem;

		make_image(&sv, 4 * test_page(), image, sizeof(image));
		snprintf(file_arg, sizeof(file_arg), "file=%s", image);
		server_start_in(&sv, args);
		src = nbd_source(sv.uri, NULL);
		h = open_handle_with(UFFD_FEAT_SIGBUS);
		ck_assert_int_eq(uffd_sigbus_new(h, &sb), 0);
		mem = map_anon(4 * test_page());
		ck_assert_int_eq(uffd_region_config_new(&rc), 0);
		ck_assert_int_eq(uffd_region_config_set_range(
					 rc, mem, 4 * test_page()), 0);
		ck_assert_int_eq(uffd_region_config_set_source(rc, src, 0), 0);
		ck_assert_int_eq(uffd_sigbus_add_region(sb, rc), -ENOTSUP);
		uffd_region_config_free(rc);
		uffd_sigbus_free(sb);
		uffd_handle_free(h);
		uffd_source_free(src);
		munmap(mem, 4 * test_page());
	}
	ck_assert_int_eq(count_fds(), fds);
	server_stop(&sv, image_files);
}
END_TEST

/* A server that takes the connection and never says a word: the source
 * gives up after its time limit instead of hanging, with nothing left
 * open. */
START_TEST(connect_timeout)
{
	struct server sv = { .pid = 0 };
	struct uffd_source *src = NULL;
	int fds = count_fds(), lfd;

	server_dir(&sv);
	in_dir(&sv, "mute.sock", sv.sock, sizeof(sv.sock));
	snprintf(sv.uri, sizeof(sv.uri), "nbd+unix:///?socket=%s", sv.sock);
	lfd = listen_unix(sv.sock);
	ck_assert_uffd_err(uffd_source_new_nbd_timeout(sv.uri, 100, NULL,
						       &src),
			   ETIMEDOUT, "no handshake within 100 ms");
	ck_assert_ptr_null(src);
	ck_assert_uffd_err(uffd_source_new_nbd_timeout(sv.uri, 0, NULL, &src),
			   ETIMEDOUT, "no handshake within 0 ms");
	ck_assert_uffd_err(uffd_source_new_nbd_timeout(sv.uri, -2, NULL, &src),
			   EINVAL, "timeout -2 ms");
	ck_assert_uffd_err(uffd_source_new_nbd_timeout(NULL, 100, NULL, &src),
			   EINVAL, "NULL");
	close(lfd);
	ck_assert_int_eq(count_fds(), fds);
	server_stop(&sv, NULL);
}
END_TEST

static Suite *nbd_suite(void)
{
	Suite *s = suite_create("nbd");
	TCase *tc = tcase_create("source");

	tcase_add_loop_test(tc, restore_image, 0, 2);
	tcase_add_test(tc, short_export);
	tcase_add_test(tc, small_reads);
	tcase_add_test(tc, read_errors);
	tcase_add_test(tc, server_dies);
	tcase_add_test(tc, free_with_reads_in_flight);
	tcase_add_test(tc, bad_input);
	tcase_add_test(tc, connect_timeout);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct uffd_source *src = NULL;

	/* a library built without libnbd: nothing to test */
	if (uffd_source_new_nbd(NULL, NULL, &src) == -ENOTSUP) {
		printf("SKIP: libuffd built without libnbd\n");
		return 77;
	}
	return run_suite(nbd_suite());
}
