#include <cmath>
#include <limits>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::away_from;
using tgtest::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {
// Checks every element of t against expected to a relative 1e-5, so tiny tail values count.
void check_values(const Tensor& t, const std::vector<float>& expected) {
    REQUIRE(t.size() == expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const float v = t.value().data()[i], e = expected[i];
        INFO("element " << i << ": " << v << " vs expected " << e);
        CHECK(std::abs(v - e) <= 1e-5f * std::abs(e) + (e == 0.0f ? 1e-7f : 0.0f));
    }
}

// An array of the given shape holding values in row-major order.
Array shaped(const Shape& shape, const std::vector<float>& values) {
    Array a = Array::from_shape(shape);
    std::copy(values.begin(), values.end(), a.begin());
    return a;
}

}  // namespace

TEST_CASE("Elementwise: unary ops match hand-computed values") {
    const Tensor x(Array{0.5f, 1.0f, 2.0f});
    check_values(neg(x), {-0.5f, -1.0f, -2.0f});
    check_values(rsub(3.0f, x), {2.5f, 2.0f, 1.0f});
    check_values(rdiv(1.0f, x), {2.0f, 1.0f, 0.5f});
    check_values(exp(x), {1.6487213f, 2.7182818f, 7.3890561f});
    check_values(log(x), {-0.6931472f, 0.0f, 0.6931472f});
    check_values(log1p(x), {0.4054651f, 0.6931472f, 1.0986123f});
    check_values(sqrt(x), {0.7071068f, 1.0f, 1.4142136f});
    check_values(square(x), {0.25f, 1.0f, 4.0f});
    check_values(pow(x, 3.0f), {0.125f, 1.0f, 8.0f});
    check_values(pow(x, -0.5f), {1.4142136f, 1.0f, 0.7071068f});
    check_values(sigmoid(x), {0.6224593f, 0.7310586f, 0.8807971f});
    check_values(tanh(x), {0.4621172f, 0.7615942f, 0.9640276f});
    check_values(softplus(x), {0.9740770f, 1.3132617f, 2.1269280f});
    check_values(log_sigmoid(x), {-0.4740770f, -0.3132617f, -0.1269280f});

    const Tensor y(Array{-1.5f, -0.2f, 0.3f, 2.0f});
    check_values(abs(y), {1.5f, 0.2f, 0.3f, 2.0f});
    check_values(relu(y), {0.0f, 0.0f, 0.3f, 2.0f});
    check_values(clamp(y, -1.0f, 1.0f), {-1.0f, -0.2f, 0.3f, 1.0f});
    check_values(pow(y, 2.0f), {2.25f, 0.04f, 0.09f, 4.0f});
}

TEST_CASE("Elementwise: gradients of the smooth unary ops") {
    const Tensor x = random_tensor({3, 4}, 11);                  // (-1, 1)
    const Tensor pos = random_tensor({3, 4}, 12, 0.5f, 2.0f);    // log, sqrt, rdiv, pow
    const Tensor wide = random_tensor({3, 4}, 13, -6.0f, 6.0f);  // both tails of the sigmoids
    const std::vector<std::pair<const char*, Fn>> on_x = {
        {"neg", [](auto& in) { return neg(in[0]); }},
        {"rsub", [](auto& in) { return rsub(2.0f, in[0]); }},
        {"exp", [](auto& in) { return exp(in[0]); }},
        {"log1p", [](auto& in) { return log1p(in[0] * 0.9f); }},
        {"square", [](auto& in) { return square(in[0]); }},
        {"pow 2 (negative base)", [](auto& in) { return pow(in[0], 2.0f); }},
        {"pow 3 (negative base)", [](auto& in) { return pow(in[0], 3.0f); }},
        {"sigmoid", [](auto& in) { return sigmoid(in[0]); }},
        {"tanh", [](auto& in) { return tanh(in[0]); }},
    };
    for (const auto& op : on_x) {  // no structured binding: INFO's lambda captures it (C++20)
        INFO(op.first);
        check_gradients(op.second, {x});
    }
    const std::vector<std::pair<const char*, Fn>> on_pos = {
        {"log", [](auto& in) { return log(in[0]); }},
        {"sqrt", [](auto& in) { return sqrt(in[0]); }},
        {"rdiv", [](auto& in) { return rdiv(3.0f, in[0]); }},
        {"pow -0.5", [](auto& in) { return pow(in[0], -0.5f); }},
        {"pow 1.7", [](auto& in) { return pow(in[0], 1.7f); }},
    };
    for (const auto& op : on_pos) {  // no structured binding: INFO's lambda captures it (C++20)
        INFO(op.first);
        check_gradients(op.second, {pos});
    }
    const std::vector<std::pair<const char*, Fn>> on_wide = {
        {"softplus", [](auto& in) { return softplus(in[0]); }},
        {"log_sigmoid", [](auto& in) { return log_sigmoid(in[0]); }},
        {"sigmoid", [](auto& in) { return sigmoid(in[0]); }},
    };
    for (const auto& op : on_wide) {  // no structured binding: INFO's lambda captures it (C++20)
        INFO(op.first);
        check_gradients(op.second, {wide});
    }
}

TEST_CASE("Elementwise: gradients of relu, abs and clamp away from their kinks") {
    const Tensor x = away_from({0.0f}, {4, 5}, 21, -2.0f, 2.0f);
    check_gradients([](auto& in) { return relu(in[0]); }, {x});
    check_gradients([](auto& in) { return abs(in[0]); }, {x});
    const Tensor y = away_from({-0.5f, 1.0f}, {4, 5}, 22, -2.0f, 2.0f);
    check_gradients([](auto& in) { return clamp(in[0], -0.5f, 1.0f); }, {y});

    // The gradient is exactly 1 inside [lo, hi] (ends included) and 0 outside.
    Tensor z(Array{-2.0f, -0.5f, 0.2f, 1.0f, 3.0f}, true);
    sum(clamp(z, -0.5f, 1.0f)).backward();
    check_values(Tensor(z.grad()), {0.0f, 1.0f, 1.0f, 1.0f, 0.0f});
}

TEST_CASE("Elementwise: softplus and log_sigmoid are finite and exact at +-1e4") {
    Tensor x(Array{-1e4f, -50.0f, -20.0f, 0.0f, 20.0f, 50.0f, 1e4f}, true);
    Tensor sp = softplus(x);
    check_values(sp, {0.0f, 1.9287498e-22f, 2.0611537e-9f, 0.6931472f, 20.0f, 50.0f, 1e4f});
    Tensor ls = log_sigmoid(x);
    check_values(ls, {-1e4f, -50.0f, -20.0f, -0.6931472f, -2.0611537e-9f, -1.9287498e-22f, 0.0f});
    for (float v : sp.value()) CHECK(std::isfinite(v));
    for (float v : ls.value()) CHECK(std::isfinite(v));

    // d softplus = sigmoid(x), d log_sigmoid = sigmoid(-x); both exact in the tails too.
    sum(sp).backward();
    check_values(Tensor(x.grad()), {0.0f, 1.9287498e-22f, 2.0611537e-9f, 0.5f, 1.0f, 1.0f, 1.0f});
    x.zero_grad();
    sum(log_sigmoid(x)).backward();
    check_values(Tensor(x.grad()), {1.0f, 1.0f, 1.0f, 0.5f, 2.0611537e-9f, 1.9287498e-22f, 0.0f});
    x.zero_grad();
    sum(sigmoid(x)).backward();
    for (float v : x.grad()) CHECK(std::isfinite(v));
}

TEST_CASE("Elementwise: log1p stays accurate near 0 where log(1 + x) does not") {
    Tensor x(Array{1e-7f, -1e-7f, 1e-20f}, true);
    Tensor y = log1p(x);
    check_values(y, {9.9999995e-8f, -1.00000005e-7f, 1e-20f});
    // log(1 + 1e-7) in float rounds 1 + 1e-7 first: 19% off.
    CHECK(std::abs(log(add(x, 1.0f)).value()(0) - 1e-7f) > 0.1f * 1e-7f);
    sum(y).backward();
    check_values(Tensor(x.grad()), {1.0f, 1.0f, 1.0f});
}

TEST_CASE("Elementwise: binary ops broadcast over leading and inner axes") {
    const Tensor a = random_tensor({2, 3, 4}, 31), b = random_tensor({3, 1}, 32, 0.5f, 2.0f);
    const Tensor c = random_tensor({2, 1, 4}, 33), s = random_tensor({}, 34, 0.5f, 2.0f);
    check_gradients([](auto& in) { return mul(in[0], in[1]); }, {a, b});
    check_gradients([](auto& in) { return div(in[0], in[1]); }, {a, b});
    check_gradients([](auto& in) { return sub(in[0], in[1]); }, {c, b});  // both broadcast
    check_gradients([](auto& in) { return add(in[0], in[1]); }, {c, b});
    check_gradients([](auto& in) { return div(in[0], in[1]); }, {a, s});  // 0-d operand
    Tensor sum_ab = add(Tensor(shaped({2, 1}, {1.0f, 2.0f})), Tensor(Array{10.0f, 20.0f, 30.0f}));
    check_values(sum_ab, {11.0f, 21.0f, 31.0f, 12.0f, 22.0f, 32.0f});
}

TEST_CASE("Elementwise: scalar forms and operators") {
    const Tensor x = random_tensor({5}, 41, 0.5f, 2.0f);
    check_gradients([](auto& in) { return 3.0f - in[0] * 2.0f + 1.0f; }, {x});
    check_gradients([](auto& in) { return 2.0f / in[0] - in[0] / 4.0f; }, {x});
    check_gradients([](auto& in) { return -in[0] + (1.5f + in[0]) * in[0]; }, {x});
    check_values(2.0f / Tensor(Array{4.0f}) - 1.0f, {-0.5f});
}

TEST_CASE("Elementwise: gradients accumulate onto an existing gradient") {
    // x feeds several ops, so later backwards add onto the first one's buffer.
    Tensor x(Array{0.5f, -1.0f}, true);
    Tensor y = sum(exp(x) + tanh(x) + x * x);
    y.backward();
    for (std::size_t i = 0; i < 2; ++i) {
        const float v = x.value()(i);
        CHECK(x.grad()(i) == doctest::Approx(std::exp(v) + 1.0f - std::tanh(v) * std::tanh(v) + 2.0f * v));
    }
    // A second step after zero_grad overwrites the kept buffer instead of adding to it.
    x.zero_grad();
    sum(x * 3.0f).backward();
    check_values(Tensor(x.grad()), {3.0f, 3.0f});
}

TEST_CASE("Elementwise: where picks by condition, broadcasts, and masks the gradients") {
    const Tensor cond(shaped({3, 1}, {1.0f, 0.0f, 2.0f}));  // nonzero picks a
    Tensor a = random_tensor({3, 4}, 51), b = random_tensor({4}, 52);
    Tensor w = tg::where(cond, a, b);
    CHECK(w.shape() == Array::shape_type{3, 4});
    for (std::size_t j = 0; j < 4; ++j) {
        CHECK(w.value()(0, j) == a.value()(0, j));
        CHECK(w.value()(1, j) == b.value()(j));
        CHECK(w.value()(2, j) == a.value()(2, j));
    }
    check_gradients([&](auto& in) { return tg::where(cond, in[0], in[1]); }, {a, b});
    // The condition broadcasts beyond both values: (2, 1) against (1, 3) and (3,).
    const Tensor wide(shaped({2, 1}, {0.0f, 1.0f}));
    Tensor c = random_tensor({1, 3}, 53), d = random_tensor({3}, 54);
    check_gradients([&](auto& in) { return tg::where(wide, in[0], in[1]); }, {c, d});
    sum(tg::where(wide, c, d)).backward();
    check_values(Tensor(c.grad()), {1.0f, 1.0f, 1.0f});
    check_values(Tensor(d.grad()), {1.0f, 1.0f, 1.0f});
}

TEST_CASE("Elementwise: detach passes the value and stops the gradient") {
    Tensor x(Array{2.0f, -3.0f}, true);
    Tensor d = detach(x);
    CHECK_FALSE(d.requires_grad());
    CHECK_FALSE(d.same(x));
    check_values(d, {2.0f, -3.0f});
    sum(x * detach(x)).backward();  // d/dx = detach(x), not 2x
    check_values(Tensor(x.grad()), {2.0f, -3.0f});
}

TEST_CASE("Elementwise: errors name the op and the shapes") {
    Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4});
    CHECK_THROWS_WITH_AS(mul(a, b), "mul: shapes (2, 3) and (4,) cannot be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(div(b, a), "div: shapes (4,) and (2, 3) cannot be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(tg::where(Tensor(Array{1.0f, 0.0f}), a, a),
                         "where: shapes (2,) (condition), (2, 3) and (2, 3) cannot be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(clamp(a, 1.0f, -1.0f), doctest::Contains("clamp: lo"), std::invalid_argument);
}

TEST_CASE("Elementwise: a null tensor is a clear error naming the op") {
    Tensor null, a = Tensor::ones({2});
    CHECK_THROWS_WITH_AS(exp(null), "exp: the input is a null Tensor (default-constructed)", std::invalid_argument);
    CHECK_THROWS_WITH_AS(add(a, null), "add: input 1 is a null Tensor (default-constructed)", std::invalid_argument);
    CHECK_THROWS_WITH_AS(mul(null, 2.0f), doctest::Contains("mul_scalar"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(tg::where(Tensor(Array{1.0f}), null, a), doctest::Contains("where: input 1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(matmul(null, null), doctest::Contains("matmul: input 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(linear(a, null), doctest::Contains("linear: input 1"), std::invalid_argument);
    CHECK_THROWS_AS(detach(null), std::invalid_argument);
}

TEST_CASE("Elementwise: x / s divides (10 / 3 is 10.0f / 3.0f exactly), with its gradient") {
    Tensor x = Tensor::scalar(10.0f);
    CHECK((x / 3.0f).item() == 10.0f / 3.0f);
    Tensor y = random_tensor({4}, 41);
    check_gradients([](const std::vector<Tensor>& in) { return in[0] / 3.0f; }, {y});
}
