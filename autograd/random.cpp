#include "autograd/random.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <xsimd/xsimd.hpp>

namespace tg {

namespace {
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
std::uint64_t splitmix64(std::uint64_t& x) {
    std::uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
}  // namespace

void Generator::seed_with(std::uint64_t seed) {
    for (auto& w : s_) w = splitmix64(seed);
}

void Generator::set_state(const std::array<std::uint64_t, 4>& s) {
    if (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        throw std::invalid_argument("Generator::set_state: the all-zero state is invalid for xoshiro256**");
    s_ = s;
}

std::uint64_t Generator::next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
}

float Generator::uniform() { return static_cast<float>(next_u64() >> 40) * 0x1.0p-24f; }

// The midpoints of 2^23 equal cells: the smallest is 2^-24, the largest 1 - 2^-24, both exact
// in float, so neither log(u) nor log(1 - u) can be infinite.
float Generator::uniform_open() { return (static_cast<float>(next_u64() >> 41) + 0.5f) * 0x1.0p-23f; }

float Generator::normal() {
    const double u1 = uniform_open(), u2 = uniform();
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

std::uint64_t Generator::below(std::uint64_t n) {
    if (n == 0) throw std::invalid_argument("Generator::below: n must be positive");
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
}

Array Generator::uniform_open(const Shape& shape) {
    element_count(shape, "Generator::uniform_open");
    Array a = Array::from_shape(shape);
    fill_uniform_open(a.data(), a.size());
    return a;
}

void Generator::fill_uniform_open(float* out, std::size_t n) {
    constexpr std::size_t streams = 8, per_round = 2 * streams;
    if (n < 4 * per_round) {
        for (std::size_t i = 0; i < n; ++i) out[i] = uniform_open();
        return;
    }
    // 8 lanes of 64 bits whatever the vector width (so the same numbers on every machine):
    // one zmm register, two ymm or four xmm. Seeded by splitmix64 as xoshiro's authors advise;
    // splitmix64 is a bijection, so no lane starts all zero.
    using U = xsimd::batch<std::uint64_t>;
    using F = xsimd::batch<float>;
    constexpr std::size_t nb = streams / U::size;
    alignas(64) std::uint64_t init[4][streams];
    std::uint64_t seed = next_u64();
    for (std::size_t j = 0; j < streams; ++j)
        for (auto& word : init) word[j] = splitmix64(seed);
    U s0[nb], s1[nb], s2[nb], s3[nb];
    for (std::size_t b = 0; b < nb; ++b) {
        s0[b] = U::load_aligned(init[0] + b * U::size);
        s1[b] = U::load_aligned(init[1] + b * U::size);
        s2[b] = U::load_aligned(init[2] + b * U::size);
        s3[b] = U::load_aligned(init[3] + b * U::size);
    }
    // Each output r gives two 23-bit fields, r >> 41 and (r >> 18) & (2^23 - 1), each placed as
    // the mantissa of a float in [1, 2): 1 + k 2^-23 - 1 + 2^-24 is exactly uniform_open()'s
    // (k + 0.5) 2^-23. Lane j's two floats land at 2j and 2j + 1.
    const U ones(0x3F8000003F800000ull), low23(0x7FFFFFull);
    const F shift(1.0f - 0x1.0p-24f);
    alignas(64) float tail[per_round];
    for (std::size_t i = 0; i < n; i += per_round) {
        float* dst = i + per_round <= n ? out + i : tail;
        for (std::size_t b = 0; b < nb; ++b) {  // xoshiro256**, * 5 and * 9 as shifts and adds
            const U x = s1[b] + (s1[b] << 2);
            const U y = (x << 7) | (x >> 57);
            const U r = y + (y << 3);
            const U t = s1[b] << 17;
            s2[b] ^= s0[b];
            s3[b] ^= s1[b];
            s1[b] ^= s2[b];
            s0[b] ^= s3[b];
            s2[b] ^= t;
            s3[b] = (s3[b] << 45) | (s3[b] >> 19);
            const U bits = (r >> 41) | (((r >> 18) & low23) << 32) | ones;
            (xsimd::bitwise_cast<F>(bits) - shift).store_unaligned(dst + 2 * b * U::size);
        }
        if (dst == tail) std::copy(tail, tail + (n - i), out + i);
    }
}

Array Generator::normal(const Shape& shape) {
    element_count(shape, "Generator::normal");
    Array a = Array::from_shape(shape);
    for (float& v : a) v = normal();
    return a;
}

Array Generator::gumbel(const Shape& shape) {
    Array a = uniform_open(shape);
    for (float& v : a) v = -std::log(-std::log(v));
    return a;
}

Array Generator::logistic(const Shape& shape) {
    Array a = uniform_open(shape);
    for (float& v : a) v = std::log(v) - std::log1p(-v);
    return a;
}

Generator& default_generator() {
    thread_local Generator g(0);
    return g;
}
void manual_seed(std::uint64_t seed) { default_generator().seed_with(seed); }

}  // namespace tg
