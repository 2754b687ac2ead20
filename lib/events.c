// SPDX-License-Identifier: MIT
/* Reading events: one read() of many kernel messages, translated into
 * libuffd's own struct (so callers never see the kernel's packed layout). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Messages taken per read(): 64 x 32 bytes fits the stack comfortably and
 * covers a burst from every thread of a large process. */
#define READ_BATCH 64

static void event_from_msg(const struct kuffd_msg *m, struct uffd_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = m->event;
	switch (m->event) {
	case KUFFD_EVENT_PAGEFAULT:
		ev->flags = (uint32_t)m->arg.pagefault.flags &
			    (UFFD_FAULT_WRITE | UFFD_FAULT_WP | UFFD_FAULT_MINOR);
		ev->fault.address = m->arg.pagefault.address;
		ev->fault.tid = m->arg.pagefault.ptid;
		break;
	case KUFFD_EVENT_FORK:
		ev->fork.fd = (int)m->arg.fork.ufd;
		break;
	case KUFFD_EVENT_REMAP:
		ev->remap.from = m->arg.remap.from;
		ev->remap.to = m->arg.remap.to;
		ev->remap.len = m->arg.remap.len;
		break;
	case KUFFD_EVENT_REMOVE:
	case KUFFD_EVENT_UNMAP:
		ev->range.start = m->arg.remove.start;
		ev->range.end = m->arg.remove.end;
		break;
	}
}

/* The kernel has already dropped or moved the registrations of an unmapped
 * or remapped range; the handle's table follows. (Out of memory leaves an
 * entry stale, which only affects memory that is no longer registered.) */
static void track_layout(struct uffd_handle *h, const struct uffd_event *ev)
{
	if (ev->type == UFFD_EVENT_TYPE_UNMAP)
		uffd_regs_remove(h, ev->range.start, ev->range.end);
	else if (ev->type == UFFD_EVENT_TYPE_REMAP)
		uffd_regs_move(h, ev->remap.from, ev->remap.to, ev->remap.len);
}

UFFD_EXPORT int uffd_handle_read_events(struct uffd_handle *handle,
					struct uffd_event *events, size_t max)
{
	struct kuffd_msg msgs[READ_BATCH];
	size_t want = max < READ_BATCH ? max : READ_BATCH;
	ssize_t got;

	if (!handle || !events || !max)
		return uffd_err(EINVAL, "read_events: NULL argument or max 0");
	got = read(handle->fd, msgs, want * sizeof(msgs[0]));
	if (got < 0) {
		if (errno == EAGAIN)
			return 0; /* nothing pending: not an error */
		if (errno == EINTR)
			return uffd_err(EINTR, "read interrupted by a signal");
		return uffd_errf(errno, "reading events failed: %s",
				 strerror(errno));
	}
	if (got % (ssize_t)sizeof(msgs[0]))
		return uffd_errf(EIO, "the kernel returned %zd bytes, not a "
				 "whole number of messages", got);
	for (ssize_t i = 0; i < got / (ssize_t)sizeof(msgs[0]); i++) {
		event_from_msg(&msgs[i], &events[i]);
		track_layout(handle, &events[i]);
	}
	return (int)(got / (ssize_t)sizeof(msgs[0]));
}
