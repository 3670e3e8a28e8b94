/*
 * The host port: what a Linux or macOS program lends the reds protocol. Replies are
 * written to a file descriptor (reds_host_out_fd, stdout unless changed); the timer is
 * CLOCK_MONOTONIC in nanoseconds, so a protocol "cycle" is a nanosecond. Used by the host
 * board (boards/host/main.c, which the tests drive) and the Raspberry Pi harness.
 */
#ifndef REDS_HOST_PORT_H
#define REDS_HOST_PORT_H

#include <stdint.h>

#include "reds_protocol.h"

extern int reds_host_out_fd;
extern int reds_host_in_fd; /* where commands come from (for reds_host_pending) */

void reds_host_write(const char *s, uint32_t n); /* all n bytes; drops them if the peer left */
uint64_t reds_host_ticks(void);                  /* CLOCK_MONOTONIC, nanoseconds */
int reds_host_pending(void);                     /* a byte waits on reds_host_in_fd */

/* A reds_board_t named `name` on this port; `pending` aborts long runs when a byte
 * arrives (reds_host_pending, or NULL where the input is a batch, e.g. a pipe). */
#define REDS_HOST_BOARD(name, pending) \
    { reds_host_write, reds_host_ticks, 1u, 1u, 1000000000u, (name), "clock_gettime-ns", "ns", (pending) }

#endif /* REDS_HOST_PORT_H */
