#include "autograd/kernels/reduce.hpp"

#include <algorithm>

namespace tg::kernels {

namespace {

constexpr std::size_t lanes = 8;

float row_max(const float* a, std::size_t n) {  // n >= 1
    float m = a[0];
    std::size_t j = 0;
    if (n >= lanes) {
        float acc[lanes];
        std::copy(a, a + lanes, acc);
        for (j = lanes; j + lanes <= n; j += lanes)
            for (std::size_t k = 0; k < lanes; ++k) acc[k] = a[j + k] > acc[k] ? a[j + k] : acc[k];
        for (std::size_t k = 0; k < lanes; ++k) m = acc[k] > m ? acc[k] : m;
    }
    for (; j < n; ++j) m = a[j] > m ? a[j] : m;
    return m;
}

}  // namespace

void sum_along(const float* a, const AxisView& v, float scale, float* out) {
    const std::size_t n = v.n, inner = v.inner;
    for (std::size_t o = 0; o < v.outer; ++o, a += n * inner, out += inner) {
        if (inner == 1) {
            out[0] = scale * sum_all<float>(a, n);
            continue;
        }
        std::fill(out, out + inner, 0.0f);
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t i = 0; i < inner; ++i) out[i] += a[j * inner + i];
        if (scale != 1.0f)
            for (std::size_t i = 0; i < inner; ++i) out[i] *= scale;
    }
}

void spread_along(const float* g, const AxisView& v, float scale, float beta, float* d) {
    const std::size_t n = v.n, inner = v.inner;
    if (inner == 1) {  // each output value fills a contiguous row
        for (std::size_t o = 0; o < v.outer; ++o, d += n) {
            const float c = scale * g[o];
            if (beta == 0.0f) std::fill(d, d + n, c);
            else
                for (std::size_t j = 0; j < n; ++j) d[j] += c;
        }
        return;
    }
    for (std::size_t o = 0; o < v.outer; ++o, g += inner)
        for (std::size_t j = 0; j < n; ++j, d += inner) {
            if (beta == 0.0f)
                for (std::size_t i = 0; i < inner; ++i) d[i] = scale * g[i];
            else
                for (std::size_t i = 0; i < inner; ++i) d[i] += scale * g[i];
        }
}

void max_along(const float* x, const AxisView& v, float* m) {
    const std::size_t n = v.n, inner = v.inner;
    for (std::size_t o = 0; o < v.outer; ++o, x += n * inner, m += inner) {
        if (inner == 1) {
            m[0] = row_max(x, n);
            continue;
        }
        std::copy(x, x + inner, m);
        for (std::size_t j = 1; j < n; ++j)
            for (std::size_t i = 0; i < inner; ++i) m[i] = x[j * inner + i] > m[i] ? x[j * inner + i] : m[i];
    }
}

void max_backward(const float* x, const float* m, const float* g, const AxisView& v, float beta, float* d) {
    const std::size_t n = v.n, inner = v.inner;
    if (beta == 0.0f) std::fill(d, d + v.outer * n * inner, 0.0f);
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t i = 0; i < inner; ++i) {
            const std::size_t s = o * inner + i, base = o * n * inner + i;
            for (std::size_t j = 0; j < n; ++j)
                if (x[base + j * inner] == m[s]) {
                    d[base + j * inner] += g[s];
                    break;
                }
        }
}

}  // namespace tg::kernels
