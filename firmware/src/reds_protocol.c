/*
 * reds serial protocol, device side (see reds_protocol.h for the commands and replies).
 *
 * One fixed line buffer, no allocation, no stdio. The parser never trusts its input: a
 * command is tokenised only after its '%' arrived, every number is range-checked, and
 * every path ends with "m-ready".
 */
#include <string.h>

#include "reds_protocol.h"

/* ---- replies ---------------------------------------------------------------------- */

static void say(reds_proto_t *p, const char *s) { p->board->write(s, (uint32_t)strlen(s)); }

static void say_u(reds_proto_t *p, uint64_t v)
{
    char buf[20];
    p->board->write(buf, reds_format_u64(v, buf));
}

static void say_f(reds_proto_t *p, float v)
{
    char buf[REDS_FLOAT_CHARS];
    p->board->write(buf, reds_format_float(v, buf));
}

/* " key=value" */
static void field_u(reds_proto_t *p, const char *key, uint64_t v)
{
    say(p, " ");
    say(p, key);
    say(p, "=");
    say_u(p, v);
}

static void field_s(reds_proto_t *p, const char *key, const char *v)
{
    say(p, " ");
    say(p, key);
    say(p, "=");
    say(p, v != 0 ? v : "unknown");
}

static void end(reds_proto_t *p) { say(p, "\r\n"); }

static void fail(reds_proto_t *p, const char *reason)
{
    say(p, "m-error-");
    say(p, reason);
    end(p);
}

/* ---- timing ----------------------------------------------------------------------- */

typedef int (*reds_switch_fn)(reds_model_t *m, unsigned arg);
typedef const float *(*reds_run_fn)(reds_model_t *m, const float *input);

static uint64_t to_cycles(const reds_proto_t *p, uint64_t ticks)
{
    const reds_board_t *b = p->board;
    if (b->cycles_num == b->cycles_den || b->cycles_den == 0u)
        return ticks;
    return (ticks * b->cycles_num + b->cycles_den / 2u) / b->cycles_den;
}

static uint64_t net_cycles(const reds_proto_t *p, uint64_t t0, uint64_t t1)
{
    const uint64_t c = to_cycles(p, t1 - t0);
    return c > p->overhead ? c - p->overhead : 0u;
}

/* The work is called through a volatile pointer between two timer reads: the compiler
 * can neither inline it nor move it out of the timed window. */
static uint64_t time_switch_raw(reds_proto_t *p, reds_switch_fn fn, unsigned arg, int *ret)
{
    reds_switch_fn volatile call = fn;
    uint64_t t0, t1;
    t0 = p->board->ticks();
    *ret = call(p->model, arg);
    t1 = p->board->ticks();
    return to_cycles(p, t1 - t0);
}

static uint64_t time_switch(reds_proto_t *p, reds_switch_fn fn, unsigned arg, int *ret)
{
    const uint64_t c = time_switch_raw(p, fn, arg, ret);
    return c > p->overhead ? c - p->overhead : 0u;
}

typedef int (*reds_features_fn)(reds_model_t *m, const int16_t *pcm, uint32_t n);

/* One inference from what `db` loaded: features, or (pcm mode) a clip through the front end;
 * its cycles, and the front end's added to p->frontend. */
static uint64_t time_run(reds_proto_t *p)
{
    reds_run_fn volatile call = reds_run;
    uint64_t t0, t1;
    if (p->pcm) {
        reds_features_fn volatile fe = reds_features;
        uint64_t tf;
        t0 = p->board->ticks();
        fe(p->model, p->model->net->pcm, p->db_have / 2u);
        tf = p->board->ticks();
        p->output = call(p->model, 0);
        t1 = p->board->ticks();
        p->frontend += net_cycles(p, t0, tf);
        return net_cycles(p, t0, t1);
    }
    t0 = p->board->ticks();
    p->output = call(p->model, p->input);
    t1 = p->board->ticks();
    return net_cycles(p, t0, t1);
}

static int empty_switch(reds_model_t *m, unsigned arg)
{
    (void)m;
    (void)arg;
    return 0;
}

static int pick_and_select(reds_model_t *m, unsigned max_macs)
{
    const int k = reds_pick_macs(m, (uint32_t)max_macs);
    if (k >= 0)
        reds_select(m, (unsigned)k);
    return k;
}

/* `deadline`: the pick reads the protocol's cost table; the switch functions take the
 * model only, so the table is lent through this pointer for the duration of one call. */
static const uint32_t *pick_costs;

static int pick_cost_and_select(reds_model_t *m, unsigned max_cycles)
{
    unsigned k = reds_num_submodels(m);
    while (k-- > 0u)
        if (pick_costs[k] != 0u && pick_costs[k] <= max_cycles) {
            reds_select(m, k);
            return (int)k;
        }
    return -1;
}

static uint64_t microseconds(const reds_proto_t *p, uint64_t cycles)
{
    const uint64_t hz = p->board->clock_hz != 0u ? p->board->clock_hz : 1u;
    return cycles / hz * 1000000u + cycles % hz * 1000000u / hz;
}

/* ---- commands --------------------------------------------------------------------- */

#define MAX_TOKENS 4

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; ++s) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > 0xFFFFFFFFu)
            return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* A byte arrived while a long command ran: stop it. Called between runs. */
static int aborted(reds_proto_t *p)
{
    if (p->board->pending == 0 || !p->board->pending())
        return 0;
    p->discard = 1;
    fail(p, "aborted");
    return 1;
}

static int load_incomplete(reds_proto_t *p)
{
    if (p->db_have < p->db_expect) {
        fail(p, "load-incomplete");
        return 1;
    }
    return 0;
}

static void cmd_results(reds_proto_t *p)
{
    const uint32_t n = reds_output_size(p->model);
    uint32_t i;
    char hex[8];
    if (p->output == 0) {
        fail(p, "no-results");
        return;
    }
    say(p, "m-results-[");
    for (i = 0; i < n; ++i) {
        if (i)
            say(p, ",");
        say_f(p, p->output[i]);
    }
    say(p, "]\r\nm-bits-[");
    for (i = 0; i < n; ++i) {
        uint32_t bits;
        memcpy(&bits, &p->output[i], sizeof bits);
        if (i)
            say(p, ",");
        p->board->write(hex, reds_format_hex32(bits, hex));
    }
    say(p, "]\r\n");
}

/* What `db` fills: the input features, or in pcm mode the model's PCM clip. */
static uint8_t *db_buffer(const reds_proto_t *p)
{
    return p->pcm ? (uint8_t *)p->model->net->pcm : (uint8_t *)p->input;
}

static uint32_t db_capacity(const reds_proto_t *p)
{
    return p->pcm ? p->model->net->pcm_samples * (uint32_t)sizeof(int16_t)
                  : reds_input_size(p->model) * (uint32_t)sizeof(float);
}

static void cmd_db(reds_proto_t *p, const char *arg, const char *count)
{
    const uint32_t cap = db_capacity(p);
    uint32_t n, i;
    if (strcmp(arg, "load") == 0) {
        if (count == 0 || !parse_u32(count, &n)) {
            fail(p, "bad-argument");
            return;
        }
        if (n == 0u || n > cap) {
            fail(p, "out-of-range");
            return;
        }
        p->db_expect = n;
        p->db_have = 0;
        say(p, "m-[Expecting ");
        say_u(p, n);
        say(p, " bytes]\r\n");
        return;
    }
    if (count != 0) {
        fail(p, "bad-argument");
        return;
    }
    if (strcmp(arg, "print") == 0) { /* what was loaded, 32 bytes a line */
        static const char hex[] = "0123456789abcdef";
        const uint8_t *bytes = db_buffer(p);
        for (i = 0; i < p->db_have; ++i) {
            char two[2];
            if (i % 32u == 0u)
                say(p, i ? "\r\nm-buffer-" : "m-buffer-");
            two[0] = hex[bytes[i] >> 4];
            two[1] = hex[bytes[i] & 0xFu];
            p->board->write(two, 2u);
        }
        if (p->db_have)
            end(p);
        return;
    }
    n = (uint32_t)strlen(arg);
    for (i = 0; i < n; ++i)
        if (hex_value(arg[i]) < 0) {
            fail(p, "bad-hex");
            return;
        }
    if (n % 2u != 0u) {
        fail(p, "bad-hex");
        return;
    }
    if (p->db_have >= p->db_expect) {
        fail(p, "no-load");
        return;
    }
    if (n / 2u > p->db_expect - p->db_have) {
        fail(p, "too-much-data");
        return;
    }
    for (i = 0; i < n; i += 2u)
        db_buffer(p)[p->db_have++] = (uint8_t)(hex_value(arg[i]) << 4 | hex_value(arg[i + 1u]));
    if (p->db_have == p->db_expect)
        say(p, "m-load-done\r\n");
}

static void cmd_infer(reds_proto_t *p, uint32_t n, uint32_t warmup)
{
    uint64_t t0, t1, total;
    uint32_t i;
    if (n == 0u || n > REDS_PROTO_MAX_INFER || warmup > REDS_PROTO_MAX_INFER) {
        fail(p, "out-of-range");
        return;
    }
    if (load_incomplete(p))
        return;
    say(p, "m-warmup-start-");
    say_u(p, warmup);
    end(p);
    for (i = 0; i < warmup; ++i) {
        if (aborted(p))
            return;
        (void)time_run(p);
    }
    say(p, "m-warmup-done\r\nm-infer-start-");
    say_u(p, n);
    end(p);
    p->frontend = 0;
    if (p->pcm) { /* each run from the clip: front end, then the model (both timed, apart) */
        t0 = p->board->ticks();
        for (i = 0; i < n; ++i) {
            if (aborted(p))
                return;
            (void)time_run(p);
        }
        t1 = p->board->ticks();
    } else {
        /* the abort check is inside the timed window: a call and a register read per run */
        reds_run_fn volatile call = reds_run;
        t0 = p->board->ticks();
        for (i = 0; i < n; ++i) {
            if (aborted(p))
                return;
            p->output = call(p->model, p->input);
        }
        t1 = p->board->ticks();
    }
    total = net_cycles(p, t0, t1);
    say(p, "m-lap-us-");
    say_u(p, microseconds(p, to_cycles(p, t0)));
    say(p, "\r\nm-lap-us-");
    say_u(p, microseconds(p, to_cycles(p, t1)));
    say(p, "\r\nm-infer-done\r\nm-infer");
    field_u(p, "k", reds_active(p->model));
    field_u(p, "n", n);
    field_u(p, "cycles", total);
    if (p->pcm)
        field_u(p, "frontend", p->frontend);
    end(p);
    cmd_results(p);
}

static void sort_u64(uint64_t *a, uint32_t n)
{
    uint32_t i, j;
    for (i = 1; i < n; ++i) {
        const uint64_t v = a[i];
        for (j = i; j > 0u && a[j - 1u] > v; --j)
            a[j] = a[j - 1u];
        a[j] = v;
    }
}

static void cmd_loop(reds_proto_t *p, uint32_t n)
{
    uint64_t total = 0;
    uint32_t i;
    if (n == 0u || n > REDS_PROTO_MAX_LOOP) {
        fail(p, "out-of-range");
        return;
    }
    if (load_incomplete(p))
        return;
    p->frontend = 0;
    for (i = 0; i < n; ++i) {
        if (aborted(p))
            return;
        p->samples[i] = time_run(p);
        total += p->samples[i];
    }
    sort_u64(p->samples, n);
    say(p, "m-loop");
    field_u(p, "k", reds_active(p->model));
    field_u(p, "n", n);
    field_u(p, "min", p->samples[0]);
    field_u(p, "median", n % 2u ? p->samples[n / 2u] : (p->samples[n / 2u - 1u] + p->samples[n / 2u]) / 2u);
    field_u(p, "max", p->samples[n - 1u]);
    field_u(p, "total", total);
    if (p->pcm)
        field_u(p, "frontend_total", p->frontend); /* of those cycles, the front end's */
    end(p);
}

static const char *op_name(uint8_t op)
{
    static const char *const names[] = {"?",           "conv2d",     "depthwise_conv2d", "dense",
                                        "scale_bias",  "relu",       "leaky_relu",       "avg_pool",
                                        "max_pool",    "flatten",    "add"};
    return op < sizeof names / sizeof names[0] ? names[op] : "?";
}

typedef const float *(*reds_run_profiled_fn)(reds_model_t *m, const float *input, reds_ticks_fn ticks,
                                              uint64_t *out);

/* One profiled run's row: its ticks as cycles, less one timer read. */
static uint64_t row_cycles(const reds_proto_t *p, uint64_t ticks)
{
    const uint64_t c = to_cycles(p, ticks);
    return c > p->overhead ? c - p->overhead : 0u;
}

static void layer_row(reds_proto_t *p, const char *i, const char *op, uint64_t cycles, uint64_t *sum)
{
    say(p, "m-layer i=");
    say(p, i);
    field_s(p, "op", op);
    field_u(p, "cycles", cycles);
    end(p);
    *sum += cycles;
}

/* layers%: an ordinary timed run of the active submodel on what `db` loaded, then one
 * through reds_run_profiled: a row per layer (and the front end's, the input's copy and
 * normalisation), then the rows' sum beside the ordinary run's cycles. */
static void cmd_layers(reds_proto_t *p)
{
    reds_model_t *m = p->model;
    const reds_net_t *net = m->net;
    const uint32_t n = net->num_layers;
    reds_run_profiled_fn volatile call = reds_run_profiled;
    uint64_t run, fe = 0, t0, t1, sum = 0;
    uint32_t l;
    if (p->db_expect == 0u) {
        fail(p, "no-input");
        return;
    }
    if (load_incomplete(p))
        return;
    if (n + 1u > REDS_PROTO_MAX_LOOP) { /* the rows' ticks are kept in samples[] */
        fail(p, "too-many-layers");
        return;
    }
    p->frontend = 0;
    run = time_run(p);
    if (p->pcm) {
        reds_features_fn volatile f = reds_features;
        t0 = p->board->ticks();
        f(m, net->pcm, p->db_have / 2u);
        t1 = p->board->ticks();
        fe = net_cycles(p, t0, t1);
        p->output = call(m, 0, p->board->ticks, p->samples);
    } else {
        p->output = call(m, p->input, p->board->ticks, p->samples);
    }
    say(p, "m-layers");
    field_u(p, "k", reds_active(m));
    field_u(p, "layers", n);
    end(p);
    if (p->pcm)
        layer_row(p, "frontend", "mfcc", fe, &sum);
    layer_row(p, "input", net->in_axis != REDS_AXIS_NONE ? "normalise" : "copy", row_cycles(p, p->samples[n]), &sum);
    for (l = 0; l < n; ++l) {
        char idx[21];
        idx[reds_format_u64(l, idx)] = '\0';
        if (p->samples[l] == REDS_TICKS_FUSED) {
            say(p, "m-layer i=");
            say(p, idx);
            field_s(p, "op", op_name(net->layers[l].op));
            say(p, " cycles=fused\r\n");
        } else {
            layer_row(p, idx, op_name(net->layers[l].op), row_cycles(p, p->samples[l]), &sum);
        }
    }
    say(p, "m-layers-total");
    field_u(p, "cycles", sum);
    field_u(p, "run", run);
    field_u(p, "overhead", p->overhead);
    end(p);
}

/* input% says what `db` fills; input pcm% / input features% change it (and empty db). */
static void cmd_input(reds_proto_t *p, const char *kind)
{
    if (kind != 0) {
        if (strcmp(kind, "pcm") == 0) {
            if (p->model->net->frontend == 0) {
                fail(p, "no-frontend");
                return;
            }
            p->pcm = 1;
        } else if (strcmp(kind, "features") == 0) {
            p->pcm = 0;
        } else {
            fail(p, "bad-argument");
            return;
        }
        p->db_expect = p->db_have = 0;
    }
    say(p, "m-input");
    field_s(p, "kind", p->pcm ? "pcm" : "features");
    field_u(p, "bytes", db_capacity(p));
    field_s(p, "frontend", p->model->net->frontend != 0 ? "mfcc" : "none");
    end(p);
}

static void cmd_list(reds_proto_t *p)
{
    const reds_model_t *m = p->model;
    const unsigned K = reds_num_submodels(m);
    unsigned k;
    say(p, "m-submodels");
    field_u(p, "n", K);
    field_u(p, "active", reds_active(m));
    end(p);
    for (k = 0; k < K; ++k) {
        say(p, "m-submodel");
        field_u(p, "k", k);
        say(p, " budget=");
        say_f(p, reds_budget(m, k));
        field_u(p, "macs", reds_macs(m, k));
        field_u(p, "weight_bytes", reds_weight_bytes(m, k));
        field_u(p, "arena_bytes", reds_arena_bytes(m, k));
        end(p);
    }
}

static void cmd_info(reds_proto_t *p)
{
    const reds_board_t *b = p->board;
    say(p, "m-info");
    field_s(p, "board", b->board);
    field_s(p, "timer", b->timer);
    field_s(p, "cycle", b->cycle);
    field_u(p, "clock_hz", b->clock_hz);
    field_u(p, "overhead", p->overhead);
    field_s(p, "model", p->model->net->name);
    field_u(p, "submodels", reds_num_submodels(p->model));
    field_u(p, "active", reds_active(p->model));
    field_u(p, "input", reds_input_size(p->model));
    field_u(p, "input_bytes", reds_input_size(p->model) * (uint32_t)sizeof(float)); /* what db load counts */
    field_s(p, "frontend", p->model->net->frontend != 0 ? "mfcc" : "none");
    field_u(p, "pcm_samples", p->model->net->frontend != 0 ? p->model->net->pcm_samples : 0u);
    field_u(p, "output", reds_output_size(p->model));
    field_u(p, "line", REDS_PROTO_LINE);
    field_u(p, "max_loop", REDS_PROTO_MAX_LOOP);
    field_u(p, "abi", REDS_ABI_VERSION);
    field_u(p, "proto", REDS_PROTO_VERSION);
    end(p);
}

static void cmd_switch(reds_proto_t *p, const char *what, reds_switch_fn fn, uint32_t arg)
{
    int k = 0;
    const uint64_t cycles = time_switch(p, fn, (unsigned)arg, &k);
    if ((fn == pick_and_select || fn == pick_cost_and_select) && k < 0) {
        fail(p, "no-submodel-fits");
        return;
    }
    say(p, what);
    field_u(p, "k", reds_active(p->model));
    if (fn == pick_and_select)
        field_u(p, "macs", reds_macs(p->model, reds_active(p->model)));
    if (fn == pick_cost_and_select)
        field_u(p, "cost", p->cost[reds_active(p->model)]);
    field_u(p, "cycles", cycles);
    end(p);
}

/* ---- dispatch --------------------------------------------------------------------- */

/* Each handler gets the command's arguments (tok[1] .. tok[n]), their count already
 * checked against the table. */
typedef void (*reds_cmd_fn)(reds_proto_t *p, char **arg, uint32_t n);

/* The arguments as unsigned 32-bit numbers, or "m-error-bad-argument" and 0. */
static int numbers(reds_proto_t *p, char **arg, uint32_t n, uint32_t *out)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (!parse_u32(arg[i], &out[i])) {
            fail(p, "bad-argument");
            return 0;
        }
    return 1;
}

static void run_name(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    say(p, "m-name-reds-");
    say(p, p->model->net->name);
    end(p);
}

static void run_profile(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    say(p, "m-profile-[reds-protocol-");
    say_u(p, REDS_PROTO_VERSION);
    say(p, "]\r\nm-model-[");
    say(p, p->model->net->name);
    say(p, " ");
    say(p, p->model->net->family_hash);
    say(p, "]\r\n");
}

static void run_timestamp(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    say(p, "m-lap-us-");
    say_u(p, microseconds(p, to_cycles(p, p->board->ticks())));
    end(p);
}

static void run_db(reds_proto_t *p, char **arg, uint32_t n) { cmd_db(p, arg[0], n == 2u ? arg[1] : 0); }

static void run_infer(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t v[2];
    if (numbers(p, arg, n, v))
        cmd_infer(p, v[0], v[1]);
}

static void run_results(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    cmd_results(p);
}

static void run_info(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    cmd_info(p);
}

static void run_list(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    cmd_list(p);
}

static void run_select(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t k;
    if (!numbers(p, arg, n, &k))
        return;
    if (k >= reds_num_submodels(p->model))
        fail(p, "out-of-range");
    else
        cmd_switch(p, "m-select", reds_select, k);
}

static void run_budget(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t macs;
    if (numbers(p, arg, n, &macs))
        cmd_switch(p, "m-budget", pick_and_select, macs);
}

static void run_cost(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t v[2];
    if (!numbers(p, arg, n, v))
        return;
    if (v[0] >= reds_num_submodels(p->model) || v[0] >= REDS_MAX_SUBMODELS) {
        fail(p, "out-of-range");
        return;
    }
    p->cost[v[0]] = v[1];
    say(p, "m-cost");
    field_u(p, "k", v[0]);
    field_u(p, "cycles", v[1]);
    end(p);
}

static void run_deadline(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t cycles, k, known = 0;
    if (!numbers(p, arg, n, &cycles))
        return;
    for (k = 0; k < reds_num_submodels(p->model) && k < REDS_MAX_SUBMODELS; ++k)
        known |= p->cost[k];
    if (known == 0u) { /* before any `cost K C%`: say so, rather than no-submodel-fits */
        fail(p, "no-costs");
        return;
    }
    pick_costs = p->cost;
    cmd_switch(p, "m-deadline", pick_cost_and_select, cycles);
}

static void run_loop(reds_proto_t *p, char **arg, uint32_t n)
{
    uint32_t runs;
    if (numbers(p, arg, n, &runs))
        cmd_loop(p, runs);
}

static void run_input(reds_proto_t *p, char **arg, uint32_t n) { cmd_input(p, n ? arg[0] : 0); }

static void run_layers(reds_proto_t *p, char **arg, uint32_t n)
{
    (void)arg;
    (void)n;
    cmd_layers(p);
}

static void run_help(reds_proto_t *p, char **arg, uint32_t n);

/* Every command: its name, how many arguments it takes, what runs it. */
static const struct {
    const char *name;
    uint8_t min_args, max_args;
    reds_cmd_fn run;
} commands[] = {
    {"name", 0, 0, run_name},         {"profile", 0, 0, run_profile}, {"timestamp", 0, 0, run_timestamp},
    {"db", 1, 2, run_db},             {"infer", 2, 2, run_infer},     {"results", 0, 0, run_results},
    {"info", 0, 0, run_info},         {"list", 0, 0, run_list},       {"select", 1, 1, run_select},
    {"budget", 1, 1, run_budget},     {"cost", 2, 2, run_cost},       {"deadline", 1, 1, run_deadline},
    {"loop", 1, 1, run_loop},         {"input", 0, 1, run_input},     {"layers", 0, 0, run_layers},
    {"help", 0, 0, run_help},
};

/* help%: the commands and their arguments, one a line. */
static void run_help(reds_proto_t *p, char **arg, uint32_t n)
{
    static const char *const usage[] = {
        "name", "profile", "timestamp", "db load BYTES | db HEX | db print", "infer RUNS WARMUP", "results",
        "info", "list", "select K", "budget MACS", "cost K CYCLES", "deadline CYCLES", "loop RUNS",
        "input [pcm|features]", "layers", "help",
    };
    uint32_t i;
    (void)arg;
    (void)n;
    for (i = 0; i < sizeof usage / sizeof usage[0]; ++i) {
        say(p, "m-help ");
        say(p, usage[i]);
        say(p, "%\r\n");
    }
}

static void run_command(reds_proto_t *p)
{
    char *tok[MAX_TOKENS];
    uint32_t ntok = 0, i = 0, c;
    char *s = p->line;

    p->line[p->len] = '\0';
    for (;;) {
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
            s[i++] = '\0';
        if (s[i] == '\0')
            break;
        if (ntok == MAX_TOKENS) {
            fail(p, "too-many-arguments");
            return;
        }
        tok[ntok++] = s + i;
        while (s[i] != '\0' && s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            ++i;
    }
    if (ntok == 0u) {
        fail(p, "empty-command");
        return;
    }
    for (c = 0; c < sizeof commands / sizeof commands[0]; ++c) {
        if (strcmp(tok[0], commands[c].name) != 0)
            continue;
        if (ntok - 1u < commands[c].min_args || ntok - 1u > commands[c].max_args)
            fail(p, "wrong-number-of-arguments");
        else
            commands[c].run(p, tok + 1, ntok - 1u);
        return;
    }
    fail(p, "unknown-command");
}

/* ---- entry points ----------------------------------------------------------------- */

void reds_proto_init(reds_proto_t *p, const reds_board_t *board, reds_model_t *model, float *input)
{
    uint32_t i;
    memset(p, 0, sizeof *p);
    p->board = board;
    p->model = model;
    p->input = input;
    memset(input, 0, reds_input_size(model) * sizeof(float));
    /* The timer's own cost: the least an empty call between two reads takes. */
    for (i = 0; i < 8u; ++i) {
        int ret;
        const uint64_t c = time_switch_raw(p, empty_switch, 0u, &ret);
        if (i == 0u || c < p->overhead)
            p->overhead = (uint32_t)c;
    }
    say(p, "m-timestamp-mode-performance\r\nm-init-done\r\nm-ready\r\n");
}

void reds_proto_feed(reds_proto_t *p, char c)
{
    if (p->discard) { /* what aborted a run, up to its '%' */
        if (c == '%')
            p->discard = 0;
        return;
    }
    if (c == '%') {
        if (p->overflow)
            fail(p, "line-too-long");
        else if (memchr(p->line, 0, p->len) != 0)
            fail(p, "bad-character");
        else
            run_command(p);
        p->len = 0;
        p->overflow = 0;
        say(p, "m-ready\r\n");
        return;
    }
    if (p->overflow)
        return;
    if (p->len == REDS_PROTO_LINE) {
        p->overflow = 1;
        return;
    }
    /* Control characters other than white space, and bytes above 0x7e, poison the
     * command (stored as NUL, reported when its '%' arrives). */
    if (((unsigned char)c < 0x20u && c != '\t' && c != '\r' && c != '\n') || (unsigned char)c > 0x7Eu)
        c = '\0';
    p->line[p->len++] = c;
}
