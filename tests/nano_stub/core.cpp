/* Stand-in for the Arduino core (tests only): Serial, Ticker, main() and a vector table,
 * so that the sketch links into an image whose sizes can be measured. */
#include "Arduino.h"
#include "mbed.h"

StubSerial Serial;
static volatile uint8_t rx;
void StubSerial::begin(unsigned long) {}
StubSerial::operator bool() const { return true; }
int StubSerial::available() { return rx; }
int StubSerial::read() { return rx; }
size_t StubSerial::write(const uint8_t *buf, size_t n) { rx = buf[n - 1]; return n; }
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
