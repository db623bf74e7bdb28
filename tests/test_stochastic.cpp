// The stochastic ops of autograd/stochastic.hpp: second-order gradients given their noise, the
// refusal of non-finite logits by every op that draws a discrete value, and of a denormal tau.
#include <cmath>
#include <limits>

#include "helpers.hpp"

using namespace tg;
using tgtest::random_tensor;
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

namespace {

void check_second_order(const Fn& f, const std::vector<Tensor>& inputs) {
    const GradCheckResult r = gradgradcheck(f, inputs);
    INFO(r.message);
    CHECK(r.ok);
}

Array uniforms(const Shape& shape, std::uint64_t seed) { return Generator(seed).uniform_open(shape); }

// Logits holding a NaN (or an infinity) at flat index 5.
Tensor bad_logits(float bad) {
    Tensor t = random_tensor({2, 4}, 7);
    t.value().data()[5] = bad;
    return t;
}

}  // namespace

// A hard (straight-through) output's value is a constant of its logits while its gradient is the
// relaxed one, so finite differences see only what does not multiply that value: the hard forms
// are checked through linear functions of their output (a constant weight w), the relaxed ones
// through any.
TEST_CASE("Stochastic ops: gradgradcheck passes for the relaxed samplers given their uniforms") {
    const Tensor logits = random_tensor({3, 6}, 31, -1.5f, 1.5f);
    const Array u = uniforms({3, 6}, 32);
    const Tensor w = random_tensor({3, 6}, 33);
    const Tensor x3 = random_tensor({2, 3, 2}, 34, -1.5f, 1.5f), w3 = random_tensor({2, 3, 2}, 36);
    const Array u3 = uniforms({2, 3, 2}, 35);
    // grouped classes (two variables of 3 per row), and a class axis in the middle
    check_second_order([&](const std::vector<Tensor>& t) {
        return gumbel_softmax_from_uniforms(t[0], u, GumbelSoftmaxOptions().tau(0.7f).classes(3)) * t[1];
    }, {logits, w});
    check_second_order([&](const std::vector<Tensor>& t) {
        return square(gumbel_softmax_from_uniforms(t[0], u3, GumbelSoftmaxOptions().tau(1.3f).axis(1)));
    }, {x3});
    check_second_order([&](const std::vector<Tensor>& t) {
        return square(binary_concrete_from_uniforms(t[0], u, BinaryConcreteOptions().tau(0.8f))) * t[1];
    }, {logits, w});
    // the straight-through forms: the relaxed y rebuilt from the logits carries the second order
    check_second_order([&](const std::vector<Tensor>& t) {
        return gumbel_softmax_from_uniforms(t[0], u, GumbelSoftmaxOptions().tau(0.7f).classes(3).hard(true)) * w;
    }, {logits});
    check_second_order([&](const std::vector<Tensor>& t) {
        return gumbel_softmax_from_uniforms(t[0], u3, GumbelSoftmaxOptions().tau(1.3f).axis(1).hard(true)) * w3;
    }, {x3});
    check_second_order([&](const std::vector<Tensor>& t) {
        return binary_concrete_from_uniforms(t[0], u, BinaryConcreteOptions().tau(0.8f).hard(true)) * w;
    }, {logits});
}

TEST_CASE("Stochastic ops: the hard samplers' second-order gradient is the relaxed one's") {
    // The straight-through forms rebuild the relaxed y from the logits; their Hessian-vector
    // products must then equal those of the relaxed forms exactly.
    const Tensor logits = random_tensor({2, 4}, 41, -1.0f, 1.0f);
    const Array u = uniforms({2, 4}, 42);
    const Array w = random_tensor({2, 4}, 43).value();
    auto hvp = [&](bool hard, bool categorical) {
        Tensor x(logits.value(), true);
        const Tensor y = categorical ? gumbel_softmax_from_uniforms(x, u, GumbelSoftmaxOptions().tau(0.6f).hard(hard))
                                     : binary_concrete_from_uniforms(x, u, BinaryConcreteOptions().tau(0.6f).hard(hard));
        const Tensor g = grad({sum(y * Tensor(w))}, {x}, {}, GradOptions().create_graph(true))[0];
        return grad({sum(g * g)}, {x})[0].value();
    };
    for (bool categorical : {true, false}) {
        CAPTURE(categorical);
        const Array relaxed = hvp(false, categorical), hard = hvp(true, categorical);
        for (std::size_t i = 0; i < relaxed.size(); ++i) CHECK(hard.data()[i] == doctest::Approx(relaxed.data()[i]).epsilon(1e-4));
    }
}

TEST_CASE("Stochastic ops: gradgradcheck passes for the straight-through and score-function estimators") {
    const Tensor logits = random_tensor({3, 4}, 51, -1.5f, 1.5f), w = random_tensor({3, 4}, 52);
    // fixed samples: the same generator seed at every call; linear in the hard output (above)
    check_second_order([&](const std::vector<Tensor>& t) {
        Generator gen(5);
        return straight_through_bernoulli(t[0], &gen) * w + square(t[0]);
    }, {logits});
    check_second_order([&](const std::vector<Tensor>& t) {
        Generator gen(6);
        return straight_through_categorical(t[0], GumbelSoftmaxOptions().classes(2).generator(&gen)) * w;
    }, {logits});
    // f - b is a constant to the gradient into log_q (stop_gradient), so each input is checked
    // through one side: f's gradient g, and log_q's gradient g (f - b)
    const Tensor f = random_tensor({5}, 53), log_q = random_tensor({5}, 54, -2.0f, -0.1f);
    check_second_order([&](const std::vector<Tensor>& t) {
        return score_function_surrogate(square(t[0]), Tensor(log_q.value()), 0.3f);
    }, {f});
    check_second_order([&](const std::vector<Tensor>& t) {
        return score_function_surrogate(Tensor(f.value()), square(t[0]) * t[0], 0.3f);
    }, {log_q});
    check_second_order([](const std::vector<Tensor>& t) { return square(log_mean_exp(t[0], 1)); }, {logits});
}

TEST_CASE("Stochastic ops: NaN or infinite logits are refused by every op drawing a discrete value") {
    const std::vector<std::pair<const char*, std::function<void(const Tensor&)>>> ops = {
        {"gumbel_max", [](const Tensor& l) { gumbel_max(l); }},
        {"gumbel_softmax", [](const Tensor& l) { gumbel_softmax(l, GumbelSoftmaxOptions().hard(true)); }},
        {"binary_concrete", [](const Tensor& l) { binary_concrete(l, BinaryConcreteOptions().hard(true)); }},
        {"straight_through_bernoulli", [](const Tensor& l) { straight_through_bernoulli(l); }},
        {"straight_through_categorical", [](const Tensor& l) { straight_through_categorical(l); }},
        {"bernoulli_sample", [](const Tensor& l) { bernoulli_sample(l); }},
        {"gumbel_max", [](const Tensor& l) { dist::Categorical(l).sample(); }},
        {"bernoulli_sample", [](const Tensor& l) { dist::Bernoulli::from_logits(l).sample(); }},
    };
    for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
        for (const auto& [name, op] : ops) {
            CAPTURE(name);
            CAPTURE(bad);
            const std::string what = std::string(name) + ": the logits hold";
            CHECK_THROWS_WITH_AS(op(bad_logits(bad)), doctest::Contains(what.c_str()), std::invalid_argument);
            CHECK_THROWS_WITH_AS(op(bad_logits(bad)), doctest::Contains("at flat index 5"), std::invalid_argument);
        }
    // the relaxed forms stay a pass over finite logits: they propagate, AnomalyGuard names them
    CHECK_NOTHROW(gumbel_softmax(bad_logits(std::nanf(""))));
    AnomalyGuard guard;
    CHECK_THROWS_WITH_AS(gumbel_max(bad_logits(std::nanf(""))), doctest::Contains("gumbel_max: the logits hold nan"),
                         AnomalyError);
}

TEST_CASE("Stochastic ops: a temperature whose 1/tau overflows (a denormal) is refused by the options and layers") {
    for (float tau : {1e-45f, 1e-40f, std::numeric_limits<float>::denorm_min()}) {
        CAPTURE(tau);
        CHECK_THROWS_WITH_AS(GumbelSoftmaxOptions().tau(tau), doctest::Contains("below the smallest normal float"),
                             std::invalid_argument);
        CHECK_THROWS_WITH_AS(BinaryConcreteOptions().tau(tau), doctest::Contains("BinaryConcreteOptions::tau"),
                             std::invalid_argument);
        nn::GumbelSoftmax layer;
        CHECK_THROWS_AS(layer.set_tau(tau), std::invalid_argument);
        CHECK(layer.tau() == 1.0f);
    }
    CHECK(GumbelSoftmaxOptions().tau(std::numeric_limits<float>::min()).tau() == std::numeric_limits<float>::min());
}
