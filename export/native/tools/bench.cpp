// anim_native_bench: times the native tick through the C API (no Python in the loop).
//
//   anim_native_bench RUNTIME_FILE INPUTS CHARACTERS [mm|lmm] [REPEATS]
//
// INPUTS: a little-endian file of int32 count, then count AnimInput structs
// (the ticks of a stick script, written by bench/native.py). Prints JSON:
// one character's tick times (p50, p99, mean, max in microseconds) over the
// inputs, then CHARACTERS characters ticked together (each its own handle,
// starting at staggered ticks of the inputs), the time of a whole batch tick,
// and how many characters fit in 1 ms on this core. With REPEATS > 1 the inputs
// are played REPEATS times from a reset and each tick keeps its fastest time (the
// ticks are deterministic: what differs between repeats is the machine's noise,
// other processes preempting this one).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "anim_native.h"

// Every operator new of the process (the core's too: the executable's replacement
// interposes) is counted, so the tool reports the allocations made while ticking.
static std::atomic<long> g_news{0};
void* operator new(std::size_t n) {
    g_news.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

using clk = std::chrono::steady_clock;

static double pct(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    size_t i = size_t(p / 100.0 * double(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

static double mean(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s / double(v.size());
}

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s RUNTIME_FILE INPUTS CHARACTERS [mm|lmm] [REPEATS]\n", argv[0]);
        return 2;
    }
    int repeats = argc > 5 ? std::max(1, std::atoi(argv[5])) : 1;
    bool lmm = argc > 4 && std::strcmp(argv[4], "lmm") == 0;
    FILE* f = std::fopen(argv[2], "rb");
    if (!f) { std::fprintf(stderr, "%s: cannot open\n", argv[2]); return 1; }
    int32_t n = 0;
    if (std::fread(&n, 4, 1, f) != 1 || n <= 0) { std::fprintf(stderr, "%s: bad inputs file\n", argv[2]); return 1; }
    std::vector<AnimInput> in(n);
    if (std::fread(in.data(), sizeof(AnimInput), size_t(n), f) != size_t(n)) { std::fprintf(stderr, "%s: short\n", argv[2]); return 1; }
    std::fclose(f);
    int chars = std::atoi(argv[3]);
    const double dt = 1.0 / 60.0;
    auto create = [&](AnimController** c) {
        int rc = lmm ? anim_create_lmm(argv[1], c) : anim_create_mm(argv[1], c);
        if (rc != ANIM_OK) { std::fprintf(stderr, "%s\n", anim_last_error()); std::exit(1); }
    };
    // one character, every tick timed
    AnimController* one = nullptr;
    long news_create = g_news.load();
    create(&one);
    news_create = g_news.load() - news_create;   // > 0: the counter sees the core's allocations
    for (int i = 0; i < std::min(n, 120); ++i) anim_step(one, &in[i], dt);   // warm caches
    anim_reset(one);
    std::vector<double> us(n, 1e300);
    AnimTickInfo info;
    long news0 = g_news.load();
    for (int r = 0; r < repeats; ++r) {
        if (r) anim_reset(one);
        for (int i = 0; i < n; ++i) {
            auto t0 = clk::now();
            anim_step(one, &in[i], dt);
            us[i] = std::min(us[i], std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        }
    }
    anim_get_info(one, &info);
    long allocations = g_news.load() - news0;
    // a batch of characters, staggered along the inputs
    std::vector<AnimController*> cs(chars);
    for (int k = 0; k < chars; ++k) {
        if (k == 0) { cs[k] = one; anim_reset(one); } else create(&cs[k]);
    }
    std::vector<double> batch(n, 1e300);
    for (int r = 0; r < repeats; ++r) {
        for (int k = 0; k < chars; ++k) anim_reset(cs[k]);
        for (int i = 0; i < n; ++i) {
            auto t0 = clk::now();
            for (int k = 0; k < chars; ++k) anim_step(cs[k], &in[(i + k * 37) % n], dt);
            batch[i] = std::min(batch[i], std::chrono::duration<double, std::micro>(clk::now() - t0).count());
        }
    }
    double per_char_mean = mean(batch) / chars, per_char_p99 = pct(batch, 99) / chars;
    std::printf("{\"ticks\": %d, \"repeats\": %d, \"allocations_at_create\": %ld, \"allocations_while_ticking\": %ld, \"searches\": %d, \"one\": {\"p50_us\": %.3f, \"p99_us\": %.3f, \"mean_us\": %.3f, \"max_us\": %.3f}, "
                "\"batch\": {\"characters\": %d, \"p50_us\": %.3f, \"p99_us\": %.3f, \"mean_us\": %.3f, "
                "\"per_character_mean_us\": %.3f, \"characters_per_ms_mean\": %.1f, \"characters_per_ms_p99\": %.1f}}\n",
                n, repeats, news_create, allocations, info.searches, pct(us, 50), pct(us, 99), mean(us), pct(us, 100), chars, pct(batch, 50), pct(batch, 99),
                mean(batch), per_char_mean, 1000.0 / per_char_mean, 1000.0 / per_char_p99);
    for (AnimController* c : cs) anim_destroy(c);
    return 0;
}
