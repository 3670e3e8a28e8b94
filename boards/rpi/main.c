/*
 * rpi harness: one exported model behind the reds serial protocol, as a Linux program
 * (Raspberry Pi 4/5, aarch64; any Linux works).
 *
 *   reds-rpi                 create a pseudo-terminal, print "pty <slave path>", serve on it
 *   reds-rpi pty             the same
 *   reds-rpi /dev/ttyAMA0    serve on a serial device (raw, 115200 baud unless --baud B)
 *   reds-rpi -               serve on stdin/stdout
 *   reds-rpi tcp:PORT        listen on 127.0.0.1:PORT (tcp:0.0.0.0:PORT for all
 *                            interfaces), one client at a time, each from a fresh protocol
 *                            state (pyserial: socket://...)
 *
 * A byte that arrives during a long infer or loop aborts it (m-error-aborted), except on
 * stdin from a pipe or a file (a batch of commands, read ahead).
 *
 * Timing: clock_gettime(CLOCK_MONOTONIC) in nanoseconds, so the "cycles" the protocol
 * reports are nanoseconds (timer "clock_gettime-ns", cycle "ns", clock_hz 1e9). The
 * CPU's cycle counter (PMCCNTR_EL0) is not readable from user space on a stock
 * Raspberry Pi OS kernel, and the generic timer (CNTVCT_EL0) counts 54 MHz, not cycles.
 *
 * `reds build FAMILY --board rpi --out BUILD` writes reds_config.h (the model's name) and
 * copies this file, the host port (boards/host/port.c: writes and the timer), the runtime
 * and the model next to the Makefile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "port.h"
#include "reds_config.h"
#include REDS_MODEL_HEADER

/* A client that sends a byte during a long infer or loop aborts it; where the input is a
 * batch (stdin from a pipe or a file), nothing does (see main). */
static reds_board_t board = REDS_HOST_BOARD("rpi", reds_host_pending);

static reds_proto_t proto;
static float input[REDS_INPUT_FLOATS];

static int make_raw(int fd, speed_t speed)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        return -1;
    cfmakeraw(&t);
    t.c_cflag |= CLOCAL | CREAD;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    if (speed) {
        cfsetispeed(&t, speed);
        cfsetospeed(&t, speed);
    }
    return tcsetattr(fd, TCSANOW, &t);
}

static speed_t baud(long b)
{
    switch (b) {
    case 9600: return B9600;
    case 19200: return B19200;
    case 38400: return B38400;
    case 57600: return B57600;
    case 115200: return B115200;
    case 230400: return B230400;
    case 460800: return B460800;
    case 921600: return B921600;
    default: return 0;
    }
}

/* Feed every byte read from fd to the protocol until end of file. */
static void serve(int in_fd)
{
    reds_host_in_fd = in_fd;
    char buf[4096];
    for (;;) {
        ssize_t n = read(in_fd, buf, sizeof buf);
        ssize_t i;
        if (n == 0)
            return;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return;
        }
        for (i = 0; i < n; ++i)
            reds_proto_feed(&proto, buf[i]);
    }
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [pty | - | DEVICE [--baud B] | tcp:[HOST:]PORT]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *where = argc > 1 ? argv[1] : "pty";
    long b = 115200;
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && strcmp(argv[2], "--baud") == 0)
        b = strtol(argv[3], NULL, 10);
    else if (argc > 2)
        return usage(argv[0]);
    if (strcmp(where, "-h") == 0 || strcmp(where, "--help") == 0)
        return usage(argv[0]), 0;

    if (strcmp(where, "-") == 0) {
        reds_host_out_fd = 1;
        if (!isatty(0))
            board.pending = 0; /* a pipe or a file: a batch of commands, read ahead */
        reds_proto_init(&proto, &board, &REDS_MODEL, input);
        serve(0);
        return 0;
    }
    if (strcmp(where, "pty") == 0) {
        /* The harness keeps the slave side open too (raw, no echo): a client may come
         * and go without the master seeing a hang-up. */
        int m = posix_openpt(O_RDWR | O_NOCTTY), s;
        const char *name;
        if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0 || (name = ptsname(m)) == NULL) {
            fprintf(stderr, "reds-rpi: cannot create a pseudo-terminal: %s\n", strerror(errno));
            return 1;
        }
        s = open(name, O_RDWR | O_NOCTTY);
        if (s < 0 || make_raw(s, 0) != 0) {
            fprintf(stderr, "reds-rpi: cannot set up %s: %s\n", name, strerror(errno));
            return 1;
        }
        printf("pty %s\n", name);
        fflush(stdout);
        reds_host_out_fd = m;
        reds_proto_init(&proto, &board, &REDS_MODEL, input);
        serve(m);
        return 0;
    }
    if (strncmp(where, "tcp:", 4) == 0) {
        struct sockaddr_in a;
        const char *colon = strrchr(where + 4, ':');
        char host[64] = "127.0.0.1";
        const char *num;
        char *end;
        long port;
        int l, one = 1;
        socklen_t len = sizeof a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        if (colon) {
            size_t hl = (size_t)(colon - (where + 4));
            if (hl >= sizeof host)
                return usage(argv[0]);
            memcpy(host, where + 4, hl);
            host[hl] = '\0';
        }
        num = colon ? colon + 1 : where + 4;
        port = strtol(num, &end, 10);
        if (*num == '\0' || *end != '\0' || port < 0 || port > 65535) {
            fprintf(stderr, "reds-rpi: %s: the port must be a number 0..65535\n", where);
            return 2;
        }
        a.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
            fprintf(stderr, "reds-rpi: %s: %s is not an IPv4 address\n", where, host);
            return 2;
        }
        l = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 1) != 0 ||
            getsockname(l, (struct sockaddr *)&a, &len) != 0) {
            fprintf(stderr, "reds-rpi: cannot listen on %s: %s\n", where, strerror(errno));
            return 1;
        }
        printf("tcp %s:%u\n", host, (unsigned)ntohs(a.sin_port));
        fflush(stdout);
        for (;;) { /* one client at a time, each from a fresh protocol state and submodel */
            int c = accept(l, NULL, NULL);
            if (c < 0)
                continue;
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            reds_host_out_fd = c;
            reds_select(&REDS_MODEL, reds_num_submodels(&REDS_MODEL) - 1u);
            reds_proto_init(&proto, &board, &REDS_MODEL, input); /* calibrates; the banner */
            serve(c);
            close(c);
            reds_host_out_fd = 1;
        }
    }
    {
        int fd = open(where, O_RDWR | O_NOCTTY);
        speed_t sp = baud(b);
        if (fd < 0) {
            fprintf(stderr, "reds-rpi: cannot open %s: %s\n", where, strerror(errno));
            return 1;
        }
        if (!sp) {
            fprintf(stderr, "reds-rpi: unsupported baud rate %ld\n", b);
            return 2;
        }
        if (isatty(fd) && make_raw(fd, sp) != 0) {
            fprintf(stderr, "reds-rpi: cannot configure %s: %s\n", where, strerror(errno));
            return 1;
        }
        reds_host_out_fd = fd;
        reds_proto_init(&proto, &board, &REDS_MODEL, input);
        serve(fd);
    }
    return 0;
}
