/* A minimal stand-in for the Arduino core's Arduino.h (the mbed core of the Nano 33 BLE),
 * used only by the tests: what the reds sketches (firmware/examples/, built by `reds build
 * --board nano33ble` as src/main.cpp) call, with the real core's signatures, so that they
 * compile with arm-none-eabi-g++ (or g++) and link into an image whose size can be
 * measured. The real core comes with PlatformIO or the Arduino IDE; nothing here runs. */
#ifndef REDS_ARDUINO_STUB_H
#define REDS_ARDUINO_STUB_H
#include <stddef.h>
#include <stdint.h>

#ifndef ARDUINO_ARCH_MBED
#define ARDUINO_ARCH_MBED 1
#endif
#define DEC 10
#define HEX 16

extern "C" {
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void noInterrupts(void);
void interrupts(void);
}

/* Print's overloads as the core declares them (so that an ambiguous call fails here too):
 * println takes what print takes, and nothing. */
#define REDS_STUB_PRINT_OVERLOADS(name)           \
    size_t name(const char *s);                   \
    size_t name(char c);                          \
    size_t name(unsigned char v, int base = DEC); \
    size_t name(int v, int base = DEC);           \
    size_t name(unsigned int v, int base = DEC);  \
    size_t name(long v, int base = DEC);          \
    size_t name(unsigned long v, int base = DEC); \
    size_t name(double v, int digits = 2);

class StubSerial {
public:
    void begin(unsigned long baud);
    explicit operator bool() const;
    int available();
    int read();
    size_t write(uint8_t c);
    size_t write(const uint8_t *buf, size_t n);
    REDS_STUB_PRINT_OVERLOADS(print)
    REDS_STUB_PRINT_OVERLOADS(println)
    size_t println(void);
};
extern StubSerial Serial;

void setup();
void loop();
#endif
