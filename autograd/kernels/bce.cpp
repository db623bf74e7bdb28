#include "autograd/kernels/bce.hpp"

#include <algorithm>
#include <vector>

#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg::kernels {

double bce_with_logits(const float* xp, const float* tp, std::size_t n, float* each_loss, float* dx) {
    double total = 0.0;
    simd::Batch acc(0.0f);
    const simd::Batch zero(0.0f), one(1.0f);
    for (std::size_t i = 0, blocks = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        const simd::Batch x = simd::load(xp + i, c), t = simd::load(tp + i, c);
        // log1p(e) as log(u) plus the rounding of u = 1 + e corrected, 1 / u shared with sigmoid(x)
        const simd::Batch e = xsimd::exp(-xsimd::abs(x)), u = one + e, r = one / u;
        const simd::Batch l = xsimd::max(x, zero) - x * t + (kernels::log_positive(u) + (e - (u - one)) * r);
        if (each_loss) simd::store(each_loss + i, c, l);
        else if (c == simd::lanes) acc += l;
        else total += simd::sum(l, c);
        if (dx) simd::store(dx + i, c, xsimd::select(x >= zero, one, e) * r - t);
        if (++blocks % 64 == 0) total += xsimd::hadd(acc), acc = zero;  // float lanes sum a few hundred terms at most
    }
    return total + xsimd::hadd(acc);
}

}  // namespace tg::kernels

namespace tg::kernels {

void bce_backward_logits(const float* s, const float* g, bool each, float scale, std::size_t n, float beta, float* d) {
    if (each) {
        if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * g[k];
        else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * g[k];
    } else {
        const float gs = g[0] * scale;
        if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * gs;
        else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * gs;
    }
}

void bce_backward_targets(const float* x, const float* g, bool each, float scale, std::size_t n, float beta, float* d) {
    // Accumulating, the product is rounded in a pass of its own, as the op always did: one loop
    // would let the compiler fuse it into an FMA with d, which rounds differently.
    std::vector<float> fresh(beta == 0.0f ? 0 : n);
    float* t = beta == 0.0f ? d : fresh.data();
    for (std::size_t k = 0; k < n; ++k) t[k] = -x[k] * g[each ? k : 0] * scale;
    if (beta != 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] += t[k];
}

}  // namespace tg::kernels
