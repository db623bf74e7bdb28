// Every kernel of autograd/kernels/ against its plain loop (kernels/reference.hpp) on random
// inputs with the edge cases: sizes that are no multiple of the SIMD width, slices of 4 to 16
// (the short-slice softmax), strided slices, large |logits|, u next to 0 and 1. Tolerances are
// in units of float's epsilon of the value's scale, stated per check.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "autograd/kernels/bce.hpp"
#include "autograd/kernels/broadcast.hpp"
#include "autograd/kernels/index.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/noise.hpp"
#include "autograd/kernels/reference.hpp"
#include "autograd/kernels/uniforms.hpp"
#include "helpers.hpp"

namespace {

namespace ref = tg::kernels::reference;
using tg::detail::AxisView;

constexpr float eps = FLT_EPSILON;

// n normal values times k, some entries tied or infinite when asked.
std::vector<float> values(std::size_t n, float k, std::uint64_t seed) {
    tg::Generator g(seed);
    std::vector<float> v(n);
    for (float& x : v) x = g.normal() * k;
    return v;
}

tg::Array as_array(const std::vector<float>& v, const AxisView& view) {
    tg::Array a = tg::Array::from_shape({view.outer, view.n, view.inner});
    std::copy(v.begin(), v.end(), a.data());
    return a;
}

// |a - b| <= ulps * eps * scale, plus FLT_MIN: the kernels' exp flushes results under FLT_MIN
// to 0 where the plain loop keeps a denormal.
void check_close(float a, float b, float ulps, float scale) {
    INFO("kernel " << a << ", reference " << b << ", tolerance " << ulps << " eps x " << scale);
    CHECK(std::fabs(a - b) <= ulps * eps * scale + FLT_MIN);
}

// The views the slice kernels meet: short contiguous slices (4..16), long ones, strided ones,
// outer counts that are no multiple of a batch's lanes.
std::vector<AxisView> views() {
    std::vector<AxisView> out;
    for (std::size_t n : {1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 15, 16, 17, 31, 100})
        for (std::size_t outer : {1, 3, 8, 17})
            for (std::size_t inner : {1, 3}) out.push_back(AxisView{outer, n, inner});
    return out;
}

}  // namespace

TEST_CASE("Kernels: slice maxima (exact), sums and argmax (exact) match their plain loops") {
    std::uint64_t seed = 1;
    for (const AxisView& v : views())
        for (float k : {1.0f, 1e4f}) {
            std::vector<float> d = values(v.outer * v.n * v.inner, k, seed++);
            if (k > 1.0f)
                for (float& x : d) x = std::round(x / 1e4f);  // ties for argmax
            const std::size_t slices = v.outer * v.inner;
            std::vector<float> m(slices), mr(slices), s(slices), sr(slices);
            std::vector<std::size_t> i(slices), ir(slices);
            tg::detail::slice_maxima(d.data(), v, m.data());
            ref::slice_maxima(d.data(), v, mr.data());
            tg::detail::slice_sums(d.data(), v, s.data());
            ref::slice_sums(d.data(), v, sr.data());
            tg::detail::argmax_along(as_array(d, v), v, i.data());
            ref::argmax(d.data(), v, ir.data());
            CHECK(m == mr);
            CHECK(i == ir);
            for (std::size_t j = 0; j < slices; ++j) {
                float scale = 0.0f;  // a sum's rounding is bounded by n eps sum |d|
                for (std::size_t q = 0; q < v.n; ++q) scale += std::fabs(d[ref::at(v, j, q)]);
                check_close(s[j], sr[j], static_cast<float>(v.n), std::max(scale, FLT_MIN));
            }
        }
}

TEST_CASE("Kernels: softmax (the short-slice path for 4..16 classes too), log_softmax and logsumexp match their plain loops") {
    std::uint64_t seed = 100;
    for (const AxisView& v : views())
        for (float k : {1.0f, 30.0f, 3000.0f}) {
            const std::vector<float> d = values(v.outer * v.n * v.inner, k, seed++);
            tg::Array y = as_array(d, v);
            tg::detail::softmax_inplace(y, v);
            std::vector<float> yr = d;
            ref::softmax(yr.data(), v);
            for (std::size_t j = 0; j < d.size(); ++j) check_close(y.data()[j], yr[j], 8.0f, std::max(yr[j], FLT_MIN));

            // log_softmax and logsumexp on the axis of a 3-D array: the same [outer, n, inner]
            tg::Array l = as_array(d, v);
            tg::detail::log_softmax_inplace(l, 1);
            std::vector<float> lr = d;
            ref::log_softmax(lr.data(), v);
            for (std::size_t j = 0; j < d.size(); ++j) check_close(l.data()[j], lr[j], 4.0f, std::max(std::fabs(lr[j]), 1.0f));
            std::vector<float> e(v.outer * v.inner), er(e.size());
            tg::detail::logsumexp_along(as_array(d, v), 1, e.data());
            ref::logsumexp(d.data(), v, er.data());
            for (std::size_t j = 0; j < e.size(); ++j) check_close(e[j], er[j], 4.0f, std::max(std::fabs(er[j]), 1.0f));
        }
}

TEST_CASE("Kernels: an all -inf slice gives a softmax of NaN in neither path's neighbours") {
    for (std::size_t n : {3, 10, 40}) {
        const AxisView v{3, n, 1};
        std::vector<float> d = values(3 * n, 1.0f, n);
        std::fill(d.begin() + n, d.begin() + 2 * n, -std::numeric_limits<float>::infinity());
        tg::Array y = as_array(d, v);
        tg::detail::softmax_inplace(y, v);
        std::vector<float> yr = d;
        ref::softmax(yr.data(), v);
        for (std::size_t j = 0; j < d.size(); ++j) {
            if (j >= n && j < 2 * n) continue;  // the -inf slice itself: 0 / 0
            check_close(y.data()[j], yr[j], 8.0f, std::max(yr[j], FLT_MIN));
        }
    }
}

TEST_CASE("Kernels: the softmax backward (short slices too, beta 0 and 1) matches its plain loop") {
    std::uint64_t seed = 500;
    for (const AxisView& v : views())
        for (float scale : {1.0f, 2.5f})
            for (float beta : {0.0f, 1.0f}) {
                const std::size_t size = v.outer * v.n * v.inner;
                tg::Array y = as_array(values(size, 3.0f, seed++), v);
                tg::detail::softmax_inplace(y, v);
                const tg::Array g = as_array(values(size, 1.0f, seed++), v);
                const std::vector<float> dx0 = values(size, 1.0f, seed++);
                tg::Array dx = as_array(dx0, v);
                tg::detail::softmax_backward(y, g, v, scale, beta, dx);
                std::vector<float> dxr = dx0;
                ref::softmax_backward(y.data(), g.data(), v, scale, beta, dxr.data());
                for (std::size_t s = 0; s < v.outer * v.inner; ++s) {
                    float gy = 0.0f;  // the dot's scale, sum |g y|
                    for (std::size_t j = 0; j < v.n; ++j) gy += std::fabs(g.data()[ref::at(v, s, j)]) * y.data()[ref::at(v, s, j)];
                    for (std::size_t j = 0; j < v.n; ++j) {
                        const std::size_t k = ref::at(v, s, j);
                        const float bound = beta * std::fabs(dx0[k]) + scale * y.data()[k] * (std::fabs(g.data()[k]) + gy);
                        check_close(dx.data()[k], dxr[k], 8.0f, std::max(bound, FLT_MIN));
                    }
                }
            }
}

TEST_CASE("Kernels: BCE with logits (loss, sum, sigmoid(x) - t) matches its plain loop, large |x| too") {
    std::uint64_t seed = 900;
    for (std::size_t n : {0, 1, 7, 15, 16, 17, 33, 1000, 64 * 16 + 5, 5000})
        for (float k : {1.0f, 20.0f, 1e4f}) {
            const std::vector<float> x = values(n, k, seed++);
            std::vector<float> t(n);
            tg::Generator g(seed++);
            for (std::size_t i = 0; i < n; ++i) t[i] = i % 3 == 0 ? float(i % 2) : g.uniform();
            std::vector<float> l(n), lr(n), dx(n), dxr(n);
            tg::kernels::bce_with_logits(x.data(), t.data(), n, l.data(), dx.data());
            const double total = tg::kernels::bce_with_logits(x.data(), t.data(), n, nullptr, nullptr);
            const double total_ref = ref::bce_with_logits(x.data(), t.data(), n, lr.data(), dxr.data());
            double bound = 0.0;  // max(x, 0) - x t rounds at the scale of |x|
            for (std::size_t i = 0; i < n; ++i) {
                check_close(l[i], lr[i], 4.0f, std::fabs(x[i]) + 1.0f);
                check_close(dx[i], dxr[i], 2.0f, 1.0f);
                bound += 4.0 * eps * (std::fabs(x[i]) + 1.0f) + 2.0 * eps * std::fabs(lr[i]);
            }
            CHECK(std::fabs(total - total_ref) <= bound + 1e-30);
        }
}

TEST_CASE("Kernels: log_positive is xsimd::log bit for bit on positive normal floats") {
    using B = tg::simd::Batch;
    std::vector<float> x = {FLT_MIN, 0x1.0p-24f, 0.5f, 1.0f - 0x1.0p-24f, 1.0f, 1.0f + FLT_EPSILON, 2.0f, 3e38f, FLT_MAX};
    tg::Generator g(7);
    for (int i = 0; i < 4096; ++i) x.push_back(std::ldexp(1.0f + g.uniform(), static_cast<int>(g.below(250)) - 125));
    while (x.size() % B::size) x.push_back(1.0f);
    for (std::size_t i = 0; i < x.size(); i += B::size) {
        const B b = B::load_unaligned(x.data() + i);
        alignas(64) float got[B::size], want[B::size];
        tg::detail::log_positive(b).store_aligned(got);
        xsimd::log(b).store_aligned(want);
        CHECK(std::memcmp(got, want, sizeof got) == 0);
    }
}

TEST_CASE("Kernels: Gumbel and logistic noise, the noisy logits and the tempered sigmoid match their plain loops, u next to 0 and 1") {
    for (std::size_t n : {1, 5, 16, 17, 100, 1003}) {
        tg::Generator g(n);
        std::vector<float> u(n);
        g.fill_uniform_open(u.data(), n);
        const float edges[] = {FLT_MIN, 0x1.0p-24f, 0x1.0p-23f, 0.5f, 1.0f - 0x1.0p-23f, 1.0f - 0x1.0p-24f};
        for (std::size_t i = 0; i < std::min<std::size_t>(n, 6); ++i) u[i] = edges[i];
        const std::vector<float> logits = values(n, 10.0f, n + 1);
        std::vector<float> gn(n), ln(n);
        tg::kernels::gumbel_noise(u.data(), n, gn.data());
        tg::kernels::logistic_noise(u.data(), n, ln.data());
        for (std::size_t i = 0; i < n; ++i) {
            check_close(gn[i], ref::gumbel(u[i]), 4.0f, std::max(std::fabs(ref::gumbel(u[i])), 1.0f));
            check_close(ln[i], ref::logistic(u[i]), 4.0f, std::max(std::fabs(ref::logistic(u[i])), 1.0f));
        }
        for (float scale : {1.0f, 1.0f / 0.3f}) {  // exactly (logits + noise) * scale
            std::vector<float> zg = u, zl = u;
            tg::kernels::add_gumbel_noise(logits.data(), n, scale, zg.data());
            tg::kernels::add_logistic_noise(logits.data(), n, scale, zl.data());
            for (std::size_t i = 0; i < n; ++i) {
                CHECK(zg[i] == (logits[i] + gn[i]) * scale);
                CHECK(zl[i] == (logits[i] + ln[i]) * scale);
            }
        }
        for (float tau : {1.0f, 0.1f}) {
            std::vector<float> z = values(n, 30.0f, n + 2), hard(n);
            const std::vector<float> z0 = z;
            tg::kernels::tempered_sigmoid(z.data(), n, tau, hard.data());
            for (std::size_t i = 0; i < n; ++i) {
                CHECK(hard[i] == (z0[i] > 0.0f ? 1.0f : 0.0f));
                const float want = ref::tempered_sigmoid(z0[i], tau);
                // exp(-z / tau) carries the rounding of z / tau times its size
                check_close(z[i], want, 4.0f + std::fabs(z0[i] / tau), want);
            }
        }
    }
}

TEST_CASE("Kernels: the 8 xoshiro256** streams give the plain generators' uniforms bit for bit") {
    for (std::size_t n : {0, 1, 15, 16, 17, 64, 100, 1001}) {
        std::vector<float> u(n, -1.0f), ur(n, -2.0f);
        tg::kernels::uniform_open_streams(12345 + n, u.data(), n);
        ref::uniform_open_streams(12345 + n, ur.data(), n);
        CHECK(std::memcmp(u.data(), ur.data(), n * sizeof(float)) == 0);
        for (float v : u) CHECK((v > 0.0f && v < 1.0f));
    }
    // Generator::fill_uniform_open seeds the streams with one draw of the generator
    tg::Generator a(3), b(3);
    std::vector<float> u(200), ur(200);
    a.fill_uniform_open(u.data(), u.size());
    ref::uniform_open_streams(b.next_u64(), ur.data(), ur.size());
    CHECK(u == ur);
    CHECK(a.next_u64() == b.next_u64());
}

// ---- reductions and copies (kernels/reduce, kernels/copy)
namespace {

// Views with empty axes, length-1 axes, inner 1 and inner > 1.
std::vector<AxisView> reduce_views() {
    std::vector<AxisView> out;
    for (std::size_t n : {0, 1, 2, 7, 8, 9, 16, 17, 100})
        for (std::size_t outer : {0, 1, 3})
            for (std::size_t inner : {0, 1, 2, 5}) out.push_back(AxisView{outer, n, inner});
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The destination a beta-0 kernel overwrites (NaN: any value read would show) or a beta-1 one adds to.
std::vector<float> destination(std::size_t n, float beta, std::uint64_t seed) {
    return beta == 0.0f ? std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()) : values(n, 1.0f, seed);
}

}  // namespace

TEST_CASE("Kernels: sum_all and sum_along (scale 1 and 1/n) match their plain double sums, empty and length-1 axes too") {
    std::uint64_t seed = 2000;
    for (const AxisView& v : reduce_views())
        for (float scale : {1.0f, 1.0f / 7.0f}) {
            const std::vector<float> a = values(v.outer * v.n * v.inner, 1.0f, seed++);
            double abs_sum = 0.0;
            for (float x : a) abs_sum += std::fabs(x);
            CHECK(std::fabs(tg::kernels::sum_all<double>(a.data(), a.size()) - ref::sum_all(a.data(), a.size())) <=
                  a.size() * DBL_EPSILON * abs_sum);
            std::vector<float> s(v.outer * v.inner, -1.0f), sr(s.size(), -2.0f);
            tg::kernels::sum_along(a.data(), v, scale, s.data());
            ref::sum_along(a.data(), v, scale, sr.data());
            for (std::size_t j = 0; j < s.size(); ++j) {
                float slice_abs = 0.0f;  // float rounding: n eps sum |a|, then the scaling
                for (std::size_t q = 0; q < v.n; ++q) slice_abs += std::fabs(a[ref::at(v, j, q)]);
                check_close(s[j], sr[j], static_cast<float>(v.n + 1), scale * slice_abs);
            }
        }
}

TEST_CASE("Kernels: spread_along matches its plain loop, beta 0 over NaN and beta 1 (exact for scale 1)") {
    std::uint64_t seed = 3000;
    for (const AxisView& v : reduce_views())
        for (float scale : {1.0f, 0.3f})
            for (float beta : {0.0f, 1.0f}) {
                const std::vector<float> g = values(v.outer * v.inner, 1.0f, seed++);
                const std::vector<float> d0 = destination(v.outer * v.n * v.inner, beta, seed++);
                std::vector<float> d = d0, dr = d0;
                tg::kernels::spread_along(g.data(), v, scale, beta, d.data());
                ref::spread_along(g.data(), v, scale, beta, dr.data());
                if (scale == 1.0f) CHECK(same_bits(d, dr));
                else  // a compiler may fuse d + scale g into one rounding (an FMA) in either loop
                    for (std::size_t s = 0; s < g.size(); ++s)
                        for (std::size_t j = 0; j < v.n; ++j) {
                            const std::size_t k = ref::at(v, s, j);
                            check_close(d[k], dr[k], 1.0f, (beta == 0.0f ? 0.0f : std::fabs(d0[k])) + std::fabs(scale * g[s]));
                        }
            }
}

TEST_CASE("Kernels: max_along and max_backward (the first of tied maxima) match their plain loops exactly") {
    std::uint64_t seed = 4000;
    for (const AxisView& v : reduce_views()) {
        if (v.n == 0) continue;  // no maximum (the op refuses it)
        for (bool ties : {false, true})
            for (float beta : {0.0f, 1.0f}) {
                std::vector<float> a = values(v.outer * v.n * v.inner, 3.0f, seed++);
                if (ties)
                    for (float& x : a) x = std::round(x);
                std::vector<float> m(v.outer * v.inner, -1.0f), mr(m.size(), -2.0f);
                tg::kernels::max_along(a.data(), v, m.data());
                ref::max_along(a.data(), v, mr.data());
                CHECK(m == mr);  // equal values (a tie of 0 and -0 may keep either)
                const std::vector<float> g = values(m.size(), 1.0f, seed++);
                const std::vector<float> d0 = destination(a.size(), beta, seed++);
                std::vector<float> d = d0, dr = d0;
                tg::kernels::max_backward(a.data(), m.data(), g.data(), v, beta, d.data());
                ref::max_backward(a.data(), m.data(), g.data(), v, beta, dr.data());
                CHECK(same_bits(d, dr));
            }
    }
}

TEST_CASE("Kernels: copy_or_add and copy_rows (strided rows, empty ones) match their plain loops exactly, beta 0 over NaN and beta 1") {
    std::uint64_t seed = 5000;
    for (std::size_t rows : {0, 1, 3, 7})
        for (std::size_t len : {0, 1, 5, 17})
            for (std::size_t gap : {0, 3})
                for (float beta : {0.0f, 1.0f}) {
                    // a slice: rows of len out of rows of len + gap, into dense rows; and back
                    const std::vector<float> wide = values(rows * (len + gap), 1.0f, seed++);
                    std::vector<float> narrow = destination(rows * len, beta, seed++), narrow_r = narrow;
                    tg::kernels::copy_rows(wide.data() + std::min(gap, std::size_t(1)), len + gap, rows, len, beta, narrow.data(), len);
                    ref::copy_rows(wide.data() + std::min(gap, std::size_t(1)), len + gap, rows, len, beta, narrow_r.data(), len);
                    CHECK(same_bits(narrow, narrow_r));
                    std::vector<float> back = destination(wide.size(), 1.0f, seed++), back_r = back;
                    tg::kernels::copy_rows(narrow.data(), len, rows, len, beta, back.data(), len + gap);
                    ref::copy_rows(narrow.data(), len, rows, len, beta, back_r.data(), len + gap);
                    CHECK(same_bits(back, back_r));
                    std::vector<float> flat = destination(wide.size(), beta, seed++), flat_r = flat;
                    tg::kernels::copy_or_add(wide.data(), wide.size(), beta, flat.data());
                    ref::copy_rows(wide.data(), wide.size(), 1, wide.size(), beta, flat_r.data(), wide.size());
                    CHECK(same_bits(flat, flat_r));
                }
}

TEST_CASE("Kernels: permute matches its plain index loop exactly for random shapes and permutations, 0-d and empty too") {
    tg::Generator g(6000);
    for (int trial = 0; trial < 300; ++trial) {
        const std::size_t nd = trial < 4 ? 0 : g.below(5);
        tg::Shape shape(nd);
        for (std::size_t& d : shape) d = trial % 20 == 7 ? g.below(3) : 1 + g.below(5);  // some empty axes
        std::vector<std::size_t> perm(nd);
        for (std::size_t k = 0; k < nd; ++k) perm[k] = k;
        for (std::size_t k = nd; k > 1; --k) std::swap(perm[k - 1], perm[g.below(k)]);
        std::size_t size = 1;
        for (std::size_t d : shape) size *= d;
        const std::vector<float> src = values(size, 1.0f, trial);
        for (float beta : {0.0f, 1.0f}) {
            std::vector<float> dst = destination(size, beta, trial + 1), dst_r = dst;
            tg::kernels::permute(src.data(), shape, perm, beta, dst.data());
            ref::permute(src.data(), shape, perm, beta, dst_r.data());
            INFO("trial " << trial << ", shape " << tg::shape_str(shape));
            CHECK(same_bits(dst, dst_r));
        }
    }
}

// ---- nn, linear and broadcast (kernels/bce, softmax, index, broadcast)

namespace {

// What a kernel with beta writes over: NaN for beta 0 (it must not be read), values for beta 1.
std::vector<float> start_of(std::size_t n, float beta, std::uint64_t seed) {
    return beta == 0.0f ? std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()) : values(n, 1.0f, seed);
}

// n indices below bound, first and last values included when there are enough.
std::vector<std::size_t> indices(std::size_t n, std::size_t bound, std::uint64_t seed) {
    tg::Generator g(seed);
    std::vector<std::size_t> out(n);
    for (std::size_t i = 0; i < n; ++i) out[i] = i == 0 ? 0 : i == 1 ? bound - 1 : g.below(bound);
    return out;
}

}  // namespace

TEST_CASE("Kernels: the BCE backward, the cross-entropy pick, one_hot, gather and scatter-add match their plain loops bit for bit (beta 0 over NaN, beta 1 to an ulp)") {
    std::uint64_t seed = 2000;
    for (std::size_t n : {0, 1, 7, 16, 17, 100})
        for (bool each : {true, false})
            for (float beta : {0.0f, 1.0f}) {
                const std::vector<float> s = values(n, 1.0f, seed++), x = values(n, 5.0f, seed++);
                const std::vector<float> g = values(each ? n : 1, 1.0f, seed++);
                const float scale = each ? 1.0f : 1.0f / 3.0f;
                std::vector<float> d = start_of(n, beta, seed++), dr = d, t = d, tr = d;
                tg::kernels::bce_backward_logits(s.data(), g.data(), each, scale, n, beta, d.data());
                ref::bce_backward_logits(s.data(), g.data(), each, scale, n, beta, dr.data());
                tg::kernels::bce_backward_targets(x.data(), g.data(), each, scale, n, beta, t.data());
                ref::bce_backward_targets(x.data(), g.data(), each, scale, n, beta, tr.data());
                if (beta == 0.0f) {
                    CHECK(d == dr);
                    CHECK(t == tr);
                } else {  // d + s g may be one FMA in either loop: within an ulp of |d| + |s g|
                    for (std::size_t k = 0; k < n; ++k) {
                        const float gk = each ? g[k] : g[0] * scale;
                        check_close(d[k], dr[k], 1.0f, std::fabs(dr[k]) + std::fabs(s[k] * gk));
                        check_close(t[k], tr[k], 1.0f, std::fabs(tr[k]) + std::fabs(x[k] * gk));
                    }
                }
            }
    for (std::size_t n : {0, 1, 5})
        for (std::size_t k : {1, 2, 10}) {
            const std::vector<float> log_p = values(n * k, 3.0f, seed++);
            const std::vector<std::size_t> labels = indices(n, k, seed++);
            std::vector<float> l(n, -1.0f), lr(n, -2.0f), h(n * k, -1.0f), hr(n * k, -2.0f);
            tg::detail::pick_negated(log_p.data(), labels.data(), n, k, l.data());
            ref::pick_negated(log_p.data(), labels.data(), n, k, lr.data());
            tg::kernels::one_hot(labels.data(), n, k, h.data());
            ref::one_hot(labels.data(), n, k, hr.data());
            CHECK(l == lr);
            CHECK(h == hr);
        }
    for (const AxisView& v : views())
        for (std::size_t m : {0, 1, 3})
            for (float beta : {0.0f, 1.0f}) {
                const std::vector<float> x = values(v.outer * v.n * v.inner, 1.0f, seed++);
                const std::vector<std::size_t> index = indices(v.outer * m * v.inner, v.n, seed++);
                std::vector<float> out(index.size(), -1.0f), outr(index.size(), -2.0f);
                tg::kernels::gather(x.data(), v, m, index.data(), out.data());
                ref::gather(x.data(), v, m, index.data(), outr.data());
                CHECK(out == outr);
                // the backward, repeats included
                const std::vector<float> g = values(index.size(), 1.0f, seed++);
                std::vector<float> d = start_of(x.size(), beta, seed++), dr = d;
                tg::kernels::scatter_add(g.data(), v, m, index.data(), beta, d.data());
                ref::scatter_add(g.data(), v, m, index.data(), beta, dr.data());
                CHECK(d == dr);
            }
}

TEST_CASE("Kernels: the log_softmax, logsumexp and cross-entropy backwards match their plain loops") {
    std::uint64_t seed = 3000;
    for (const AxisView& v : views()) {
        const std::size_t size = v.outer * v.n * v.inner, slices = v.outer * v.inner;
        const std::vector<float> x = values(size, 3.0f, seed++), g = values(size, 1.0f, seed++);
        tg::Array y = as_array(x, v);
        tg::detail::log_softmax_inplace(y, 1);
        const tg::Array dx = tg::detail::log_softmax_backward(y, as_array(g, v), 1);
        std::vector<float> dxr(size);
        ref::log_softmax_backward(y.data(), g.data(), v, dxr.data());
        for (std::size_t s = 0; s < slices; ++s) {
            float gs = 0.0f;  // the sum's scale, sum |g|
            for (std::size_t j = 0; j < v.n; ++j) gs += std::fabs(g[ref::at(v, s, j)]);
            for (std::size_t j = 0; j < v.n; ++j) {
                const std::size_t k = ref::at(v, s, j);
                check_close(dx.data()[k], dxr[k], 4.0f + v.n, std::fabs(g[k]) + std::exp(y.data()[k]) * gs);
            }
        }
        tg::Array lse = tg::Array::from_shape({v.outer, v.inner});
        tg::detail::logsumexp_along(as_array(x, v), 1, lse.data());
        const tg::Array gl = as_array(values(slices, 1.0f, seed++), AxisView{v.outer, 1, v.inner});
        const tg::Array dl = tg::detail::logsumexp_backward(as_array(x, v), lse, gl, 1);
        std::vector<float> dlr(size);
        ref::logsumexp_backward(x.data(), lse.data(), gl.data(), v, dlr.data());
        for (std::size_t k = 0; k < size; ++k) check_close(dl.data()[k], dlr[k], 4.0f, std::max(std::fabs(dlr[k]), FLT_MIN));
    }
    for (std::size_t n : {1, 3, 17})
        for (std::size_t k : {1, 2, 10, 33})
            for (bool each : {true, false}) {
                const std::vector<float> x = values(n * k, 5.0f, seed++), g = values(each ? n : 1, 1.0f, seed++);
                const std::vector<std::size_t> labels = indices(n, k, seed++);
                const float scale = each ? 1.0f : 1.0f / static_cast<float>(n);
                const tg::Array dx = tg::detail::cross_entropy_backward(as_array(x, AxisView{n, k, 1}), labels.data(),
                                                                        g.data(), each, scale);
                std::vector<float> dxr(n * k);
                ref::cross_entropy_backward(x.data(), labels.data(), g.data(), each, scale, n, k, dxr.data());
                for (std::size_t r = 0; r < n; ++r)  // the softmax's 8 ulps of (p + 1) |g_r|
                    for (std::size_t j = 0; j < k; ++j)
                        check_close(dx.data()[r * k + j], dxr[r * k + j], 8.0f,
                                    (std::fabs(dxr[r * k + j]) + std::fabs(g[each ? r : 0] * scale)) + FLT_MIN);
            }
}

TEST_CASE("Kernels: sum_to, the bias rows and their column sums match their plain loops (empty, length-1 axes, 0-d)") {
    using Shape = tg::Array::shape_type;
    const std::vector<std::pair<Shape, Shape>> cases = {
        {{3, 4}, {4}},          {{3, 4}, {3, 1}},       {{3, 4}, {1, 4}},        {{3, 4}, {}},
        {{2, 3, 4}, {3, 1}},    {{2, 3, 4}, {2, 1, 4}}, {{2, 1, 4}, {1, 1, 4}},  {{1, 1, 1}, {1}},
        {{5, 1, 7, 1, 9}, {1, 7, 1, 1}}, {{4, 0, 3}, {3}}, {{0, 3}, {1, 3}},    {{}, {}},
        {{17}, {1}},            {{1, 17}, {17}},        {{6, 2, 5, 3}, {2, 1, 3}}, {{2, 3, 4}, {2, 3, 4}}};
    std::uint64_t seed = 4000;
    for (const auto& from_and_to : cases) {
        const Shape &from = from_and_to.first, &to = from_and_to.second;  // clang: no INFO of a binding
        std::size_t size = 1, out_size = 1, summed = 1;
        for (std::size_t e : from) size *= e;
        for (std::size_t e : to) out_size *= e;
        if (out_size) summed = size / out_size;
        INFO("sum_to " << tg::shape_str(from) << " -> " << tg::shape_str(to));
        const std::vector<float> g = values(size, 1.0f, seed++);
        std::vector<float> out(out_size, std::numeric_limits<float>::quiet_NaN()), outr(out_size);
        tg::kernels::sum_to(g.data(), from, to, out.data());
        ref::sum_to(g.data(), from, to, outr.data());
        float scale = FLT_MIN;  // a sum's rounding is bounded by its count times eps sum |g|
        for (float v : g) scale += std::fabs(v);
        for (std::size_t o = 0; o < out_size; ++o) check_close(out[o], outr[o], static_cast<float>(summed), scale);
    }
    for (std::size_t rows : {0, 1, 7, 100})
        for (std::size_t cols : {1, 3, 16, 33})
            for (float beta : {0.0f, 1.0f}) {
                const std::vector<float> b = values(cols, 1.0f, seed++), g = values(rows * cols, 1.0f, seed++);
                std::vector<float> y(rows * cols, -1.0f), yr(rows * cols, -2.0f);
                tg::kernels::broadcast_rows(b.data(), rows, cols, y.data());
                ref::broadcast_rows(b.data(), rows, cols, yr.data());
                CHECK(y == yr);
                std::vector<float> d = start_of(cols, beta, seed++), dr = d;
                tg::kernels::column_sums(g.data(), rows, cols, beta, d.data());
                ref::column_sums(g.data(), rows, cols, beta, dr.data());
                for (std::size_t j = 0; j < cols; ++j) {
                    float scale = beta * std::fabs(dr[j]) + FLT_MIN;  // (rows + 1) eps of the terms' sum
                    for (std::size_t r = 0; r < rows; ++r) scale += std::fabs(g[r * cols + j]);
                    check_close(d[j], dr[j], static_cast<float>(rows + 1), scale);
                }
            }
}
