#include "autograd/random.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "autograd/kernels/uniforms.hpp"

namespace tg {

namespace {
std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

void Generator::seed_with(std::uint64_t seed) {
    for (auto& w : s_) w = kernels::splitmix64(seed);
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
    kernels::uniform_open_streams(next_u64(), out, n);
}

Array Generator::normal(const Shape& shape) {
    element_count(shape, "Generator::normal");
    Array a = Array::from_shape(shape);
    for (float& v : a) v = normal();
    return a;
}

Generator& default_generator() {
    thread_local Generator g(0);
    return g;
}
void manual_seed(std::uint64_t seed) { default_generator().seed_with(seed); }

}  // namespace tg
