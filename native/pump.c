/*
 * Fulcrum's reactor pump (src/sys/reactor.ts): one epoll_wait, and for every ready socket
 * that the TCP relay has marked as plainly relaying to a peer, the read and the write the
 * relay would otherwise make through the FFI, one call each. What to do next (count the
 * bytes, keep what the peer did not take, end the stream) stays with the caller: each
 * event is reported with the results of the calls made for it.
 *
 * Why in C: through koffi every system call costs ~0.25 µs more than from C, and a
 * keep-alive request and its response are four of them (docs/benchmarks.md, issue 18).
 * Here a whole batch of events is one FFI call.
 *
 * Built by `npm run build` (src/sys/native.ts) with the system's C compiler; without it the
 * reactor makes the same calls one by one through koffi.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

/* The read result of an event the pump did not read for. */
#define FULCRUM_NOT_READ INT32_MIN

/*
 * ep: the epoll set; evs: room for `max` struct epoll_event; peer[fd] (fd < npeer): the
 * descriptor what is read from fd is written to, or -1 (the caller handles fd's events
 * itself); buf/buflen: the read buffer; out: 4 int32 per event — descriptor, events, read
 * result (bytes, 0 at end of stream, -errno, or FULCRUM_NOT_READ) and write result (bytes
 * or -errno).
 *
 * Only an event that is EPOLLIN alone is read for. Once a read leaves bytes in buf that the
 * caller must still copy out (the peer took only part of them, or none), the rest of the
 * batch is reported unread, so buf keeps them.
 *
 * Returns the number of events, or -errno.
 */
int fulcrum_pump(int ep, void *evbuf, int max, const void *peerbuf, int npeer, void *buf, int buflen, void *outbuf)
{
	struct epoll_event *evs = evbuf;
	const int32_t *peer = peerbuf;
	int32_t *out = outbuf;
	int n = epoll_wait(ep, evs, max, 0);
	if (n < 0)
		return -errno;
	int reading = 1;
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		uint32_t events = evs[i].events;
		int32_t *o = out + 4 * i;
		o[0] = fd;
		o[1] = (int32_t)events;
		o[2] = FULCRUM_NOT_READ;
		o[3] = 0;
		if (!reading || events != EPOLLIN || fd < 0 || fd >= npeer)
			continue;
		int to = peer[fd];
		if (to < 0)
			continue;
		ssize_t r = read(fd, buf, (size_t)buflen);
		if (r <= 0) {
			o[2] = r == 0 ? 0 : -errno;
			continue;
		}
		o[2] = (int32_t)r;
		ssize_t w = write(to, buf, (size_t)r);
		o[3] = w >= 0 ? (int32_t)w : -errno;
		if (w != r)
			reading = 0;
	}
	return n;
}
