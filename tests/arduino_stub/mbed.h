/* Stand-in for mbed.h (tests only): the Ticker that the SerialBenchmark sketch uses.
 * arm-none-eabi-gcc here ships no C++ library headers, so the two std::chrono durations it
 * needs are spelled out. */
#ifndef REDS_MBED_STUB_H
#define REDS_MBED_STUB_H
namespace std {
namespace chrono {
struct microseconds {
    long long us;
    constexpr microseconds(long long v) : us(v) {}
};
struct seconds {
    long long s;
    constexpr explicit seconds(long long v) : s(v) {}
    constexpr operator microseconds() const { return microseconds(s * 1000000); }
};
}
}
namespace mbed {
class Ticker {
public:
    void attach(void (*fn)(), std::chrono::microseconds period);
};
}
#endif
