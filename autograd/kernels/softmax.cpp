// The softmax family's loops over [outer, n, inner] views (declared in nn_kernels.hpp): slice
// maxima and sums in xsimd batches, softmax / log_softmax / logsumexp and the softmax backward,
// and the short-slice softmax in registers. Each has a plain loop in reference.hpp that
// tests/test_kernels.cpp compares it with.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <type_traits>
#include <vector>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xsimd/xsimd.hpp>

#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg {

namespace kernels {

AxisView axis_view(const Array::shape_type& shape, std::size_t axis) {
    AxisView v;
    for (std::size_t d = 0; d < axis; ++d) v.outer *= shape[d];
    v.n = shape[axis];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) v.inner *= shape[d];
    return v;
}

namespace {

using Batch = xsimd::batch<float>;

// The compiler will not vectorize a float reduction by itself (it may not reassociate), so
// contiguous slices (the last axis) reduce in xsimd batches.
float max_of(const float* p, std::size_t n) {
    constexpr std::size_t w = Batch::size;
    float m = -std::numeric_limits<float>::infinity();
    std::size_t j = 0;
    if (n >= w) {
        Batch acc = Batch::load_unaligned(p);
        for (j = w; j + w <= n; j += w) acc = xsimd::max(acc, Batch::load_unaligned(p + j));
        alignas(64) float lanes[w];
        acc.store_aligned(lanes);
        for (float l : lanes) m = std::max(m, l);
    }
    for (; j < n; ++j) m = std::max(m, p[j]);
    return m;
}

float sum_of(const float* p, std::size_t n) {
    constexpr std::size_t w = Batch::size;
    float s = 0.0f;
    std::size_t j = 0;
    if (n >= w) {
        Batch acc = Batch::load_unaligned(p);
        for (j = w; j + w <= n; j += w) acc += Batch::load_unaligned(p + j);
        s = xsimd::hadd(acc);
    }
    for (; j < n; ++j) s += p[j];
    return s;
}

// out[s] := the slice's reduction: contiguous(slice, n) for contiguous slices, else op folded
// from init along i, which is contiguous.
template <class Contiguous, class Op>
void reduce_slices(const float* d, const AxisView& v, float init, Contiguous contiguous, Op op, float* out) {
    for (std::size_t o = 0; o < v.outer; ++o) {
        const float* block = d + o * v.n * v.inner;
        float* r = out + o * v.inner;
        if (v.inner == 1) {
            r[0] = contiguous(block, v.n);
        } else {
            std::fill(r, r + v.inner, init);
            for (std::size_t j = 0; j < v.n; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) r[i] = op(r[i], block[j * v.inner + i]);
        }
    }
}

}  // namespace

void slice_maxima(const float* d, const AxisView& v, float* out) {
    reduce_slices(d, v, -std::numeric_limits<float>::infinity(), max_of,
                  [](float a, float b) { return std::max(a, b); }, out);
}

void slice_sums(const float* d, const AxisView& v, float* out) { reduce_slices(d, v, 0.0f, sum_of, std::plus<float>(), out); }

namespace {

// d := op(d, s) with each slice's own s, looping along contiguous memory.
template <class Op>
void per_slice(float* d, const AxisView& v, const float* s, Op op) {
    for (std::size_t o = 0; o < v.outer; ++o) {
        float* block = d + o * v.n * v.inner;
        const float* so = s + o * v.inner;
        if (v.inner == 1) {
            const float c = so[0];
            for (std::size_t j = 0; j < v.n; ++j) block[j] = op(block[j], c);
        } else {
            for (std::size_t j = 0; j < v.n; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) block[j * v.inner + i] = op(block[j * v.inner + i], so[i]);
        }
    }
}

// a := a - shift with each slice's maximum as its shift (0 when infinite: a slice of -inf would
// otherwise give -inf - -inf = NaN); returns the shifts.
std::vector<float> subtract_max(Array& a, const AxisView& v) {
    std::vector<float> shift(v.outer * v.inner);
    slice_maxima(a.data(), v, shift.data());
    for (float& m : shift)
        if (!std::isfinite(m)) m = 0.0f;
    per_slice(a.data(), v, shift.data(), std::minus<float>());
    return shift;
}

}  // namespace

void subtract_per_slice(float* d, const AxisView& v, const float* s) { per_slice(d, v, s, std::minus<float>()); }
void multiply_per_slice(float* d, const AxisView& v, const float* s) {
    per_slice(d, v, s, std::multiplies<float>());
}

void logsumexp_along(const Array& a, std::size_t axis, float* out) {
    const AxisView v = axis_view(a.shape(), axis);
    Array e = a;
    const std::vector<float> shift = subtract_max(e, v);
    xt::noalias(e) = xt::exp(e);  // vectorized by xsimd; a loop of std::exp is ~10x slower
    slice_sums(e.data(), v, out);
    for (std::size_t s = 0; s < shift.size(); ++s) out[s] = shift[s] + std::log(out[s]);
}

void softmax_inplace(Array& a, std::size_t axis) { softmax_inplace(a, axis_view(a.shape(), axis)); }

namespace {

// Short contiguous slices (inner == 1, lanes <= n <= 2 lanes for a batch of 4 or 8 lanes:
// the groups of 10 classes of a categorical latent) are two batches at p and p + n - lanes,
// overlapping where n < 2 lanes; the second's lanes that the first holds are masked off the
// sums. Nothing is read or written outside the slice (a batch reaching into the next slice, as
// one wide masked batch would, stalls the next slice's load on a store it only partly
// overlaps). This replaces five passes over the array, their scalar loops over 10 entries and
// their scratch vectors.
template <class B>
struct ShortSlices {
    static constexpr std::size_t w = B::size;
    std::size_t n;
    xsimd::batch_bool<float, typename B::arch_type> second;  // the second batch's own lanes

    explicit ShortSlices(std::size_t n_) : n(n_) {
        alignas(64) float lane[w];
        for (std::size_t l = 0; l < w; ++l) lane[l] = static_cast<float>(l);
        second = B::load_aligned(lane) >= B(static_cast<float>(2 * w - n));
    }
};

// The maximum of the slice at p, 0 when infinite (as subtract_max): the two batches' lanewise
// maximum, then its lanes in a tree (the scalar loop over the slice took 4 times the
// instructions).
template <class B>
float slice_shift(const float* p, const ShortSlices<B>& s) {
    alignas(64) float t[B::size];
    xsimd::max(B::load_unaligned(p), B::load_unaligned(p + s.n - B::size)).store_aligned(t);
    for (std::size_t h = B::size / 2; h > 0; h /= 2)
        for (std::size_t l = 0; l < h; ++l) t[l] = std::max(t[l], t[l + h]);
    return std::isfinite(t[0]) ? t[0] : 0.0f;
}

// Slices go in blocks of as many as a batch has lanes (8 slices of 10: 80 contiguous floats).
// Each slice's maximum is subtracted through its two batches; the exp then runs over the whole
// block at the machine's full width (5 batches of 16 instead of 16 of 8, most of the cost); the
// block's sums meet in one batch (haddp, a transposing reduction) and take one division, so
// the slices overlap in time instead of each waiting on its own horizontal sum and division.
template <class B>
void softmax_short(float* d, std::size_t outer, const ShortSlices<B>& s) {
    constexpr std::size_t w = B::size;
    const std::size_t n = s.n, off = n - w;
    B sums[w];
    alignas(64) float inv[w];
    for (std::size_t o0 = 0; o0 < outer; o0 += w) {
        const std::size_t count = std::min(w, outer - o0);
        float* block = d + o0 * n;
        for (std::size_t j = 0; j < count; ++j) {
            float* p = block + j * n;
            const B m(slice_shift(p, s));
            const B a = B::load_unaligned(p) - m, b = B::load_unaligned(p + off) - m;
            b.store_unaligned(p + off);
            a.store_unaligned(p);
        }
        const std::size_t len = count * n;
        for (std::size_t i = 0; i < len; i += simd::lanes) {
            const std::size_t c = std::min(simd::lanes, len - i);
            simd::store(block + i, c, xsimd::exp(simd::load(block + i, c)));
        }
        for (std::size_t j = 0; j < w; ++j) {
            if (j == count) {
                std::fill(sums + j, sums + w, B(1.0f));
                break;
            }
            const float* p = block + j * n;
            sums[j] = B::load_unaligned(p) + xsimd::select(s.second, B::load_unaligned(p + off), B(0.0f));
        }
        (B(1.0f) / xsimd::haddp(sums)).store_aligned(inv);
        for (std::size_t j = 0; j < count; ++j) {
            float* p = block + j * n;
            const B k(inv[j]);
            const B a = B::load_unaligned(p) * k, b = B::load_unaligned(p + off) * k;
            b.store_unaligned(p + off);
            a.store_unaligned(p);
        }
    }
}

// dx := beta * dx + scale * y * (g - sum(g * y)) per slice, beta 0 or 1; blocks as above.
template <class B>
void softmax_backward_short(const float* y, const float* g, std::size_t outer, const ShortSlices<B>& s, float scale,
                            bool accumulate, float* dx) {
    constexpr std::size_t w = B::size;
    const std::size_t n = s.n, off = n - w;
    const B k(scale);
    B dots[w];
    alignas(64) float dot[w];
    for (std::size_t o0 = 0; o0 < outer; o0 += w) {
        const std::size_t count = std::min(w, outer - o0);
        for (std::size_t j = 0; j < w; ++j) {
            if (j == count) {
                std::fill(dots + j, dots + w, B(0.0f));
                break;
            }
            const std::size_t a = (o0 + j) * n, b = a + off;
            dots[j] = B::load_unaligned(g + a) * B::load_unaligned(y + a) +
                      xsimd::select(s.second, B::load_unaligned(g + b) * B::load_unaligned(y + b), B(0.0f));
        }
        xsimd::haddp(dots).store_aligned(dot);
        for (std::size_t j = 0; j < count; ++j) {
            const std::size_t a = (o0 + j) * n, b = a + off;
            const B ya = B::load_unaligned(y + a), yb = B::load_unaligned(y + b), dj(dot[j]);
            B ra = k * ya * (B::load_unaligned(g + a) - dj), rb = k * yb * (B::load_unaligned(g + b) - dj);
            if (accumulate) {
                ra += B::load_unaligned(dx + a);
                rb += B::load_unaligned(dx + b);
            }
            rb.store_unaligned(dx + b);
            ra.store_unaligned(dx + a);
        }
    }
}

// Calls f(ShortSlices<B>) with the widest batch B of at most n lanes that covers the slices
// of v in two; false if none does. At most 8 lanes: xsimd 8.1's AVX-512 haddp returns its sums
// out of order.
template <std::size_t W, class F>
bool with_short_slices(const AxisView& v, F&& f) {
    using B = xsimd::make_sized_batch_t<float, W>;
    if constexpr (!std::is_void<B>::value) {
        if (v.inner == 1 && v.n >= W && v.n <= 2 * W) {
            f(ShortSlices<B>(v.n));
            return true;
        }
    }
    if constexpr (W > 4) return with_short_slices<W / 2>(v, f);
    return false;
}

}  // namespace

void softmax_inplace(Array& a, const AxisView& v) {
    if (with_short_slices<8>(v, [&](const auto& s) { softmax_short(a.data(), v.outer, s); })) return;
    std::vector<float> sums = subtract_max(a, v);
    xt::noalias(a) = xt::exp(a);
    slice_sums(a.data(), v, sums.data());
    for (float& s : sums) s = 1.0f / s;
    multiply_per_slice(a.data(), v, sums.data());
}

void log_softmax_inplace(Array& a, std::size_t axis) {
    // (x - max) - log(sum exp(x - max)): subtracting a rounded logsumexp from x instead would
    // lose the digits of log(sum) at large x (1e4 + 0.31 rounds to a multiple of 2^-10)
    const AxisView v = axis_view(a.shape(), axis);
    std::vector<float> logs = subtract_max(a, v);
    const Array e = xt::exp(a);
    slice_sums(e.data(), v, logs.data());
    for (float& l : logs) l = std::log(l);
    subtract_per_slice(a.data(), v, logs.data());
}

void softmax_backward(const Array& y, const Array& g, std::size_t axis, float scale, float beta, Array& dx) {
    softmax_backward(y, g, axis_view(y.shape(), axis), scale, beta, dx);
}

void softmax_backward(const Array& y, const Array& g, const AxisView& v, float scale, float beta, Array& dx) {
    if (with_short_slices<8>(v, [&](const auto& s) {
            softmax_backward_short(y.data(), g.data(), v.outer, s, scale, beta != 0.0f, dx.data());
        }))
        return;
    // y * (g - sum(g * y)) = g y - y sum(g y)
    Array gy_fresh;
    Array& gy = beta == 0.0f ? dx : gy_fresh;  // dx itself is the scratch unless it holds a gradient
    if (beta != 0.0f) gy = Array::from_shape(y.shape());
    const float* yp = y.data();
    const float* gp = g.data();
    float* p = gy.data();
    for (std::size_t k = 0; k < y.size(); ++k) p[k] = gp[k] * yp[k];
    std::vector<float> dots(v.outer * v.inner);
    slice_sums(p, v, dots.data());
    // p := p - y * dot, per slice
    for (std::size_t o = 0; o < v.outer; ++o) {
        float* pb = p + o * v.n * v.inner;
        const float* yb = yp + o * v.n * v.inner;
        const float* dot = dots.data() + o * v.inner;
        if (v.inner == 1) {
            const float c = dot[0];
            for (std::size_t j = 0; j < v.n; ++j) pb[j] -= yb[j] * c;
        } else {
            for (std::size_t j = 0; j < v.n; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) pb[j * v.inner + i] -= yb[j * v.inner + i] * dot[i];
        }
    }
    float* dp = dx.data();
    if (beta == 0.0f) {
        if (scale != 1.0f)
            for (std::size_t k = 0; k < y.size(); ++k) dp[k] *= scale;
    } else {
        for (std::size_t k = 0; k < y.size(); ++k) dp[k] += scale * p[k];
    }
}

Array log_softmax_backward(const Array& y, const Array& g, std::size_t axis) {
    const AxisView v = axis_view(y.shape(), axis);
    std::vector<float> sums(v.outer * v.inner);
    slice_sums(g.data(), v, sums.data());
    Array dx = xt::exp(y);
    multiply_per_slice(dx.data(), v, sums.data());
    const float* gp = g.data();
    float* d = dx.data();
    for (std::size_t k = 0; k < dx.size(); ++k) d[k] = gp[k] - d[k];
    return dx;
}

void pick_negated(const float* log_p, const std::size_t* labels, std::size_t n, std::size_t k, float* loss) {
    for (std::size_t r = 0; r < n; ++r) loss[r] = -log_p[r * k + labels[r]];
}

Array cross_entropy_backward(const Array& x, const std::size_t* labels, const float* g, bool each, float scale) {
    const std::size_t n = x.shape()[0], k = x.shape()[1];
    Array dx = x;
    softmax_inplace(dx, 1);
    for (std::size_t r = 0; r < n; ++r) {
        const float gr = g[each ? r : 0] * scale;
        float* row = dx.data() + r * k;
        row[labels[r]] -= 1.0f;
        for (std::size_t j = 0; j < k; ++j) row[j] *= gr;
    }
    return dx;
}

void argmax_along(const Array& a, std::size_t axis, std::size_t* out) { argmax_along(a, axis_view(a.shape(), axis), out); }

void argmax_along(const Array& a, const AxisView& v, std::size_t* out) {
    const float* d = a.data();
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t i = 0; i < v.inner; ++i) {
            const float* p = d + o * v.n * v.inner + i;
            std::size_t best = 0;
            for (std::size_t j = 1; j < v.n; ++j)
                if (p[j * v.inner] > p[best * v.inner]) best = j;
            out[o * v.inner + i] = best;
        }
}

}  // namespace kernels

}  // namespace tg
