/*
 * KeywordSpotting: the Nano 33 BLE Sense's microphone -> MFCCs -> a submodel of the family,
 * every half second; the submodel follows a budget sent over `Serial`.
 *
 * - The PDM microphone (MP34DT05) at 16 kHz mono fills a 1 s ring buffer (interrupt).
 * - Every KWS_HOP samples (0.5 s) the last second is turned into the model's raw input
 *   (frames x 10 MFCCs, the front end below) and the active submodel runs; the sketch
 *   prints the top class, its logit, the submodel and the time the inference took.
 * - Type a budget into the serial monitor (newline-terminated):
 *       b 0.5      the largest submodel whose budget (fraction of the full model's MACs) fits
 *       m 200000   the largest submodel within 200,000 MACs (reds_pick_macs)
 *       k 2        submodel 2
 *   Switching is one store (reds_select): the next inference runs the new width.
 *
 * Put into this sketch's folder the model of a family trained on audio:
 *     reds export FAMILY --format c --out KeywordSpotting      (reds_model.h, reds_model.c)
 * The export carries the family's MFCC front end (its tables and buffers) and class names.
 * Another name: define REDS_MODEL, REDS_MODEL_HEADER, REDS_INPUT_FLOATS before the includes.
 *
 * It waits at most 2 s for the serial monitor at start-up, then runs without one.
 */
#include <Arduino.h>
#include <PDM.h>
#include <stdint.h>

#if defined(__has_include)
#if __has_include("reds_config.h")
#include "reds_config.h"
#endif
#endif
#ifndef REDS_MODEL /* the name `reds export` gives by default */
#define REDS_MODEL reds_model
#define REDS_MODEL_HEADER "reds_model.h"
#define REDS_INPUT_FLOATS REDS_MODEL_INPUT_SIZE
#endif
extern "C" {
#include REDS_MODEL_HEADER
}

#define KWS_RATE 16000u    /* Hz, what the model was trained on */
#define KWS_SAMPLES 16000u /* one clip: 1 s */
#define KWS_HOP 8000u      /* run every 0.5 s */
#define HOST_WAIT_MS 2000u /* longest wait for the serial monitor at start-up */

/* ==== the front end: int16 PCM -> the model's raw input (frames x 10 MFCCs) ==============
 * reds_features (this library's src/reds_mfcc.c) computes, in C, the features reds trained
 * on (reds.data.mfcc: Hann frames, real FFT, mel filterbank, log, DCT) with the family's own
 * tables, into reds_input(); reds_run then applies the family's normalisation. */
#ifndef REDS_MODEL_MFCC_FEATURES
#error "this model has no front end: export a family trained on audio (speech-commands, synth-kws, a WAV folder)"
#endif
static_assert(REDS_MODEL_MFCC_FEATURES == REDS_INPUT_FLOATS, "the front end's features are not the model's input");

static void front_end(const int16_t *pcm, uint32_t n)
{
    reds_features(&REDS_MODEL, pcm, n); /* raw features straight into the arena */
}
/* ==== end of the front end ============================================================== */

#ifndef KWS_LABELS /* the family's classes, as the export names them */
#define KWS_LABELS REDS_MODEL_CLASSES
#endif
static const char *const labels[] = KWS_LABELS;
static const unsigned num_labels = sizeof labels / sizeof labels[0];

/* ---- microphone: a 1 s ring buffer, filled by the PDM interrupt ---- */
static int16_t ring[KWS_SAMPLES];
static volatile uint32_t head;    /* where the next sample goes: the oldest one */
static volatile uint32_t written; /* samples received since start (wraps after 74 h: unsigned differences) */
static int16_t chunk[256];        /* one PDM read (the core's buffer is 512 B by default) */

static void on_pdm(void)
{
    int bytes = PDM.available();
    if (bytes > (int)sizeof chunk)
        bytes = (int)sizeof chunk;
    PDM.read(chunk, (size_t)bytes);
    uint32_t h = head, n = (uint32_t)bytes / 2u;
    for (uint32_t i = 0; i < n; ++i) {
        ring[h] = chunk[i];
        h = h + 1u == KWS_SAMPLES ? 0u : h + 1u;
    }
    head = h;
    written = written + n;
}

/* The last second in order, oldest first. The interrupt keeps writing at the oldest end
 * while this copies; the copy (~1 ms) outruns it (16 samples/ms), so no sample read is
 * overwritten first. */
static int16_t clip[KWS_SAMPLES];

static void last_second(uint32_t h)
{
    uint32_t j = 0;
    for (uint32_t i = h; i < KWS_SAMPLES; ++i)
        clip[j++] = ring[i];
    for (uint32_t i = 0; i < h; ++i)
        clip[j++] = ring[i];
}

/* ---- budget: the largest submodel that fits ---- */
static unsigned pick_budget(float budget)
{
    unsigned k = reds_num_submodels(&REDS_MODEL);
    while (k > 1u && reds_budget(&REDS_MODEL, k - 1u) > budget + 1e-6f)
        --k;
    return k - 1u; /* submodel 0 when none fits: the smallest there is */
}

static void report_submodel(void)
{
    unsigned k = reds_active(&REDS_MODEL);
    Serial.print("submodel ");
    Serial.print(k);
    Serial.print(" of ");
    Serial.print(reds_num_submodels(&REDS_MODEL));
    Serial.print(": budget ");
    Serial.print(reds_budget(&REDS_MODEL, k), 3);
    Serial.print(", ");
    Serial.print((unsigned long)reds_macs(&REDS_MODEL, k));
    Serial.println(" MACs");
}

static char line[32];
static unsigned line_len;

/* A decimal number ("0.5", "200000"): 1 and its value, or 0 (no strtod: it would pull in
 * the heap and ~10 KB of code). */
static int parse_number(const char *s, float *value)
{
    float v = 0.0f, scale = 1.0f;
    int digits = 0, frac = 0;
    for (; *s == ' '; ++s) {
    }
    for (; (*s >= '0' && *s <= '9') || (*s == '.' && !frac); ++s) {
        if (*s == '.') {
            frac = 1;
            continue;
        }
        if (frac)
            scale *= 0.1f;
        v = frac ? v + (float)(*s - '0') * scale : v * 10.0f + (float)(*s - '0');
        ++digits;
    }
    *value = v;
    return digits > 0 && (*s == '\0' || *s == ' ');
}

static void command(const char *s)
{
    float v;
    if (s[0] == '\0' || s[1] != ' ' || !parse_number(s + 2, &v)) {
        Serial.println("commands: b FRACTION | m MACS | k SUBMODEL");
        return;
    }
    if (s[0] == 'b') {
        reds_select(&REDS_MODEL, pick_budget(v));
    } else if (s[0] == 'm') {
        int k = reds_pick_macs(&REDS_MODEL, v >= 4294967040.0f ? 0xFFFFFFFFu : (uint32_t)v);
        reds_select(&REDS_MODEL, k < 0 ? 0u : (unsigned)k);
    } else if (s[0] == 'k') {
        if (reds_select(&REDS_MODEL, (unsigned)v) != 0) {
            Serial.println("no such submodel");
            return;
        }
    } else {
        Serial.println("commands: b FRACTION | m MACS | k SUBMODEL");
        return;
    }
    report_submodel();
}

static void read_commands(void)
{
    while (Serial.available() > 0) {
        char c = (char)Serial.read();
        if (c == '\n' || c == '\r') {
            line[line_len] = '\0';
            if (line_len > 0u)
                command(line);
            line_len = 0u;
        } else if (line_len + 1u < sizeof line) {
            line[line_len++] = c;
        }
    }
}

static uint32_t last_run;
static bool filled;

void setup()
{
    Serial.begin(115200);
    const unsigned long t0 = millis();
    while (!Serial && millis() - t0 < HOST_WAIT_MS) /* bounded: runs without a serial monitor */
        delay(10);
    PDM.onReceive(on_pdm);
    PDM.setBufferSize((int)sizeof chunk);
    if (!PDM.begin(1, (int)KWS_RATE)) {
        Serial.println("PDM microphone did not start");
        for (;;)
            delay(1000);
    }
    report_submodel(); /* the largest is active at start */
}

void loop()
{
    read_commands();
    noInterrupts();
    uint32_t w = written, h = head;
    interrupts();
    if (!filled) { /* the first full second */
        if (w < KWS_SAMPLES)
            return;
        filled = true;
    }
    if (w - last_run < KWS_HOP)
        return;
    last_run = w;
    last_second(h);
    const unsigned long t0 = micros();
    front_end(clip, KWS_SAMPLES);
    const unsigned long t1 = micros();
    const float *logits = reds_run(&REDS_MODEL, NULL);
    const unsigned long t2 = micros();
    unsigned top = 0;
    for (unsigned i = 1; i < reds_output_size(&REDS_MODEL); ++i)
        if (logits[i] > logits[top])
            top = i;
    if (num_labels == reds_output_size(&REDS_MODEL))
        Serial.print(labels[top]);
    else
        Serial.print(top);
    Serial.print("  logit ");
    Serial.print(logits[top], 2);
    Serial.print("  submodel ");
    Serial.print(reds_active(&REDS_MODEL));
    Serial.print("  mfcc ");
    Serial.print(t1 - t0);
    Serial.print(" us  infer ");
    Serial.print(t2 - t1);
    Serial.println(" us");
}
