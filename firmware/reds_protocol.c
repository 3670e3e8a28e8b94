/*
 * reds serial protocol, device side (see reds_protocol.h for the commands and replies).
 *
 * One fixed line buffer, no allocation, no stdio. The parser never trusts its input: a
 * command is tokenised only after its '%' arrived, every number is range-checked, and
 * every path ends with "m-ready".
 */
#include <string.h>

#include "reds_protocol.h"

/* ---- number formatting ------------------------------------------------------------ */

uint32_t reds_format_u64(uint64_t v, char *out)
{
    char tmp[20];
    uint32_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (i = 0; i < n; ++i)
        out[i] = tmp[n - 1u - i];
    return n;
}

uint32_t reds_format_hex32(uint32_t v, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 8; ++i)
        out[i] = hex[(v >> (28 - 4 * i)) & 0xFu];
    return 8u;
}

/* An unsigned integer of up to 12 x 32 bits: a float32 is m * 2^e with m < 2^24 and
 * e >= -149, so its exact decimal value m * 5^149 / 10^149 needs 24 + 346 bits. */
#define BIG_WORDS 12
typedef struct {
    uint32_t w[BIG_WORDS]; /* least significant first */
    uint32_t n;            /* words in use; 0 means zero */
} big_t;

static void big_mul(big_t *b, uint32_t m)
{
    uint64_t carry = 0;
    uint32_t i;
    for (i = 0; i < b->n; ++i) {
        const uint64_t t = (uint64_t)b->w[i] * m + carry;
        b->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry != 0u && b->n < BIG_WORDS)
        b->w[b->n++] = (uint32_t)carry;
}

static uint32_t big_divmod(big_t *b, uint32_t d)
{
    uint64_t r = 0;
    uint32_t i = b->n;
    while (i-- > 0u) {
        const uint64_t t = (r << 32) | b->w[i];
        b->w[i] = (uint32_t)(t / d);
        r = t % d;
    }
    while (b->n > 0u && b->w[b->n - 1u] == 0u)
        --b->n;
    return (uint32_t)r;
}

/* Exact: the float's full decimal expansion, rounded half-to-even to 9 significant
 * digits, laid out as %g does (fixed for exponents -4..8, else d.dddde+XX, trailing zeros
 * dropped). 9 digits identify every float32, so the text reads back to the same bits. */
uint32_t reds_format_float(float v, char *out)
{
    uint32_t bits, e, f, m, k, pos, len, i, ns;
    int32_t e2, x;
    char dig[9 * 14]; /* 9 digits per 10^9 chunk; the value has at most 112 */
    char s[9];
    char *o = out;
    big_t b;

    memcpy(&bits, &v, sizeof bits);
    e = (bits >> 23) & 0xFFu;
    f = bits & 0x7FFFFFu;
    if (e == 0xFFu && f != 0u) {
        memcpy(o, "nan", 3);
        return 3u;
    }
    if (bits >> 31)
        *o++ = '-';
    if (e == 0xFFu) {
        memcpy(o, "inf", 3);
        return (uint32_t)(o - out) + 3u;
    }
    if (e == 0u && f == 0u) {
        *o++ = '0';
        return (uint32_t)(o - out);
    }
    m = e != 0u ? (f | 0x800000u) : f;
    e2 = e != 0u ? (int32_t)e - 150 : -149;
    b.w[0] = m;
    b.n = 1;
    if (e2 >= 0) { /* an integer: m * 2^e2 */
        for (k = (uint32_t)e2; k >= 31u; k -= 31u)
            big_mul(&b, 1u << 31);
        big_mul(&b, 1u << k);
    } else { /* m * 5^-e2, with the decimal point -e2 places from the right */
        for (k = (uint32_t)-e2; k >= 13u; k -= 13u)
            big_mul(&b, 1220703125u); /* 5^13 */
        for (; k > 0u; --k)
            big_mul(&b, 5u);
    }
    pos = sizeof dig;
    while (b.n > 0u) {
        uint32_t r = big_divmod(&b, 1000000000u);
        for (i = 0; i < 9u; ++i) {
            dig[--pos] = (char)('0' + (int)(r % 10u));
            r /= 10u;
        }
    }
    while (dig[pos] == '0') /* the value is not zero: a non-zero digit exists */
        ++pos;
    len = (uint32_t)sizeof dig - pos;
    x = (int32_t)len - 1 + (e2 < 0 ? e2 : 0); /* decimal exponent of the first digit */
    for (i = 0; i < 9u; ++i)
        s[i] = i < len ? dig[pos + i] : '0';
    if (len > 9u) {
        const char c = dig[pos + 9u];
        int rest = 0, up;
        for (i = 10u; i < len; ++i)
            rest |= dig[pos + i] != '0';
        up = c > '5' || (c == '5' && (rest || ((s[8] - '0') & 1)));
        if (up) {
            int j = 8;
            while (j >= 0 && s[j] == '9')
                s[j--] = '0';
            if (j < 0) {
                s[0] = '1';
                ++x;
            } else {
                ++s[j];
            }
        }
    }
    ns = 9u;
    while (ns > 1u && s[ns - 1u] == '0')
        --ns;
    if (x >= -4 && x < 9) {
        if (x >= 0) {
            for (i = 0; i <= (uint32_t)x; ++i)
                *o++ = s[i];
            if (ns > (uint32_t)x + 1u) {
                *o++ = '.';
                for (i = (uint32_t)x + 1u; i < ns; ++i)
                    *o++ = s[i];
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (i = 0; i < (uint32_t)(-x - 1); ++i)
                *o++ = '0';
            for (i = 0; i < ns; ++i)
                *o++ = s[i];
        }
    } else {
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
        *o++ = s[0];
        if (ns > 1u) {
            *o++ = '.';
            for (i = 1; i < ns; ++i)
                *o++ = s[i];
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        *o++ = (char)('0' + (int)(ax / 10u));
        *o++ = (char)('0' + (int)(ax % 10u));
    }
    return (uint32_t)(o - out);
}

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

static uint64_t time_run(reds_proto_t *p)
{
    reds_run_fn volatile call = reds_run;
    uint64_t t0, t1;
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

static void cmd_db(reds_proto_t *p, const char *arg, const char *count)
{
    const uint32_t cap = reds_input_size(p->model) * (uint32_t)sizeof(float);
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
        const uint8_t *bytes = (const uint8_t *)p->input;
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
        ((uint8_t *)p->input)[p->db_have++] = (uint8_t)(hex_value(arg[i]) << 4 | hex_value(arg[i + 1u]));
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
    for (i = 0; i < warmup; ++i)
        p->output = reds_run(p->model, p->input);
    say(p, "m-warmup-done\r\nm-infer-start-");
    say_u(p, n);
    end(p);
    {
        reds_run_fn volatile call = reds_run;
        t0 = p->board->ticks();
        for (i = 0; i < n; ++i)
            p->output = call(p->model, p->input);
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
    for (i = 0; i < n; ++i) {
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

static void run_command(reds_proto_t *p)
{
    char *tok[MAX_TOKENS];
    uint32_t ntok = 0, i = 0, a = 0, b = 0;
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
#define ARGS(n) (ntok == (n) + 1u)
    if (strcmp(tok[0], "name") == 0 && ARGS(0)) {
        say(p, "m-name-reds-");
        say(p, p->model->net->name);
        end(p);
    } else if (strcmp(tok[0], "profile") == 0 && ARGS(0)) {
        say(p, "m-profile-[reds-protocol-");
        say_u(p, REDS_PROTO_VERSION);
        say(p, "]\r\nm-model-[");
        say(p, p->model->net->name);
        say(p, " ");
        say(p, p->model->net->family_hash);
        say(p, "]\r\n");
    } else if (strcmp(tok[0], "timestamp") == 0 && ARGS(0)) {
        say(p, "m-lap-us-");
        say_u(p, microseconds(p, to_cycles(p, p->board->ticks())));
        end(p);
    } else if (strcmp(tok[0], "db") == 0 && (ARGS(1) || ARGS(2))) {
        cmd_db(p, tok[1], ntok == 3u ? tok[2] : 0);
    } else if (strcmp(tok[0], "infer") == 0 && ARGS(2)) {
        if (!parse_u32(tok[1], &a) || !parse_u32(tok[2], &b))
            fail(p, "bad-argument");
        else
            cmd_infer(p, a, b);
    } else if (strcmp(tok[0], "results") == 0 && ARGS(0)) {
        cmd_results(p);
    } else if (strcmp(tok[0], "info") == 0 && ARGS(0)) {
        cmd_info(p);
    } else if (strcmp(tok[0], "list") == 0 && ARGS(0)) {
        cmd_list(p);
    } else if (strcmp(tok[0], "select") == 0 && ARGS(1)) {
        if (!parse_u32(tok[1], &a))
            fail(p, "bad-argument");
        else if (a >= reds_num_submodels(p->model))
            fail(p, "out-of-range");
        else
            cmd_switch(p, "m-select", reds_select, a);
    } else if (strcmp(tok[0], "budget") == 0 && ARGS(1)) {
        if (!parse_u32(tok[1], &a))
            fail(p, "bad-argument");
        else
            cmd_switch(p, "m-budget", pick_and_select, a);
    } else if (strcmp(tok[0], "cost") == 0 && ARGS(2)) {
        if (!parse_u32(tok[1], &a) || !parse_u32(tok[2], &b))
            fail(p, "bad-argument");
        else if (a >= reds_num_submodels(p->model) || a >= REDS_MAX_SUBMODELS)
            fail(p, "out-of-range");
        else {
            p->cost[a] = b;
            say(p, "m-cost");
            field_u(p, "k", a);
            field_u(p, "cycles", b);
            end(p);
        }
    } else if (strcmp(tok[0], "deadline") == 0 && ARGS(1)) {
        if (!parse_u32(tok[1], &a))
            fail(p, "bad-argument");
        else {
            pick_costs = p->cost;
            cmd_switch(p, "m-deadline", pick_cost_and_select, a);
        }
    } else if (strcmp(tok[0], "loop") == 0 && ARGS(1)) {
        if (!parse_u32(tok[1], &a))
            fail(p, "bad-argument");
        else
            cmd_loop(p, a);
    } else if (strcmp(tok[0], "name") == 0 || strcmp(tok[0], "profile") == 0 ||
               strcmp(tok[0], "timestamp") == 0 || strcmp(tok[0], "db") == 0 ||
               strcmp(tok[0], "infer") == 0 || strcmp(tok[0], "results") == 0 ||
               strcmp(tok[0], "info") == 0 || strcmp(tok[0], "list") == 0 ||
               strcmp(tok[0], "select") == 0 || strcmp(tok[0], "budget") == 0 ||
               strcmp(tok[0], "loop") == 0 || strcmp(tok[0], "cost") == 0 ||
               strcmp(tok[0], "deadline") == 0) {
        fail(p, "wrong-number-of-arguments");
    } else {
        fail(p, "unknown-command");
    }
#undef ARGS
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
