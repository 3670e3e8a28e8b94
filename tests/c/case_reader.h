/*
 * Reading a kernel test case, shared by the float and int8 kernel harnesses
 * (kernel_harness.c, kernel_s8_harness.c): native byte order, uint32 words, arrays as a
 * uint32 count then the values, the segment table as the exporter writes it. A short or
 * failed read (or malloc) exits with status 3. A harness (not the runtime) may use stdio
 * and malloc.
 */
#ifndef REDS_TESTS_CASE_READER_H
#define REDS_TESTS_CASE_READER_H

#include <stdio.h>
#include <stdlib.h>

#include "reds.h"

static FILE *case_in; /* where the case is read from: the harness sets it (stdin, or a file) */

static uint32_t u32(void)
{
    uint32_t v;
    if (fread(&v, sizeof v, 1, case_in) != 1)
        exit(3);
    return v;
}

/* A uint32 count *n, then *n values of `size` bytes each (float32 or int32). */
static void *array(uint32_t *n, size_t size)
{
    void *p;
    *n = u32();
    p = malloc((*n ? *n : 1u) * size);
    if (p == NULL || fread(p, size, *n, case_in) != *n)
        exit(3);
    return p;
}

/* The segment table (uint32 count, then o0 o1 first n per group; uint32 count, then off
 * step lo hi per segment; both 0 but for conv and dense). */
static void segment_table(reds_group_t **groups, uint32_t *ng, reds_seg_t **segs, uint32_t *nsg)
{
    reds_group_t *G;
    reds_seg_t *S;
    uint32_t j;
    *ng = u32();
    G = malloc((*ng ? *ng : 1u) * sizeof *G);
    if (G == NULL)
        exit(3);
    for (j = 0; j < *ng; ++j) {
        G[j].o0 = (uint16_t)u32();
        G[j].o1 = (uint16_t)u32();
        G[j].first = (uint16_t)u32();
        G[j].n = (uint16_t)u32();
    }
    *nsg = u32();
    S = malloc((*nsg ? *nsg : 1u) * sizeof *S);
    if (S == NULL)
        exit(3);
    for (j = 0; j < *nsg; ++j) {
        S[j].off = u32();
        S[j].step = u32();
        S[j].lo = (uint16_t)u32();
        S[j].hi = (uint16_t)u32();
    }
    *groups = G;
    *segs = S;
}

#endif /* REDS_TESTS_CASE_READER_H */
