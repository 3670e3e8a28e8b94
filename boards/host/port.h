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

void reds_host_write(const char *s, uint32_t n); /* all n bytes; drops them if the peer left */
uint64_t reds_host_ticks(void);                  /* CLOCK_MONOTONIC, nanoseconds */

/* A reds_board_t named `name` on this port. */
#define REDS_HOST_BOARD(name) \
    { reds_host_write, reds_host_ticks, 1u, 1u, 1000000000u, (name), "clock_gettime-ns", "ns" }

#endif /* REDS_HOST_PORT_H */
