// SPDX-License-Identifier: MIT
/*
 * kvm-lazy-guest: a KVM guest whose RAM is restored lazily, as a VMM
 * restoring a snapshot would do it.
 *
 * The program writes a memory image (a little code, then pseudo-random
 * data) to a file. Guest RAM is a memfd mapped MAP_SHARED and given to KVM
 * as its only memory slot; it starts empty. A libuffd loop serves every
 * missing page from the image file on its own thread while one vCPU, in
 * 32-bit flat protected mode, runs the image's code: it visits every page of
 * RAM once, in a scattered order, folds one word of each into a checksum,
 * reports it with an OUT and halts. The faults are raised by KVM inside the
 * kernel (get_user_pages() when it maps a guest page for the vCPU), never by
 * user code, which is why the userfaultfd must be a full one, not
 * user-mode-only.
 *
 * Two ways of serving are shown:
 *  copy:     MISSING mode; pages are read from the file into a buffer and
 *            placed with UFFDIO_COPY;
 *  continue: MISSING|MINOR with a second, unregistered mapping of the memfd
 *            (the alias): the loop reads the file straight into the page
 *            cache through the alias, then maps it with UFFDIO_CONTINUE, so
 *            the data is copied once.
 *
 * Exit status: 0 when every guest checksum matches the host's, 77 (skip)
 * when KVM or userfaultfd cannot be used here, 1 on failure, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <libuffd.h>

#define EXIT_SKIP 77
#define EXIT_USAGE 2

#define GUEST_PAGE 4096u
#define CODE_GPA 0x1000u    /* where the guest code sits in the image */
#define RESULT_PORT 0x10    /* the guest OUTs its checksum here */
#define TSS_GPA 0xfffbd000u /* 3 pages KVM may need on Intel, above RAM */
#define MAX_RAM_MIB 1024u   /* RAM ends well below TSS_GPA */
#define MAX_EXITS 1000      /* the guest needs 2; more means it is lost */

/*
 * The guest, 32-bit code. In: ebx = first page, ecx = pages to visit,
 * edi = step (in pages, coprime with the page count), ebp = page count.
 * Each visited page gives the word at offset (page & 0x3ff) * 4, so every
 * word position is used and consecutive visits land far apart in RAM.
 */
static const uint8_t guest_code[] = {
	0x31, 0xc0,                         /*       xor  eax, eax          */
	0x89, 0xde,                         /* next: mov  esi, ebx          */
	0x81, 0xe6, 0xff, 0x03, 0x00, 0x00, /*       and  esi, 0x3ff        */
	0xc1, 0xe6, 0x02,                   /*       shl  esi, 2            */
	0x89, 0xda,                         /*       mov  edx, ebx          */
	0xc1, 0xe2, 0x0c,                   /*       shl  edx, 12           */
	0xc1, 0xc0, 0x05,                   /*       rol  eax, 5            */
	0x03, 0x04, 0x16,                   /*       add  eax, [esi + edx]  */
	0x01, 0xfb,                         /*       add  ebx, edi          */
	0x39, 0xeb,                         /*       cmp  ebx, ebp          */
	0x72, 0x02,                         /*       jb   in                */
	0x29, 0xeb,                         /*       sub  ebx, ebp          */
	0x49,                               /* in:   dec  ecx               */
	0x75, 0xdf,                         /*       jnz  next              */
	0xe7, RESULT_PORT,                  /*       out  RESULT_PORT, eax  */
	0xf4,                               /*       hlt                    */
};

_Static_assert(CODE_GPA + sizeof(guest_code) <= (1u << 20),
	       "the code must fit in the smallest guest RAM");

enum serve_mode { SERVE_COPY, SERVE_CONTINUE };

struct options {
	unsigned ram_mib;
	bool copy, cont;  /* which serving modes to run */
	unsigned timeout; /* seconds before the watchdog gives up */
};

struct image {
	uint8_t *data; /* the host's copy, to compute the expected result */
	size_t size;
	int fd;        /* the file the loop serves from */
	uint32_t npages, step;
};

struct kvm {
	int fd;          /* /dev/kvm */
	size_t run_size; /* of each vCPU's shared kvm_run */
};

struct vm {
	int fd, vcpu;
	struct kvm_run *run;
};

struct ram {
	int memfd;
	void *mem;   /* registered, and the slot's userspace_addr */
	void *alias; /* continue mode only: never registered */
};

static int errorf(const char *what)
{
	fprintf(stderr, "kvm-lazy-guest: %s: %s\n", what, strerror(errno));
	return -1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- image */

static uint32_t rol32(uint32_t x, unsigned n)
{
	return (x << n) | (x >> (32 - n));
}

static uint32_t gcd32(uint32_t a, uint32_t b)
{
	while (b) {
		uint32_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* A step near npages / phi visits every page once and jumps far each time,
 * so neither the kernel nor the loop's readahead sees a sequential run. */
static uint32_t pick_step(uint32_t npages)
{
	uint32_t step = (uint32_t)((uint64_t)npages * 618 / 1000);

	while (gcd32(step, npages) != 1)
		step++;
	return step;
}

/* What the guest code computes, done on the host from the image. */
static uint32_t expected_checksum(const struct image *img)
{
	uint32_t sum = 0, page = 0;

	for (uint32_t i = 0; i < img->npages; i++) {
		uint32_t word;

		memcpy(&word, img->data + (size_t)page * GUEST_PAGE +
				      (page & 0x3ff) * 4, sizeof(word));
		sum = rol32(sum, 5) + word;
		page += img->step;
		if (page >= img->npages)
			page -= img->npages;
	}
	return sum;
}

/* An unnamed file in $TMPDIR (or /tmp), as a snapshot would be; a memfd
 * where the filesystem has no O_TMPFILE. */
static int image_file(void)
{
	const char *dir = getenv("TMPDIR");
	int fd = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC,
		      0600);

	if (fd < 0)
		fd = memfd_create("kvm-lazy-guest-image", MFD_CLOEXEC);
	return fd;
}

static int image_create(struct image *img, unsigned ram_mib)
{
	uint32_t x = 0x2545f491; /* xorshift32: the same image every run */

	img->size = (size_t)ram_mib << 20;
	img->npages = (uint32_t)(img->size / GUEST_PAGE);
	img->step = pick_step(img->npages);
	img->data = malloc(img->size);
	if (!img->data)
		return errorf("image buffer");
	for (size_t i = 0; i < img->size; i += 4) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		memcpy(img->data + i, &x, 4);
	}
	memcpy(img->data + CODE_GPA, guest_code, sizeof(guest_code));
	img->fd = image_file();
	if (img->fd < 0)
		return errorf("image file");
	for (size_t off = 0; off < img->size;) {
		ssize_t n = pwrite(img->fd, img->data + off, img->size - off,
				   (off_t)off);

		if (n <= 0)
			return errorf("writing the image");
		off += (size_t)n;
	}
	return 0;
}

static void image_destroy(struct image *img)
{
	if (img->fd >= 0)
		close(img->fd);
	free(img->data);
}

/* ------------------------------------------------------------ guest RAM */

static int ram_create(struct ram *ram, size_t size, bool alias)
{
	ram->mem = ram->alias = MAP_FAILED;
	ram->memfd = memfd_create("kvm-lazy-guest-ram", MFD_CLOEXEC);
	if (ram->memfd < 0)
		return errorf("memfd_create");
	if (ftruncate(ram->memfd, (off_t)size))
		return errorf("sizing guest RAM");
	ram->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			ram->memfd, 0);
	if (ram->mem == MAP_FAILED)
		return errorf("mapping guest RAM");
	if (!alias)
		return 0;
	ram->alias = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			  ram->memfd, 0);
	if (ram->alias == MAP_FAILED)
		return errorf("mapping the alias of guest RAM");
	return 0;
}

static void ram_destroy(struct ram *ram, size_t size)
{
	if (ram->alias != MAP_FAILED)
		munmap(ram->alias, size);
	if (ram->mem != MAP_FAILED)
		munmap(ram->mem, size);
	if (ram->memfd >= 0)
		close(ram->memfd);
}

/* --------------------------------------------------------------- serving */

/* A page the image cannot give is mapped as zeros (UFFD_FAIL_ZERO), so the
 * guest finishes and the checksum says what went wrong; POISON would have
 * KVM kill the process with SIGBUS. */
static void fetch_failed(void *arg, struct uffd_region *region,
			 uint64_t offset, int err)
{
	fprintf(stderr, "kvm-lazy-guest: reading the image at %#llx: %s\n",
		(unsigned long long)offset, strerror(-err));
}

static int loop_create(struct uffd_handle *h, struct uffd_loop **loop)
{
	struct uffd_loop_config *lc;
	int ret = uffd_loop_config_new(&lc);

	if (!ret)
		ret = uffd_loop_config_set_fail_policy(lc, UFFD_FAIL_ZERO);
	if (!ret)
		ret = uffd_loop_config_set_error_callback(lc, fetch_failed,
							  NULL);
	if (!ret)
		ret = uffd_loop_new(h, lc, loop);
	uffd_loop_config_free(lc);
	return ret;
}

static int region_add(struct uffd_loop *loop, const struct image *img,
		      const struct ram *ram, enum serve_mode mode)
{
	struct uffd_region_config *rc;
	struct uffd_source *src = NULL;
	int ret = uffd_source_new_fd(img->fd, 0, img->size, &src);

	if (!ret)
		ret = uffd_region_config_new(&rc);
	if (ret) {
		uffd_source_free(src);
		return ret;
	}
	ret = uffd_region_config_set_range(rc, ram->mem, img->size);
	if (!ret)
		ret = uffd_region_config_set_source(rc, src, 0);
	/* MINOR alone would let the kernel fill absent pages with zeros: the
	 * first touch of a page must still raise a MISSING fault */
	if (!ret && mode == SERVE_CONTINUE)
		ret = uffd_region_config_set_modes(rc, UFFD_MODE_MISSING |
						       UFFD_MODE_MINOR);
	if (!ret && mode == SERVE_CONTINUE)
		ret = uffd_region_config_set_alias(rc, ram->alias);
	if (!ret)
		ret = uffd_loop_add_region(loop, rc, NULL);
	uffd_region_config_free(rc);
	uffd_source_free(src); /* the region keeps its own reference */
	return ret;
}

/* ------------------------------------------------------------------ KVM */

static int skip(const char *reason)
{
	printf("SKIP: %s\n", reason);
	return EXIT_SKIP;
}

/*
 * Whether KVM can run a guest here. The CPU flags are not looked at: KVM
 * may run without VMX or SVM (PVM does), and may refuse with them (another
 * hypervisor owns the CPU). Creating a VM is the test that counts.
 * Returns 0, or an exit status (skip) after saying why.
 */
static int kvm_open(struct kvm *kvm)
{
	char why[160];
	int api, size, vm;

	kvm->fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm->fd < 0) {
		snprintf(why, sizeof(why), "cannot open /dev/kvm: %s",
			 strerror(errno));
		return skip(why);
	}
	api = ioctl(kvm->fd, KVM_GET_API_VERSION, 0);
	if (api < 0) {
		snprintf(why, sizeof(why), "KVM_GET_API_VERSION on /dev/kvm: "
			 "%s", strerror(errno));
		return skip(why);
	}
	if (api != KVM_API_VERSION) {
		snprintf(why, sizeof(why), "KVM API version %d, not %d", api,
			 KVM_API_VERSION);
		return skip(why);
	}
	if (ioctl(kvm->fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
		return skip("KVM lacks KVM_CAP_USER_MEMORY");
	size = ioctl(kvm->fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return skip("KVM_GET_VCPU_MMAP_SIZE gives no usable size");
	kvm->run_size = (size_t)size;
	vm = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		snprintf(why, sizeof(why), "KVM_CREATE_VM: %s (no usable "
			 "hardware virtualization?)", strerror(errno));
		return skip(why);
	}
	close(vm);
	return 0;
}

static int vm_create(const struct kvm *kvm, struct vm *vm,
		     const struct ram *ram, size_t size)
{
	struct kvm_userspace_memory_region slot = {
		.slot = 0,
		.guest_phys_addr = 0,
		.memory_size = size,
		.userspace_addr = (uintptr_t)ram->mem,
	};

	vm->vcpu = -1;
	vm->run = MAP_FAILED;
	vm->fd = ioctl(kvm->fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return errorf("KVM_CREATE_VM");
	/* Intel without unrestricted guest needs a TSS area outside RAM; the
	 * ioctl is harmless elsewhere */
	if (ioctl(vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_TSS_ADDR) > 0 &&
	    ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)TSS_GPA))
		return errorf("KVM_SET_TSS_ADDR");
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot))
		return errorf("KVM_SET_USER_MEMORY_REGION");
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu < 0)
		return errorf("KVM_CREATE_VCPU");
	vm->run = mmap(NULL, kvm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu, 0);
	if (vm->run == MAP_FAILED)
		return errorf("mapping the vCPU's kvm_run");
	return 0;
}

static void vm_destroy(const struct kvm *kvm, struct vm *vm)
{
	if (vm->run != MAP_FAILED)
		munmap(vm->run, kvm->run_size);
	if (vm->vcpu >= 0)
		close(vm->vcpu);
	if (vm->fd >= 0)
		close(vm->fd);
}

static void flat_segment(struct kvm_segment *seg, uint16_t selector,
			 uint8_t type)
{
	*seg = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector,
		.type = type, .present = 1, .dpl = 0, .db = 1, .s = 1,
		.l = 0, .g = 1,
	};
}

/* 32-bit protected mode with flat 4 GiB segments and no paging: guest
 * addresses are RAM offsets. KVM takes the hidden segment state as given,
 * so the guest needs no GDT of its own. */
static int vcpu_setup(const struct vm *vm, const struct image *img)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = {
		.rip = CODE_GPA,
		.rflags = 0x2, /* bit 1 is always set */
		.rbx = 0,
		.rcx = img->npages,
		.rdi = img->step,
		.rbp = img->npages,
	};

	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs))
		return errorf("KVM_GET_SREGS");
	flat_segment(&sregs.cs, 0x08, 0xb); /* code: execute/read, accessed */
	flat_segment(&sregs.ds, 0x10, 0x3); /* data: read/write, accessed */
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 |= 1; /* PE */
	if (ioctl(vm->vcpu, KVM_SET_SREGS, &sregs))
		return errorf("KVM_SET_SREGS");
	if (ioctl(vm->vcpu, KVM_SET_REGS, &regs))
		return errorf("KVM_SET_REGS");
	return 0;
}

/* An exit the guest was not written to cause: say what it was. */
static int unexpected_exit(const struct kvm_run *run)
{
	switch (run->exit_reason) {
	case KVM_EXIT_FAIL_ENTRY:
		fprintf(stderr, "kvm-lazy-guest: the vCPU could not enter the "
			"guest (hardware reason %#llx)\n",
			(unsigned long long)run->fail_entry
				.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		fprintf(stderr, "kvm-lazy-guest: KVM internal error, "
			"suberror %u\n", run->internal.suberror);
		break;
	case KVM_EXIT_SHUTDOWN:
		fprintf(stderr, "kvm-lazy-guest: the guest triple-faulted\n");
		break;
	case KVM_EXIT_MMIO:
		fprintf(stderr, "kvm-lazy-guest: the guest touched %#llx, "
			"outside its RAM\n",
			(unsigned long long)run->mmio.phys_addr);
		break;
	case KVM_EXIT_IO:
		fprintf(stderr, "kvm-lazy-guest: unexpected port I/O: %s "
			"port %#x, size %u\n",
			run->io.direction == KVM_EXIT_IO_OUT ? "out to" : "in from",
			run->io.port, run->io.size);
		break;
	default:
		fprintf(stderr, "kvm-lazy-guest: unexpected KVM exit "
			"reason %u\n", run->exit_reason);
	}
	return -1;
}

static bool is_result(const struct kvm_run *run)
{
	return run->exit_reason == KVM_EXIT_IO &&
	       run->io.direction == KVM_EXIT_IO_OUT &&
	       run->io.port == RESULT_PORT && run->io.size == 4 &&
	       run->io.count == 1;
}

/* Runs the vCPU until HLT; *sum gets what the guest reported. */
static int vcpu_run(const struct vm *vm, uint32_t *sum)
{
	bool reported = false;

	for (int exits = 0; exits < MAX_EXITS; exits++) {
		const struct kvm_run *run = vm->run;

		if (ioctl(vm->vcpu, KVM_RUN, 0)) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return errorf("KVM_RUN");
		}
		if (is_result(run)) {
			memcpy(sum, (const uint8_t *)run + run->io.data_offset,
			       sizeof(*sum));
			reported = true;
		} else if (run->exit_reason == KVM_EXIT_HLT) {
			if (reported)
				return 0;
			fprintf(stderr, "kvm-lazy-guest: the guest halted "
				"without a result\n");
			return -1;
		} else {
			return unexpected_exit(run);
		}
	}
	fprintf(stderr, "kvm-lazy-guest: the guest exited %d times without "
		"halting\n", MAX_EXITS);
	return -1;
}

/* ----------------------------------------------------------------- runs */

/* Bucket i of the histogram is [2^i, 2^(i+1)) us: the median's bucket. */
static unsigned median_bucket(const struct uffd_loop_stats *st)
{
	uint64_t total = 0, seen = 0;
	unsigned i;

	for (i = 0; i < UFFD_LATENCY_BUCKETS; i++)
		total += st->latency_us_log2[i];
	for (i = 0; i < UFFD_LATENCY_BUCKETS - 1; i++) {
		seen += st->latency_us_log2[i];
		if (seen * 2 >= total)
			break;
	}
	return i;
}

static void report(const char *name, double ms,
		   const struct uffd_loop_stats *st)
{
	uint64_t faults = st->faults_missing + st->faults_minor;
	unsigned b = median_bucket(st);

	printf("[%s] guest done in %.1f ms; %llu faults served (%llu "
	       "missing, %llu minor)", name, ms, (unsigned long long)faults,
	       (unsigned long long)st->faults_missing,
	       (unsigned long long)st->faults_minor);
	if (faults)
		printf(", median latency %u-%u us", b ? 1u << b : 0u,
		       1u << (b + 1));
	printf("\n[%s] %llu pages resolved, %llu of them by readahead\n",
	       name, (unsigned long long)st->pages_resolved,
	       (unsigned long long)st->readahead_pages);
}

/* Checks the guest's answer, then every byte of RAM against the image: the
 * guest read one word a page, the loop filled whole pages. Runs while the
 * loop still serves, in case a page is in the page cache but not mapped. */
static int verify(const struct image *img, const struct ram *ram,
		  uint32_t guest_sum, char *msg, size_t size)
{
	uint32_t want = expected_checksum(img);

	if (guest_sum != want) {
		snprintf(msg, size, "checksum MISMATCH: guest %#010x, host "
			 "%#010x", guest_sum, want);
		return -1;
	}
	if (memcmp(ram->mem, img->data, img->size)) {
		snprintf(msg, size, "guest RAM differs from the image");
		return -1;
	}
	snprintf(msg, size, "guest %#010x = host %#010x: checksum match",
		 guest_sum, want);
	return 0;
}

/*
 * The statistics are read once the loop has stopped: a worker counts a
 * fault after the ioctl that wakes the vCPU, so reading them as soon as the
 * guest halts could miss the last one.
 */
static int finish(const char *name, struct uffd_loop *loop, double ms,
		  const struct image *img, const struct ram *ram, uint32_t sum)
{
	struct uffd_loop_stats st;
	char msg[128];
	int ret = verify(img, ram, sum, msg, sizeof(msg));

	if (uffd_loop_stop(loop) || uffd_loop_get_stats(loop, &st,
							sizeof(st))) {
		fprintf(stderr, "kvm-lazy-guest: loop: %s\n",
			uffd_last_error());
		return -1;
	}
	report(name, ms, &st);
	printf("[%s] %s\n", name, msg);
	return ret;
}

static int serve_and_run(const struct kvm *kvm, const struct image *img,
			 const struct ram *ram, struct uffd_loop *loop,
			 const char *name)
{
	struct vm vm;
	uint32_t sum = 0;
	double t0;
	int ret = vm_create(kvm, &vm, ram, img->size);

	if (!ret)
		ret = vcpu_setup(&vm, img);
	if (!ret && uffd_loop_start(loop)) {
		fprintf(stderr, "kvm-lazy-guest: loop: %s\n", uffd_last_error());
		ret = -1;
	}
	t0 = now_ms();
	if (!ret)
		ret = vcpu_run(&vm, &sum);
	if (!ret)
		ret = finish(name, loop, now_ms() - t0, img, ram, sum);
	vm_destroy(kvm, &vm);
	return ret;
}

static int run_mode(const struct kvm *kvm, const struct image *img,
		    enum serve_mode mode)
{
	const char *name = mode == SERVE_COPY ? "copy" : "continue";
	struct uffd_handle *h = NULL;
	struct uffd_loop *loop = NULL;
	struct ram ram;
	int ret = ram_create(&ram, img->size, mode == SERVE_CONTINUE);

	/* the defaults make a full handle: KVM's own faults reach it */
	if (!ret && (uffd_handle_new(NULL, &h) || loop_create(h, &loop) ||
		     region_add(loop, img, &ram, mode))) {
		fprintf(stderr, "kvm-lazy-guest: %s: %s\n", name,
			uffd_last_error());
		ret = -1;
	}
	if (!ret)
		ret = serve_and_run(kvm, img, &ram, loop, name);
	uffd_loop_free(loop);
	uffd_handle_free(h);
	ram_destroy(&ram, img->size);
	return ret;
}

/* --------------------------------------------------------------- main */

/*
 * If the loop ever failed to serve a fault, the vCPU would wait in the
 * kernel for good. A timer thread (not a signal handler: the waiting thread
 * may be asleep where handlers do not run) ends the process instead.
 */
static void watchdog(union sigval arg)
{
	fflush(stdout); /* what was done so far */
	fprintf(stderr, "kvm-lazy-guest: timed out after %d s: a fault was "
		"never served\n", arg.sival_int);
	_exit(1);
}

static int watchdog_arm(unsigned seconds)
{
	struct sigevent sev = {
		.sigev_notify = SIGEV_THREAD,
		.sigev_notify_function = watchdog,
		.sigev_value.sival_int = (int)seconds,
	};
	struct itimerspec its = { .it_value.tv_sec = (time_t)seconds };
	timer_t timer;

	if (timer_create(CLOCK_MONOTONIC, &sev, &timer))
		return errorf("timer_create");
	if (timer_settime(timer, 0, &its, NULL))
		return errorf("timer_settime");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: kvm-lazy-guest [--mode copy|continue|both] "
		"[--ram-mib N] [--timeout S]\n"
		"  --mode     how pages are served (default both)\n"
		"  --ram-mib  guest RAM in MiB, 1..%u (default 32)\n"
		"  --timeout  give up after S seconds, 1..3600 (default 60)\n",
		MAX_RAM_MIB);
}

static bool parse_uint(const char *s, unsigned min, unsigned max,
		       unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return false;
	*out = (unsigned)v;
	return true;
}

static bool parse_mode(const char *s, struct options *o)
{
	o->copy = !strcmp(s, "copy") || !strcmp(s, "both");
	o->cont = !strcmp(s, "continue") || !strcmp(s, "both");
	return o->copy || o->cont;
}

static const struct option longopts[] = {
	{ "mode", required_argument, NULL, 'm' },
	{ "ram-mib", required_argument, NULL, 'r' },
	{ "timeout", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* Whether option c's argument is valid (and then stored in o). */
static bool parse_option(int c, const char *arg, struct options *o)
{
	switch (c) {
	case 'm': return parse_mode(arg, o);
	case 'r': return parse_uint(arg, 1, MAX_RAM_MIB, &o->ram_mib);
	case 't': return parse_uint(arg, 1, 3600, &o->timeout);
	default: return false;
	}
}

static int parse_args(int argc, char **argv, struct options *o)
{
	int c, idx = 0;

	*o = (struct options){ .ram_mib = 32, .copy = true, .cont = true,
			       .timeout = 60 };
	while ((c = getopt_long(argc, argv, "", longopts, &idx)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?') {
			usage(stderr);
			return -1;
		}
		if (!parse_option(c, optarg, o)) {
			fprintf(stderr, "kvm-lazy-guest: bad value '%s' for "
				"--%s\n", optarg, longopts[idx].name);
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvm-lazy-guest: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return -1;
	}
	return 0;
}

/* A userfaultfd is needed too; where it is refused, skip like for KVM. */
static int uffd_usable(void)
{
	struct uffd_handle *h;
	int ret = uffd_handle_new(NULL, &h);

	if (ret == -EPERM || ret == -EACCES || ret == -ENOSYS) {
		char why[300];

		snprintf(why, sizeof(why), "no userfaultfd: %s",
			 uffd_last_error());
		return skip(why);
	}
	if (ret) {
		fprintf(stderr, "kvm-lazy-guest: userfaultfd: %s\n",
			uffd_last_error());
		return 1;
	}
	uffd_handle_free(h);
	return 0;
}

int main(int argc, char **argv)
{
	struct image img = { .fd = -1 };
	struct kvm kvm;
	struct options o;
	int ret;

	if (parse_args(argc, argv, &o))
		return EXIT_USAGE;
	ret = kvm_open(&kvm);
	if (!ret)
		ret = uffd_usable();
	if (ret) {
		if (kvm.fd >= 0)
			close(kvm.fd);
		return ret;
	}
	ret = watchdog_arm(o.timeout);
	if (!ret)
		ret = image_create(&img, o.ram_mib);
	if (!ret)
		printf("libuffd %s; guest RAM %u MiB: %u pages, visited with "
		       "a stride of %u pages\n", uffd_version(), o.ram_mib,
		       img.npages, img.step);
	if (!ret && o.copy)
		ret = run_mode(&kvm, &img, SERVE_COPY);
	if (!ret && o.cont)
		ret = run_mode(&kvm, &img, SERVE_CONTINUE);
	image_destroy(&img);
	close(kvm.fd);
	return ret ? 1 : 0;
}
