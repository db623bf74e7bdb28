// Seedable random numbers that are the same on every platform: the generator (xoshiro256**)
// and the float conversions are ours, since the standard library's distributions are
// implementation-defined.
#pragma once

#include <array>
#include <cstdint>

#include "autograd/tensor.hpp"

namespace tg {

class Generator {
public:
    explicit Generator(std::uint64_t seed = 0) { seed_with(seed); }
    void seed_with(std::uint64_t seed);

    std::uint64_t next_u64();
    float uniform();           // [0, 1), 24 random bits
    float uniform_open();      // (0, 1): never 0 nor 1, so log(u) and log(1-u) are finite
    float normal();            // standard normal (Box-Muller)
    std::uint64_t below(std::uint64_t n);  // uniform integer in [0, n), unbiased

    // Arrays of noise. Past a few dozen values these are drawn in bulk (fill_uniform_open), a
    // different sequence from repeated scalar calls, and just as reproducible.
    Array uniform_open(const Shape& shape);
    // n values in (0, 1) like uniform_open(), at about 0.25 ns each instead of 1.3: 8 xoshiro256**
    // streams side by side (vectorized), seeded from this generator at each call (one draw of
    // it), each output giving two uniforms. Below 64 values, the scalar sequence.
    void fill_uniform_open(float* out, std::size_t n);
    Array normal(const Shape& shape);

    // The whole state, for checkpoints: the same state gives the same numbers afterwards.
    std::array<std::uint64_t, 4> state() const { return s_; }
    void set_state(const std::array<std::uint64_t, 4>& s);

private:
    std::array<std::uint64_t, 4> s_{};
};

// Each thread's generator for callers that pass none; seeded with 0 until manual_seed.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace tg
