#include "autograd/kernels/uniforms.hpp"

#include <algorithm>

#include <xsimd/xsimd.hpp>

namespace tg::kernels {

void uniform_open_streams(std::uint64_t seed, float* out, std::size_t n) {
    constexpr std::size_t streams = 8, per_round = 2 * streams;
    // 8 lanes of 64 bits whatever the vector width (so the same numbers on every machine):
    // one zmm register, two ymm or four xmm. splitmix64 is a bijection, so no lane starts all
    // zero.
    using U = xsimd::batch<std::uint64_t>;
    using F = xsimd::batch<float>;
    constexpr std::size_t nb = streams / U::size;
    alignas(64) std::uint64_t init[4][streams];
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
    // the mantissa of a float in [1, 2): 1 + k 2^-23 - 1 + 2^-24 is exactly (k + 0.5) 2^-23.
    // Lane j's two floats land at 2j and 2j + 1.
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

}  // namespace tg::kernels
