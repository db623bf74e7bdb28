#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xsimd/xsimd.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg {

namespace detail {

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

}  // namespace

void slice_maxima(const float* d, const AxisView& v, float* out) {
    for (std::size_t o = 0; o < v.outer; ++o) {
        const float* block = d + o * v.n * v.inner;
        float* m = out + o * v.inner;
        if (v.inner == 1) {
            m[0] = max_of(block, v.n);
        } else {  // along i, which is contiguous
            std::fill(m, m + v.inner, -std::numeric_limits<float>::infinity());
            for (std::size_t j = 0; j < v.n; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) m[i] = std::max(m[i], block[j * v.inner + i]);
        }
    }
}

void slice_sums(const float* d, const AxisView& v, float* out) {
    for (std::size_t o = 0; o < v.outer; ++o) {
        const float* block = d + o * v.n * v.inner;
        float* s = out + o * v.inner;
        if (v.inner == 1) {
            s[0] = sum_of(block, v.n);
        } else {
            std::fill(s, s + v.inner, 0.0f);
            for (std::size_t j = 0; j < v.n; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) s[i] += block[j * v.inner + i];
        }
    }
}

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

}  // namespace detail

namespace {

// A null input, or an axis with nothing to index, is refused naming the op.
std::size_t nonempty_axis(const Tensor& a, int axis, const char* op) {
    detail::require_defined(op, {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), op);
    detail::require(a.shape()[ax] > 0, op, "the axis " + std::to_string(axis) + " is empty", a.shape());
    return ax;
}

}  // namespace

Tensor softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "softmax");
    Array y = logits.value();
    detail::softmax_inplace(y, ax);
    return record("softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        float beta;
        Array& dx = detail::grad_for_accumulate(in[0], beta);
        detail::softmax_backward(out.value(), out.grad(), ax, 1.0f, beta, dx);
    });
}

Tensor log_softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "log_softmax");
    Array y = logits.value();
    detail::log_softmax_inplace(y, ax);
    return record("log_softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        // dx = g - softmax * sum_axis(g), with softmax = exp(out)
        const detail::AxisView v = detail::axis_view(out.shape(), ax);
        const Array& g = out.grad();
        std::vector<float> sums(v.outer * v.inner);
        detail::slice_sums(g.data(), v, sums.data());
        Array dx = xt::exp(out.value());
        detail::multiply_per_slice(dx.data(), v, sums.data());
        const float* gp = g.data();
        float* d = dx.data();
        for (std::size_t k = 0; k < dx.size(); ++k) d[k] = gp[k] - d[k];
        in[0].accumulate_grad(std::move(dx), "log_softmax");
    });
}

Tensor logsumexp(const Tensor& a, int axis, bool keepdims) {
    const std::size_t ax = nonempty_axis(a, axis, "logsumexp");
    Array out = Array::from_shape(detail::reduced_shape(a.shape(), ax, keepdims));
    detail::logsumexp_along(a.value(), ax, out.data());
    return record("logsumexp", std::move(out), {a}, [ax](const std::vector<Tensor>& in, const Tensor& o) {
        // dx = g * exp(x - logsumexp(x)): the softmax weights times the slice's gradient
        const detail::AxisView v = detail::axis_view(in[0].shape(), ax);
        Array dx = in[0].value();
        detail::subtract_per_slice(dx.data(), v, o.value().data());
        xt::noalias(dx) = xt::exp(dx);
        detail::multiply_per_slice(dx.data(), v, o.grad().data());
        in[0].accumulate_grad(std::move(dx), "logsumexp");
    });
}

namespace {

float reduce_loss(const Array& per_element, Reduction reduction, const char* op, const Array::shape_type& shape) {
    // As mean() does: the mean of nothing is refused, not a silent NaN.
    if (reduction == Reduction::mean && per_element.size() == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average the loss of an empty tensor of shape " +
                                    shape_str(shape) + " (use Reduction::sum or none)");
    double s = 0.0;
    for (float l : per_element) s += l;
    if (reduction == Reduction::mean) s /= static_cast<double>(per_element.size());
    return static_cast<float>(s);
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
    const char* op = "binary_cross_entropy_with_logits";
    detail::require_defined(op, {&logits, &targets});
    if (logits.shape() != targets.shape())
        throw std::invalid_argument("binary_cross_entropy_with_logits: logits " + shape_str(logits.shape()) +
                                    " and targets " + shape_str(targets.shape()) + " must have the same shape");
    const std::size_t n = logits.size();
    // As mean() does: the mean of nothing is refused, not a silent NaN.
    if (reduction == Reduction::mean && n == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average the loss of an empty tensor of shape " +
                                    shape_str(logits.shape()) + " (use Reduction::sum or none)");
    const float* xp = logits.value().data();
    const float* tp = targets.value().data();
    // One pass: the loss log(1 + exp(x)) - x t = max(x, 0) - x t + log1p(exp(-|x|)), written so
    // that exp never overflows, and, when the logits need a gradient, sigmoid(x) - t from the
    // same exp (kept for the backward: it would cost the exp again).
    const bool each = reduction == Reduction::none;
    const bool keep_dx = grad_enabled() && logits.requires_grad();
    Array loss = Array::from_shape(each ? logits.shape() : Array::shape_type{});
    Array dx = keep_dx ? Array::from_shape(logits.shape()) : Array();
    double total = 0.0;
    simd::Batch acc(0.0f);
    const simd::Batch zero(0.0f), one(1.0f);
    for (std::size_t i = 0, blocks = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        const simd::Batch x = simd::load(xp + i, c), t = simd::load(tp + i, c);
        // log1p(e) as log(u) plus the rounding of u = 1 + e corrected, 1 / u shared with sigmoid(x)
        const simd::Batch e = xsimd::exp(-xsimd::abs(x)), u = one + e, r = one / u;
        const simd::Batch l = xsimd::max(x, zero) - x * t + (detail::log_positive(u) + (e - (u - one)) * r);
        if (each) simd::store(loss.data() + i, c, l);
        else if (c == simd::lanes) acc += l;
        else total += simd::sum(l, c);
        if (keep_dx) simd::store(dx.data() + i, c, xsimd::select(x >= zero, one, e) * r - t);
        if (++blocks % 64 == 0) total += xsimd::hadd(acc), acc = zero;  // float lanes sum a few hundred terms at most
    }
    if (!each) {
        total += xsimd::hadd(acc);
        if (reduction == Reduction::mean) total /= static_cast<double>(n);
        loss() = static_cast<float>(total);
    }
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record(op, std::move(loss), {logits, targets},
                  [each, scale, op, dx = std::move(dx)](const std::vector<Tensor>& in, const Tensor& out) {
                      const float* g = out.grad().data();
                      const std::size_t n = in[0].size();
                      if (in[0].requires_grad()) {  // (sigmoid(x) - t) g
                          float beta;
                          Array& gx = detail::grad_for_accumulate(in[0], beta);
                          float* d = gx.data();
                          Array fresh;  // requires_grad was switched on after the forward
                          if (dx.size() != n) fresh = 1.0f / (1.0f + xt::exp(-in[0].value())) - in[1].value();
                          const float* s = dx.size() == n ? dx.data() : fresh.data();
                          if (each) {
                              if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * g[k];
                              else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * g[k];
                          } else {
                              const float gs = g[0] * scale;
                              if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * gs;
                              else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * gs;
                          }
                      }
                      if (in[1].requires_grad()) {  // -x g
                          const float* x = in[0].value().data();
                          Array dt = Array::from_shape(in[0].shape());
                          for (std::size_t k = 0; k < n; ++k) dt.data()[k] = -x[k] * g[each ? k : 0] * scale;
                          in[1].accumulate_grad(std::move(dt), op);
                      }
                  });
}

Tensor cross_entropy(const Tensor& logits, const Indices& label_array, Reduction reduction) {
    const char* op = "cross_entropy";
    detail::require_defined(op, {&logits});
    detail::require(logits.dim() == 2, op, "logits must be [n, k]", logits.shape());
    const std::size_t n = logits.shape()[0], k = logits.shape()[1];
    detail::require(k > 0, op, "logits need at least one class", logits.shape());
    if (label_array.dimension() != 1)
        throw std::invalid_argument("cross_entropy: labels must be 1-D (one per row), got shape " +
                                    shape_str(Shape(label_array.shape().begin(), label_array.shape().end())));
    const std::vector<std::size_t> labels(label_array.begin(), label_array.end());
    if (labels.size() != n)
        throw std::invalid_argument("cross_entropy: " + std::to_string(labels.size()) + " labels for logits of shape " +
                                    shape_str(logits.shape()) + " (one label per row)");
    for (std::size_t r = 0; r < n; ++r)
        if (labels[r] >= k)
            throw std::out_of_range("cross_entropy: label " + std::to_string(labels[r]) + " of row " +
                                    std::to_string(r) + " is out of range for " + std::to_string(k) + " classes");
    // -log_softmax(x)[label], which keeps its digits at large logits (unlike logsumexp - x)
    Array log_p = logits.value();
    detail::log_softmax_inplace(log_p, 1);
    Array loss = Array::from_shape({n});
    for (std::size_t r = 0; r < n; ++r) loss(r) = -log_p(r, labels[r]);
    Array value = reduction == Reduction::none ? std::move(loss) : Array(reduce_loss(loss, reduction, op, logits.shape()));
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record("cross_entropy", std::move(value), {logits},
                  [labels, reduction, scale, k](const std::vector<Tensor>& in, const Tensor& out) {
                      // d/dx = g_r * (softmax(x_r) - one_hot(label_r))
                      Array dx = in[0].value();
                      detail::softmax_inplace(dx, 1);
                      const Array& g = out.grad();
                      for (std::size_t r = 0; r < labels.size(); ++r) {
                          const float gr = (reduction == Reduction::none ? g(r) : g()) * scale;
                          float* row = dx.data() + r * k;
                          row[labels[r]] -= 1.0f;
                          for (std::size_t j = 0; j < k; ++j) row[j] *= gr;
                      }
                      in[0].accumulate_grad(std::move(dx), "cross_entropy");
                  });
}

Indices argmax(const Tensor& a, int axis) {
    const std::size_t ax = nonempty_axis(a, axis, "argmax");
    Indices out = Indices::from_shape(detail::reduced_shape(a.shape(), ax, false));
    detail::argmax_along(a.value(), ax, out.data());
    return out;
}

Tensor one_hot(const Indices& indices, std::size_t num_classes) {
    if (num_classes == 0) throw std::invalid_argument("one_hot: num_classes must be positive, got 0");
    Array::shape_type shape(indices.shape().begin(), indices.shape().end());
    shape.push_back(num_classes);
    Array out = xt::zeros<float>(shape);
    for (std::size_t s = 0; s < indices.size(); ++s) {
        const std::size_t c = indices.data()[s];
        if (c >= num_classes)
            throw std::out_of_range("one_hot: index " + std::to_string(c) + " is out of range for " +
                                    std::to_string(num_classes) + " classes");
        out.data()[s * num_classes + c] = 1.0f;
    }
    return Tensor(std::move(out));
}

Tensor gather(const Tensor& a, int axis, const Indices& index) {
    const char* op = "gather";
    const std::size_t ax = nonempty_axis(a, axis, op);
    bool ok = index.dimension() == a.dim();
    for (std::size_t d = 0; ok && d < a.dim(); ++d) ok = d == ax || index.shape()[d] == a.shape()[d];
    if (!ok)
        throw std::invalid_argument("gather: the index of shape " +
                                    shape_str(Shape(index.shape().begin(), index.shape().end())) +
                                    " must match the tensor of shape " + shape_str(a.shape()) +
                                    " on every axis but " + std::to_string(axis));
    const detail::AxisView v = detail::axis_view(a.shape(), ax);
    const std::size_t m = index.dimension() ? index.shape()[ax] : 1;
    Array out = Array::from_shape(Shape(index.shape().begin(), index.shape().end()));
    const float* x = a.value().data();
    const std::size_t* idx = index.data();
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t j = 0; j < m; ++j)
            for (std::size_t i = 0; i < v.inner; ++i) {
                const std::size_t s = (o * m + j) * v.inner + i, c = idx[s];
                if (c >= v.n)
                    throw std::out_of_range("gather: index " + std::to_string(c) + " at position " + std::to_string(s) +
                                            " is out of range for axis " + std::to_string(axis) + " of length " +
                                            std::to_string(v.n) + " (shape " + shape_str(a.shape()) + ")");
                out.data()[s] = x[(o * v.n + c) * v.inner + i];
            }
    // The index rides along as a float tensor (exact up to 2^24, far beyond any axis here).
    Tensor where_from = needs_recording(&a, &a + 1) ? Tensor(Array(xt::cast<float>(index))) : Tensor();
    return record(op, std::move(out), {a, where_from}, [v, m](const std::vector<Tensor>& in, const Tensor& result) {
        float beta;
        Array& ga = detail::grad_for_accumulate(in[0], beta);
        if (beta == 0.0f) std::fill(ga.begin(), ga.end(), 0.0f);
        const float* g = result.grad().data();
        const float* idx = in[1].value().data();
        for (std::size_t o = 0; o < v.outer; ++o)
            for (std::size_t j = 0; j < m; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) {
                    const std::size_t s = (o * m + j) * v.inner + i;
                    ga.data()[(o * v.n + static_cast<std::size_t>(idx[s])) * v.inner + i] += g[s];
                }
    });
}

}  // namespace tg
