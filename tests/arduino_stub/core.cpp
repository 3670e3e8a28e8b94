/* Stand-in for the Arduino core (tests only): Serial, PDM, the time functions, Ticker,
 * main() and a vector table, so that a sketch links into an image whose sizes can be
 * measured. Nothing here is meant to run. */
#include "Arduino.h"
#include "PDM.h"
#include "mbed.h"

StubSerial Serial;
PDMClass PDM;
static volatile uint8_t rx;
static volatile unsigned long now;

extern "C" {
unsigned long millis(void) { return now += 1u; }
unsigned long micros(void) { return now += 1000u; }
void delay(unsigned long ms) { now += ms; }
void noInterrupts(void) {}
void interrupts(void) {}
}

void StubSerial::begin(unsigned long) {}
StubSerial::operator bool() const { return rx != 0; }
int StubSerial::available() { return rx; }
int StubSerial::read() { return rx; }
size_t StubSerial::write(uint8_t c) { rx = c; return 1; }
size_t StubSerial::write(const uint8_t *buf, size_t n) { rx = buf[n - 1]; return n; }
size_t StubSerial::print(const char *s) { size_t n = 0; while (s[n]) write((uint8_t)s[n++]); return n; }
size_t StubSerial::print(char c) { return write((uint8_t)c); }
size_t StubSerial::print(unsigned char v, int base) { return print((unsigned long)v, base); }
size_t StubSerial::print(int v, int base) { return print((long)v, base); }
size_t StubSerial::print(unsigned int v, int base) { return print((unsigned long)v, base); }
size_t StubSerial::print(long v, int base) { return v < 0 ? print('-') + print((unsigned long)-v, base) : print((unsigned long)v, base); }
size_t StubSerial::print(unsigned long v, int base) { return write((uint8_t)('0' + v % (unsigned long)base)); }
size_t StubSerial::print(double v, int) { return print((long)v); }
size_t StubSerial::println(void) { return print("\r\n"); }
size_t StubSerial::println(const char *s) { return print(s) + println(); }
size_t StubSerial::println(char c) { return print(c) + println(); }
size_t StubSerial::println(unsigned char v, int base) { return print(v, base) + println(); }
size_t StubSerial::println(int v, int base) { return print(v, base) + println(); }
size_t StubSerial::println(unsigned int v, int base) { return print(v, base) + println(); }
size_t StubSerial::println(long v, int base) { return print(v, base) + println(); }
size_t StubSerial::println(unsigned long v, int base) { return print(v, base) + println(); }
size_t StubSerial::println(double v, int digits) { return print(v, digits) + println(); }

static void (*pdm_callback)(void);
int PDMClass::begin(int, int) { if (pdm_callback) pdm_callback(); return 1; }
void PDMClass::end() {}
int PDMClass::available() { return rx; }
int PDMClass::read(void *buffer, size_t size) { ((uint8_t *)buffer)[size - 1] = rx; return (int)size; }
void PDMClass::onReceive(void (*function)(void)) { pdm_callback = function; }
void PDMClass::setGain(int) {}
void PDMClass::setBufferSize(int) {}
size_t PDMClass::getBufferSize() { return 512; }

void mbed::Ticker::attach(void (*fn)(), std::chrono::microseconds) { fn(); }

extern "C" int main(void)
{
    setup();
    for (;;)
        loop();
}

extern "C" void Reset_Handler(void) { main(); }
extern "C" uint32_t __stack_top;
__attribute__((section(".isr_vector"), used)) static const void *const vectors[2] = {&__stack_top,
                                                                                      (const void *)Reset_Handler};
