/*
 * reds serial protocol: the device side, for any board and any exported model.
 *
 * Text commands end with '%'. Every reply line starts with "m-" and ends with "\r\n";
 * every command, good or bad, ends with "m-ready". The EEMBC / MLPerf Tiny runner's
 * commands work as it expects them:
 *
 *   name%            m-name-reds-<model name>
 *   profile%         m-profile-[reds-protocol-1] and m-model-[<model name> <family sha256>]
 *   timestamp%       m-lap-us-<microseconds since boot, from the device's timer>
 *   db load N%       m-[Expecting N bytes]: the next db commands fill the input (N bytes)
 *   db <hex>%        append bytes (a float32 little-endian C x H x W tensor); m-load-done when full
 *   db print%        m-buffer-<hex>: the bytes loaded so far, 32 a line
 *   infer N W%       W warm-up runs, then N timed runs of the active submodel on the input:
 *                    m-warmup-start-W, m-warmup-done, m-infer-start-N, m-lap-us-T0,
 *                    m-lap-us-T1, m-infer-done, m-infer k=.. n=.. cycles=<total>, then results
 *   results%         m-results-[y0,y1,...] (each float as printf %.9g: reads back bit-exact)
 *                    m-bits-[3f800000,...] (each float's IEEE-754 bits in hex)
 *
 * reds adds (key=value fields, so a host parses them by name):
 *
 *   info%            m-info board=.. timer=.. cycle=.. clock_hz=.. overhead=.. model=..
 *                    submodels=.. active=.. input=<floats> input_bytes=<what db load takes>
 *                    output=<floats> line=<max command>
 *                    max_loop=.. abi=..
 *   list%            m-submodels n=K active=k, then per submodel
 *                    m-submodel k=.. budget=.. macs=.. weight_bytes=.. arena_bytes=..
 *   select K%        m-select k=K cycles=C: the cycles reds_select() took, timed on the device
 *   budget MACS%     m-budget k=K macs=.. cycles=C: the largest submodel with at most MACS MACs,
 *                    made active (m-error-no-submodel-fits if none)
 *   loop N%          m-loop k=.. n=N min=.. median=.. max=.. total=..: N timed inferences
 *   cost K C%        m-cost k=K cycles=C: store submodel K's measured cost (cycles of one
 *                    inference, e.g. the max of a `loop`; 0 forgets it) for `deadline`
 *   deadline C%      m-deadline k=K cost=.. cycles=..: the largest submodel whose stored cost
 *                    is at most C cycles, made active (cycles: of the pick + switch);
 *                    m-error-no-submodel-fits if none (submodels without a cost never fit),
 *                    m-error-no-costs before any `cost`
 *   layers%          cycles per layer of one run of the active submodel on what `db` loaded
 *                    (reds_run_profiled; an ordinary timed run first): m-layers k=.. layers=N,
 *                    then m-layer i=<index> op=<op> cycles=C per layer (cycles=fused: an
 *                    activation run inside the batch norm before it, whose row holds both),
 *                    first m-layer i=frontend op=mfcc (pcm mode) and m-layer i=input
 *                    op=normalise|copy (the input's copy and normalisation), each row less one
 *                    timer overhead; then m-layers-total cycles=<the rows' sum> run=<cycles of
 *                    the ordinary run> overhead=..; m-error-no-input before any `db load`
 *   help%            m-help <command and its arguments>%, one line per command
 *
 * Long commands (`infer`, `loop`) stop when a byte arrives (board->pending): they answer
 * m-error-aborted, and what was sent is discarded up to its next '%' (send '%' to abort).
 *
 * Mistakes (unknown command, bad or out-of-range argument, a line longer than
 * REDS_PROTO_LINE characters, a load that overflows) get one "m-error-<reason>" line; the
 * device never hangs, faults or resets on input. Timings are taken on the device in
 * cycles (what a cycle is: the board's `cycle` field), minus the cost of reading the timer
 * itself (the `overhead` of info%, measured at start-up around an empty call).
 *
 * C99, no malloc, no stdio: numbers are formatted by reds_format.c.
 */
#ifndef REDS_PROTOCOL_H
#define REDS_PROTOCOL_H

#include <stdint.h>

#include "reds.h"
#include "reds_format.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REDS_PROTO_VERSION 3
/* The longest command, without its '%'; longer ones are discarded up to the next '%'. */
#ifndef REDS_PROTO_LINE
#define REDS_PROTO_LINE 160
#endif
/* The most runs one `loop N%` times (each run's cycles are kept for the median). */
#ifndef REDS_PROTO_MAX_LOOP
#define REDS_PROTO_MAX_LOOP 255
#endif
/* The most runs (and warm-ups) one `infer N W%` does. */
#ifndef REDS_PROTO_MAX_INFER
#define REDS_PROTO_MAX_INFER 100000u
#endif

/* What a board lends the protocol. */
typedef struct {
    void (*write)(const char *s, uint32_t n); /* send n bytes (blocking) */
    uint64_t (*ticks)(void);                  /* free-running timer, never wraps */
    /* cycles = ticks * cycles_num / cycles_den, rounded (1/1 for a cycle counter) */
    uint32_t cycles_num, cycles_den;
    uint32_t clock_hz;  /* cycles per second: how cycles become microseconds */
    const char *board;  /* board name, e.g. "qemu-m4" */
    const char *timer;  /* e.g. "systick-icount", "dwt-cyccnt" */
    const char *cycle;  /* what one cycle is, e.g. "instruction", "cpu-cycle" */
    int (*pending)(void); /* nonzero while a received byte waits (NULL: never); aborts long runs */
} reds_board_t;

typedef struct {
    const reds_board_t *board;
    reds_model_t *model;
    float *input;           /* reds_input_size() floats: what db fills and runs read */
    const float *output;    /* outputs of the last run (inside the arena), or NULL */
    uint32_t db_expect;     /* bytes announced by `db load` */
    uint32_t db_have;       /* bytes received since */
    uint32_t overhead;      /* cycles of an empty timed call */
    uint32_t len;           /* characters in line */
    uint8_t overflow;       /* the current command outgrew line: discard up to '%' */
    uint8_t discard;        /* a run was aborted: discard what arrives up to '%', silently */
    uint8_t pcm;            /* `input pcm`: db fills the model's PCM clip; runs start at the front end */
    uint64_t frontend;      /* cycles the front end took in the last timed runs (pcm mode) */
    char line[REDS_PROTO_LINE + 1];
    uint64_t samples[REDS_PROTO_MAX_LOOP];
    uint32_t cost[REDS_MAX_SUBMODELS]; /* measured cycles per submodel (`cost`), 0: unknown */
} reds_proto_t;

/* Set up (input: reds_input_size(model) floats, zeroed here), calibrate the timer
 * overhead and print the start-up lines (m-timestamp-mode-performance, m-init-done,
 * m-ready). */
void reds_proto_init(reds_proto_t *p, const reds_board_t *board, reds_model_t *model, float *input);

/* Hand over one received byte; a '%' runs the command and writes its replies. */
void reds_proto_feed(reds_proto_t *p, char c);

#ifdef __cplusplus
}
#endif

#endif /* REDS_PROTOCOL_H */
