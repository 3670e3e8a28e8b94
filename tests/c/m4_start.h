/*
 * The start of a test program on QEMU's mps2-an386 (a Cortex-M4F) with newlib's
 * semihosting (rdimon): the vector table, linked at 0, and a reset that turns the FPU on.
 * Included once, by the program's main file, where REDS_HARNESS_SEMIHOSTING is defined.
 */
#ifndef REDS_TESTS_M4_START_H
#define REDS_TESTS_M4_START_H

#include <stdint.h>

/* Reset: the FPU on (the code is built with -mfloat-abi=hard), then newlib's start-up
 * (rdimon: the stack and heap from the emulator, argv, exit status by semihosting). */
extern void _start(void);
void reds_harness_reset(void);
void reds_harness_reset(void)
{
    (*(volatile uint32_t *)0xE000ED88u) |= 0xFu << 20; /* CPACR: CP10 and CP11 */
    __asm volatile("dsb\n\tisb" ::: "memory");
    _start();
}

static void reds_harness_fault(void)
{
    for (;;)
        ;
}

typedef void (*reds_harness_vector_t)(void);
/* the initial stack pointer (the top of the mps2-an386's RAM at 0x20000000), then reset and the faults */
__attribute__((section(".vectors"), used)) static const reds_harness_vector_t reds_harness_vectors[7] = {
    (reds_harness_vector_t)0x20400000u, reds_harness_reset, reds_harness_fault, reds_harness_fault,
    reds_harness_fault, reds_harness_fault, reds_harness_fault};

#endif
