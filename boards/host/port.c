/* The host port (see port.h). */
#define _POSIX_C_SOURCE 199309L
#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include "port.h"

int reds_host_out_fd = 1;
int reds_host_in_fd = 0;

int reds_host_pending(void)
{
    struct pollfd fd;
    fd.fd = reds_host_in_fd;
    fd.events = POLLIN;
    fd.revents = 0;
    return poll(&fd, 1, 0) > 0 && (fd.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

void reds_host_write(const char *s, uint32_t n)
{
    while (n > 0u) {
        const ssize_t w = write(reds_host_out_fd, s, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return; /* the peer left: drop the reply */
        }
        s += w;
        n -= (uint32_t)w;
    }
}

uint64_t reds_host_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
