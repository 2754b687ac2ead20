// SPDX-License-Identifier: MIT
/*
 * What the benchmark needs from the system: CPU pinning, fresh memory,
 * resident-set readings, huge page reservations, and a description of the
 * machine for the report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <libuffd.h>

#include "bench.h"
#include "hugepool.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static cpu_set_t saved_cpus;

void bench_pin_self(int cpu)
{
	cpu_set_t set;

	sched_getaffinity(0, sizeof(saved_cpus), &saved_cpus);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		bench_die("cannot pin to CPU %d: %s", cpu, strerror(errno));
}

void bench_unpin_self(void)
{
	sched_setaffinity(0, sizeof(saved_cpus), &saved_cpus);
}

int bench_ncpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 1;
	return CPU_COUNT(&set);
}

static void read_first_match(const char *path, const char *key, char *out,
			     size_t size)
{
	char line[256];
	FILE *f = fopen(path, "re");

	snprintf(out, size, "?");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, key, strlen(key)) || !colon)
			continue;
		colon++;
		colon += strspn(colon, " \t");
		colon[strcspn(colon, "\n")] = 0;
		snprintf(out, size, "%s", colon);
		break;
	}
	fclose(f);
}

void bench_machine_describe(char *buf, size_t size)
{
	struct utsname u;
	char model[128], mem[64], flags[4096];
	FILE *f;

	uname(&u);
	read_first_match("/proc/cpuinfo", "model name", model, sizeof(model));
	read_first_match("/proc/meminfo", "MemTotal", mem, sizeof(mem));
	flags[0] = 0;
	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(flags, sizeof(flags), f))
		if (!strncmp(flags, "flags", 5))
			break;
	if (f)
		fclose(f);
	snprintf(buf, size, "Linux %s %s; %d CPUs (%s)%s; %s RAM", u.release,
		 u.machine, bench_ncpus(), model,
		 strstr(flags, " hypervisor") ? ", virtual machine" : "", mem);
}

void *bench_map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die("mmap of %zu bytes: %s", len, strerror(errno));
	return p;
}

/*
 * On a VM with free page reporting (virtio-balloon), guest memory that
 * stayed free for a couple of seconds goes back to the host, and its next
 * first touch costs a host fault per page: that would charge whichever
 * run comes after an idle moment. Touching and freeing len bytes just
 * before a run hands it memory the host backs, whichever run it is.
 */
void bench_prewarm(size_t len)
{
	char *p = bench_map_anon(len);

	if (madvise(p, len, MADV_POPULATE_WRITE))
		memset(p, 0, len);
	munmap(p, len);
}

void bench_unmap(void *addr, size_t len)
{
	if (addr)
		munmap(addr, len);
}

static uint64_t status_kib(const char *key)
{
	char v[64];

	read_first_match("/proc/self/status", key, v, sizeof(v));
	return strtoull(v, NULL, 10);
}

uint64_t bench_rss_anon_kib(void)
{
	return status_kib("RssAnon");
}

uint64_t bench_hwm_kib(void)
{
	return status_kib("VmHWM");
}

void bench_reset_hwm(void)
{
	/* "5" resets the peak resident set size (Linux >= 4.0). */
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (write(fd, "5", 1) < 0)
			bench_note("could not reset VmHWM: %s", strerror(errno));
		close(fd);
	}
}

bool bench_hugepages_get(unsigned n, char *why, size_t size)
{
	return hugepool_reserve((long)n, why, size);
}

void bench_hugepages_put(void)
{
	hugepool_release();
}

uint64_t bench_touch(char *addr, size_t len, size_t page, bool write)
{
	volatile char *p = addr;
	uint64_t sum = 0;

	for (size_t off = 0; off < len; off += page) {
		if (write)
			p[off] = 1;
		else
			sum += (unsigned char)p[off];
	}
	return sum;
}

/* Whether this libuffd has the io_uring driver. */
bool bench_have_uring(void)
{
	struct uffd_loop_config *lc;
	bool ok;

	if (uffd_loop_config_new(&lc))
		return false;
	ok = uffd_loop_config_set_driver(lc, UFFD_DRIVER_URING) == 0;
	uffd_loop_config_free(lc);
	return ok;
}
