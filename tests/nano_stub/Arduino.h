/* A minimal stand-in for the Arduino mbed core's Arduino.h, used only by the tests: enough
 * of `Serial` for boards/nano33ble/src/main.cpp to compile and link with arm-none-eabi-g++
 * (the real core comes with PlatformIO). */
#ifndef REDS_NANO_STUB_ARDUINO_H
#define REDS_NANO_STUB_ARDUINO_H
#include <stddef.h>
#include <stdint.h>

#define ARDUINO_ARCH_MBED 1

class StubSerial {
public:
    void begin(unsigned long baud);
    explicit operator bool() const;
    int available();
    int read();
    size_t write(const uint8_t *buf, size_t n);
};
extern StubSerial Serial;

void setup();
void loop();
#endif
