#include <cfloat>
#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "layers/distributions.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {

// The Concrete log-density straight from Maddison et al. eq. 11, in double:
// log((K-1)!) + (K-1) log tau + sum_k [log pi_k - (tau+1) log y_k] - K log sum_i pi_i y_i^-tau.
double concrete_log_density(const std::vector<double>& logits, const std::vector<double>& y, double tau) {
    const double k = double(logits.size());
    double s = 0.0, lp = std::lgamma(k) + (k - 1.0) * std::log(tau);
    for (std::size_t i = 0; i < logits.size(); ++i) {
        s += std::exp(logits[i]) * std::pow(y[i], -tau);
        lp += logits[i] - (tau + 1.0) * std::log(y[i]);
    }
    return lp - k * std::log(s);
}

// The binary Concrete density tau a x^(-tau-1) (1-x)^(-tau-1) / (a x^-tau + (1-x)^-tau)^2.
double binary_concrete_density(double logit, double x, double tau) {
    const double a = std::exp(logit);
    const double d = a * std::pow(x, -tau) + std::pow(1.0 - x, -tau);
    return tau * a * std::pow(x, -tau - 1.0) * std::pow(1.0 - x, -tau - 1.0) / (d * d);
}

Tensor row(const std::vector<double>& v, bool requires_grad = false) {
    Array a = Array::from_shape({v.size()});
    for (std::size_t i = 0; i < v.size(); ++i) a(i) = float(v[i]);
    return Tensor(std::move(a), requires_grad);
}

}  // namespace

TEST_CASE("Categorical: log_prob, entropy and KL match hand-computed values") {
    dist::Categorical p(Tensor(Array{{0.0f, std::log(3.0f)}, {2.0f, 2.0f}}));  // (1/4, 3/4) and (1/2, 1/2)
    const Array lp = p.log_prob(Tensor(Array{{0.0f, 1.0f}, {1.0f, 0.0f}})).value();
    REQUIRE(lp.shape() == Array::shape_type{2});
    CHECK(lp(0) == doctest::Approx(std::log(0.75)));
    CHECK(lp(1) == doctest::Approx(std::log(0.5)));
    const Array h = p.entropy().value();
    CHECK(h(0) == doctest::Approx(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))));
    CHECK(h(1) == doctest::Approx(std::log(2.0)));
    dist::Categorical uniform(Tensor::zeros({2, 2}));
    const Array kl = kl_divergence(p, uniform).value();
    CHECK(kl(0) == doctest::Approx(0.25 * std::log(0.5) + 0.75 * std::log(1.5)));
    CHECK(kl(1) == doctest::Approx(0.0).epsilon(1e-7));
    CHECK(p.probs().value()(0, 1) == doctest::Approx(0.75));
    CHECK(p.num_classes() == 2);
}

TEST_CASE("Categorical: gradients of log_prob, entropy and KL with respect to the logits") {
    Tensor a = random_tensor({3, 4}, 1, -2.0f, 2.0f), b = random_tensor({3, 4}, 2, -2.0f, 2.0f);
    const Tensor value = one_hot(xt::xarray<std::size_t>{0, 3, 1}, 4);
    check_gradients([&](const std::vector<Tensor>& in) { return dist::Categorical(in[0]).log_prob(value); }, {a});
    check_gradients([](const std::vector<Tensor>& in) { return dist::Categorical(in[0]).entropy(); }, {a});
    check_gradients(
        [](const std::vector<Tensor>& in) {
            return kl_divergence(dist::Categorical(in[0]), dist::Categorical(in[1]));
        },
        {a, b});
}

TEST_CASE("Categorical: samples are one-hot with the softmax frequencies, logits +-255 give no NaN") {
    Generator gen(3);
    const std::size_t n = 40000;
    Array l = Array::from_shape({n, 3});
    for (std::size_t r = 0; r < n; ++r) l(r, 0) = 0.5f, l(r, 1) = -1.0f, l(r, 2) = 0.0f;
    dist::Categorical c{Tensor(l)};
    const Array s = c.sample(&gen).value();
    const Array p = c.probs().value();
    for (std::size_t k = 0; k < 3; ++k) {
        double count = 0.0;
        for (std::size_t r = 0; r < n; ++r) count += s(r, k);
        CHECK(std::abs(count / n - p(0, k)) < 4.0 * std::sqrt(p(0, k) * (1.0 - p(0, k)) / n));
    }
    Tensor big(Array{{255.0f, -255.0f, 0.0f}}, true);
    dist::Categorical e(big);
    Tensor total = sum(e.entropy()) + sum(e.log_prob(Tensor(Array{{0.0f, 1.0f, 0.0f}}))) +
                   sum(kl_divergence(e, dist::Categorical(Tensor(Array{{-255.0f, 255.0f, 0.0f}}))));
    CHECK(std::isfinite(total.item()));
    total.backward();
    CHECK(all_finite(big.grad()));
    CHECK(e.log_prob(Tensor(Array{{0.0f, 1.0f, 0.0f}})).item() == doctest::Approx(-510.0f));
}

TEST_CASE("Bernoulli: log_prob, entropy and KL match hand values, with gradients") {
    const dist::Bernoulli b = dist::Bernoulli::from_logits(Tensor(Array{0.0f, std::log(3.0f)}));  // p = 1/2 and 3/4
    const Array lp = b.log_prob(Tensor(Array{1.0f, 0.0f})).value();
    CHECK(lp(0) == doctest::Approx(std::log(0.5)));
    CHECK(lp(1) == doctest::Approx(std::log(0.25)));
    const Array h = b.entropy().value();
    CHECK(h(0) == doctest::Approx(std::log(2.0)));
    CHECK(h(1) == doctest::Approx(-(0.25 * std::log(0.25) + 0.75 * std::log(0.75))));
    const Array kl = kl_divergence(b, dist::Bernoulli::from_logits(Tensor::zeros({2}))).value();
    CHECK(kl(0) == doctest::Approx(0.0).epsilon(1e-7));
    CHECK(kl(1) == doctest::Approx(0.25 * std::log(0.5) + 0.75 * std::log(1.5)));

    Tensor x = random_tensor({5}, 4, -3.0f, 3.0f), y = random_tensor({5}, 5, -3.0f, 3.0f);
    const Tensor v(Array{1.0f, 0.0f, 0.0f, 1.0f, 1.0f});
    check_gradients([&](const std::vector<Tensor>& in) { return dist::Bernoulli::from_logits(in[0]).log_prob(v); }, {x});
    check_gradients([](const std::vector<Tensor>& in) { return dist::Bernoulli::from_logits(in[0]).entropy(); }, {x});
    check_gradients(
        [](const std::vector<Tensor>& in) { return kl_divergence(dist::Bernoulli::from_logits(in[0]), dist::Bernoulli::from_logits(in[1])); },
        {x, y});
}

TEST_CASE("Bernoulli: samples are {0,1} with P(1) = sigmoid(logits), logits +-255 give no NaN") {
    Generator gen(6);
    const std::size_t n = 40000;
    const Array s = dist::Bernoulli::from_logits(Tensor::full({n}, 1.2f)).sample(&gen).value();
    double ones = 0.0;
    for (float v : s) {
        REQUIRE((v == 0.0f || v == 1.0f));
        ones += v;
    }
    const double p = 1.0 / (1.0 + std::exp(-1.2));
    CHECK(std::abs(ones / n - p) < 4.0 * std::sqrt(p * (1.0 - p) / n));

    Tensor big(Array{255.0f, -255.0f}, true);
    const dist::Bernoulli e = dist::Bernoulli::from_logits(big);
    Tensor total = sum(e.entropy()) + sum(e.log_prob(Tensor(Array{0.0f, 0.0f}))) +
                   sum(kl_divergence(e, dist::Bernoulli::from_logits(Tensor(Array{-255.0f, 255.0f}))));
    CHECK(total.item() == doctest::Approx(0.0f - 255.0f + 510.0f));  // entropy + log_prob + KL
    total.backward();
    CHECK(all_finite(big.grad()));
}

TEST_CASE("Relaxed: RelaxedBernoulli log_prob integrates to 1 over (0,1) and matches its CDF") {
    // Trapezoid rule in s = logit(x), dx = x (1 - x) ds, over s in [-10, 10]; the mass there
    // is sigmoid(10 tau - a) - sigmoid(-10 tau - a) by the CDF sigmoid(tau logit(x) - a).
    const double h = 0.005, s_max = 10.0;
    const std::size_t m = std::size_t(2.0 * s_max / h) + 1;
    Array x = Array::from_shape({m});
    for (std::size_t i = 0; i < m; ++i) x(i) = float(1.0 / (1.0 + std::exp(-(-s_max + double(i) * h))));
    for (float tau : {0.5f, 1.0f, 2.0f})
        for (float a : {-1.0f, 0.7f}) {
            CAPTURE(tau);
            CAPTURE(a);
            const Array lp = dist::RelaxedBernoulli(Tensor::full({m}, a), tau).log_prob(Tensor(x)).value();
            REQUIRE(all_finite(lp));
            double integral = 0.0;
            for (std::size_t i = 0; i < m; ++i) {
                const double xi = x(i);
                const double f = std::exp(double(lp(i))) * xi * (1.0 - xi);
                integral += (i == 0 || i + 1 == m ? 0.5 : 1.0) * f * h;
            }
            auto cdf = [&](double s) { return 1.0 / (1.0 + std::exp(-(tau * s - a))); };
            const double mass = cdf(s_max) - cdf(-s_max);
            CHECK(integral == doctest::Approx(mass).epsilon(2e-4));
            if (tau >= 2.0f) CHECK(integral == doctest::Approx(1.0).epsilon(1e-4));
            // and pointwise against the density formula
            for (std::size_t i = 100; i < m; i += 700)
                CHECK(std::exp(double(lp(i))) ==
                      doctest::Approx(binary_concrete_density(a, double(x(i)), tau)).epsilon(1e-4));
        }
}

TEST_CASE("Concrete: log_prob matches the density formula for K=2 and K=3 at hand-picked points") {
    struct Case {
        std::vector<double> logits, y;
        double tau;
    };
    const std::vector<Case> cases = {
        {{0.2, -0.5}, {0.3, 0.7}, 0.5},
        {{0.2, -0.5}, {0.9, 0.1}, 2.0 / 3.0},
        {{1.0, 0.0, -1.0}, {0.2, 0.5, 0.3}, 2.0 / 3.0},
        {{1.0, 0.0, -1.0}, {0.01, 0.01, 0.98}, 0.5},
        {{0.0, 3.0, 0.5}, {0.6, 0.3, 0.1}, 1.0},
        {{0.0, 3.0, 0.5}, {0.6, 0.3, 0.1}, 2.0},
    };
    for (const Case& c : cases) {
        CAPTURE(c.tau);
        const float lp = dist::RelaxedOneHotCategorical(row(c.logits), float(c.tau)).log_prob(row(c.y)).item();
        CHECK(lp == doctest::Approx(concrete_log_density(c.logits, c.y, c.tau)).epsilon(1e-5));
    }
}

TEST_CASE("Relaxed: the two-class Concrete density equals the binary Concrete density") {
    for (double tau : {0.3, 1.0, 2.5})
        for (double x : {0.05, 0.4, 0.93}) {
            const float two_class =
                dist::RelaxedOneHotCategorical(row({1.3, 0.4}), float(tau)).log_prob(row({x, 1.0 - x})).item();
            const float binary = dist::RelaxedBernoulli(row({0.9}), float(tau)).log_prob(row({x})).item();
            CHECK(two_class == doctest::Approx(binary).epsilon(1e-5));
            CHECK(binary == doctest::Approx(std::log(binary_concrete_density(0.9, x, tau))).epsilon(1e-5));
        }
}

TEST_CASE("Concrete: ExpConcrete matches the direct density where both are finite, and stays finite at tau = 0.05") {
    Generator gen(7);
    const std::vector<double> logits{0.5, -0.2, 1.0, 0.0};
    {
        dist::RelaxedOneHotCategorical d(row(logits), 0.7f);
        const Tensor z = d.rsample_log(&gen);  // [4]
        std::vector<double> y;
        double sum_z = 0.0;
        for (float v : z.value()) y.push_back(std::exp(double(v))), sum_z += v;
        // p_Z(z) = p_Y(exp z) prod_k y_k
        CHECK(d.log_prob_log(z).item() == doctest::Approx(concrete_log_density(logits, y, 0.7) + sum_z).epsilon(1e-5));
    }
    const std::size_t n = 2000;
    Array l = Array::from_shape({n, 4});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < 4; ++k) l(r, k) = float(logits[k]);
    dist::RelaxedOneHotCategorical cold(Tensor(l), 0.05f);
    const Tensor z = cold.rsample_log(&gen);
    REQUIRE(all_finite(z.value()));
    const Array log_density = cold.log_prob_log(z).value();
    CHECK(all_finite(log_density));
    // the simplex form underflows: some entries of exp(z) are exactly 0 in float, off the open
    // simplex, and log_prob refuses them pointing at log_prob_log
    CHECK_THROWS_WITH_AS(cold.log_prob(exp(z)), doctest::Contains("use rsample_log and log_prob_log"),
                         std::invalid_argument);
}

TEST_CASE("Relaxed: rsample_log is the log of rsample, and samples lie on the simplex") {
    Tensor logits = random_tensor({6, 3}, 8, -1.0f, 1.0f, false);
    Generator a(9), b(9);
    dist::RelaxedOneHotCategorical d(logits, 0.6f);
    const Array y = d.rsample(&a).value();
    const Array z = d.rsample_log(&b).value();
    CHECK(xt::allclose(xt::exp(z), y, 1e-4, 1e-6));
    dist::RelaxedBernoulli rb(logits, 0.6f);
    const Array x = rb.rsample(&a).value();
    CHECK(xt::all(x > 0.0f && x < 1.0f));
}

TEST_CASE("Relaxed: gradients of the relaxed log-densities with respect to logits and value") {
    Tensor logits = random_tensor({2, 3}, 10, -1.0f, 1.0f);
    Tensor y(Array{{0.2f, 0.5f, 0.3f}, {0.6f, 0.1f, 0.3f}}, true);
    Tensor z(Array(xt::log(y.value())), true);
    for (float tau : {0.5f, 1.5f}) {
        CAPTURE(tau);
        check_gradients(
            [tau](const std::vector<Tensor>& in) { return dist::RelaxedOneHotCategorical(in[0], tau).log_prob(in[1]); },
            {logits, y}, {1e-3f, 2e-3f, 1e-2f});
        check_gradients(
            [tau](const std::vector<Tensor>& in) {
                return dist::RelaxedOneHotCategorical(in[0], tau).log_prob_log(in[1]);
            },
            {logits, z});
        Tensor x(Array{{0.2f, 0.7f, 0.5f}, {0.9f, 0.05f, 0.4f}}, true);
        check_gradients(
            [tau](const std::vector<Tensor>& in) { return dist::RelaxedBernoulli(in[0], tau).log_prob(in[1]); },
            {logits, x}, {1e-3f, 2e-3f, 1e-2f});
    }
    Tensor noise_free = random_tensor({2, 3}, 11, -1.0f, 1.0f);
    check_gradients(
        [](const std::vector<Tensor>& in) {
            Generator g(12);
            return dist::RelaxedOneHotCategorical(in[0], 0.8f).rsample_log(&g);
        },
        {noise_free});
}

TEST_CASE("Relaxed: bad temperatures, mismatched class axes and null logits are clear errors") {
    CHECK_THROWS_WITH_AS(dist::RelaxedOneHotCategorical(Tensor::zeros({3}), 0.0f),
                         doctest::Contains("RelaxedOneHotCategorical: the temperature"), std::invalid_argument);
    CHECK_THROWS_AS(dist::RelaxedBernoulli(Tensor::zeros({3}), -2.0f), std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Categorical(Tensor::zeros({2, 3})).log_prob(Tensor::zeros({2, 4})),
                         "Categorical::log_prob: value of shape (2, 4) does not end in the 3 classes of logits of "
                         "shape (2, 3)",
                         std::invalid_argument);
    const Tensor null_logits;
    CHECK_THROWS_WITH_AS(dist::Categorical{null_logits}, doctest::Contains("null"), std::invalid_argument);
    CHECK_THROWS_AS(dist::Categorical(Tensor::scalar(1.0f)), std::invalid_argument);
    CHECK_THROWS_WITH_AS(kl_divergence(dist::Categorical(Tensor::zeros({2, 3})), dist::Categorical(Tensor::zeros({4}))),
                         "kl_divergence(Categorical, Categorical): q's logits of shape (4,) does not end in the 3 "
                         "classes of p's logits of shape (2, 3)",
                         std::invalid_argument);
}

TEST_CASE("Categorical: KL to a prior [K] broadcasts over q [B, N, K], with gradients to both (torch's numbers)") {
    Tensor q_logits(Array{{{0.5f, -1.0f, 0.2f, 2.0f}, {0.0f, 0.0f, 1.0f, -3.0f}}}, true);  // [1, 2, 4]
    Tensor prior_logits(Array{0.3f, 0.1f, -0.4f, 0.0f}, true);
    const Array kl = kl_divergence(dist::Categorical(q_logits), dist::Categorical(prior_logits)).value();
    REQUIRE(kl.shape() == Array::shape_type{1, 2});
    CHECK(kl(0, 0) == doctest::Approx(0.506268603636149).epsilon(1e-6));  // torch.distributions, float64
    CHECK(kl(0, 1) == doctest::Approx(0.5381344095663922).epsilon(1e-6));
    // KL to the uniform prior is log K - H(q)
    const dist::Categorical q(random_tensor({3, 5, 4}, 40, -2.0f, 2.0f, false));
    const Array to_uniform = kl_divergence(q, dist::Categorical(Tensor::zeros({4}))).value();
    CHECK(xt::allclose(to_uniform, std::log(4.0f) - q.entropy().value(), 1e-5, 1e-6));
    check_gradients(
        [](const std::vector<Tensor>& in) { return kl_divergence(dist::Categorical(in[0]), dist::Categorical(in[1])); },
        {random_tensor({2, 3, 4}, 41, -2.0f, 2.0f), random_tensor({4}, 42, -2.0f, 2.0f)});
    check_gradients(
        [](const std::vector<Tensor>& in) { return kl_divergence(dist::Categorical(in[1]), dist::Categorical(in[0])); },
        {random_tensor({2, 3, 4}, 43, -2.0f, 2.0f), random_tensor({2, 1, 4}, 44, -2.0f, 2.0f)});
    CHECK_THROWS_WITH_AS(
        kl_divergence(dist::Categorical(Tensor::zeros({2, 3, 4})), dist::Categorical(Tensor::zeros({5, 4}))),
        "kl_divergence(Categorical, Categorical): p's logits of shape (2, 3, 4) and q's logits of shape (5, 4) cannot "
        "be broadcast together",
        std::invalid_argument);
}

TEST_CASE("Categorical: log_prob of class indices equals log_prob of their one-hot, broadcast against the logits") {
    Tensor logits = random_tensor({3, 4}, 45, -2.0f, 2.0f);
    const Indices idx{2, 0, 3};
    const Array by_index = dist::Categorical(logits).log_prob(idx).value();
    const Array log_p = log_softmax(logits).value();
    REQUIRE(by_index.shape() == Array::shape_type{3});
    for (std::size_t r = 0; r < 3; ++r) CHECK(by_index(r) == doctest::Approx(log_p(r, idx(r))));
    CHECK(xt::allclose(by_index, dist::Categorical(logits).log_prob(one_hot(idx, 4)).value()));
    check_gradients([&](const std::vector<Tensor>& in) { return dist::Categorical(in[0]).log_prob(idx); }, {logits});
    // one distribution [K], many values [5] (or one-hot [5, K]), and values [2, 1] against logits [3, K]
    Tensor single = random_tensor({4}, 46, -2.0f, 2.0f);
    const Indices five{0, 1, 2, 3, 1};
    const Array lp = dist::Categorical(single).log_prob(five).value();
    REQUIRE(lp.shape() == Array::shape_type{5});
    CHECK(lp(4) == doctest::Approx(log_softmax(single).value()(1)));
    CHECK(xt::allclose(lp, dist::Categorical(single).log_prob(one_hot(five, 4)).value()));
    check_gradients([&](const std::vector<Tensor>& in) { return dist::Categorical(in[0]).log_prob(five); }, {single});
    Indices column = xt::zeros<std::size_t>({2, 1});
    column(1, 0) = 2;
    CHECK(dist::Categorical(logits).log_prob(column).shape() == Array::shape_type{2, 3});
    CHECK_THROWS_WITH_AS(dist::Categorical(logits).log_prob(Indices{1, 4, 0}),
                         "Categorical::log_prob: class index 4 at flat index 1 is out of range for 4 classes",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Categorical(logits).log_prob(Indices{1, 2}),
                         "Categorical::log_prob: logits of shape (3, 4) and indices (as one-hot) of shape (2, 4) cannot "
                         "be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Categorical(Tensor::zeros({2, 0})), doctest::Contains("K >= 1 classes, got shape (2, 0)"),
                         std::invalid_argument);
    CHECK_THROWS_AS(dist::RelaxedOneHotCategorical(Tensor::zeros({0}), 1.0f), std::invalid_argument);
}

TEST_CASE("Bernoulli: from probabilities, torch's values at p = 0 and 1, sampling u < p, gradients") {
    const Tensor p(Array{0.0f, 0.25f, 1.0f, 0.6f});
    const dist::Bernoulli b = dist::Bernoulli::from_probs(p);
    CHECK(b.probs().value() == p.value());
    // torch.distributions.Bernoulli(probs=p), float32
    const double lp[] = {-1.1920928244535389e-07, -1.3862943649291992, -1.1920928244535389e-07, -0.9162907600402832};
    const double lp_flipped[] = {-15.942384719848633, -0.28768202662467957, -15.942384719848633, -0.510825514793396};
    const double h[] = {1.1920928244535389e-07, 0.5623351335525513, 1.1920928244535389e-07, 0.6730116009712219};
    const double kl[] = {0.8543551564216614, 0.0009265393018722534, 0.12692788243293762, 0.02013552188873291};
    const Tensor v(Array{0.0f, 1.0f, 1.0f, 0.0f});
    const Array got_lp = b.log_prob(v).value(), got_flipped = b.log_prob(1.0f - v).value(), got_h = b.entropy().value();
    const Array got_kl = kl_divergence(b, dist::Bernoulli::from_logits(Tensor(Array{0.3f, -1.0f, 2.0f, 0.0f}))).value();
    for (std::size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(got_lp(i) == doctest::Approx(lp[i]).epsilon(1e-5));
        CHECK(got_flipped(i) == doctest::Approx(lp_flipped[i]).epsilon(1e-5));
        CHECK(got_h(i) == doctest::Approx(h[i]).epsilon(1e-4));
        CHECK(got_kl(i) == doctest::Approx(kl[i]).epsilon(1e-4));
    }
    // dynamic binarization: P(1) = p, exactly 0 and 1 at the ends
    Generator gen(47);
    const std::size_t n = 40000;
    Array probs = Array::from_shape({n, 3});
    for (std::size_t r = 0; r < n; ++r) probs(r, 0) = 0.0f, probs(r, 1) = 0.3f, probs(r, 2) = 1.0f;
    const Array s = dist::Bernoulli::from_probs(Tensor(probs)).sample(&gen).value();
    double ones[3] = {0, 0, 0};
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t c = 0; c < 3; ++c) {
            REQUIRE((s(r, c) == 0.0f || s(r, c) == 1.0f));
            ones[c] += s(r, c);
        }
    CHECK(ones[0] == 0.0);
    CHECK(ones[2] == double(n));
    CHECK(std::abs(ones[1] / n - 0.3) < 4.0 * std::sqrt(0.3 * 0.7 / n));
    Tensor interior = random_tensor({5}, 48, 0.1f, 0.9f), other = random_tensor({5}, 49, 0.1f, 0.9f);
    const Tensor v5(Array{1.0f, 0.0f, 0.0f, 1.0f, 1.0f});
    check_gradients([&](const std::vector<Tensor>& in) { return dist::Bernoulli::from_probs(in[0]).log_prob(v5); },
                    {interior});
    check_gradients([](const std::vector<Tensor>& in) { return dist::Bernoulli::from_probs(in[0]).entropy(); },
                    {interior});
    check_gradients(
        [](const std::vector<Tensor>& in) {
            return kl_divergence(dist::Bernoulli::from_probs(in[0]), dist::Bernoulli::from_probs(in[1]));
        },
        {interior, other});
    CHECK_THROWS_WITH_AS(dist::Bernoulli::from_probs(Tensor(Array{0.5f, 1.5f})),
                         "Bernoulli::from_probs: value 1.5 at flat index 1 is not a probability in [0, 1]",
                         std::invalid_argument);
    CHECK_THROWS_AS(dist::Bernoulli::from_probs(Tensor(Array{std::nanf("")})), std::invalid_argument);
}

TEST_CASE("Bernoulli: log_prob and KL broadcast values and parameters, with gradients") {
    Tensor logits = random_tensor({3}, 50, -2.0f, 2.0f);
    const Tensor values(Array{{1.0f, 0.0f, 1.0f}, {0.0f, 0.0f, 1.0f}});
    const Array lp = dist::Bernoulli::from_logits(logits).log_prob(values).value();
    REQUIRE(lp.shape() == Array::shape_type{2, 3});
    const Array row1 = dist::Bernoulli::from_logits(logits).log_prob(Tensor(Array{0.0f, 0.0f, 1.0f})).value();
    for (std::size_t c = 0; c < 3; ++c) CHECK(lp(1, c) == row1(c));
    check_gradients(
        [&](const std::vector<Tensor>& in) { return dist::Bernoulli::from_logits(in[0]).log_prob(values); }, {logits});
    check_gradients(
        [](const std::vector<Tensor>& in) {
            return kl_divergence(dist::Bernoulli::from_logits(in[0]), dist::Bernoulli::from_logits(in[1]));
        },
        {random_tensor({2, 3}, 51, -2.0f, 2.0f), logits});
    CHECK_THROWS_WITH_AS(dist::Bernoulli::from_logits(logits).log_prob(Tensor::zeros({2})),
                         "Bernoulli::log_prob: logits of shape (3,) and value of shape (2,) cannot be broadcast together",
                         std::invalid_argument);
}

TEST_CASE("Relaxed: LogitRelaxedBernoulli matches torch at tau = 0.1 where composing through sigmoid fails") {
    const Tensor logits(Array{0.5f, -1.2f});
    const dist::LogitRelaxedBernoulli d(logits, 0.1f);
    const Tensor x(Array{{20.0f, -20.0f}, {0.3f, 35.0f}});  // broadcast against logits [2]
    const Array lp = d.log_prob(x).value();
    // torch.distributions.relaxed_bernoulli.LogitRelaxedBernoulli(0.1, logits), float64
    const double expected[2][2] = {{-4.20541164895955, -3.844786424889601}, {-3.7436035162880534, -7.020693421333821}};
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t c = 0; c < 2; ++c) CHECK(lp(r, c) == doctest::Approx(expected[r][c]).epsilon(1e-5));
    // the same density composed as RelaxedBernoulli at sigmoid(x) plus the Jacobian log sigmoid'(x):
    // sigmoid(20) and sigmoid(35) round to 1 in float, off the support (0, 1), and the
    // composition is lost: RelaxedBernoulli refuses them, pointing at LogitRelaxedBernoulli
    const Tensor y = sigmoid(x);
    CHECK_THROWS_WITH_AS(dist::RelaxedBernoulli(logits, 0.1f).log_prob(y), doctest::Contains("use LogitRelaxedBernoulli"),
                         std::invalid_argument);
    const Tensor y10 = sigmoid(Tensor(Array{0.3f}));
    const Array composed =
        (dist::RelaxedBernoulli(logits, 0.1f).log_prob(y10) + log_sigmoid(Tensor(Array{0.3f})) +
         log_sigmoid(Tensor(Array{-0.3f}))).value();
    CHECK(composed(0) == doctest::Approx(expected[1][0]).epsilon(1e-4));
    // gradients of log_prob (logits and value) and of rsample
    for (float tau : {0.1f, 0.7f, 2.0f}) {
        CAPTURE(tau);
        check_gradients(
            [tau](const std::vector<Tensor>& in) { return dist::LogitRelaxedBernoulli(in[0], tau).log_prob(in[1]); },
            {random_tensor({2, 3}, 52, -2.0f, 2.0f), random_tensor({2, 3}, 53, -3.0f, 3.0f)});
        check_gradients(
            [tau](const std::vector<Tensor>& in) {
                Generator g(54);
                return dist::LogitRelaxedBernoulli(in[0], tau).rsample(&g);
            },
            {random_tensor({2, 3}, 55, -2.0f, 2.0f)});
    }
    // sigmoid of its sample is the RelaxedBernoulli sample of the same generator state
    Generator a(56), b(56);
    const Tensor l = random_tensor({4, 20}, 57, -2.0f, 2.0f, false);
    CHECK(xt::allclose(sigmoid(dist::LogitRelaxedBernoulli(l, 0.5f).rsample(&a)).value(),
                       dist::RelaxedBernoulli(l, 0.5f).rsample(&b).value(), 1e-5, 1e-6));
    CHECK_THROWS_AS(dist::LogitRelaxedBernoulli(logits, 0.0f), std::invalid_argument);
    CHECK_THROWS_WITH_AS(d.log_prob(Tensor::zeros({3})),
                         "LogitRelaxedBernoulli::log_prob: logits of shape (2,) and value of shape (3,) cannot be "
                         "broadcast together",
                         std::invalid_argument);
}

TEST_CASE("Relaxed: Concrete log_prob broadcasts one distribution [K] against values [N, K]") {
    Tensor logits = random_tensor({3}, 58, -1.0f, 1.0f);
    Tensor y(Array{{0.2f, 0.5f, 0.3f}, {0.6f, 0.1f, 0.3f}}, true);
    const dist::RelaxedOneHotCategorical d(logits, 0.6f);
    const Array lp = d.log_prob(y).value();
    REQUIRE(lp.shape() == Array::shape_type{2});
    CHECK(lp(1) == doctest::Approx(d.log_prob(Tensor(Array{0.6f, 0.1f, 0.3f})).item()));
    check_gradients([](const std::vector<Tensor>& in) { return dist::RelaxedOneHotCategorical(in[0], 0.6f).log_prob(in[1]); },
                    {logits, y}, {1e-3f, 2e-3f, 1e-2f});
    CHECK_THROWS_WITH_AS(d.log_prob_log(Tensor::zeros({2, 4})),
                         "RelaxedOneHotCategorical::log_prob_log: value of shape (2, 4) does not end in the 3 classes "
                         "of logits of shape (3,)",
                         std::invalid_argument);
}

TEST_CASE("Distributions: values outside the support and NaN are refused, naming the method and the value") {
    const float nan = std::nanf("");
    const dist::Bernoulli b = dist::Bernoulli::from_logits(Tensor::zeros({2}));
    CHECK_THROWS_WITH_AS(b.log_prob(Tensor(Array{0.0f, 2.0f})),
                         "Bernoulli::log_prob: value 2 at flat index 1 is outside the support [0, 1]",
                         std::invalid_argument);
    CHECK_THROWS_AS(b.log_prob(Tensor(Array{-0.5f, 1.0f})), std::invalid_argument);
    CHECK_THROWS_WITH_AS(b.log_prob(Tensor(Array{nan, 1.0f})), doctest::Contains("value nan at flat index 0"),
                         std::invalid_argument);
    CHECK(b.log_prob(Tensor(Array{0.25f, 1.0f})).value()(0) == doctest::Approx(-std::log(2.0)));  // soft targets stay

    const dist::Categorical c(Tensor::zeros({2, 3}));
    CHECK_THROWS_WITH_AS(c.log_prob(Tensor(Array{{0.0f, 1.0f, 0.0f}, {0.0f, 0.5f, 0.5f}})),
                         doctest::Contains("Categorical::log_prob: value 0.5 at flat index 4 is not 0 or 1"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(c.log_prob(Tensor(Array{{0.0f, 1.0f, 1.0f}, {1.0f, 0.0f, 0.0f}})),
                         doctest::Contains("row 0 (flat index 0) is not one-hot"), std::invalid_argument);
    CHECK_THROWS_AS(c.log_prob(Tensor(Array{{0.0f, 0.0f, 0.0f}, {1.0f, 0.0f, 0.0f}})), std::invalid_argument);
    CHECK_THROWS_AS(c.log_prob(Tensor(Array{{0.0f, nan, 0.0f}, {1.0f, 0.0f, 0.0f}})), std::invalid_argument);

    const dist::RelaxedOneHotCategorical r(Tensor::zeros({3}), 0.5f);
    CHECK_THROWS_WITH_AS(r.log_prob(Tensor(Array{0.0f, 0.5f, 0.5f})),
                         doctest::Contains("RelaxedOneHotCategorical::log_prob: value 0 at flat index 0 is outside (0, 1]"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(r.log_prob(Tensor(Array{0.5f, 0.5f, 0.5f})),
                         doctest::Contains("is not a point of the simplex"), std::invalid_argument);
    CHECK_THROWS_AS(r.log_prob(Tensor(Array{nan, 0.5f, 0.5f})), std::invalid_argument);
    CHECK_THROWS_WITH_AS(r.log_prob_log(Tensor(Array{0.5f, -1.0f, -1.0f})),
                         doctest::Contains("RelaxedOneHotCategorical::log_prob_log: value 0.5 at flat index 0"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(r.log_prob_log(Tensor(Array{-1.0f, -1.0f, -1.0f})),
                         doctest::Contains("is not the log of a point of the simplex"), std::invalid_argument);
    CHECK_THROWS_AS(r.log_prob_log(Tensor(Array{-INFINITY, 0.0f, -1.0f})), std::invalid_argument);
    CHECK(std::isfinite(r.log_prob(Tensor(Array{0.2f, 0.3f, 0.5f})).item()));

    const dist::RelaxedBernoulli rb(Tensor::zeros({2}), 0.5f);
    for (float v : {0.0f, 1.0f, 1.5f, nan})
        CHECK_THROWS_WITH_AS(rb.log_prob(Tensor(Array{0.5f, v})),
                             doctest::Contains("RelaxedBernoulli::log_prob: value"), std::invalid_argument);
    const dist::LogitRelaxedBernoulli lrb(Tensor::zeros({2}), 0.5f);
    for (float v : {INFINITY, nan})
        CHECK_THROWS_WITH_AS(lrb.log_prob(Tensor(Array{0.5f, v})),
                             doctest::Contains("at flat index 1 is not a finite real number"), std::invalid_argument);
}

TEST_CASE("Relaxed: a denormal temperature (1 / tau overflows) is refused everywhere a temperature is taken") {
    for (float tau : {1e-45f, 1e-39f, 0.0f, -1.0f, INFINITY, std::nanf("")}) {
        CAPTURE(tau);
        CHECK_THROWS_WITH_AS(dist::RelaxedOneHotCategorical(Tensor::zeros({3}), tau),
                             doctest::Contains("RelaxedOneHotCategorical: the temperature must be"),
                             std::invalid_argument);
        CHECK_THROWS_AS(dist::RelaxedBernoulli(Tensor::zeros({3}), tau), std::invalid_argument);
        CHECK_THROWS_AS(dist::LogitRelaxedBernoulli(Tensor::zeros({3}), tau), std::invalid_argument);
    }
    CHECK_THROWS_WITH_AS(dist::RelaxedBernoulli(Tensor::zeros({3}), 1e-45f),
                         "RelaxedBernoulli: the temperature must be at least FLT_MIN = 1.17549435e-38 (below it 1 / "
                         "1.40129846e-45 overflows), got 1.40129846e-45",
                         std::invalid_argument);
    // the smallest normal float is allowed, and 1 / tau stays finite
    CHECK(dist::RelaxedBernoulli(Tensor::zeros({3}), FLT_MIN).temperature() == FLT_MIN);
    CHECK(std::isfinite(1.0f / FLT_MIN));
}
