#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "layers/distributions.hpp"
#include "layers/estimators.hpp"
#include "layers/gumbel.hpp"
#include "layers/temperature.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {

// Mean and standard error of the mean, per component, of a list of gradient estimates.
struct Summary {
    std::vector<double> mean, se;
};
Summary summarize(const std::vector<std::vector<double>>& estimates) {
    const std::size_t n = estimates.size(), d = estimates[0].size();
    Summary s{std::vector<double>(d, 0.0), std::vector<double>(d, 0.0)};
    for (const auto& e : estimates)
        for (std::size_t k = 0; k < d; ++k) s.mean[k] += e[k] / double(n);
    for (const auto& e : estimates)
        for (std::size_t k = 0; k < d; ++k) s.se[k] += (e[k] - s.mean[k]) * (e[k] - s.mean[k]) / double(n - 1);
    for (double& v : s.se) v = std::sqrt(v / double(n));
    return s;
}

std::vector<double> flat(const Array& a) { return std::vector<double>(a.begin(), a.end()); }

// Two independent categorical variables of 3 classes with logits theta [2, 3] and the loss
// f(z1, z2) = (c . z1 + d . z2 - 0.4)^2 + 5 (the offset is what a baseline removes).
const double k_c[3] = {0.1, -0.3, 0.8}, k_d[3] = {0.5, 0.2, -0.6};
double categorical_f(std::size_t i, std::size_t j) {
    const double r = k_c[i] + k_d[j] - 0.4;
    return r * r + 5.0;
}

// The exact gradient of E[f] by summing over the 9 states: dE/dtheta1_k = p1_k (G1_k - E) with
// G1_k = sum_j f(k, j) p2_j, and likewise for theta2.
std::vector<double> exact_categorical_gradient(const Array& theta) {
    double p[2][3];
    for (int v = 0; v < 2; ++v) {
        double z = 0.0;
        for (int k = 0; k < 3; ++k) z += std::exp(double(theta(v, k)));
        for (int k = 0; k < 3; ++k) p[v][k] = std::exp(double(theta(v, k))) / z;
    }
    double e = 0.0, g1[3] = {0, 0, 0}, g2[3] = {0, 0, 0};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            e += p[0][i] * p[1][j] * categorical_f(i, j);
            g1[i] += categorical_f(i, j) * p[1][j];
            g2[j] += categorical_f(i, j) * p[0][i];
        }
    std::vector<double> grad;
    for (int k = 0; k < 3; ++k) grad.push_back(p[0][k] * (g1[k] - e));
    for (int k = 0; k < 3; ++k) grad.push_back(p[1][k] * (g2[k] - e));
    return grad;
}

// REINFORCE estimates of the gradient, one per batch of `batch` samples.
std::vector<std::vector<double>> reinforce_categorical(Tensor theta, std::size_t batches, std::size_t batch,
                                                       bool with_baseline) {
    Generator gen(2024);
    nn::Reinforce reinforce(0.9f);
    std::vector<std::vector<double>> estimates;
    for (std::size_t b = 0; b < batches; ++b) {
        theta.zero_grad();
        const dist::Categorical q(theta + Tensor::zeros({batch, 2, 3}));  // theta broadcast per sample
        const Tensor z = q.sample(&gen);
        const xt::xarray<std::size_t> idx = argmax(z);
        Array f = Array::from_shape({batch});
        for (std::size_t s = 0; s < batch; ++s) f(s) = float(categorical_f(idx(s, 0), idx(s, 1)));
        const Tensor f_t(f);
        const Tensor log_q = sum(q.log_prob(z), -1);  // [batch]
        const Tensor loss = mean(with_baseline ? reinforce.surrogate(f_t, log_q)
                                               : score_function_surrogate(f_t, log_q));
        loss.backward();
        reinforce.update(f_t);
        estimates.push_back(flat(theta.grad()));
    }
    return estimates;
}

}  // namespace

TEST_CASE("REINFORCE: the categorical score-function gradient is unbiased (exact sum over all states)") {
    Tensor theta(Array{{0.3f, -0.2f, 0.5f}, {-0.4f, 0.1f, 0.0f}}, true);
    const std::vector<double> exact = exact_categorical_gradient(theta.value());
    const Summary s = summarize(reinforce_categorical(theta, 200, 500, true));
    for (std::size_t k = 0; k < exact.size(); ++k) {
        CAPTURE(k);
        CAPTURE(exact[k]);
        CAPTURE(s.mean[k]);
        CAPTURE(s.se[k]);
        CHECK(std::abs(s.mean[k] - exact[k]) < 4.0 * s.se[k]);
        CHECK(s.se[k] < 0.25 * std::abs(exact[k]) + 1e-3);  // precise enough for the check to bite
    }
}

TEST_CASE("REINFORCE: the moving-average baseline cuts the variance without adding bias") {
    Tensor theta(Array{{0.3f, -0.2f, 0.5f}, {-0.4f, 0.1f, 0.0f}}, true);
    const std::vector<double> exact = exact_categorical_gradient(theta.value());
    const Summary with = summarize(reinforce_categorical(theta, 100, 200, true));
    const Summary without = summarize(reinforce_categorical(theta, 100, 200, false));
    for (std::size_t k = 0; k < exact.size(); ++k) {
        CAPTURE(k);
        CHECK(std::abs(without.mean[k] - exact[k]) < 4.0 * without.se[k]);
        CHECK(with.se[k] < 0.5 * without.se[k]);
    }
}

TEST_CASE("REINFORCE: the Bernoulli score-function gradient is unbiased (exact sum over all states)") {
    // three Bernoulli variables, f(z) = (w . z - 0.45)^2; dE/dtheta_k = sum_s f(s) P(s) (s_k - p_k)
    const double w[3] = {0.7, -0.4, 0.5};
    auto f_of = [&](const float* z) {
        const double r = w[0] * z[0] + w[1] * z[1] + w[2] * z[2] - 0.45;
        return r * r;
    };
    Tensor theta(Array{0.4f, -1.0f, 0.2f}, true);
    std::vector<double> exact(3, 0.0);
    for (int state = 0; state < 8; ++state) {
        float z[3];
        double prob = 1.0;
        for (int k = 0; k < 3; ++k) {
            z[k] = float((state >> k) & 1);
            const double p = 1.0 / (1.0 + std::exp(-double(theta.value()(k))));
            prob *= z[k] == 1.0f ? p : 1.0 - p;
        }
        for (int k = 0; k < 3; ++k)
            exact[k] += f_of(z) * prob * (z[k] - 1.0 / (1.0 + std::exp(-double(theta.value()(k)))));
    }
    Generator gen(77);
    nn::Reinforce reinforce;
    std::vector<std::vector<double>> estimates;
    const std::size_t batch = 500;
    for (int b = 0; b < 200; ++b) {
        theta.zero_grad();
        const dist::Bernoulli q = dist::Bernoulli::from_logits(theta + Tensor::zeros({batch, 3}));
        const Tensor z = q.sample(&gen);
        Array f = Array::from_shape({batch});
        for (std::size_t s = 0; s < batch; ++s) f(s) = float(f_of(z.value().data() + 3 * s));
        const Tensor f_t(f);
        mean(reinforce.surrogate(f_t, sum(q.log_prob(z), -1))).backward();
        reinforce.update(f_t);
        estimates.push_back(flat(theta.grad()));
    }
    const Summary s = summarize(estimates);
    for (std::size_t k = 0; k < 3; ++k) {
        CAPTURE(k);
        CAPTURE(exact[k]);
        CAPTURE(s.mean[k]);
        CAPTURE(s.se[k]);
        CHECK(std::abs(s.mean[k] - exact[k]) < 4.0 * s.se[k]);
    }
}

TEST_CASE("REINFORCE: surrogate value and gradients, the baseline is a moving average") {
    Tensor f(Array{2.0f, 4.0f}, true), log_q(Array{-1.0f, -0.5f}, true);
    Tensor s = score_function_surrogate(f, log_q, 1.0f);
    CHECK(s.value() == Array{2.0f + 1.0f * -1.0f, 4.0f + 3.0f * -0.5f});
    s.backward(Array{1.0f, 2.0f});
    CHECK(f.grad() == Array{1.0f, 2.0f});      // f's direct path only: f - b is a constant
    CHECK(log_q.grad() == Array{1.0f, 6.0f});  // (f - b) per sample
    CHECK_THROWS_WITH_AS(score_function_surrogate(f, Tensor::zeros({3})), doctest::Contains("same shape"),
                         std::invalid_argument);

    nn::Reinforce r(0.5f);
    CHECK(r.baseline() == 0.0f);
    r.update(Tensor(Array{2.0f, 4.0f}));
    CHECK(r.baseline() == 3.0f);  // the first update takes the mean
    r.update(Tensor(Array{7.0f}));
    CHECK(r.baseline() == 5.0f);
    CHECK_THROWS_AS(nn::Reinforce(1.0f), std::invalid_argument);
}

TEST_CASE("Relaxed: the relaxed (Binary Concrete) gradient's bias shrinks as tau falls") {
    // E[(z - t)^2] for z ~ Bernoulli(sigmoid(theta)) has gradient p (1 - p) (1 - 2t); the relaxed
    // estimator differentiates (y - t)^2 with y a Binary Concrete sample instead.
    const float theta = 0.3f, t = 0.1f;
    const double p = 1.0 / (1.0 + std::exp(-double(theta)));
    const double exact = p * (1.0 - p) * (1.0 - 2.0 * t);
    const std::size_t n = 400000;
    std::vector<double> bias, se;
    for (float tau : {2.0f, 0.5f, 0.1f}) {
        Generator gen(5);
        Tensor logits = Tensor::full({n}, theta, true);
        const Tensor y = binary_concrete(logits, BinaryConcreteOptions().tau(tau).generator(&gen));
        const Tensor d = y - t;
        sum(d * d).backward();
        double m = 0.0, v = 0.0;
        for (float g : logits.grad()) m += g / double(n);
        for (float g : logits.grad()) v += (g - m) * (g - m) / double(n - 1);
        bias.push_back(std::abs(m - exact));
        se.push_back(std::sqrt(v / double(n)));
    }
    CAPTURE(exact);
    CAPTURE(bias[0]);
    CAPTURE(bias[1]);
    CAPTURE(bias[2]);
    CHECK(bias[0] > bias[1] + 4.0 * (se[0] + se[1]));
    CHECK(bias[1] > bias[2] + 4.0 * (se[1] + se[2]));
    CHECK(bias[2] < 0.1 * exact);
}

TEST_CASE("Bernoulli: plain straight-through forwards {0,1} and backpropagates sigmoid's gradient") {
    Tensor logits = random_tensor({4, 5}, 1, -3.0f, 3.0f);
    const Array seed = Generator(2).normal({4, 5});
    Generator gen(3);
    Tensor z = straight_through_bernoulli(logits, &gen);
    for (float v : z.value()) CHECK((v == 0.0f || v == 1.0f));
    z.backward(seed);
    const Array st_grad = logits.grad();
    logits.zero_grad();
    sigmoid(logits).backward(seed);
    CHECK(xt::allclose(st_grad, logits.grad(), 1e-6, 1e-7));
    // the forward is an exact sample: same draws as bernoulli_sample
    Generator again(3);
    CHECK(z.value() == bernoulli_sample(logits, &again).value());
}

TEST_CASE("Categorical: plain straight-through forwards a one-hot sample and backpropagates softmax's gradient") {
    Tensor logits = random_tensor({4, 5}, 4, -2.0f, 2.0f);
    const Array seed = Generator(5).normal({4, 5});
    Generator gen(6);
    Tensor z = straight_through_categorical(logits, GumbelSoftmaxOptions().generator(&gen));
    Generator again(6);
    CHECK(z.value() == gumbel_max(logits, GumbelSoftmaxOptions().generator(&again)).value());
    z.backward(seed);
    const Array st_grad = logits.grad();
    logits.zero_grad();
    softmax(logits).backward(seed);
    CHECK(xt::allclose(st_grad, logits.grad(), 1e-6, 1e-7));
}

TEST_CASE("Estimators: log_mean_exp is exact at +-1e4 and differentiable") {
    CHECK(log_mean_exp(Tensor(Array{0.0f, std::log(3.0f)})).item() == doctest::Approx(std::log(2.0f)));
    CHECK(log_mean_exp(Tensor(Array{1e4f, 1e4f, 1e4f})).item() == 1e4f);
    CHECK(log_mean_exp(Tensor(Array{-1e4f, -1e4f})).item() == -1e4f);
    const Tensor rows = log_mean_exp(Tensor(Array{{1.0f, 2.0f}, {3.0f, 5.0f}}), 1);  // per row of m = 2
    CHECK(rows.value()(1) == doctest::Approx(std::log((std::exp(3.0) + std::exp(5.0)) / 2.0)));
    Tensor log_w = random_tensor({5, 3}, 7, -3.0f, 3.0f);
    check_gradients([](const std::vector<Tensor>& in) { return log_mean_exp(in[0], 0); }, {log_w});
    check_gradients([](const std::vector<Tensor>& in) { return log_mean_exp(in[0], 1, true); }, {log_w});
}

TEST_CASE("Temperature: the exponential schedule is recomputed every N steps and floors at tau_min") {
    const optim::ExponentialTemperature s(1.0f, 1e-4f, 0.5f, 1000);
    CHECK(s.at(0) == 1.0f);
    CHECK(s.at(999) == 1.0f);
    CHECK(s.at(1000) == doctest::Approx(std::exp(-0.1f)));
    CHECK(s.at(1999) == s.at(1000));
    CHECK(s.at(5500) == doctest::Approx(std::exp(-0.5f)));
    CHECK(s.at(100000) == 0.5f);  // exp(-10) is below the floor
    const optim::ExponentialTemperature every_step(2.0f, 0.01f, 0.1f);
    CHECK(every_step.at(7) == doctest::Approx(2.0f * std::exp(-0.07f)));
    CHECK(optim::ConstantTemperature(0.67f).at(123456) == 0.67f);
    CHECK_THROWS_AS(optim::ExponentialTemperature(1.0f, -1.0f, 0.5f), std::invalid_argument);
    CHECK_THROWS_AS(optim::ExponentialTemperature(1.0f, 1e-4f, 0.0f), std::invalid_argument);
    CHECK_THROWS_AS(optim::ExponentialTemperature(1.0f, 1e-4f, 0.5f, 0), std::invalid_argument);
    CHECK_THROWS_AS(optim::ConstantTemperature(0.0f), std::invalid_argument);
    CHECK_THROWS_AS(s.at(-1), std::invalid_argument);
    // driving a layer
    nn::GumbelSoftmax layer;
    layer.set_tau(s.at(3000));
    CHECK(layer.tau() == doctest::Approx(std::exp(-0.3f)));
}
