// xsimd batches over plain float arrays, for the fused kernels (nn.cpp, layers/gumbel.cpp).
// A loop takes n elements a batch at a time; the last, partial batch goes through padded
// copies, since a scalar exp or log costs about as much as a whole batch of them.
#pragma once

#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace tg::simd {

using Batch = xsimd::batch<float>;
constexpr std::size_t lanes = Batch::size;

// The count (<= lanes) elements at p, the rest of the batch filled with pad.
inline Batch load(const float* p, std::size_t count, float pad = 0.0f) {
    if (count == lanes) return Batch::load_unaligned(p);
    alignas(64) float t[lanes];
    std::fill(t, t + lanes, pad);
    std::copy(p, p + count, t);
    return Batch::load_aligned(t);
}

// The first count lanes of b to p.
inline void store(float* p, std::size_t count, const Batch& b) {
    if (count == lanes) return b.store_unaligned(p);
    alignas(64) float t[lanes];
    b.store_aligned(t);
    std::copy(t, t + count, p);
}

// The sum of the first count lanes of b.
inline float sum(const Batch& b, std::size_t count) {
    if (count == lanes) return xsimd::hadd(b);
    alignas(64) float t[lanes];
    b.store_aligned(t);
    float s = 0.0f;
    for (std::size_t k = 0; k < count; ++k) s += t[k];
    return s;
}

}  // namespace tg::simd
