// Sparse products of discrete samples (autograd/kernels/sparse.hpp): the kernels against plain
// loops, and linear and matmul on tensors marked as samples against the dense path (the same
// values through an unmarked copy), first- and second-order gradients, the samplers' marks,
// the mark dropped by a write, a wrong mark harmless.
#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "autograd/kernels/reference.hpp"
#include "autograd/kernels/sparse.hpp"
#include "autograd/threads.hpp"
#include "helpers.hpp"

using namespace tg;
namespace ref = tg::kernels::reference;
using tgtest::random_tensor;

namespace {

// [rows, cols] of 1 with probability p, else 0.
Array binary(std::size_t rows, std::size_t cols, float p, std::uint64_t seed) {
    Generator g(seed);
    Array a = Array::from_shape({rows, cols});
    for (float& v : a) v = g.uniform() < p ? 1.0f : 0.0f;
    return a;
}

// A one-hot of each group of `classes` entries, as gumbel_max samples them.
Tensor one_hot_sample(std::size_t rows, std::size_t cols, std::size_t classes, std::uint64_t seed) {
    Generator g(seed);
    return gumbel_max(random_tensor({rows, cols}, seed, -2.0f, 2.0f, false),
                      GumbelSoftmaxOptions().classes(classes).generator(&g));
}

void check_close(const Array& got, const Array& want, float tol = 1e-5f) {
    REQUIRE(got.shape() == want.shape());
    for (std::size_t i = 0; i < got.size(); ++i)
        REQUIRE(got.data()[i] == doctest::Approx(want.data()[i]).epsilon(tol).scale(1.0));
}

Tensor marked(const Array& a, bool requires_grad = false) { return Tensor(a, requires_grad).mark_discrete_sample(); }

// Value and first-order gradients of sum(w * linear(x, W, b)) (or matmul(x, W)) with x marked
// against the same with an unmarked copy of x.
void check_against_dense(const Array& x_value, bool use_linear, bool x_requires_grad) {
    const std::size_t in = x_value.shape()[1], out = 7;
    const Tensor w = use_linear ? random_tensor({out, in}, 2) : random_tensor({in, out}, 2);
    const Tensor b = random_tensor({out}, 3);
    const Tensor proj = random_tensor({x_value.shape()[0], out}, 4, -1.0f, 1.0f, false);
    std::vector<Array> values, grads;
    for (const bool mark : {true, false}) {
        Tensor x(x_value, x_requires_grad);
        if (mark) x.mark_discrete_sample();
        const Tensor y = use_linear ? linear(x, w, b) : matmul(x, w);
        values.push_back(y.value());
        std::vector<Tensor> wrt = {w};
        if (use_linear) wrt.push_back(b);
        if (x_requires_grad) wrt.push_back(x);
        for (const Tensor& g : grad({sum(y * proj)}, wrt)) grads.push_back(g.value());
    }
    check_close(values[0], values[1]);
    const std::size_t half = grads.size() / 2;
    for (std::size_t i = 0; i < half; ++i) check_close(grads[i], grads[half + i]);
}

}  // namespace

TEST_CASE("Sparse kernels: binary_times and binary_transpose_times against plain loops") {
    for (const float p : {0.0f, 0.1f, 0.25f, 0.8f, 1.0f})  // 0.8 and 1: rows listed by their zeros
        for (const std::size_t rows : {0, 1, 37})
            for (const bool transposed : {false, true})
                for (const float beta : {0.0f, 1.0f}) {
                    CAPTURE(p);
                    CAPTURE(rows);
                    CAPTURE(transposed);
                    CAPTURE(beta);
                    const std::size_t k = 23, n = 70;  // n: a full register block and a partial one
                    const Array a = binary(rows, k, p, 5);
                    const Array b = random_tensor({k, n}, 6, -1.0f, 1.0f, false).value();
                    kernels::BinaryRows r;
                    REQUIRE(kernels::binary_rows(a.data(), rows, k, 1.0f, r));
                    std::vector<float> c(rows * n, 0.5f), c_ref = c;
                    kernels::binary_times(r, b.data(), n, transposed, beta, c.data());
                    ref::matmul(false, transposed, rows, k, n, a.data(), b.data(), beta, c_ref.data());
                    for (std::size_t i = 0; i < c.size(); ++i) REQUIRE(c[i] == doctest::Approx(c_ref[i]).epsilon(1e-5));
                    const Array g = random_tensor({rows, n}, 7, -1.0f, 1.0f, false).value();
                    std::vector<float> d(k * n, 0.5f), d_ref = d;
                    kernels::binary_transpose_times(r, g.data(), n, transposed, beta, d.data());
                    if (transposed) ref::matmul(true, false, n, rows, k, g.data(), a.data(), beta, d_ref.data());
                    else ref::matmul(true, false, k, rows, n, a.data(), g.data(), beta, d_ref.data());
                    for (std::size_t i = 0; i < d.size(); ++i) REQUIRE(d[i] == doctest::Approx(d_ref[i]).epsilon(1e-5));
                }
}

TEST_CASE("Sparse kernels: binary_rows refuses entries other than 0 and 1, and matrices too dense") {
    kernels::BinaryRows r;
    Array a = binary(4, 10, 0.2f, 1);
    CHECK(kernels::binary_rows(a.data(), 4, 10, 0.5f, r));
    a(2, 3) = 0.5f;
    CHECK_FALSE(kernels::binary_rows(a.data(), 4, 10, 0.5f, r));
    a(2, 3) = NAN;
    CHECK_FALSE(kernels::binary_rows(a.data(), 4, 10, 0.5f, r));
    a(2, 3) = -1.0f;
    CHECK_FALSE(kernels::binary_rows(a.data(), 4, 10, 0.5f, r));
    // 40% ones in every row: over a limit of 10%, within 50%
    const Array dense = binary(64, 100, 0.4f, 2);
    CHECK_FALSE(kernels::binary_rows(dense.data(), 64, 100, 0.1f, r));
    CHECK(kernels::binary_rows(dense.data(), 64, 100, 0.5f, r));
}

TEST_CASE("Sparse products: linear and matmul of a marked sample match the dense path, gradients included") {
    for (const bool use_linear : {true, false})
        for (const bool x_requires_grad : {false, true}) {
            CAPTURE(use_linear);
            CAPTURE(x_requires_grad);
            check_against_dense(binary(50, 30, 0.1f, 11), use_linear, x_requires_grad);        // Bernoulli, sparse
            check_against_dense(binary(50, 30, 0.9f, 12), use_linear, x_requires_grad);        // mostly ones
            check_against_dense(one_hot_sample(50, 40, 10, 13).value(), use_linear, x_requires_grad);  // categorical
            check_against_dense(Array(xt::zeros<float>({50, 30})), use_linear, x_requires_grad);
            check_against_dense(Array(xt::ones<float>({50, 30})), use_linear, x_requires_grad);
            check_against_dense(Array::from_shape({0, 30}), use_linear, x_requires_grad);  // an empty batch
        }
}

TEST_CASE("Sparse products: linear of a marked sample with a 3-d input and no bias") {
    const Array x3 = [] {
        Array a = binary(6, 24, 0.1f, 21);
        a.reshape({2, 3, 24});
        return a;
    }();
    const Tensor w = random_tensor({5, 24}, 22);
    const Tensor sparse = linear(marked(x3), w), dense = linear(Tensor(x3), w);
    check_close(sparse.value(), dense.value());
    check_close(grad({sum(square(sparse))}, {w})[0].value(), grad({sum(square(dense))}, {w})[0].value());
}

TEST_CASE("Sparse products: gradcheck and gradgradcheck of linear and matmul of marked samples") {
    using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
    const Fn through_linear = [](const std::vector<Tensor>& in) { return tanh(linear(in[0], in[1], in[2])); };
    const Fn through_matmul = [](const std::vector<Tensor>& in) { return tanh(matmul(in[0], in[1])); };
    for (const Array& x : {binary(8, 12, 0.15f, 31), one_hot_sample(8, 12, 4, 32).value()})
        for (const bool x_requires_grad : {false, true}) {
            CAPTURE(x_requires_grad);
            // fresh inputs for each check: perturbing x (a write through value()) drops its mark
            const auto lin = [&] {
                return std::vector<Tensor>{marked(x, x_requires_grad), random_tensor({5, 12}, 33), random_tensor({5}, 34)};
            };
            const auto mm = [&] { return std::vector<Tensor>{marked(x, x_requires_grad), random_tensor({12, 5}, 35)}; };
            for (const auto& [f, inputs] : {std::pair{through_linear, lin()}, std::pair{through_matmul, mm()}}) {
                const std::vector<Tensor> again = inputs.size() == 3 ? lin() : mm();
                tgtest::check_gradients(f, inputs);
                const GradCheckResult r = gradgradcheck(f, again);
                INFO(r.message);
                CHECK(r.ok);
            }
        }
}

TEST_CASE("Sparse products: second-order gradients through a straight-through sample match the dense path") {
    // d/dW of |d loss / dW|^2 with the forward value a marked straight-through sample (sparse
    // first-order backward, create_graph formulas) and with an unmarked copy of it.
    const Tensor logits = random_tensor({40, 30}, 41, -2.0f, 2.0f);
    const Tensor w = random_tensor({6, 30}, 42);
    std::vector<Array> results;
    for (const bool mark : {true, false}) {
        Generator gen(43);
        Tensor z = straight_through_bernoulli(logits, &gen);
        CHECK(z.is_discrete_sample());
        if (!mark) z.mark_discrete_sample(false);
        const Tensor loss = sum(square(tanh(linear(z, w))));
        const std::vector<Tensor> g = grad({loss}, {w, logits}, {}, GradOptions().create_graph(true));
        results.push_back(g[0].value());
        results.push_back(g[1].value());
        for (const Tensor& h : grad({sum(square(g[0])) + sum(square(g[1]))}, {w, logits})) results.push_back(h.value());
    }
    for (std::size_t i = 0; i < 4; ++i) check_close(results[i], results[4 + i], 1e-4f);
}

TEST_CASE("Sparse products: the samplers mark their exact samples, and nothing else") {
    Generator gen(51);
    const Tensor logits = random_tensor({4, 6}, 52, -2.0f, 2.0f);
    CHECK(gumbel_max(logits, GumbelSoftmaxOptions().classes(3).generator(&gen)).is_discrete_sample());
    CHECK(bernoulli_sample(logits, &gen).is_discrete_sample());
    CHECK(dist::Categorical(logits).sample(&gen).is_discrete_sample());
    CHECK(dist::Bernoulli::from_logits(logits).sample(&gen).is_discrete_sample());
    CHECK(dist::Bernoulli::from_probs(sigmoid(logits)).sample(&gen).is_discrete_sample());
    CHECK(straight_through_bernoulli(logits, &gen).is_discrete_sample());
    CHECK(straight_through_categorical(logits, GumbelSoftmaxOptions().generator(&gen)).is_discrete_sample());
    CHECK(gumbel_softmax(logits, GumbelSoftmaxOptions().hard(true).generator(&gen)).is_discrete_sample());
    CHECK(binary_concrete(logits, BinaryConcreteOptions().hard(true).generator(&gen)).is_discrete_sample());
    for (const char* name : {"st", "st-gs", "reinmax", "gumbel-rao"}) {
        CAPTURE(name);
        CHECK(estimators::Estimator(name).sample(logits, Discrete::bernoulli(), gen).is_discrete_sample());
    }
    // relaxed samples and what ops make of a sample are not
    CHECK_FALSE(gumbel_softmax(logits, GumbelSoftmaxOptions().generator(&gen)).is_discrete_sample());
    CHECK_FALSE(binary_concrete(logits, BinaryConcreteOptions().generator(&gen)).is_discrete_sample());
    CHECK_FALSE(mul(bernoulli_sample(logits, &gen), 2.0f).is_discrete_sample());
    CHECK_FALSE(logits.is_discrete_sample());
}

TEST_CASE("Sparse products: a write through value() drops the mark, and a wrong mark gives the dense result") {
    Generator gen(61);
    Tensor z = bernoulli_sample(random_tensor({20, 16}, 62, -3.0f, 0.0f), &gen);
    REQUIRE(z.is_discrete_sample());
    std::as_const(z).value();  // a read keeps it
    CHECK(z.is_discrete_sample());
    z.value()(3, 4) = 0.5f;
    CHECK_FALSE(z.is_discrete_sample());
    const Tensor w = random_tensor({5, 16}, 63);
    const Array dense = linear(Tensor(z.value()), w).value();
    check_close(linear(z, w).value(), dense);
    // marked by hand although 0.5 is no sample: the entries are checked, the GEMM runs
    z.mark_discrete_sample();
    check_close(linear(z, w).value(), dense);
    check_close(matmul(z, transpose(w)).value(), dense);
    // and with the mark unset, a sample takes the dense path: the same values
    Tensor s = bernoulli_sample(random_tensor({20, 16}, 64, -3.0f, 0.0f), &gen);
    const Array sparse = linear(s, w).value();
    s.mark_discrete_sample(false);
    check_close(linear(s, w).value(), sparse);
}

TEST_CASE("Sparse products: the same numbers on 1 and 2 threads, and with the sparse form switched off") {
    const Tensor x = marked(binary(600, 200, 0.1f, 71));  // large enough to split over the pool
    const Tensor w = random_tensor({300, 200}, 72), g = random_tensor({600, 300}, 73, -1.0f, 1.0f, false);
    std::vector<Array> out;
    for (const int threads : {1, 2}) {
        set_num_threads(threads);
        const Tensor y = linear(x, w);
        out.push_back(y.value());
        out.push_back(grad({sum(y * g)}, {w})[0].value());
    }
    set_num_threads(1);
    CHECK(tgtest::bitwise_equal(out[0], out[2]));
    CHECK(tgtest::bitwise_equal(out[1], out[3]));
    kernels::set_sparse_samples(false);
    const Array dense = linear(x, w).value();
    kernels::set_sparse_samples(true);
    check_close(out[0], dense);
}

TEST_CASE("Sparse products: a one-hot sampler's own list of its ones is the scan's, and a write drops it") {
    Generator gen(81);
    const Tensor logits = random_tensor({30, 40}, 82, -2.0f, 2.0f);
    const Tensor samples[] = {
        gumbel_max(logits, GumbelSoftmaxOptions().classes(10).generator(&gen)),
        gumbel_max(logits, GumbelSoftmaxOptions().generator(&gen)),  // one variable of 40 classes per row
        straight_through_categorical(logits, GumbelSoftmaxOptions().classes(4).generator(&gen)),
        gumbel_softmax(logits, GumbelSoftmaxOptions().classes(5).hard(true).generator(&gen)),
        dist::Categorical(reshape(logits, {30, 4, 10})).sample(&gen),
    };
    for (const Tensor& s : samples) {
        CAPTURE(shape_str(s.shape()));
        const kernels::BinaryRows* own = s.impl()->sample_rows.get();
        REQUIRE(own != nullptr);
        const std::size_t cols = s.shape().back(), rows = s.size() / cols;
        kernels::BinaryRows scan;
        REQUIRE(kernels::binary_rows(s.value().data(), rows, cols, 1.0f, scan));
        CHECK(own->rows == rows);
        CHECK(own->cols == cols);
        // the scan's buffer has room past its lists
        CHECK(std::vector<std::uint32_t>(scan.index.begin(), scan.index.begin() + scan.start[rows]) == own->index);
        CHECK(own->start == scan.start);
        CHECK(own->ones_minus == scan.ones_minus);
    }
    // classes along an axis other than the last: no list (the scan serves), same products
    const Tensor across = gumbel_max(logits, GumbelSoftmaxOptions().axis(0).generator(&gen));
    CHECK(across.is_discrete_sample());
    CHECK(across.impl()->sample_rows == nullptr);
    Tensor s = gumbel_max(logits, GumbelSoftmaxOptions().classes(10).generator(&gen));
    const Tensor w = random_tensor({7, 40}, 83);
    check_close(linear(s, w).value(), linear(Tensor(s.value()), w).value());
    s.value();  // a write (or what may be one) drops the list with the mark
    CHECK(s.impl()->sample_rows == nullptr);
    s.mark_discrete_sample();
    CHECK(s.impl()->sample_rows == nullptr);
    check_close(linear(s, w).value(), linear(Tensor(s.value()), w).value());
}
