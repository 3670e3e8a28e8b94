/*
 * Host harness of one int8 kernel: reads a test case on stdin, runs the int8 kernel of its
 * op once, writes the int8 output on stdout. tests/test_kernels_s8.py writes the cases
 * (seeded random shapes and requantization records, every submodel width, both layouts)
 * and compares with reds.quant.ops, bit for bit.
 *
 * Build: cc -std=c99 -I firmware/src -I firmware/src/kernels/reference tests/c/kernel_s8_harness.c
 *        <the *_s8.c files of one kernel set>
 * Case (native byte order): 34 int32 (op, kh, kw, sh, sw, pad_t, pad_b, pad_l, pad_r, in_h,
 * in_w, out_h, out_w, elem, cin, cout, zx, zy, lo, hi, leaky, slope_mult, slope_shift,
 * has_bias, pool_m, pool_e, za, zb, ma, ea, mb, eb, mo, eo); the segment table of the
 * submodel as the exporter writes it (uint32 count, then o0 o1 first n per group; uint32
 * count, then off step lo hi per segment; both 0 but for conv and dense); then six arrays,
 * each as uint32 count + int32 values: weight (int8 values), bias, mult, shift (int8
 * values), input x (int8 values), skip (add's input b, int8 values).
 * Output: cout x out_h x out_w int8 values (add: cout x in_h x in_w, the in-place x).
 * Several cases one after the other: each is run, their outputs follow each other.
 * A harness (not the runtime) may use stdio and malloc.
 *
 * On an emulated Cortex-M4 (-DREDS_HARNESS_SEMIHOSTING, linked with newlib's
 * --specs=rdimon.specs, the vector table placed at 0; QEMU's mps2-an386 with
 * -semihosting-config enable=on,target=native,arg=harness,arg=CASES,arg=OUT), where the
 * kernels run the DSP instructions: it reads the file CASES and writes OUT on the host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_reader.h"
#include "reds_s8.h"

#define NHEAD 34

static FILE *out;

static int8_t *narrow(const int32_t *v, uint32_t n)
{
    int8_t *p = malloc(n ? n : 1u);
    uint32_t j;
    if (p == NULL)
        exit(3);
    for (j = 0; j < n; ++j) {
        if (v[j] < -128 || v[j] > 127)
            exit(4);
        p[j] = (int8_t)v[j];
    }
    return p;
}

static int run_one(void)
{
    int32_t h[NHEAD], *weight32, *bias, *mult, *shift32, *x32, *skip32;
    uint32_t j, ng, nsg, nw, nb, nm, ns, nx, nk, cin, cout, out_n;
    reds_group_t *groups;
    reds_seg_t *segs;
    int8_t *weight, *shift, *x, *skip, *y;
    reds_layer_t L;
    reds_weights_s8_t w;
    reds_requant_t q;
    reds_add_s8_t a;

    for (j = 0; j < NHEAD; ++j)
        h[j] = (int32_t)u32();
    segment_table(&groups, &ng, &segs, &nsg);
    weight32 = array(&nw, sizeof(int32_t));
    bias = array(&nb, sizeof(int32_t));
    mult = array(&nm, sizeof(int32_t));
    shift32 = array(&ns, sizeof(int32_t));
    x32 = array(&nx, sizeof(int32_t));
    skip32 = array(&nk, sizeof(int32_t));
    weight = narrow(weight32, nw);
    shift = narrow(shift32, ns);
    x = narrow(x32, nx);
    skip = narrow(skip32, nk);

    /* only the geometry: the float pointers stay NULL (int8 kernels never read them) */
    memset(&L, 0, sizeof L);
    L.op = (uint8_t)h[0];
    L.kh = (uint8_t)h[1];
    L.kw = (uint8_t)h[2];
    L.sh = (uint8_t)h[3];
    L.sw = (uint8_t)h[4];
    L.pad_t = (uint8_t)h[5];
    L.pad_b = (uint8_t)h[6];
    L.pad_l = (uint8_t)h[7];
    L.pad_r = (uint8_t)h[8];
    L.in_h = (uint16_t)h[9];
    L.in_w = (uint16_t)h[10];
    L.out_h = (uint16_t)h[11];
    L.out_w = (uint16_t)h[12];
    L.elem = (uint32_t)h[13];
    cin = (uint32_t)h[14];
    cout = (uint32_t)h[15];

    q.bias = h[23] ? bias : NULL;
    q.mult = mult;
    q.shift = shift;
    q.zx = h[16];
    q.zy = h[17];
    q.lo = h[18];
    q.hi = h[19];
    q.leaky = (uint8_t)h[20];
    q.slope_mult = h[21];
    q.slope_shift = (int8_t)h[22];

    w.base = weight;
    w.groups = groups;
    w.ngroups = ng;
    w.segs = segs;
    w.elem = L.elem;

    a.za = h[26];
    a.zb = h[27];
    a.ma = h[28];
    a.ea = h[29];
    a.mb = h[30];
    a.eb = h[31];
    a.mo = h[32];
    a.eo = h[33];
    a.zy = h[17];
    a.lo = h[18];
    a.hi = h[19];

    out_n = cout * L.out_h * L.out_w;
    y = calloc(out_n ? out_n : 1u, 1);
    if (y == NULL)
        return 3;
    switch (L.op) {
    case REDS_OP_CONV2D:
        reds_conv2d_s8(&L, &w, &q, cin, cout, x, y);
        break;
    case REDS_OP_DEPTHWISE_CONV2D:
        reds_depthwise_conv2d_s8(&L, weight, &q, cout, x, y);
        break;
    case REDS_OP_DENSE:
        reds_dense_s8(&L, &w, &q, cin, cout, x, y);
        break;
    case REDS_OP_AVG_POOL:
        reds_avg_pool_s8(&L, cout, h[24], (int)h[25], q.zx, q.zy, x, y);
        break;
    case REDS_OP_MAX_POOL:
        reds_max_pool_s8(&L, cout, x, y);
        break;
    case REDS_OP_ADD:
        if (nx < out_n || nk < out_n)
            return 4;
        reds_add_s8(x, skip, out_n, &a);
        memcpy(y, x, out_n);
        break;
    default:
        return 5;
    }
    if (fwrite(y, 1, out_n, out) != out_n)
        return 3;
    (void)nb;
    (void)nm;
    free(groups);
    free(segs);
    free(weight32);
    free(bias);
    free(mult);
    free(shift32);
    free(x32);
    free(skip32);
    free(weight);
    free(shift);
    free(x);
    free(skip);
    free(y);
    return 0;
}

#ifdef REDS_HARNESS_SEMIHOSTING
#include "m4_start.h"
#endif

int main(int argc, char **argv)
{
    int rc = 0, ch;
    case_in = stdin;
    out = stdout;
    if (argc == 3) {
        case_in = fopen(argv[1], "rb");
        out = fopen(argv[2], "wb");
        if (case_in == NULL || out == NULL)
            return 6;
    } else if (argc != 1) {
        return 6;
    }
    while (rc == 0 && (ch = getc(case_in)) != EOF) {
        if (ungetc(ch, case_in) == EOF)
            return 3;
        rc = run_one();
    }
    if (fflush(out) != 0)
        return 3;
    if (argc == 3 && (fclose(case_in) != 0 || fclose(out) != 0))
        return 3;
    return rc;
}
