// Plain loops that say what each kernel computes, one element at a time, for
// tests/test_kernels.cpp to compare the kernels with. Nothing else calls them.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "autograd/kernels/copy.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/reduce.hpp"
#include "autograd/kernels/uniforms.hpp"
#include "autograd/random.hpp"

namespace tg::kernels::reference {

using kernels::AxisView;

// Element j of slice s = o * inner + i of an [outer, n, inner] view.
inline std::size_t at(const AxisView& v, std::size_t s, std::size_t j) {
    return (s / v.inner * v.n + j) * v.inner + s % v.inner;
}

inline void slice_maxima(const float* d, const AxisView& v, float* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        out[s] = -std::numeric_limits<float>::infinity();
        for (std::size_t j = 0; j < v.n; ++j) out[s] = std::max(out[s], d[at(v, s, j)]);
    }
}

inline void slice_sums(const float* d, const AxisView& v, float* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += d[at(v, s, j)];
        out[s] = static_cast<float>(sum);
    }
}

// The slice maximum, 0 when infinite (a slice of -inf would give -inf - -inf = NaN).
inline float shift_of(const float* d, const AxisView& v, std::size_t s) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < v.n; ++j) m = std::max(m, d[at(v, s, j)]);
    return std::isfinite(m) ? m : 0.0f;
}

// d := exp(d - max) / sum exp(d - max), per slice.
inline void softmax(float* d, const AxisView& v) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        const float m = shift_of(d, v, s);
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += std::exp(d[at(v, s, j)] - m);
        for (std::size_t j = 0; j < v.n; ++j)
            d[at(v, s, j)] = static_cast<float>(std::exp(d[at(v, s, j)] - m) / sum);
    }
}

// d := (d - max) - log sum exp(d - max), per slice.
inline void log_softmax(float* d, const AxisView& v) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        const float m = shift_of(d, v, s);
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += std::exp(d[at(v, s, j)] - m);
        for (std::size_t j = 0; j < v.n; ++j) d[at(v, s, j)] = static_cast<float>((d[at(v, s, j)] - m) - std::log(sum));
    }
}

// out[s] := max + log sum exp(d - max).
inline void logsumexp(const float* d, const AxisView& v, float* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        const float m = shift_of(d, v, s);
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += std::exp(d[at(v, s, j)] - m);
        out[s] = static_cast<float>(m + std::log(sum));
    }
}

// dx := beta * dx + scale * y * (g - sum(g * y)), per slice.
inline void softmax_backward(const float* y, const float* g, const AxisView& v, float scale, float beta, float* dx) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        double dot = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) dot += double(g[at(v, s, j)]) * y[at(v, s, j)];
        for (std::size_t j = 0; j < v.n; ++j) {
            const std::size_t k = at(v, s, j);
            dx[k] = static_cast<float>(beta * dx[k] + double(scale) * y[k] * (g[k] - dot));
        }
    }
}

// The index of the first maximum of each slice.
inline void argmax(const float* d, const AxisView& v, std::size_t* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        out[s] = 0;
        for (std::size_t j = 1; j < v.n; ++j)
            if (d[at(v, s, j)] > d[at(v, s, out[s])]) out[s] = j;
    }
}

// l = max(x, 0) - x t + log1p(exp(-|x|)), dx = sigmoid(x) - t; returns the sum of l.
inline double bce_with_logits(const float* x, const float* t, std::size_t n, float* each_loss, float* dx) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const double l = std::max(x[i], 0.0f) - double(x[i]) * t[i] + std::log1p(std::exp(-std::fabs(double(x[i]))));
        if (each_loss) each_loss[i] = static_cast<float>(l);
        total += l;
        if (dx) dx[i] = static_cast<float>(1.0 / (1.0 + std::exp(-double(x[i]))) - t[i]);
    }
    return total;
}

inline float gumbel(float u) { return static_cast<float>(-std::log(-std::log(double(u)))); }
inline float logistic(float u) { return static_cast<float>(std::log(double(u)) - std::log1p(-double(u))); }
inline float tempered_sigmoid(float z, float tau) { return static_cast<float>(1.0 / (1.0 + std::exp(-double(z) / tau))); }

// uniform_open_streams with one tg::Generator per stream: the same words, one at a time.
inline void uniform_open_streams(std::uint64_t seed, float* out, std::size_t n) {
    std::vector<Generator> streams;
    for (int j = 0; j < 8; ++j) {
        std::array<std::uint64_t, 4> s;
        for (auto& w : s) w = splitmix64(seed);
        streams.emplace_back().set_state(s);
    }
    std::uint64_t r = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (i % 2 == 0) r = streams[i / 2 % 8].next_u64();
        const std::uint64_t k = i % 2 == 0 ? r >> 41 : (r >> 18) & 0x7FFFFF;
        out[i] = (static_cast<float>(k) + 0.5f) * 0x1.0p-23f;
    }
}

// ---- nn, linear and broadcast (kernels/bce, softmax, index, broadcast)

// What a kernel with beta writes over: nothing when beta is 0 (the buffer may hold NaN).
inline float kept(float beta, float d) { return beta == 0.0f ? 0.0f : d; }

// d := beta d + s g for the logits, beta d - x g for the targets; g[k] if each, else g[0] scale.
inline void bce_backward_logits(const float* s, const float* g, bool each, float scale, std::size_t n, float beta,
                                float* d) {
    for (std::size_t k = 0; k < n; ++k) d[k] = kept(beta, d[k]) + s[k] * (each ? g[k] : g[0] * scale);
}
inline void bce_backward_targets(const float* x, const float* g, bool each, float scale, std::size_t n, float beta,
                                 float* d) {
    for (std::size_t k = 0; k < n; ++k) d[k] = kept(beta, d[k]) + -x[k] * g[each ? k : 0] * scale;
}

// dx := g - exp(y) sum(g), per slice (y = log_softmax(x)).
inline void log_softmax_backward(const float* y, const float* g, const AxisView& v, float* dx) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += g[at(v, s, j)];
        for (std::size_t j = 0; j < v.n; ++j)
            dx[at(v, s, j)] = static_cast<float>(g[at(v, s, j)] - std::exp(double(y[at(v, s, j)])) * sum);
    }
}

inline void pick_negated(const float* log_p, const std::size_t* labels, std::size_t n, std::size_t k, float* loss) {
    for (std::size_t r = 0; r < n; ++r) loss[r] = -log_p[r * k + labels[r]];
}

// dx := g_r (softmax(x_r) - one_hot(labels[r])) for the rows of x [n, k].
inline void cross_entropy_backward(const float* x, const std::size_t* labels, const float* g, bool each, float scale,
                                   std::size_t n, std::size_t k, float* dx) {
    std::copy(x, x + n * k, dx);
    softmax(dx, AxisView{n, k, 1});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t j = 0; j < k; ++j)
            dx[r * k + j] = (dx[r * k + j] - (j == labels[r] ? 1.0f : 0.0f)) * (g[each ? r : 0] * scale);
}

// Pick s of the m picks of each slice: (o, j, i) with s = (o m + j) inner + i.
inline std::size_t picked(const AxisView& v, std::size_t m, std::size_t s, std::size_t c) {
    return (s / v.inner / m * v.n + c) * v.inner + s % v.inner;
}

inline void gather(const float* x, const AxisView& v, std::size_t m, const std::size_t* index, float* out) {
    for (std::size_t s = 0; s < v.outer * m * v.inner; ++s) out[s] = x[picked(v, m, s, index[s])];
}

inline void scatter_add(const float* g, const AxisView& v, std::size_t m, const std::size_t* index, float beta,
                        float* d) {
    for (std::size_t k = 0; k < v.outer * v.n * v.inner; ++k) d[k] = kept(beta, d[k]);
    for (std::size_t s = 0; s < v.outer * m * v.inner; ++s)
        d[picked(v, m, s, index[s])] += g[s];
}

inline void one_hot(const std::size_t* index, std::size_t count, std::size_t classes, float* out) {
    for (std::size_t s = 0; s < count; ++s)
        for (std::size_t c = 0; c < classes; ++c) out[s * classes + c] = c == index[s] ? 1.0f : 0.0f;
}

// out[o] := the sum (in double) of the entries of g whose index, its leading axes dropped and
// its axes where shape has length 1 set to 0, is o.
inline void sum_to(const float* g, const Array::shape_type& g_shape, const Array::shape_type& shape, float* out) {
    std::size_t size = 1, out_size = 1;
    for (std::size_t e : g_shape) size *= e;
    for (std::size_t e : shape) out_size *= e;
    std::vector<double> acc(out_size, 0.0);
    const std::size_t lead = g_shape.size() - shape.size();
    for (std::size_t flat = 0; flat < size; ++flat) {
        std::size_t rest = flat, o = 0, stride = 1;
        for (std::size_t i = g_shape.size(); i-- > lead;) {
            const std::size_t index = rest % g_shape[i];
            rest /= g_shape[i];
            if (shape[i - lead] != 1) o += index * stride;
            stride *= shape[i - lead];
        }
        acc[o] += g[flat];
    }
    for (std::size_t o = 0; o < out_size; ++o) out[o] = static_cast<float>(acc[o]);
}

inline void broadcast_rows(const float* b, std::size_t rows, std::size_t cols, float* y) {
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < cols; ++j) y[r * cols + j] = b[j];
}

// d := beta d + the column sums (in double) of g [rows, cols].
inline void column_sums(const float* g, std::size_t rows, std::size_t cols, float beta, float* d) {
    for (std::size_t j = 0; j < cols; ++j) {
        double sum = kept(beta, d[j]);
        for (std::size_t r = 0; r < rows; ++r) sum += g[r * cols + j];
        d[j] = static_cast<float>(sum);
    }
}

// c [m, n] := beta c + op(a) b in double, op(a) = a [m, k] or, transposed, a [k, m] read as
// its transpose; b [k, n] (b_transposed: given as [n, k]). What the sparse kernels compute.
inline void matmul(bool a_transposed, bool b_transposed, std::size_t m, std::size_t k, std::size_t n, const float* a,
                   const float* b, float beta, float* c) {
    for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) {
            double s = beta == 0.0f ? 0.0 : double(beta) * c[i * n + j];
            for (std::size_t t = 0; t < k; ++t)
                s += double(a_transposed ? a[t * m + i] : a[i * k + t]) * (b_transposed ? b[j * k + t] : b[t * n + j]);
            c[i * n + j] = static_cast<float>(s);
        }
}

}  // namespace tg::kernels::reference

// ---- reductions and copies (kernels/reduce, kernels/copy)

namespace tg::kernels::reference {

inline double sum_all(const float* a, std::size_t n) {
    double s = 0.0;
    for (std::size_t j = 0; j < n; ++j) s += a[j];
    return s;
}

// out[s] := scale * the sum of slice s (in double).
inline void sum_along(const float* a, const AxisView& v, float scale, float* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        double sum = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) sum += a[at(v, s, j)];
        out[s] = static_cast<float>(scale * sum);
    }
}

// Every entry of slice s := scale * g[s] (beta 0, d not read) or += it (beta 1).
inline void spread_along(const float* g, const AxisView& v, float scale, float beta, float* d) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        const float c = scale * g[s];
        for (std::size_t j = 0; j < v.n; ++j) {
            float& x = d[at(v, s, j)];
            x = beta == 0.0f ? c : x + c;
        }
    }
}

// out[s] := the largest entry of slice s (v.n >= 1).
inline void max_along(const float* a, const AxisView& v, float* out) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        out[s] = a[at(v, s, 0)];
        for (std::size_t j = 1; j < v.n; ++j) out[s] = std::max(out[s], a[at(v, s, j)]);
    }
}

// d := beta * d, then g[s] added at the first entry of slice s equal to m[s].
inline void max_backward(const float* a, const float* m, const float* g, const AxisView& v, float beta, float* d) {
    for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
        bool found = false;
        for (std::size_t j = 0; j < v.n; ++j) {
            float& x = d[at(v, s, j)];
            if (beta == 0.0f) x = 0.0f;
            if (!found && a[at(v, s, j)] == m[s]) x += g[s], found = true;
        }
    }
}

inline void copy_rows(const float* src, std::size_t src_stride, std::size_t rows, std::size_t len, float beta,
                      float* dst, std::size_t dst_stride) {
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t k = 0; k < len; ++k) {
            float& x = dst[r * dst_stride + k];
            x = beta == 0.0f ? src[r * src_stride + k] : x + src[r * src_stride + k];
        }
}

// dst at index (i_0, .., i_nd-1) := (or +=) src at the index whose axis perm[k] is i_k.
inline void permute(const float* src, const Shape& src_shape, const std::vector<std::size_t>& perm, float beta,
                    float* dst) {
    const std::size_t nd = perm.size();
    std::size_t total = 1;
    for (std::size_t d : src_shape) total *= d;
    std::vector<std::size_t> src_index(nd);
    for (std::size_t flat = 0; flat < total; ++flat) {
        std::size_t rest = flat, offset = 0;
        for (std::size_t k = nd; k-- > 0; rest /= src_shape[perm[k]]) src_index[perm[k]] = rest % src_shape[perm[k]];
        for (std::size_t d = 0; d < nd; ++d) offset = offset * src_shape[d] + src_index[d];
        dst[flat] = beta == 0.0f ? src[offset] : dst[flat] + src[offset];
    }
}

}  // namespace tg::kernels::reference
