#include "autograd/kernels/index.hpp"

#include <algorithm>

namespace tg::kernels {

void gather(const float* x, const detail::AxisView& v, std::size_t m, const std::size_t* index, float* out) {
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t j = 0; j < m; ++j)
            for (std::size_t i = 0; i < v.inner; ++i) {
                const std::size_t s = (o * m + j) * v.inner + i;
                out[s] = x[(o * v.n + index[s]) * v.inner + i];
            }
}

void scatter_add(const float* g, const detail::AxisView& v, std::size_t m, const std::size_t* index, float beta, float* d) {
    if (beta == 0.0f) std::fill(d, d + v.outer * v.n * v.inner, 0.0f);
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t j = 0; j < m; ++j)
            for (std::size_t i = 0; i < v.inner; ++i) {
                const std::size_t s = (o * m + j) * v.inner + i;
                d[(o * v.n + index[s]) * v.inner + i] += g[s];
            }
}

void one_hot(const std::size_t* index, std::size_t count, std::size_t classes, float* out) {
    std::fill(out, out + count * classes, 0.0f);
    for (std::size_t s = 0; s < count; ++s) out[s * classes + index[s]] = 1.0f;
}

}  // namespace tg::kernels
