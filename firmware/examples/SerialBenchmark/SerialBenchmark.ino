/*
 * SerialBenchmark: one exported model behind the reds serial protocol on the USB serial
 * port (`Serial`, CDC: the baud rate is ignored), for `reds bench FAMILY --port PORT`.
 * Written for the Arduino Nano 33 BLE (Sense); any Cortex-M3/M4/M7 board with the mbed core
 * runs it (set BOARD_CLOCK_HZ and BOARD_NAME).
 *
 * The model. Arduino IDE / arduino-cli: export the family into this sketch's folder,
 *     reds export FAMILY --format c --out SerialBenchmark     (reds_model.h, reds_model.c)
 * `reds build FAMILY --board nano33ble --out BUILD` builds this same file as BUILD/src/main.cpp
 * (PlatformIO), with the model and the reds_config.h that names it.
 *
 * Timing: the DWT cycle counter (CYCCNT), enabled through CoreDebug DEMCR.TRCENA and
 * DWT_CTRL.CYCCNTENA: real CPU cycles at 64 MHz. It is 32 bits wide (it wraps every 67 s);
 * board_ticks() extends it to 64 bits, and a ticker reads it every 10 s so that no wrap
 * goes unseen even during a long `infer N W%`.
 *
 * Start-up: it waits at most 2 s for a host to open the port (so the first replies are not
 * lost when one does), then serves; without a host it runs all the same.
 */
#include <Arduino.h>
#include <stdint.h>

#if defined(__has_include)
#if __has_include("reds_config.h")
#include "reds_config.h" /* written by reds build */
#endif
#endif
#ifndef REDS_MODEL /* the name `reds export` gives by default (--name reds_model) */
#define REDS_MODEL reds_model
#define REDS_MODEL_HEADER "reds_model.h"
#define REDS_INPUT_FLOATS REDS_MODEL_INPUT_SIZE
#endif

#include "reds_protocol.h"
extern "C" {
#include REDS_MODEL_HEADER
}
#if defined(ARDUINO_ARCH_MBED)
#include <mbed.h>
#endif

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u) /* lock access (harmless where absent) */

#ifndef BOARD_CLOCK_HZ
#define BOARD_CLOCK_HZ 64000000u
#endif
#ifndef BOARD_NAME
#define BOARD_NAME "nano33ble"
#endif
#define HOST_WAIT_MS 2000u /* longest wait for a host at start-up */

static volatile uint32_t cyc_last, cyc_high;

static void dwt_init(void)
{
    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT_CYCCNT = 0u;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    cyc_last = 0u;
    cyc_high = 0u;
}

/* 64-bit cycles: counts the counter's wraps (needs a read at least every 67 s). */
static uint64_t board_ticks(void)
{
    uint32_t primask, v, hi;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    v = DWT_CYCCNT;
    if (v < cyc_last)
        cyc_high = cyc_high + 1u;
    cyc_last = v;
    hi = cyc_high;
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return ((uint64_t)hi << 32) | v;
}

static void board_write(const char *s, uint32_t n)
{
    Serial.write(reinterpret_cast<const uint8_t *>(s), n);
}

/* a byte from the host during a long infer or loop aborts it */
static int board_pending(void) { return Serial.available() > 0; }

static const reds_board_t board = {
    board_write, board_ticks, 1u, 1u, BOARD_CLOCK_HZ, BOARD_NAME, "dwt-cyccnt", "cpu-cycle", board_pending,
};

static reds_proto_t proto;
static float input[REDS_INPUT_FLOATS];

#if defined(ARDUINO_ARCH_MBED)
static mbed::Ticker keepalive;
static void keepalive_tick(void) { (void)board_ticks(); }
#endif

void setup()
{
    Serial.begin(115200);
    const unsigned long t0 = millis();
    while (!Serial && millis() - t0 < HOST_WAIT_MS) /* bounded: the sketch starts without a host */
        delay(10);
    dwt_init();
#if defined(ARDUINO_ARCH_MBED)
    keepalive.attach(&keepalive_tick, std::chrono::seconds(10));
#endif
    reds_proto_init(&proto, &board, &REDS_MODEL, input);
}

void loop()
{
    while (Serial.available() > 0)
        reds_proto_feed(&proto, (char)Serial.read());
    (void)board_ticks(); /* keeps the 64-bit extension in step while idle */
}
