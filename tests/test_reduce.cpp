#include <algorithm>
#include <numeric>

#include <xtensor/xsort.hpp>

#include "autograd/detail.hpp"
#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {
Tensor shaped(const Shape& shape, const std::vector<float>& values, bool requires_grad = false) {
    Array a = Array::from_shape(shape);
    REQUIRE(a.size() == values.size());
    std::copy(values.begin(), values.end(), a.begin());
    return Tensor(std::move(a), requires_grad);
}

void check_close(const Array& actual, const Array& expected) {
    REQUIRE(actual.shape() == expected.shape());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("element " << i);
        CHECK(actual.data()[i] == doctest::Approx(expected.data()[i]).epsilon(1e-5));
    }
}

// Distinct values 0.1 apart in a shuffled order: max has no ties within gradcheck's eps.
Tensor distinct(const Shape& shape, std::uint64_t seed) {
    Tensor t = random_tensor(shape, seed);
    std::vector<std::size_t> order(t.size());
    std::iota(order.begin(), order.end(), 0);
    Generator g(seed);
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[g.next_u64() % i]);
    for (std::size_t i = 0; i < order.size(); ++i) t.value().data()[order[i]] = 0.1f * float(i) - 1.0f;
    return t;
}
}  // namespace

TEST_CASE("Reduce: sum and mean along an axis match hand-computed values") {
    const Tensor a = shaped({2, 3}, {1, 2, 3, 4, 5, 6});
    check_close(sum(a, 0).value(), Array{5, 7, 9});
    check_close(sum(a, 1).value(), Array{6, 15});
    check_close(sum(a, -1).value(), Array{6, 15});
    check_close(mean(a, 0).value(), Array{2.5f, 3.5f, 4.5f});
    check_close(mean(a, -1).value(), Array{2, 5});
    check_close(sum(a, 1, true).value(), shaped({2, 1}, {6, 15}).value());
    check_close(mean(a, 0, true).value(), shaped({1, 3}, {2.5f, 3.5f, 4.5f}).value());
    CHECK(sum(a).item() == 21.0f);
    CHECK(mean(a).item() == 3.5f);
    CHECK(sum(a).dim() == 0);

    // A middle axis of a 3-D tensor against xtensor's own reduction.
    const Tensor b = random_tensor({3, 4, 5}, 1);
    for (int axis = -3; axis < 3; ++axis) {
        INFO("axis " << axis);
        const std::size_t ax = std::size_t(axis < 0 ? axis + 3 : axis);
        check_close(sum(b, axis).value(), Array(xt::sum(b.value(), {ax})));
        check_close(mean(b, axis).value(), Array(xt::mean(b.value(), {ax})));
        check_close(max(b, axis).value(), Array(xt::amax(b.value(), {ax})));
    }
}

TEST_CASE("Reduce: gradients of sum and mean for every axis, negative axes and keepdims") {
    const Tensor x = random_tensor({3, 4, 5}, 2);
    for (int axis = -3; axis < 3; ++axis)
        for (bool keep : {false, true}) {
            INFO("axis " << axis << ", keepdims " << keep);
            check_gradients([=](auto& in) { return sum(in[0], axis, keep); }, {x});
            check_gradients([=](auto& in) { return mean(in[0], axis, keep); }, {x});
            CHECK(sum(x, axis, keep).dim() == (keep ? 3u : 2u));
        }
    check_gradients([](auto& in) { return sum(in[0]); }, {x});
    check_gradients([](auto& in) { return mean(in[0]); }, {x});
    const Tensor v = random_tensor({7}, 3);  // 1-D down to 0-d
    check_gradients([](auto& in) { return mean(in[0], 0); }, {v});
    check_gradients([](auto& in) { return sum(in[0], -1, true); }, {v});
}

TEST_CASE("Reduce: max values, and its gradient goes to the first maximal element") {
    Tensor a = shaped({2, 3}, {1, 3, 3, 2, 2, 0}, true);
    Tensor m = max(a, 1);
    check_close(m.value(), Array{3, 2});
    sum(m).backward();
    check_close(a.grad(), shaped({2, 3}, {0, 1, 0, 1, 0, 0}).value());

    Tensor b = shaped({2, 2}, {5, 5, -1, 7}, true);
    max(b, 0, true).backward(shaped({1, 2}, {10, 20}).value());  // ties down the column go to row 0
    check_close(b.grad(), shaped({2, 2}, {10, 0, 0, 20}).value());
    check_close(max(shaped({3}, {-4, -2, -3}), 0).value(), Array(-2.0f));
}

TEST_CASE("Reduce: max gradient check along every axis with keepdims") {
    const Tensor x = distinct({3, 4, 5}, 4);
    for (int axis = -3; axis < 3; ++axis)
        for (bool keep : {false, true}) {
            INFO("axis " << axis << ", keepdims " << keep);
            check_gradients([=](auto& in) { return max(in[0], axis, keep); }, {x});
        }
}

TEST_CASE("Reduce: gradients accumulate when one tensor is reduced several ways") {
    Tensor x = random_tensor({2, 3}, 5);
    Tensor y = sum(sum(x, 0)) + sum(mean(x, 1)) * 3.0f + sum(x);  // d/dx = 1 + 1 + 1
    y.backward();
    check_close(x.grad(), Array(xt::ones<float>({2, 3}) * 3.0f));
    check_gradients([](auto& in) { return add(sum(in[0], 0, true), max(in[0], 0, true)); }, {distinct({3, 2}, 6)});
}

TEST_CASE("Reduce: empty tensors") {
    const Tensor empty = Tensor::zeros({0, 3});
    CHECK(sum(empty).item() == 0.0f);
    CHECK(sum(empty, 0).shape() == Array::shape_type{3});
    check_close(sum(empty, 0).value(), Array{0, 0, 0});
    CHECK(sum(empty, 1).size() == 0);
    CHECK(mean(empty, 1).size() == 0);  // averaging 3 values, zero times
    CHECK_THROWS_WITH_AS(mean(empty), "mean: cannot average an empty tensor of shape (0, 3)", std::invalid_argument);
    CHECK_THROWS_WITH_AS(mean(empty, 0), "mean: axis 0 has length 0, shape (0, 3)", std::invalid_argument);
    CHECK_THROWS_WITH_AS(max(empty, -2), "max: axis -2 has length 0, shape (0, 3)", std::invalid_argument);
    CHECK(max(empty, 1).size() == 0);
}

TEST_CASE("Reduce: an axis out of range names the op, the axis and the shape") {
    const Tensor a = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_AS(sum(a, 2), "sum: axis 2 is out of range for a tensor of shape (2, 3)", std::out_of_range);
    CHECK_THROWS_WITH_AS(mean(a, -3), "mean: axis -3 is out of range for a tensor of shape (2, 3)",
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(max(Tensor::scalar(1.0f), 0), doctest::Contains("max: axis 0 is out of range"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(sum(Tensor()), "sum: the input is a null Tensor (default-constructed)",
                         std::invalid_argument);
    CHECK_THROWS_AS(max(Tensor(), 0), std::invalid_argument);
}

TEST_CASE("Reduce: sum_to sums a broadcast gradient back to each shape") {
    const Tensor g = random_tensor({2, 3, 4}, 7);
    const Array& v = g.value();
    Array col = xt::sum(v, {0, 2});
    col.reshape({3, 1});
    check_close(detail::sum_to(v, {3, 1}), col);
    check_close(detail::sum_to(v, {4}), Array(xt::sum(v, {0, 1})));
    check_close(detail::sum_to(v, {1, 3, 4}), Array(xt::sum(v, {0}, xt::keep_dims)));
    check_close(detail::sum_to(v, {2, 1, 4}), Array(xt::sum(v, {1}, xt::keep_dims)));
    check_close(detail::sum_to(v, {}), Array(xt::sum(v)()));
    check_close(detail::sum_to(v, {2, 3, 4}), v);
    CHECK_THROWS_AS(detail::sum_to(v, {5}), std::invalid_argument);
}

TEST_CASE("Reduce: sum and mean over all axes keep them with keepdims") {
    Tensor x = random_tensor({2, 3}, 31);
    CHECK(sum(x, true).shape() == Shape{1, 1});
    CHECK(mean(x, true).shape() == Shape{1, 1});
    CHECK(sum(x, true).item() == sum(x).item());
    CHECK(mean(x, true).item() == mean(x).item());
    CHECK(sum(x, 1).shape() == Shape{2});  // an int is still an axis
    check_gradients([](const std::vector<Tensor>& in) { return sum(in[0], true); }, {x});
    check_gradients([](const std::vector<Tensor>& in) { return mean(in[0], true); }, {x});
}
