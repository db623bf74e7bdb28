#include <cmath>

#include "helpers.hpp"

using namespace tg;

namespace {

// Replaces p's gradient by g, as if backward had produced it.
void set_grad(Tensor& p, const Array& g) {
    p.zero_grad();
    p.accumulate_grad(g, "test");
}

// Two parameters, [1, -2] and [0.5], stepped twice with fixed gradients: the values after
// each step are compared with the arithmetic written out in each test.
struct TwoSteps {
    Tensor a = Tensor(Array{1.0f, -2.0f}, true);
    Tensor b = Tensor(Array{0.5f}, true);
    std::vector<Tensor> params() const { return {a, b}; }
    void step(optim::Optimizer& opt, const Array& ga, const Array& gb) {
        set_grad(a, ga);
        set_grad(b, gb);
        opt.step();
    }
};

}  // namespace

TEST_CASE("SGD: first two steps by hand (plain, then with weight decay)") {
    TwoSteps t;
    optim::SGD sgd(t.params(), {0.1f});
    t.step(sgd, {0.5f, -1.0f}, {2.0f});
    CHECK(t.a.value()(0) == doctest::Approx(1.0 - 0.1 * 0.5));     // 0.95
    CHECK(t.a.value()(1) == doctest::Approx(-2.0 - 0.1 * -1.0));   // -1.9
    CHECK(t.b.value()(0) == doctest::Approx(0.5 - 0.1 * 2.0));     // 0.3
    t.step(sgd, {0.25f, 0.0f}, {-1.0f});
    CHECK(t.a.value()(0) == doctest::Approx(0.95 - 0.1 * 0.25));   // 0.925
    CHECK(t.a.value()(1) == doctest::Approx(-1.9));
    CHECK(t.b.value()(0) == doctest::Approx(0.3 + 0.1));           // 0.4
    CHECK(sgd.state_names().empty());

    TwoSteps u;
    optim::SGDOptions o;
    o.lr = 0.1f;
    o.weight_decay = 0.1f;
    optim::SGD wd(u.params(), o);
    u.step(wd, {0.5f, -1.0f}, {2.0f});
    const double w1 = 1.0 - 0.1 * (0.5 + 0.1 * 1.0);              // 0.94
    CHECK(u.a.value()(0) == doctest::Approx(w1));
    u.step(wd, {0.25f, 0.0f}, {-1.0f});
    CHECK(u.a.value()(0) == doctest::Approx(w1 - 0.1 * (0.25 + 0.1 * w1)));  // 0.9056
}

TEST_CASE("SGD: momentum and dampening, first two steps by hand") {
    TwoSteps t;
    optim::SGDOptions o;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    optim::SGD sgd(t.params(), o);
    t.step(sgd, {0.5f, -1.0f}, {2.0f});
    // The first buffer is the gradient itself: 0.5, so 1 - 0.1 * 0.5.
    CHECK(t.a.value()(0) == doctest::Approx(0.95));
    t.step(sgd, {0.25f, 0.0f}, {-1.0f});
    // buf = 0.9 * 0.5 + 0.25 = 0.7; 0.95 - 0.07. For b: buf = 0.9 * 2 - 1 = 0.8; 0.3 - 0.08.
    CHECK(t.a.value()(0) == doctest::Approx(0.88));
    CHECK(t.a.value()(1) == doctest::Approx(-1.9 - 0.1 * (0.9 * -1.0)));  // -1.81
    CHECK(t.b.value()(0) == doctest::Approx(0.22));
    CHECK(sgd.state("momentum")[0](0) == doctest::Approx(0.7));

    TwoSteps u;
    o.dampening = 0.5f;
    optim::SGD damp(u.params(), o);
    u.step(damp, {0.5f, -1.0f}, {2.0f});
    CHECK(u.a.value()(0) == doctest::Approx(0.95));  // dampening does not touch the first buffer
    u.step(damp, {0.25f, 0.0f}, {-1.0f});
    CHECK(u.a.value()(0) == doctest::Approx(0.95 - 0.1 * (0.9 * 0.5 + 0.5 * 0.25)));  // 0.8925
}

TEST_CASE("SGD: Nesterov momentum, first two steps by hand") {
    TwoSteps t;
    optim::SGDOptions o;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    o.nesterov = true;
    optim::SGD sgd(t.params(), o);
    t.step(sgd, {0.5f, -1.0f}, {2.0f});
    CHECK(t.a.value()(0) == doctest::Approx(1.0 - 0.1 * (0.5 + 0.9 * 0.5)));    // 0.905
    t.step(sgd, {0.25f, 0.0f}, {-1.0f});
    CHECK(t.a.value()(0) == doctest::Approx(0.905 - 0.1 * (0.25 + 0.9 * 0.7)));  // 0.817
    CHECK(t.b.value()(0) == doctest::Approx(0.5 - 0.1 * (2.0 + 1.8) - 0.1 * (-1.0 + 0.9 * 0.8)));
}

namespace {
// One Adam update of a scalar, in double, exactly as the formula reads.
struct AdamRef {
    double w, m = 0.0, v = 0.0;
    int t = 0;
    void step(double g, double lr, double b1, double b2, double eps, double l2 = 0.0, double decoupled = 0.0) {
        w *= 1.0 - lr * decoupled;
        g += l2 * w;
        ++t;
        m = b1 * m + (1 - b1) * g;
        v = b2 * v + (1 - b2) * g * g;
        const double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
        w -= lr * mhat / (std::sqrt(vhat) + eps);
    }
};
}  // namespace

TEST_CASE("Adam: first two steps by hand") {
    TwoSteps t;
    optim::Adam adam(t.params(), {0.1f});
    t.step(adam, {0.5f, -1.0f}, {2.0f});
    // Step 1: m = 0.05, v = 0.00025, mhat = 0.5, sqrt(vhat) = 0.5: a full lr step against the sign.
    CHECK(t.a.value()(0) == doctest::Approx(0.9).epsilon(1e-6));
    CHECK(t.a.value()(1) == doctest::Approx(-1.9).epsilon(1e-6));
    CHECK(t.b.value()(0) == doctest::Approx(0.4).epsilon(1e-6));
    t.step(adam, {0.25f, 0.0f}, {-1.0f});
    // Step 2 for a[0]: m = 0.045 + 0.025 = 0.07, v = 0.00024975 + 0.0000625 = 0.00031225,
    // mhat = 0.07 / 0.19, vhat = 0.00031225 / 0.001999: 0.9 - 0.1 * 0.368421 / 0.395225.
    CHECK(t.a.value()(0) == doctest::Approx(0.9 - 0.1 * (0.07 / 0.19) / std::sqrt(0.00031225 / 0.001999)).epsilon(1e-6));
    CHECK(t.a.value()(0) == doctest::Approx(0.806782).epsilon(1e-5));
    AdamRef a1{-2.0}, b{0.5};
    for (double g : {-1.0, 0.0}) a1.step(g, 0.1, 0.9, 0.999, 1e-8);
    for (double g : {2.0, -1.0}) b.step(g, 0.1, 0.9, 0.999, 1e-8);
    CHECK(t.a.value()(1) == doctest::Approx(a1.w).epsilon(1e-6));
    CHECK(t.b.value()(0) == doctest::Approx(b.w).epsilon(1e-6));
    CHECK(adam.steps() == std::vector<std::int64_t>{2, 2});
    CHECK(adam.state("m")[0](0) == doctest::Approx(0.07));
    CHECK(adam.state("v")[0](0) == doctest::Approx(0.00031225));
}

TEST_CASE("Adam: an element's update does not depend on its position (vector body or scalar tail)") {
    // 37 elements: whole SIMD batches and a tail; each is compared with the same element alone,
    // stepped as a one-element parameter (the tail's path only).
    Generator gen(3);
    const std::size_t n = 37;
    Tensor w(gen.normal({n}), true);
    std::vector<Tensor> alone;
    for (std::size_t j = 0; j < n; ++j) alone.emplace_back(Array{w.value()(j)}, true);
    optim::AdamOptions o;
    o.lr = 0.01f;
    o.weight_decay = 0.1f;
    optim::Adam all({w}, o), each(alone, o);
    for (int step = 0; step < 3; ++step) {
        const Array g = gen.normal({n});
        set_grad(w, g);
        for (std::size_t j = 0; j < n; ++j) set_grad(alone[j], Array{g(j)});
        all.step();
        each.step();
    }
    for (std::size_t j = 0; j < n; ++j) CHECK(w.value()(j) == alone[j].value()(0));
}

TEST_CASE("Adam: L2 weight decay is added to the gradient") {
    TwoSteps t;
    optim::AdamOptions o;
    o.lr = 0.1f;
    o.weight_decay = 0.1f;
    optim::Adam adam(t.params(), o);
    t.step(adam, {0.5f, -1.0f}, {2.0f});
    t.step(adam, {0.25f, 0.0f}, {-1.0f});
    // Step 1: g = 0.5 + 0.1 * 1 = 0.6, still a full lr step: 0.9. Step 2: g = 0.25 + 0.09 = 0.34.
    AdamRef a0{1.0};
    a0.step(0.5, 0.1, 0.9, 0.999, 1e-8, 0.1);
    CHECK(a0.w == doctest::Approx(0.9));
    a0.step(0.25, 0.1, 0.9, 0.999, 1e-8, 0.1);
    CHECK(t.a.value()(0) == doctest::Approx(a0.w).epsilon(1e-6));
}

TEST_CASE("AdamW: decoupled weight decay, first two steps by hand") {
    TwoSteps t;
    optim::AdamWOptions o;
    o.lr = 0.1f;
    o.weight_decay = 0.1f;
    optim::AdamW adamw(t.params(), o);
    CHECK(std::string(adamw.kind()) == "adamw");
    t.step(adamw, {0.5f, -1.0f}, {2.0f});
    // Shrink first: 1 * (1 - 0.1 * 0.1) = 0.99, then the Adam step of 0.1: 0.89.
    CHECK(t.a.value()(0) == doctest::Approx(0.89).epsilon(1e-6));
    t.step(adamw, {0.25f, 0.0f}, {-1.0f});
    // 0.89 * 0.99 = 0.8811, minus the same Adam step as plain Adam's second (0.093218).
    CHECK(t.a.value()(0) == doctest::Approx(0.8811 - 0.1 * (0.07 / 0.19) / std::sqrt(0.00031225 / 0.001999)).epsilon(1e-6));
    CHECK(optim::AdamWOptions{}.weight_decay == 1e-2f);  // PyTorch's default
}

TEST_CASE("Adam: minimizes a small quadratic") {
    // f(w) = sum(c * (w - target)^2) with different curvatures per coordinate.
    Tensor w = Tensor::zeros({4}, true);
    const Tensor target(Array{1.0f, -2.0f, 3.0f, 0.5f});
    const Tensor c(Array{1.0f, 10.0f, 0.1f, 3.0f});
    optim::Adam adam({w}, {0.05f});
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 1500; ++step) {
        adam.zero_grad();
        Tensor d = w - target;
        Tensor loss = sum(c * d * d);
        if (step == 0) first = loss.item();
        last = loss.item();
        loss.backward();
        adam.step();
    }
    CHECK(first > 10.0f);
    CHECK(last < 1e-6f);
    for (std::size_t i = 0; i < 4; ++i) CHECK(w.value()(i) == doctest::Approx(target.value()(i)).epsilon(1e-3));
}

TEST_CASE("Optim: parameters without a gradient are skipped, state and step count included") {
    TwoSteps t;
    optim::Adam adam(t.params(), {0.1f});
    set_grad(t.a, {0.5f, -1.0f});
    t.b.zero_grad();
    adam.step();
    CHECK(t.b.value()(0) == 0.5f);
    CHECK(adam.steps() == std::vector<std::int64_t>{1, 0});
    CHECK(adam.state("m")[1].size() == 0);
    // b's first update later uses t = 1 for its bias correction, like PyTorch's per-parameter step.
    set_grad(t.b, {2.0f});
    t.a.zero_grad();
    adam.step();
    CHECK(t.b.value()(0) == doctest::Approx(0.4).epsilon(1e-6));
    CHECK(adam.steps() == std::vector<std::int64_t>{1, 1});

    optim::SGD sgd({t.a}, {0.1f});
    t.a.zero_grad();
    const Array before = t.a.value();
    sgd.step();
    CHECK(t.a.value() == before);
}

TEST_CASE("Optim: zero_grad, lr and set_lr") {
    TwoSteps t;
    optim::SGD sgd(t.params(), {0.5f});
    CHECK(sgd.lr() == 0.5f);
    sgd.set_lr(0.25f);
    CHECK(sgd.lr() == 0.25f);
    set_grad(t.a, {1.0f, 1.0f});
    sgd.step();
    CHECK(t.a.value()(0) == 0.75f);
    sgd.zero_grad();
    CHECK_FALSE(t.a.has_grad());
    CHECK_THROWS_WITH_AS(sgd.set_lr(-1.0f), "sgd: lr must be non-negative and finite, got -1", std::invalid_argument);
    CHECK(sgd.lr() == 0.25f);
}

TEST_CASE("Optim: invalid options are refused with clear messages") {
    TwoSteps t;
    CHECK_THROWS_WITH_AS(optim::SGD(t.params(), {-0.1f}), "SGD: lr must be non-negative and finite, got -0.1",
                         std::invalid_argument);
    optim::SGDOptions s;
    s.nesterov = true;
    CHECK_THROWS_WITH_AS(optim::SGD(t.params(), s), "SGD: nesterov needs momentum > 0 and dampening 0",
                         std::invalid_argument);
    s = {};
    s.momentum = -0.5f;
    CHECK_THROWS_WITH_AS(optim::SGD(t.params(), s), doctest::Contains("momentum must be"), std::invalid_argument);
    optim::AdamOptions a;
    a.beta1 = 1.0f;
    CHECK_THROWS_WITH_AS(optim::Adam(t.params(), a), "Adam: beta1 must be in [0, 1), got 1", std::invalid_argument);
    a = {};
    a.beta2 = -0.1f;
    CHECK_THROWS_WITH_AS(optim::Adam(t.params(), a), "Adam: beta2 must be in [0, 1), got -0.1", std::invalid_argument);
    a = {};
    a.eps = -1.0f;
    CHECK_THROWS_WITH_AS(optim::Adam(t.params(), a), doctest::Contains("eps must be"), std::invalid_argument);
    optim::AdamWOptions w;
    w.weight_decay = -0.01f;
    CHECK_THROWS_WITH_AS(optim::AdamW(t.params(), w), "AdamW: weight_decay must be non-negative and finite, got -0.01",
                         std::invalid_argument);
    w.weight_decay = NAN;
    CHECK_THROWS_AS(optim::AdamW(t.params(), w), std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::Adam({}), "Adam: the parameter list is empty", std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::SGD({t.a, t.b, t.a}), "SGD: parameter 2 appears more than once in the list",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::SGD({Tensor()}), "SGD: parameter 0 is a null tensor", std::invalid_argument);
    const Tensor constant(Array{1.0f, 2.0f});
    CHECK_THROWS_WITH_AS(optim::Adam({t.a, constant}),
                         "Adam: parameter 1 does not require grad (make it with requires_grad = true, or "
                         "set_requires_grad())",
                         std::invalid_argument);
    const Tensor made = t.a * 2.0f;
    CHECK_THROWS_WITH_AS(optim::SGD({t.b, made}),
                         "SGD: parameter 1 was made by an op, and an optimizer can't optimize a non-leaf tensor (pass "
                         "the tensors it was computed from)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::AdamW({made}), doctest::Contains("AdamW: parameter 0 was made by an op"),
                         std::invalid_argument);
    made.backward(Array{1.0f, 1.0f});  // its node freed: still not a leaf
    CHECK_THROWS_AS(optim::Adam({made}), std::invalid_argument);
    optim::Adam adam(t.params());
    CHECK_THROWS_WITH_AS(adam.state("momentum"), "adam: state/set_state: no state named 'momentum' (it keeps 'm', 'v')", std::out_of_range);
}

TEST_CASE("Optim: clip_grad_norm returns the total norm and scales all gradients together") {
    TwoSteps t;
    Tensor no_grad(Array{7.0f}, true);
    set_grad(t.a, {3.0f, 0.0f});
    set_grad(t.b, {-4.0f});  // joint norm 5
    const float norm = optim::clip_grad_norm({t.a, t.b, no_grad}, 1.0f);
    CHECK(norm == doctest::Approx(5.0f));
    CHECK(t.a.grad()(0) == doctest::Approx(3.0 / (5.0 + 1e-6)));
    CHECK(t.b.grad()(0) == doctest::Approx(-4.0 / (5.0 + 1e-6)));
    CHECK_FALSE(no_grad.has_grad());
    // Below the limit nothing changes; the norm is still reported.
    set_grad(t.a, {0.3f, 0.0f});
    set_grad(t.b, {0.4f});
    CHECK(optim::clip_grad_norm({t.a, t.b}, 1.0f) == doctest::Approx(0.5f));
    CHECK(t.a.grad()(0) == 0.3f);
    CHECK(t.b.grad()(0) == 0.4f);
    CHECK_THROWS_WITH_AS(optim::clip_grad_norm({t.a}, -1.0f), doctest::Contains("max_norm must be"),
                         std::invalid_argument);
}

TEST_CASE("Optim: StepLR multiplies by gamma every step_size steps, ExponentialLR every step") {
    TwoSteps t;
    optim::SGD sgd(t.params(), {1.0f});
    optim::StepLR sched(sgd, 3, 0.5f);
    std::vector<float> seen;
    for (int i = 0; i < 7; ++i) {
        seen.push_back(sgd.lr());
        sched.step();
    }
    CHECK(seen == std::vector<float>{1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 0.5f, 0.25f});
    CHECK(sched.count() == 7);
    sched.set_count(9);  // resuming
    CHECK(sgd.lr() == 0.125f);

    optim::Adam adam(t.params(), {0.1f});
    optim::ExponentialLR exp_sched(adam, 0.9f);
    exp_sched.step();
    exp_sched.step();
    CHECK(adam.lr() == doctest::Approx(0.1 * 0.81));
    CHECK(exp_sched.base_lr() == 0.1f);
    CHECK_THROWS_WITH_AS(optim::StepLR(sgd, 0), "StepLR: step_size must be positive, got 0", std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::ExponentialLR(sgd, -1.0f), doctest::Contains("gamma must be"), std::invalid_argument);
}

TEST_CASE("Optim: StepLR stops at min_lr, and ReduceLROnPlateau lowers the lr after patience epochs without improvement") {
    TwoSteps t;
    optim::SGD sgd(t.params(), {1.0f});
    optim::StepLR step(sgd, 1, 0.5f, 0.2f);
    step.set_count(2);
    CHECK(sgd.lr() == 0.25f);
    step.set_count(3);
    CHECK(sgd.lr() == 0.2f);

    optim::Adam adam(t.params(), {0.1f});
    optim::ReduceLROnPlateau plateau(adam, 0.5f, 2, 0.02f, 0.01);
    std::vector<float> lrs;
    // 10 improves; 9.95 is within the 1% threshold of 10; NaN never improves
    for (double metric : std::vector<double>{10.0, 9.0, 8.95, double(NAN), 9.5, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0}) {
        plateau.observe(metric);
        lrs.push_back(adam.lr());
    }
    const float half = 0.1f * 0.5f, quarter = 0.1f * 0.25f;
    CHECK(lrs == std::vector<float>{0.1f, 0.1f, 0.1f, 0.1f, half, half, half, half, quarter, quarter, quarter, 0.02f,
                                    0.02f, 0.02f, 0.02f});
    CHECK(plateau.count() == 3);  // at min_lr it stops counting
    CHECK(plateau.best() == 8.0);
    CHECK(plateau.bad_observations() == 0);

    // Restored into a fresh schedule, it goes on as the first would.
    optim::Adam other(t.params(), {0.1f});
    optim::ReduceLROnPlateau resumed(other, 0.5f, 2, 0.0f, 0.01);
    resumed.restore(8.0, 2, 1);
    CHECK(other.lr() == half);
    CHECK(resumed.observe(8.0));
    CHECK(other.lr() == quarter);
    CHECK_THROWS_WITH_AS(resumed.restore(8.0, 3, 1), doctest::Contains("3 bad observations (patience 2)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::ReduceLROnPlateau(adam, 1.0f), doctest::Contains("factor must be in (0, 1), got 1"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::ReduceLROnPlateau(adam, 0.5f, -1), "ReduceLROnPlateau: patience must be non-negative, got -1",
                         std::invalid_argument);
}

TEST_CASE("SGD: trains a Linear layer to fit a linear map") {
    Generator g(21);
    nn::Linear fc(3, 2, {true, &g});
    const Tensor w_true(Array{{1.0f, -2.0f, 0.5f}, {0.0f, 1.0f, 3.0f}});
    const Tensor x = tgtest::random_tensor({64, 3}, 22, -1.0f, 1.0f, false);
    const Tensor y = linear(x, w_true, Tensor(Array{0.5f, -1.0f}));
    optim::SGDOptions o;
    o.lr = 0.1f;
    o.momentum = 0.9f;
    optim::SGD sgd(fc.parameters(), o);
    float loss_value = 0.0f;
    for (int step = 0; step < 300; ++step) {
        sgd.zero_grad();
        Tensor d = fc(x) - y;
        Tensor loss = sum(d * d) * (1.0f / 64);
        loss_value = loss.item();
        loss.backward();
        sgd.step();
    }
    CHECK(loss_value < 1e-6f);
    CHECK(fc.weight.value()(1, 2) == doctest::Approx(3.0f).epsilon(1e-3));
    CHECK(fc.bias.value()(0) == doctest::Approx(0.5f).epsilon(1e-3));
}
