// Gradients of gradients (tg::grad with create_graph), the in-place write check, and tg::grad's
// own semantics (PyTorch's torch.autograd.grad).
#include <cmath>
#include <utility>

#include "helpers.hpp"

using namespace tg;
using tgtest::away_from;
using tgtest::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {
GradOptions graph() { return GradOptions().create_graph(true); }

// CHECKs the second-order gradients of f at inputs against finite differences of its first-order ones.
void check_second_order(const Fn& f, const std::vector<Tensor>& inputs, GradCheckOptions options = {}) {
    const GradCheckResult r = gradgradcheck(f, inputs, options);
    INFO(r.message);
    CHECK(r.ok);
}

}  // namespace

TEST_CASE("Higher order: d2/dx2 x^3 = 6x, and a third derivative (6), through grad with create_graph") {
    Tensor x(Array{-1.5f, 0.5f, 2.0f}, true);
    Tensor y = sum(x * x * x);
    Tensor g = grad({y}, {x}, {}, graph())[0];  // 3 x^2
    CHECK(g.requires_grad());
    Tensor g2 = grad({sum(g)}, {x}, {}, graph())[0];  // 6 x
    Tensor g3 = grad({sum(g2)}, {x})[0];              // 6
    for (std::size_t i = 0; i < 3; ++i) {
        const float v = x.value()(i);
        CHECK(g.value()(i) == doctest::Approx(3 * v * v));
        CHECK(g2.value()(i) == doctest::Approx(6 * v));
        CHECK(g3.value()(i) == doctest::Approx(6.0f));
    }
    CHECK_FALSE(x.has_grad());  // grad() leaves the inputs' own gradients alone
}

TEST_CASE("Higher order: backward with create_graph makes leaf gradients differentiable (a gradient penalty)") {
    Tensor w(Array{1.0f, -2.0f}, true);
    Tensor x(Array{0.5f, 3.0f});
    Tensor loss = sum(square(w * x));  // dL/dw = 2 w x^2
    loss.backward(graph());
    Tensor gw = w.grad_tensor();
    CHECK(gw.requires_grad());
    CHECK(w.grad()(0) == doctest::Approx(0.5f));
    CHECK(w.grad()(1) == doctest::Approx(-36.0f));
    Tensor penalty = sum(square(gw));  // sum 4 w^2 x^4 -> d/dw = 8 w x^4
    w.zero_grad();
    penalty.backward();
    CHECK(w.grad()(0) == doctest::Approx(8 * 1.0f * 0.0625f));
    CHECK(w.grad()(1) == doctest::Approx(8 * -2.0f * 81.0f));
}

TEST_CASE("Higher order: a Hessian-vector product of a small MLP loss matches finite differences of its gradient") {
    Generator gen(3);
    nn::MLP net({4, 6, 3}, [] { return std::make_shared<nn::Tanh>(); }, {true, &gen});
    const Tensor x = random_tensor({5, 4}, 7, -1.0f, 1.0f, false);
    const Indices labels{0, 2, 1, 1, 0};
    std::vector<Tensor> params = net.parameters();
    std::vector<Tensor> v;
    for (std::size_t k = 0; k < params.size(); ++k) v.push_back(random_tensor(params[k].shape(), 100 + k, -1, 1, false));
    auto gradient = [&](bool create) { return grad({cross_entropy(net.forward(x), labels)}, params, {}, GradOptions().create_graph(create)); };
    std::vector<Tensor> g = gradient(true);
    Tensor gv = Tensor::scalar(0.0f);
    for (std::size_t k = 0; k < params.size(); ++k) gv = gv + sum(g[k] * v[k]);
    const std::vector<Tensor> hv = grad({gv}, params);
    // (g(p + h v) - g(p - h v)) / 2h
    const float h = 1e-2f;
    auto shifted = [&](float s) {
        for (std::size_t k = 0; k < params.size(); ++k) params[k].value() += s * v[k].value();
        std::vector<Tensor> out = gradient(false);
        for (std::size_t k = 0; k < params.size(); ++k) params[k].value() -= s * v[k].value();
        return out;
    };
    const std::vector<Tensor> plus = shifted(h), minus = shifted(-h);
    for (std::size_t k = 0; k < params.size(); ++k)
        for (std::size_t i = 0; i < hv[k].size(); ++i) {
            const float numeric = (plus[k].value().data()[i] - minus[k].value().data()[i]) / (2 * h);
            CHECK(hv[k].value().data()[i] == doctest::Approx(numeric).epsilon(2e-2).scale(1e-2));
        }
}

TEST_CASE("Higher order: gradgradcheck passes for every elementwise op") {
    const Tensor a = random_tensor({2, 3}, 1), b = random_tensor({2, 3}, 2, 0.5f, 2.0f), row = random_tensor({3}, 3);
    const Tensor pos = random_tensor({2, 3}, 4, 0.3f, 2.0f);
    check_second_order([](const std::vector<Tensor>& t) { return t[0] * t[1]; }, {a, b});
    check_second_order([](const std::vector<Tensor>& t) { return t[0] / t[1]; }, {a, b});
    check_second_order([](const std::vector<Tensor>& t) { return t[0] * t[0] - t[1] + t[0]; }, {a, row});
    check_second_order([](const std::vector<Tensor>& t) { return t[0] * t[1] / (t[1] + 3.0f); }, {a, row});
    check_second_order([](const std::vector<Tensor>& t) { return 2.0f / t[0] - (3.0f - t[0]) * 0.5f; }, {pos});
    check_second_order([](const std::vector<Tensor>& t) { return -(t[0] / 4.0f) * t[0]; }, {a});
    const std::vector<std::pair<const char*, Fn>> unary = {
        {"exp", [](const std::vector<Tensor>& t) { return exp(t[0]); }},
        {"expm1", [](const std::vector<Tensor>& t) { return expm1(t[0]); }},
        {"sigmoid", [](const std::vector<Tensor>& t) { return sigmoid(t[0]); }},
        {"log_sigmoid", [](const std::vector<Tensor>& t) { return log_sigmoid(t[0] * 3.0f); }},
        {"tanh", [](const std::vector<Tensor>& t) { return tanh(t[0]); }},
        {"softplus", [](const std::vector<Tensor>& t) { return softplus(t[0] * 3.0f); }},
        {"square", [](const std::vector<Tensor>& t) { return square(t[0]) * t[0]; }},
        {"relu", [](const std::vector<Tensor>& t) { return relu(t[0]) * t[0]; }},
        {"abs", [](const std::vector<Tensor>& t) { return abs(t[0]) * t[0]; }},
        {"clamp", [](const std::vector<Tensor>& t) { return clamp(t[0], -1.0f, 1.0f) * t[0]; }},
    };
    const Tensor kinked = away_from({-1.0f, 0.0f, 1.0f}, {2, 3}, 5, -2.0f, 2.0f, 0.1f);
    for (const auto& [name, f] : unary) {
        INFO(name);
        check_second_order(f, {kinked});
    }
    const std::vector<std::pair<const char*, Fn>> positive = {
        {"log", [](const std::vector<Tensor>& t) { return log(t[0]); }},
        {"log1p", [](const std::vector<Tensor>& t) { return log1p(t[0]); }},
        {"sqrt", [](const std::vector<Tensor>& t) { return sqrt(t[0]); }},
        {"pow", [](const std::vector<Tensor>& t) { return pow(t[0], 2.5f); }},
    };
    for (const auto& [name, f] : positive) {
        INFO(name);
        check_second_order(f, {pos});
    }
    check_second_order([](const std::vector<Tensor>& t) { return where(t[0] > 0.0f, t[0] * t[1], square(t[1])); }, {kinked, b});
}

TEST_CASE("Higher order: gradgradcheck passes for linear algebra, reductions and shape ops") {
    const Tensor a = random_tensor({3, 4}, 11), b = random_tensor({4, 2}, 12), bias = random_tensor({2}, 13);
    const Tensor x3 = random_tensor({2, 3, 4}, 14), w = random_tensor({2, 4}, 15);
    check_second_order([](const std::vector<Tensor>& t) { return matmul(t[0], t[1]) * matmul(t[0], t[1]); }, {a, b});
    check_second_order([](const std::vector<Tensor>& t) { return square(linear(t[0], t[1], t[2])); }, {x3, w, bias});
    check_second_order([](const std::vector<Tensor>& t) { return square(sum(t[0])) + square(mean(t[0], true)); }, {x3});
    check_second_order([](const std::vector<Tensor>& t) { return square(sum(t[0], 1)) * mean(t[0], 1) + sum(square(mean(t[0], -1, true))); }, {x3});
    const Tensor distinct = away_from({}, {3, 4}, 16, -2.0f, 2.0f, 0.1f);
    check_second_order([](const std::vector<Tensor>& t) { return square(max(t[0], 1)); }, {distinct});
    check_second_order([](const std::vector<Tensor>& t) { return square(reshape(t[0], {4, -1})); }, {a});
    check_second_order([](const std::vector<Tensor>& t) { return square(transpose(t[0], {2, 0, 1})); }, {x3});
    check_second_order([](const std::vector<Tensor>& t) { return square(slice(t[0], 1, 1, 3)); }, {x3});
    check_second_order([](const std::vector<Tensor>& t) { return square(concat({t[0], t[1] * 2.0f}, 0)); }, {a, a});
    check_second_order([](const std::vector<Tensor>& t) { return square(stack({t[0], t[0] * t[0]}, 1)); }, {a});
    check_second_order([](const std::vector<Tensor>& t) { return square(broadcast_to(t[0], {3, 2})); }, {bias});
    check_second_order([](const std::vector<Tensor>& t) { return square(sum_to(t[0], {1, 4})); }, {x3});
}

TEST_CASE("Higher order: gradgradcheck passes for the softmax family, the losses, gather and scatter_add") {
    const Tensor logits = random_tensor({3, 4}, 21, -2.0f, 2.0f), targets = random_tensor({3, 4}, 22, 0.0f, 1.0f);
    check_second_order([](const std::vector<Tensor>& t) { return softmax(t[0]) * t[0]; }, {logits});
    check_second_order([](const std::vector<Tensor>& t) { return square(log_softmax(t[0], 0)); }, {logits});
    check_second_order([](const std::vector<Tensor>& t) { return square(logsumexp(t[0], 1, true)); }, {logits});
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
        check_second_order([r](const std::vector<Tensor>& t) { return binary_cross_entropy_with_logits(t[0] * t[1], t[1], r); },
                           {logits, targets});
    const Indices labels{3, 0, 1};
    for (Reduction r : {Reduction::none, Reduction::mean})
        check_second_order([&](const std::vector<Tensor>& t) { return cross_entropy(t[0] * t[0], labels, r); }, {logits});
    const Indices index{{0, 0, 2}, {1, 3, 3}, {2, 2, 0}};
    check_second_order([&](const std::vector<Tensor>& t) { return square(gather(t[0], 1, index)); }, {logits});
    const Tensor src = random_tensor({3, 3}, 23);
    check_second_order([&](const std::vector<Tensor>& t) { return square(scatter_add(t[0], 1, index, t[1])); }, {logits, src});
}

TEST_CASE("tg::grad: seeds, several outputs, unused inputs, non-leaf inputs, and its errors") {
    Tensor x(Array{1.0f, 2.0f}, true), y(Array{3.0f}, true), z(Array{5.0f}, true);
    Tensor a = x * 2.0f;
    Tensor out = a * a;  // 4 x^2
    std::vector<Tensor> g = grad({out}, {x, a}, {Tensor(Array{1.0f, 10.0f})});
    CHECK(g[0].value()(0) == doctest::Approx(8.0f));
    CHECK(g[0].value()(1) == doctest::Approx(160.0f));
    CHECK(g[1].value()(1) == doctest::Approx(80.0f));  // 2 a seed, a = 4
    CHECK_FALSE(g[0].requires_grad());
    // the sum of two outputs' gradients
    Tensor p = sum(x) * y, q = square(y);
    g = grad({p, q}, {y});
    CHECK(g[0].item() == doctest::Approx(3.0f + 6.0f));
    Tensor r = sum(x) * 2.0f;
    CHECK_THROWS_WITH_AS(grad({r}, {z}, {}, GradOptions().retain_graph(true)),
                         doctest::Contains("input 0 of shape (1,) was not used"), std::invalid_argument);
    CHECK_FALSE(grad({r}, {x, z}, {}, GradOptions().allow_unused(true))[1].defined());
    Tensor s = sum(x);
    CHECK_THROWS_WITH_AS(grad({s * 2.0f}, {Tensor(Array{1.0f})}), doctest::Contains("does not require grad"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(grad({x * 2.0f}, {x}), doctest::Contains("only a one-element output"), std::invalid_argument);
    x.zero_grad();
    CHECK_FALSE(x.has_grad());
}

TEST_CASE("In-place writes: a backward that would read a value written since its op was recorded is refused") {
    Tensor w(Array{1.0f, 2.0f}, true);
    Tensor x(Array{3.0f, 3.0f});
    Tensor loss = sum(w * x);
    w.value() *= 10;  // PyTorch: "modified by an inplace operation"
    CHECK_THROWS_WITH_AS(loss.backward(), doctest::Contains("input 0 of mul was modified"), std::logic_error);

    // reads through a const handle, item(), and writes after the backward are fine; so are reads of
    // an op's output through a non-const handle (only leaves are written)
    Tensor w2(Array{1.0f, 2.0f}, true);
    Tensor loss2 = sum(w2 * x);
    const Tensor& view = w2;
    CHECK(view.value()(0) == 1.0f);
    CHECK(loss2.value()() == doctest::Approx(9.0f));
    loss2.backward();
    w2.value() *= 10;
    CHECK(w2.grad()(0) == doctest::Approx(3.0f));

    // an optimizer step between a forward and its backward (the GAN mistake)
    Tensor w3(Array{1.0f}, true);
    optim::SGDOptions o;
    o.lr = 0.1f;
    optim::SGD sgd({w3}, o);
    Tensor l3 = sum(square(w3));
    w3.accumulate_grad(Array{1.0f}, "test");
    sgd.step();
    CHECK_THROWS_WITH_AS(l3.backward(), doctest::Contains("was modified"), std::logic_error);
}

TEST_CASE("Higher order: a custom op without a differentiable backward is named, and one with a Tensor backward works") {
    auto cube_array = [](const Tensor& x) {
        return record("cube_array", Array(x.value() * x.value() * x.value()), {x}, [](const std::vector<Tensor>& in, const Tensor& out) {
            in[0].accumulate_grad(Array(3.0f * in[0].value() * in[0].value() * out.grad()), "cube_array");
        });
    };
    auto cube = [](const Tensor& x) {
        return record("cube", Array(x.value() * x.value() * x.value()), {x}, [](const std::vector<Tensor>& in, const Tensor& out) {
            in[0].accumulate_grad(3.0f * in[0] * in[0] * out.grad_tensor(), "cube");
        });
    };
    Tensor x(Array{2.0f}, true);
    CHECK(grad({sum(cube_array(x))}, {x})[0].item() == doctest::Approx(12.0f));  // first order: fine
    CHECK_THROWS_WITH_AS(grad({sum(cube_array(x))}, {x}, {}, graph()),
                         doctest::Contains("cube_array has no differentiable backward"), std::logic_error);
    Tensor g = grad({sum(cube(x))}, {x}, {}, graph())[0];
    CHECK(grad({g}, {x})[0].item() == doctest::Approx(12.0f));  // 6 x
    CHECK(grad({sum(cube(x))}, {x})[0].item() == doctest::Approx(12.0f));  // the Tensor form serves first order too
}

TEST_CASE("Backward after Tape::clear() says so (not 'a second time')") {
    Tensor x(Array{1.0f}, true);
    Tensor y = sum(x * 2.0f);
    current_tape().clear();
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("freed by Tape::clear()"), std::logic_error);
    Tensor z;
    {
        Tape tape;
        TapeScope scope(tape);
        z = sum(x * 3.0f);
    }
    CHECK_THROWS_WITH_AS(z.backward(), doctest::Contains("Tape::clear() (or its tape was destroyed)"), std::logic_error);
}

TEST_CASE("README: the gradient penalty snippet trains a critic through the gradient of its input") {
    Generator gen(5);
    nn::MLP critic({3, 8, 1}, [] { return std::make_shared<nn::Tanh>(); }, {true, &gen});
    const Array images = gen.normal({4, 3});
    Tensor x(images, /*requires_grad=*/true);
    Tensor score = sum(critic.forward(x));
    Tensor gx = tg::grad({score}, {x}, {}, GradOptions().create_graph(true))[0];
    Tensor loss = -score + 10.0f * mean(square(sqrt(sum(square(gx), 1) + 1e-12f) - 1.0f));
    loss.backward();
    // the penalty's part of the critic's gradient, by finite differences on the first weight
    Tensor w = critic.parameters()[0];
    const float analytic = w.grad().data()[0];
    auto loss_at = [&](float shift) {
        w.value().data()[0] += shift;
        Tensor xs(images, true);
        Tensor s = sum(critic.forward(xs));
        Tensor g = tg::grad({s}, {xs})[0];
        const float v = (-s + 10.0f * mean(square(sqrt(sum(square(g), 1) + 1e-12f) - 1.0f))).item();
        w.value().data()[0] -= shift;
        return v;
    };
    const float h = 1e-2f;
    CHECK(analytic == doctest::Approx((loss_at(h) - loss_at(-h)) / (2 * h)).epsilon(2e-2));
}

TEST_CASE("accumulate_grad into a tensor that does not require grad is refused, naming the op") {
    Tensor c(Array{1.0f});
    CHECK_THROWS_WITH_AS(c.accumulate_grad(Array{1.0f}, "myop"),
                         doctest::Contains("myop: a gradient for a tensor of shape (1,) that does not require grad"),
                         std::logic_error);
}

TEST_CASE("matmul and linear check the output's element count before allocating it") {
    const Tensor a = Tensor::zeros({std::size_t(1) << 40, 0}), b = Tensor::zeros({0, std::size_t(1) << 40});
    CHECK_THROWS_WITH_AS(matmul(a, b), doctest::Contains("matmul: the shape (1099511627776, 1099511627776) has more elements"),
                         std::length_error);
    const Tensor w = Tensor::zeros({std::size_t(1) << 40, 0});
    CHECK_THROWS_AS(linear(a, w), std::length_error);
}

TEST_CASE("tg::grad keeps a leaf alive that only the freed nodes held (ASan: no use after free)") {
    Tensor z(Array{1.0f}, true), y;
    {
        Tensor only_in_the_graph(Array{2.0f}, true);
        y = sum(only_in_the_graph * only_in_the_graph) + sum(z * 3.0f);
    }
    CHECK(grad({y}, {z})[0].item() == doctest::Approx(3.0f));
}
