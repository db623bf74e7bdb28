#include <cmath>
#include <limits>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

TEST_CASE("NN: softmax, log_softmax and logsumexp match hand-computed values") {
    Tensor x(Array{{0.0f, std::log(3.0f)}, {1.0f, 1.0f}});
    const Array y = softmax(x).value();
    CHECK(y(0, 0) == doctest::Approx(0.25f));
    CHECK(y(0, 1) == doctest::Approx(0.75f));
    CHECK(y(1, 0) == doctest::Approx(0.5f));
    const Array ly = log_softmax(x).value();
    CHECK(ly(0, 0) == doctest::Approx(std::log(0.25f)));
    CHECK(ly(1, 1) == doctest::Approx(std::log(0.5f)));
    const Array l = logsumexp(x).value();
    REQUIRE(l.shape() == Array::shape_type{2});
    CHECK(l(0) == doctest::Approx(std::log(4.0f)));
    CHECK(l(1) == doctest::Approx(1.0f + std::log(2.0f)));
    // along axis 0: columns
    const Array c = softmax(x, 0).value();
    CHECK(c(0, 0) == doctest::Approx(1.0f / (1.0f + std::exp(1.0f))));
    CHECK(c(0, 0) + c(1, 0) == doctest::Approx(1.0f));
    CHECK(logsumexp(x, 0, true).value().shape() == Array::shape_type{1, 2});
}

TEST_CASE("NN: softmax, log_softmax and logsumexp gradients along every axis") {
    Tensor x = random_tensor({2, 3, 4}, 11, -2.0f, 2.0f);
    for (int axis : {0, 1, 2, -1}) {
        CAPTURE(axis);
        check_gradients([axis](const std::vector<Tensor>& in) { return softmax(in[0], axis); }, {x});
        check_gradients([axis](const std::vector<Tensor>& in) { return log_softmax(in[0], axis); }, {x});
        check_gradients([axis](const std::vector<Tensor>& in) { return logsumexp(in[0], axis); }, {x});
        check_gradients([axis](const std::vector<Tensor>& in) { return logsumexp(in[0], axis, true); }, {x});
    }
    Tensor v = random_tensor({5}, 12, -2.0f, 2.0f);
    check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {v});
    check_gradients([](const std::vector<Tensor>& in) { return logsumexp(in[0]); }, {v});
}

TEST_CASE("NN: gradients accumulate when a softmax input is used twice") {
    Tensor x = random_tensor({3, 4}, 13);
    check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]) + log_softmax(in[0]) * in[0]; }, {x});
}

TEST_CASE("NN: softmax of short rows (one or two SIMD batches per row) matches double and its gradients") {
    // rows of 4 <= n <= 16 take the in-register path: two batches of 4 or 8 lanes, overlapping or not
    for (std::size_t n : {1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 15, 16, 17, 20, 31, 32, 33}) {
        CAPTURE(n);
        for (std::size_t rows : {1, 2, 7}) {
            Tensor x = random_tensor({rows, n}, 100 + n, -4.0f, 4.0f);
            x.value()(rows - 1, n / 2) = 60.0f;  // a large entry: the row maximum is subtracted
            const Array y = softmax(x).value();
            for (std::size_t r = 0; r < rows; ++r) {
                double m = -1e30, s = 0.0;
                for (std::size_t j = 0; j < n; ++j) m = std::max(m, double(x.value()(r, j)));
                for (std::size_t j = 0; j < n; ++j) s += std::exp(double(x.value()(r, j)) - m);
                for (std::size_t j = 0; j < n; ++j)
                    CHECK(y(r, j) == doctest::Approx(std::exp(double(x.value()(r, j)) - m) / s).epsilon(1e-5));
            }
        }
        Tensor x = random_tensor({3, n}, 200 + n, -2.0f, 2.0f);
        check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]); }, {x});
        // the second backward adds to the first's gradient
        check_gradients([](const std::vector<Tensor>& in) { return softmax(in[0]) * softmax(in[0] * 0.5f); }, {x});
    }
}

TEST_CASE("NN: softmax family is exact at logits around +-1e4") {
    Tensor x(Array{{1e4f, 1e4f - 1.0f}, {-1e4f, -1e4f - 1.0f}, {1e4f, -1e4f}});
    const Array y = softmax(x).value();
    REQUIRE(all_finite(y));
    const float p = 1.0f / (1.0f + std::exp(-1.0f));
    CHECK(y(0, 0) == doctest::Approx(p));
    CHECK(y(1, 1) == doctest::Approx(1.0f - p));
    CHECK(y(2, 0) == 1.0f);
    CHECK(y(2, 1) == 0.0f);
    const Array ly = log_softmax(x).value();
    REQUIRE(all_finite(ly));
    CHECK(ly(0, 0) == doctest::Approx(std::log(p)));
    CHECK(ly(2, 0) == 0.0f);
    CHECK(ly(2, 1) == -2e4f);
    const Array l = logsumexp(x).value();
    CHECK(l(0) == doctest::Approx(1e4f + std::log1p(std::exp(-1.0f))).epsilon(1e-7));
    CHECK(l(1) == doctest::Approx(-1e4f + std::log1p(std::exp(-1.0f))).epsilon(1e-7));
    CHECK(l(2) == 1e4f);

    Tensor xg(x.value(), true);
    Tensor s = logsumexp(xg);
    s.backward(Array{1.0f, 1.0f, 1.0f});
    REQUIRE(all_finite(xg.grad()));
    CHECK(xg.grad()(2, 0) == 1.0f);
    CHECK(xg.grad()(2, 1) == 0.0f);
}

TEST_CASE("NN: softmax of a slice with -inf entries, and of all -inf") {
    const float inf = std::numeric_limits<float>::infinity();
    Tensor x(Array{{-inf, 0.0f}, {-inf, -inf}});
    const Array y = softmax(x).value();
    CHECK(y(0, 0) == 0.0f);
    CHECK(y(0, 1) == 1.0f);
    CHECK(logsumexp(x).value()(1) == -inf);
}

TEST_CASE("NN: binary_cross_entropy_with_logits values, reductions and gradients") {
    Tensor x(Array{0.0f, 2.0f, -3.0f}), t(Array{1.0f, 0.25f, 0.0f});
    const Array none = binary_cross_entropy_with_logits(x, t, Reduction::none).value();
    CHECK(none(0) == doctest::Approx(std::log(2.0f)));
    CHECK(none(1) == doctest::Approx(std::log1p(std::exp(2.0f)) - 0.5f));
    CHECK(none(2) == doctest::Approx(std::log1p(std::exp(-3.0f))));
    const float total = none(0) + none(1) + none(2);
    CHECK(binary_cross_entropy_with_logits(x, t, Reduction::sum).item() == doctest::Approx(total));
    CHECK(binary_cross_entropy_with_logits(x, t).item() == doctest::Approx(total / 3.0f));

    Tensor logits = random_tensor({3, 4}, 21, -3.0f, 3.0f), targets = random_tensor({3, 4}, 22, 0.0f, 1.0f);
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
        check_gradients(
            [r](const std::vector<Tensor>& in) { return binary_cross_entropy_with_logits(in[0], in[1], r); },
            {logits, targets});
}

TEST_CASE("NN: binary_cross_entropy_with_logits is exact at logits +-1e4") {
    Tensor x(Array{1e4f, -1e4f, 1e4f, -1e4f}, true), t(Array{1.0f, 0.0f, 0.0f, 1.0f});
    Tensor l = binary_cross_entropy_with_logits(x, t, Reduction::none);
    CHECK(l.value()(0) == 0.0f);
    CHECK(l.value()(1) == 0.0f);
    CHECK(l.value()(2) == 1e4f);
    CHECK(l.value()(3) == 1e4f);
    l.backward(Array{1.0f, 1.0f, 1.0f, 1.0f});
    CHECK(x.grad()(0) == 0.0f);
    CHECK(x.grad()(1) == 0.0f);
    CHECK(x.grad()(2) == 1.0f);
    CHECK(x.grad()(3) == -1.0f);
}

TEST_CASE("NN: cross_entropy values, reductions, gradients and stability") {
    Tensor x(Array{{0.0f, std::log(3.0f)}, {1e4f, -1e4f}});
    const Array none = cross_entropy(x, {1, 1}, Reduction::none).value();
    CHECK(none(0) == doctest::Approx(-std::log(0.75f)));
    CHECK(none(1) == 2e4f);
    Tensor near(Array{{1e4f, 1e4f - 1.0f}});
    CHECK(cross_entropy(near, {0}).item() == doctest::Approx(std::log1p(std::exp(-1.0f))));
    CHECK(cross_entropy(x, {0, 0}, Reduction::sum).item() == doctest::Approx(std::log(4.0f)));
    CHECK(cross_entropy(x, {0, 1}).item() == doctest::Approx((std::log(4.0f) + 2e4f) / 2.0f));

    Tensor logits = random_tensor({4, 5}, 31, -2.0f, 2.0f);
    const Indices labels{0, 4, 2, 2};
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
        check_gradients([&labels, r](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels, r); },
                        {logits});

    Tensor big(x.value(), true);
    cross_entropy(big, {1, 1}, Reduction::sum).backward();
    REQUIRE(all_finite(big.grad()));
    CHECK(big.grad()(1, 0) == 1.0f);
    CHECK(big.grad()(1, 1) == -1.0f);
}

TEST_CASE("NN: argmax takes the first maximum and one_hot builds a trailing axis") {
    Tensor x(Array{{1.0f, 3.0f, 3.0f}, {5.0f, -1.0f, 0.0f}});
    const xt::xarray<std::size_t> rows = argmax(x);
    CHECK(rows(0) == 1);
    CHECK(rows(1) == 0);
    const xt::xarray<std::size_t> cols = argmax(x, 0);
    REQUIRE(cols.size() == 3);
    CHECK(cols(0) == 1);
    CHECK(cols(1) == 0);
    CHECK(cols(2) == 0);
    const Tensor h = one_hot(rows, 3);
    REQUIRE(h.shape() == Array::shape_type{2, 3});
    CHECK(h.value() == Array{{0.0f, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}});
    CHECK_FALSE(h.requires_grad());
}

TEST_CASE("NN: errors name the op and the shapes") {
    Tensor x = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(x, Tensor::ones({3})),
                         "binary_cross_entropy_with_logits: logits (2, 3) and targets (3,) must have the same shape",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(cross_entropy(x, {0}), doctest::Contains("1 labels for logits of shape (2, 3)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(cross_entropy(x, {0, 3}), doctest::Contains("label 3 of row 1 is out of range for 3"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(cross_entropy(Tensor::ones({6}), {0}), doctest::Contains("[n, k]"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(softmax(x, 2), doctest::Contains("softmax: axis 2"), std::out_of_range);
    CHECK_THROWS_AS(logsumexp(x, -3), std::out_of_range);
    CHECK_THROWS_WITH_AS(one_hot(xt::xarray<std::size_t>{0, 4}, 4), doctest::Contains("one_hot: index 4"),
                         std::out_of_range);
    CHECK_THROWS_AS(argmax(Tensor::ones({2, 0})), std::invalid_argument);
}

TEST_CASE("NN: one_hot of a label vector") {
    const tg::Tensor t = tg::one_hot(tg::Indices{2, 0}, 3);
    CHECK(t.shape() == tg::Array::shape_type{2, 3});
    CHECK(t.value()(0, 2) == 1.0f);
    CHECK(t.value()(1, 0) == 1.0f);
    CHECK(tg::sum(t).item() == 2.0f);
    CHECK_THROWS_AS(tg::one_hot(tg::Indices{3}, 3), std::out_of_range);
}

TEST_CASE("NN ops: gather picks along an axis with tg::Indices, differentiably") {
    Tensor x = random_tensor({3, 4}, 21);
    const Indices idx{{1, 1}, {0, 3}, {2, 0}};
    Tensor y = gather(x, 1, idx);
    REQUIRE(y.shape() == Shape{3, 2});
    CHECK(y.value()(1, 1) == x.value()(1, 3));
    CHECK(y.value()(2, 0) == x.value()(2, 2));
    check_gradients([&](const std::vector<Tensor>& in) { return gather(in[0], 1, idx); }, {x});
    check_gradients([&](const std::vector<Tensor>& in) { return gather(in[0], 0, Indices{{2, 0, 1, 1}}); }, {x});
    CHECK_THROWS_WITH_AS(gather(x, 1, Indices{{0, 4}, {0, 0}, {0, 0}}), doctest::Contains("gather: index 4"), std::out_of_range);
    CHECK_THROWS_WITH_AS(gather(x, 1, Indices{0, 1}), doctest::Contains("gather: the index of shape (2,)"),
                         std::invalid_argument);
}

TEST_CASE("NN ops: class indices are tg::Indices everywhere: argmax, one_hot, cross_entropy") {
    Tensor logits = random_tensor({4, 3}, 22);
    const Indices best = argmax(logits);
    CHECK(one_hot(best, 3).shape() == Shape{4, 3});
    const Indices labels{2, 0, 1, 1};
    check_gradients([&](const std::vector<Tensor>& in) { return cross_entropy(in[0], labels); }, {logits});
    CHECK_THROWS_WITH_AS(cross_entropy(logits, Indices{0, 1, 3, 0}), doctest::Contains("label 3 of row 2"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(one_hot(Indices{0, 5}, 3), doctest::Contains("one_hot: index 5"), std::out_of_range);
    // From a std::vector without xt::adapt: copy into an Indices of its length.
    const std::vector<std::size_t> v{1, 2};
    Indices from_vector = Indices::from_shape({v.size()});
    std::copy(v.begin(), v.end(), from_vector.begin());
    CHECK(from_vector(1) == 2);
}

TEST_CASE("NN ops: every op that indexes along an axis refuses an empty one") {
    Tensor e = Tensor::zeros({3, 0}, true);
    auto empty = [](const std::function<void()>& f, const char* op) {
        CHECK_THROWS_WITH_AS(f(), doctest::Contains((std::string(op) + ": the axis").c_str()), std::invalid_argument);
    };
    empty([&] { argmax(e); }, "argmax");
    empty([&] { softmax(e); }, "softmax");
    empty([&] { log_softmax(e); }, "log_softmax");
    empty([&] { logsumexp(e); }, "logsumexp");
    empty([&] { gather(e, 1, Indices::from_shape({3, 0})); }, "gather");
    CHECK_THROWS_WITH_AS(max(e, 1), doctest::Contains("max: axis 1 has length 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(one_hot(Indices{0}, 0), doctest::Contains("one_hot: num_classes must be positive"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(cross_entropy(e, Indices{0, 0, 0}), doctest::Contains("cross_entropy: logits need at least one class"),
                         std::invalid_argument);
}
