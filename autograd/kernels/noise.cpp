#include "autograd/kernels/noise.hpp"

#include <algorithm>

#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg::kernels {

namespace {

// The noise transforms, a batch at a time. 1 - u is exact for the generator's u (odd multiples
// of 2^-24), so log(u / (1 - u)) rounds once where log(u) - log1p(-u) rounds three times, and
// costs one log instead of two.
// Function objects, not functions: the passes inline them (through a function pointer each
// batch was a call).
struct LogisticOf {
    simd::Batch operator()(const simd::Batch& u) const { return kernels::log_positive(u / (simd::Batch(1.0f) - u)); }
};
struct GumbelOf {
    simd::Batch operator()(const simd::Batch& u) const { return -kernels::log_positive(-kernels::log_positive(u)); }
};

// The partial last batch is padded with 0.5, a valid uniform.
template <class Transform>
void noise_pass(const float* u, std::size_t n, float* out, Transform transform) {
    for (std::size_t i = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        simd::store(out + i, c, transform(simd::load(u + i, c, 0.5f)));
    }
}

template <class Transform>
void add_noise_pass(const float* l, std::size_t n, float scale, float* zp, Transform transform) {
    const simd::Batch k(scale);
    for (std::size_t i = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        simd::store(zp + i, c, (transform(simd::load(zp + i, c, 0.5f)) + simd::load(l + i, c)) * k);
    }
}

}  // namespace

void gumbel_noise(const float* u, std::size_t n, float* out) { noise_pass(u, n, out, GumbelOf()); }
void logistic_noise(const float* u, std::size_t n, float* out) { noise_pass(u, n, out, LogisticOf()); }

void add_gumbel_noise(const float* logits, std::size_t n, float scale, float* z) {
    add_noise_pass(logits, n, scale, z, GumbelOf());
}
void add_logistic_noise(const float* logits, std::size_t n, float scale, float* z) {
    add_noise_pass(logits, n, scale, z, LogisticOf());
}

void tempered_sigmoid(float* zp, std::size_t n, float tau, float* hard) {
    // 1 / (1 + exp(-z / tau)) is exact at both ends in float: exp overflows to inf and gives 0
    const simd::Batch zero(0.0f), one(1.0f), scale(-1.0f / tau);
    for (std::size_t i = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        const simd::Batch s = simd::load(zp + i, c);
        if (hard) simd::store(hard + i, c, xsimd::select(s > zero, one, zero));
        simd::store(zp + i, c, one / (one + xsimd::exp(s * scale)));
    }
}

}  // namespace tg::kernels
