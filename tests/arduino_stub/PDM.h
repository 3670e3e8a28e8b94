/* Stand-in for the Arduino mbed core's PDM library (tests only): the PDMClass API of the
 * Nano 33 BLE Sense's microphone (MP34DT05) as the core declares it. */
#ifndef REDS_PDM_STUB_H
#define REDS_PDM_STUB_H
#include <stddef.h>

class PDMClass {
public:
    int begin(int channels, int sampleRate);
    void end();
    int available();
    int read(void *buffer, size_t size);
    void onReceive(void (*function)(void));
    void setGain(int gain);
    void setBufferSize(int bufferSize);
    size_t getBufferSize();
};
extern PDMClass PDM;
#endif
