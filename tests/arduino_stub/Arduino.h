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

/* Print's overloads as the core declares them (so that an ambiguous call fails here too). */
class StubSerial {
public:
    void begin(unsigned long baud);
    explicit operator bool() const;
    int available();
    int read();
    size_t write(uint8_t c);
    size_t write(const uint8_t *buf, size_t n);
    size_t print(const char *s);
    size_t print(char c);
    size_t print(unsigned char v, int base = DEC);
    size_t print(int v, int base = DEC);
    size_t print(unsigned int v, int base = DEC);
    size_t print(long v, int base = DEC);
    size_t print(unsigned long v, int base = DEC);
    size_t print(double v, int digits = 2);
    size_t println(void);
    size_t println(const char *s);
    size_t println(char c);
    size_t println(unsigned char v, int base = DEC);
    size_t println(int v, int base = DEC);
    size_t println(unsigned int v, int base = DEC);
    size_t println(long v, int base = DEC);
    size_t println(unsigned long v, int base = DEC);
    size_t println(double v, int digits = 2);
};
extern StubSerial Serial;

void setup();
void loop();
#endif
