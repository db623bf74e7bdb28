// Every estimator of layers/discrete_estimators.hpp against the exact gradient of three small
// models (enumerated by exact_gradient): the mean of many per-draw estimates lies within 4
// standard errors of it for the unbiased ones (and deliberately broken copies fail the same
// check), the biased ones report their bias. Each draw is one row of a batch whose logits are a
// leaf [N, D] holding the same logits in every row, so one backward gives N estimates.
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "layers/discrete_estimators.hpp"
#include "layers/exact_gradient.hpp"
#include "layers/linear.hpp"
#include "optim/adam.hpp"

using namespace tg;

namespace {

struct Summary {
    std::vector<double> mean, se;
};

// Mean and standard error over the rows of per-draw estimates [N, ...].
Summary over_rows(const Array& g) {
    const std::size_t n = g.shape()[0], d = g.size() / n;
    Summary s{std::vector<double>(d, 0.0), std::vector<double>(d, 0.0)};
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < d; ++k) s.mean[k] += g.data()[r * d + k] / double(n);
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < d; ++k) {
            const double e = g.data()[r * d + k] - s.mean[k];
            s.se[k] += e * e / double(n - 1);
        }
    for (double& v : s.se) v = std::sqrt(v / double(n));
    return s;
}

// The largest distance of a component of the mean from the exact value, in standard errors,
// beyond float rounding (an estimator without variance, such as DisARM at phi = 0, is exact up
// to it).
double worst_z(const Summary& s, const std::vector<double>& exact) {
    double z = 0.0;
    for (std::size_t k = 0; k < exact.size(); ++k)
        z = std::max(z, std::max(0.0, std::abs(s.mean[k] - exact[k]) - 1e-6 * (1.0 + std::abs(exact[k]))) / (s.se[k] + 1e-12));
    return z;
}
double worst_bias(const Summary& s, const std::vector<double>& exact) {
    double b = 0.0;
    for (std::size_t k = 0; k < exact.size(); ++k) b = std::max(b, std::abs(s.mean[k] - exact[k]));
    return b;
}

std::vector<double> flat(const Array& a) { return std::vector<double>(a.begin(), a.end()); }

// One draw per row: the estimator maps logits [N, D] to per-row losses [N] whose backward leaves
// each row's estimate in the logits' gradient.
using Run = std::function<Tensor(const Tensor& logits, Generator& gen)>;

Summary estimate(const Array& row, std::size_t n, const Run& run, std::uint64_t seed) {
    Array rows = Array::from_shape({n, row.size()});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < row.size(); ++k) rows(r, k) = row.data()[k];
    const Tensor logits(rows, true);
    Generator gen(seed);
    const Tensor loss = sum(run(logits, gen));
    if (loss.requires_grad()) loss.backward();
    return over_rows(logits.has_grad() ? logits.grad() : Array(xt::zeros<float>(rows.shape())));
}

struct Named {
    std::string name;
    Run run;
};

// The one-evaluation estimators for a loss f of the sample.
std::vector<Named> one_evaluation(Discrete kind, const SampleLoss& f) {
    return {
        {"st", [=](const Tensor& l, Generator& g) { return f(slope_straight_through(l, kind, 1.0f, g)); }},
        {"slope-st a=2", [=](const Tensor& l, Generator& g) { return f(slope_straight_through(l, kind, 2.0f, g)); }},
        {"st-gs tau=1", [=](const Tensor& l, Generator& g) { return f(decoupled_straight_through(l, kind, 0.0f, 1.0f, g)); }},
        {"decoupled tau=0.5/2", [=](const Tensor& l, Generator& g) { return f(decoupled_straight_through(l, kind, 0.5f, 2.0f, g)); }},
        {"gumbel-rao k=10 tau=1", [=](const Tensor& l, Generator& g) { return f(gumbel_rao(l, kind, 10, 1.0f, g)); }},
        {"reinmax tau=1", [=](const Tensor& l, Generator& g) { return f(reinmax(l, kind, 1.0f, g)); }},
        {"darn", [=](const Tensor& l, Generator& g) { return f(darn(l, kind, g)); }},
        {"zgr", [=](const Tensor& l, Generator& g) { return f(zgr(l, kind, g)); }},
    };
}

// The estimators that need f, all unbiased (NVIL without its variance normalization, with a
// baseline that depends on no sample).
std::vector<Named> unbiased(Discrete kind, const SampleLoss& f) {
    std::vector<Named> out = {
        {"rloo m=4", [=](const Tensor& l, Generator& g) { return rloo(l, kind, f, 4, g); }},
        {"muprop", [=](const Tensor& l, Generator& g) { return muprop(l, kind, f, g); }},
        {"rebar eta=1 tau=0.5",
         [=](const Tensor& l, Generator& g) { return rebar(l, kind, f, Tensor::scalar(1.0f), Tensor::scalar(0.5f), g); }},
        {"relax, a fixed network in c", [=](const Tensor& l, Generator& g) {
             const SampleLoss c = [=](const Tensor& z) {
                 return add(mul(f(relax(z, Tensor::scalar(0.5f), kind)), 0.8f), sum(mul(tanh(z), 0.3f), -1));
             };
             return relax_estimator(l, kind, f, c, g);
         }},
        {"nvil", [=](const Tensor& l, Generator& g) {
             nn::Nvil nvil(0.9f, false);
             const Tensor d = discrete_sample(l, kind, g);
             const Tensor baseline = Tensor::full({l.shape()[0]}, 0.3f, true);
             return nvil.surrogate(f(d), discrete_log_prob(l, d, kind), baseline);
         }},
        {"sf", [=](const Tensor& l, Generator& g) {
             const Tensor d = discrete_sample(l, kind, g);
             return score_function_surrogate(f(d), discrete_log_prob(l, d, kind), 0.2f);
         }},
    };
    if (kind.is_bernoulli()) {
        out.push_back({"arm", [=](const Tensor& l, Generator& g) { return arm(l, f, g); }});
        out.push_back({"disarm", [=](const Tensor& l, Generator& g) { return disarm(l, f, g); }});
    }
    return out;
}

// MuProp from the public pieces, as the library writes it, with two ways to break it: a sign
// error in the control variate's slope (its mean term left as it is), and no mean term.
Tensor muprop_copy(const Tensor& logits, Discrete kind, const SampleLoss& f, Generator& gen, float slope_sign,
                   bool mean_term) {
    const Tensor d = discrete_sample(logits, kind, gen);
    const Tensor f_d = f(d), mu = discrete_mean(logits, kind);
    Array f_mu;
    {
        NoGradGuard no_grad;
        f_mu = f(Tensor(mu.value())).value();
    }
    const Array slope = loss_gradient_at(f, mu.value());
    const Array cv = f_mu + slope_sign * xt::sum(slope * (d.value() - mu.value()), {1});
    Tensor g = mul(detach(sub(f_d, Tensor(cv))), discrete_log_prob(logits, d, kind));
    if (mean_term) g = add(g, sum(mul(Tensor(slope), mu), -1));
    return add(f_d, grad_only(g));
}

// DisARM with (-1)^b1 in place of (-1)^b2: the sign of every estimate flipped.
Tensor disarm_wrong_sign(const Tensor& logits, const SampleLoss& f, Generator& gen) {
    return neg(disarm(neg(logits), [&](const Tensor& z) { return f(rsub(1.0f, z)); }, gen));
}

// The toy: one unit, f(b) = (b - t)^2; exact d/dphi = (1 - 2t) sigma (1 - sigma).
SampleLoss toy_loss(float t) {
    return [t](const Tensor& z) { return sum(square(add(z, -t)), -1); };
}

// Two categorical variables of 3 classes: f(z) = (w . z - 0.4)^2 + 5.
SampleLoss categorical_loss() {
    return [](const Tensor& z) {
        const Tensor w(Array{0.1f, -0.3f, 0.8f, 0.5f, 0.2f, -0.6f});
        return add(square(add(sum(mul(z, w), -1), -0.4f)), 5.0f);
    };
}
const Array categorical_logits = Array{0.3f, -0.2f, 0.5f, -0.4f, 0.1f, 0.0f};

constexpr std::size_t draws = 20000;

// The toy at phi = 0.5, t = 0.45, or the categorical model, with its exact gradient.
struct Small {
    explicit Small(Discrete kind)
        : bern(kind.is_bernoulli()), row(bern ? Array{0.5f} : categorical_logits),
          f(bern ? toy_loss(0.45f) : categorical_loss()) {
        const Tensor one({xt::eval(xt::reshape_view(row, {std::size_t(1), row.size()}))}, true);
        exact = flat(exact_gradient(one, kind, f, {one}).gradients[0]);
    }
    bool bern;
    Array row;
    SampleLoss f;
    std::vector<double> exact;
};

}  // namespace

TEST_CASE("exact_gradient: the toy's closed form, the categorical model's, and a refusal past 2^16 states") {
    for (const float t : {0.45f, 0.499f})
        for (const float phi : {-2.0f, 0.0f, 1.5f}) {
            const Tensor logits = Tensor::full({1, 1}, phi, true);
            const ExactGradient e = exact_gradient(logits, Discrete::bernoulli(), toy_loss(t), {logits});
            const double s = 1.0 / (1.0 + std::exp(-double(phi)));
            CHECK(e.states == 2);
            CHECK(e.expectation == doctest::Approx(s * (1 - t) * (1 - t) + (1 - s) * t * t).epsilon(1e-5));
            CHECK(e.gradients[0](0, 0) == doctest::Approx((1 - 2 * t) * s * (1 - s)).epsilon(1e-4));
        }
    // categorical: dE/dtheta_k = p_k (E[f | z = k] - E[f]) per variable, summed here by hand
    const Tensor logits(Array{{0.3f, -0.2f, 0.5f, -0.4f, 0.1f, 0.0f}}, true);
    const ExactGradient e = exact_gradient(logits, Discrete::categorical(3), categorical_loss(), {logits});
    CHECK(e.states == 9);
    const double w[6] = {0.1, -0.3, 0.8, 0.5, 0.2, -0.6};
    double p[6];
    for (int v = 0; v < 2; ++v) {
        double z = 0.0;
        for (int k = 0; k < 3; ++k) z += std::exp(double(logits.value()(0, 3 * v + k)));
        for (int k = 0; k < 3; ++k) p[3 * v + k] = std::exp(double(logits.value()(0, 3 * v + k))) / z;
    }
    double mean = 0.0, given[6] = {};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            const double r = w[i] + w[3 + j] - 0.4, f = r * r + 5.0;
            mean += p[i] * p[3 + j] * f;
            given[i] += p[3 + j] * f;
            given[3 + j] += p[i] * f;
        }
    CHECK(e.expectation == doctest::Approx(mean).epsilon(1e-5));
    for (int k = 0; k < 6; ++k) CHECK(e.gradients[0](0, k) == doctest::Approx(p[k] * (given[k] - mean)).epsilon(1e-3));
    // a parameter's gradient already there is put back
    CHECK_FALSE(logits.has_grad());
    const Tensor big = Tensor::zeros({1, 17}, true);
    CHECK_THROWS_WITH_AS(exact_gradient(big, Discrete::bernoulli(), toy_loss(0.5f), {big}),
                         doctest::Contains("131072 states"), std::invalid_argument);
}

TEST_CASE("Estimators exact: the Bernoulli toy at t = 0.45 and 0.499, every unbiased estimator within 4 SE") {
    std::string report;
    for (const float t : {0.45f, 0.499f})
        for (const float phi : {-2.0f, 0.0f, 1.5f}) {
            const double s = 1.0 / (1.0 + std::exp(-double(phi)));
            const std::vector<double> exact = {(1 - 2 * t) * s * (1 - s)};
            const SampleLoss f = toy_loss(t);
            std::uint64_t seed = 100;
            for (const Named& e : unbiased(Discrete::bernoulli(), f)) {
                CAPTURE(e.name);
                CAPTURE(t);
                CAPTURE(phi);
                const Summary m = estimate(Array{phi}, draws, e.run, ++seed);
                CHECK(worst_z(m, exact) < 4.0);
            }
            // DARN and ZGR are exact for a quadratic f, the others report their bias
            for (const Named& e : one_evaluation(Discrete::bernoulli(), f)) {
                const Summary m = estimate(Array{phi}, draws, e.run, ++seed);
                if (e.name == "darn" || e.name == "zgr") {
                    CAPTURE(e.name);
                    CHECK(worst_z(m, exact) < 4.0);
                }
                char line[160];
                std::snprintf(line, sizeof line, "t=%.3f phi=%+.1f %-22s exact %+.5f mean %+.5f (se %.5f)\n", t, phi,
                              e.name.c_str(), exact[0], m.mean[0], m.se[0]);
                report += line;
            }
        }
    MESSAGE("biased estimators on the toy:\n" << report);
}

TEST_CASE("Estimators exact: broken copies of MuProp and DisARM fail the same check") {
    const float t = 0.45f, phi = 0.0f;
    const double s = 0.5;
    const std::vector<double> exact = {(1 - 2 * t) * s * (1 - s)};
    const SampleLoss f = toy_loss(t);
    const Discrete bern = Discrete::bernoulli();
    auto z_of = [&](const Run& run) { return worst_z(estimate(Array{phi}, draws, run, 7), exact); };
    // the copy is the library's MuProp: the same estimates from the same draws
    const Summary lib = estimate(Array{phi}, draws, [&](const Tensor& l, Generator& g) { return muprop(l, bern, f, g); }, 7);
    const Summary copy = estimate(Array{phi}, draws, [&](const Tensor& l, Generator& g) { return muprop_copy(l, bern, f, g, 1.0f, true); }, 7);
    CHECK(copy.mean[0] == doctest::Approx(lib.mean[0]).epsilon(1e-5));
    CHECK(z_of([&](const Tensor& l, Generator& g) { return muprop_copy(l, bern, f, g, 1.0f, true); }) < 4.0);
    CHECK(z_of([&](const Tensor& l, Generator& g) { return muprop_copy(l, bern, f, g, -1.0f, true); }) > 4.0);
    CHECK(z_of([&](const Tensor& l, Generator& g) { return muprop_copy(l, bern, f, g, 1.0f, false); }) > 4.0);
    CHECK(z_of([&](const Tensor& l, Generator& g) { return disarm_wrong_sign(l, f, g); }) > 4.0);
}

TEST_CASE("Estimators exact: two categorical variables of 3 classes") {
    const Discrete kind = Discrete::categorical(3);
    const SampleLoss f = categorical_loss();
    const Tensor one({xt::eval(xt::reshape_view(categorical_logits, {1, 6}))}, true);
    const std::vector<double> exact = flat(exact_gradient(one, kind, f, {one}).gradients[0]);
    std::uint64_t seed = 300;
    for (const Named& e : unbiased(kind, f)) {
        CAPTURE(e.name);
        CHECK(worst_z(estimate(categorical_logits, draws, e.run, ++seed), exact) < 4.0);
    }
    CHECK(worst_z(estimate(categorical_logits, draws, [&](const Tensor& l, Generator& g) {
                      return muprop_copy(l, kind, f, g, 1.0f, false);
                  }, ++seed), exact) > 4.0);
    std::string report;
    for (const Named& e : one_evaluation(kind, f)) {
        const Summary m = estimate(categorical_logits, draws, e.run, ++seed);
        if (e.name == "zgr") {  // exact for a quadratic f
            CAPTURE(e.name);
            CHECK(worst_z(m, exact) < 4.0);
        }
        char line[160];
        std::snprintf(line, sizeof line, "%-22s largest bias %.5f (%.1f SE)\n", e.name.c_str(), worst_bias(m, exact),
                      worst_z(m, exact));
        report += line;
    }
    MESSAGE("estimators on two categorical variables of 3 classes:\n" << report);
}

TEST_CASE("Estimators exact: the relaxed estimators' bias falls with the temperature") {
    for (const Discrete kind : {Discrete::bernoulli(), Discrete::categorical(3)}) {
        const Small m(kind);
        // the toy's bias rises from tau = 2 to 0.5 before it falls
        const std::vector<float> taus = m.bern ? std::vector<float>{0.5f, 0.2f, 0.1f, 0.05f} : std::vector<float>{2.0f, 1.0f, 0.5f, 0.2f};
        std::vector<double> bias;
        for (const float tau : taus) {
            const Summary s = estimate(m.row, 2 * draws, [&](const Tensor& l, Generator& g) {
                return m.f(relaxed_sample(l, g.uniform_open(l.shape()), Tensor::scalar(tau), kind));
            }, 11);
            bias.push_back(worst_bias(s, m.exact));
        }
        const std::string name = kind.name();
        CAPTURE(name);
        MESSAGE(name << " gs bias at tau " << taus[0] << ", " << taus[1] << ", " << taus[2] << ", " << taus[3] << ": "
                     << bias[0] << " " << bias[1] << " " << bias[2] << " " << bias[3]);
        for (std::size_t i = 1; i < bias.size(); ++i) CHECK(bias[i] < bias[i - 1]);
    }
}

namespace {

// A two-layer sigmoid belief net of 3 + 3 units: b1 ~ q(theta1), b2 ~ q(W b1 + c), f(b1, b2) =
// sum (b2 - t)^2 + a . b1. The parameters come per row ([N, ...]) so each row is one draw.
struct Sbn {
    Tensor theta1, w, c;  // [N, 3], [N, 3, 3], [N, 3]
    explicit Sbn(std::size_t n) {
        const Array t1 = {0.4f, -0.8f, 1.1f};
        const Array w0 = {{0.5f, -1.0f, 0.3f}, {1.2f, 0.2f, -0.7f}, {-0.4f, 0.9f, 0.6f}};
        const Array c0 = {0.1f, -0.3f, 0.2f};
        theta1 = Tensor(xt::eval(xt::zeros<float>({n, std::size_t(3)}) + t1), true);
        w = Tensor(xt::eval(xt::zeros<float>({n, std::size_t(3), std::size_t(3)}) + w0), true);
        c = Tensor(xt::eval(xt::zeros<float>({n, std::size_t(3)}) + c0), true);
    }
    static Tensor logits2(const Tensor& w, const Tensor& c, const Tensor& b1) {
        return add(sum(mul(w, reshape(b1, {-1, 1, 3})), -1), c);
    }
    static Tensor loss(const Tensor& b1, const Tensor& b2) {
        const Tensor t(Array{0.2f, 0.7f, 0.45f}), a(Array{0.3f, -0.5f, 0.1f});
        return add(sum(square(sub(b2, t)), -1), sum(mul(b1, a), -1));
    }
    // The per-row estimates [N, 15]: theta1, W, c.
    Array gradients() const {
        const std::size_t n = theta1.shape()[0];
        auto g = [](const Tensor& p) { return Tensor(p.has_grad() ? p.grad() : Array(xt::zeros<float>(p.shape()))); };
        return concat({g(theta1), reshape(g(w), {n, std::size_t(9)}), g(c)}, 1).value();
    }
};

std::vector<double> sbn_exact() {
    Sbn one(1);
    const ExactGradient e = exact_gradient(
        std::vector<std::size_t>(6, 2),
        [&](const std::vector<std::size_t>& s) {
            const Tensor b1(Array{{float(s[0]), float(s[1]), float(s[2])}}), b2(Array{{float(s[3]), float(s[4]), float(s[5])}});
            const Tensor log_q = add(discrete_log_prob(one.theta1, b1, Discrete::bernoulli()),
                                     discrete_log_prob(Sbn::logits2(one.w, one.c, b1), b2, Discrete::bernoulli()));
            return StateTerms{sum(log_q), sum(Sbn::loss(b1, b2))};
        },
        {one.theta1, one.w, one.c});
    CHECK(e.states == 64);
    std::vector<double> g = flat(e.gradients[0]);
    for (std::size_t i = 1; i < 3; ++i)
        for (float v : e.gradients[i]) g.push_back(v);
    return g;
}

// One-evaluation estimator on both layers: per-row estimates.
Summary sbn_one_evaluation(const std::function<Tensor(const Tensor&, Generator&)>& sample, std::uint64_t seed) {
    Sbn m(draws);
    Generator gen(seed);
    const Tensor b1 = sample(m.theta1, gen);
    const Tensor b2 = sample(Sbn::logits2(m.w, m.c, b1), gen);
    sum(Sbn::loss(b1, b2)).backward();
    return over_rows(m.gradients());
}

// RLOO over k chains per row; with drop_second, the log q of the second layer is left out (broken).
Summary sbn_rloo(std::size_t k, bool drop_second, std::uint64_t seed) {
    Sbn m(draws);
    Generator gen(seed);
    const Discrete bern = Discrete::bernoulli();
    const Tensor l1 = concat(std::vector<Tensor>(k, m.theta1), 0);
    const Tensor b1 = discrete_sample(l1, bern, gen);
    const Tensor l2 = Sbn::logits2(concat(std::vector<Tensor>(k, m.w), 0), concat(std::vector<Tensor>(k, m.c), 0), b1);
    const Tensor b2 = discrete_sample(l2, bern, gen);
    Tensor log_q = discrete_log_prob(l1, b1, bern);
    if (!drop_second) log_q = add(log_q, discrete_log_prob(l2, b2, bern));
    sum(rloo_surrogate(reshape(Sbn::loss(b1, b2), {k, draws}), reshape(log_q, {k, draws}))).backward();
    return over_rows(m.gradients());
}

}  // namespace

TEST_CASE("Estimators exact: a two-layer sigmoid belief net of 3 + 3 units") {
    const std::vector<double> exact = sbn_exact();
    CHECK(worst_z(sbn_rloo(4, false, 21), exact) < 4.0);
    CHECK(worst_z(sbn_rloo(4, true, 21), exact) > 4.0);  // the missing log q term of layer 2
    const Discrete bern = Discrete::bernoulli();
    std::string report;
    const std::vector<std::pair<std::string, std::function<Tensor(const Tensor&, Generator&)>>> samplers = {
        {"st", [&](const Tensor& l, Generator& g) { return slope_straight_through(l, bern, 1.0f, g); }},
        {"gumbel-rao k=10 tau=1", [&](const Tensor& l, Generator& g) { return gumbel_rao(l, bern, 10, 1.0f, g); }},
        {"reinmax tau=1", [&](const Tensor& l, Generator& g) { return reinmax(l, bern, 1.0f, g); }},
        {"darn", [&](const Tensor& l, Generator& g) { return darn(l, bern, g); }},
        {"zgr", [&](const Tensor& l, Generator& g) { return zgr(l, bern, g); }},
    };
    std::uint64_t seed = 40;
    for (const auto& [name, sample] : samplers) {
        const Summary m = sbn_one_evaluation(sample, ++seed);
        char line[160];
        std::snprintf(line, sizeof line, "%-22s largest bias %.5f (%.1f SE)\n", name.c_str(), worst_bias(m, exact),
                      worst_z(m, exact));
        report += line;
    }
    MESSAGE("one-evaluation estimators on the 3 + 3 SBN:\n" << report);
}

TEST_CASE("Estimators: the primitives' values and gradients") {
    Generator gen(5);
    const Tensor logits = tgtest::random_tensor({4, 6}, 3, -2.0f, 2.0f);
    const Array u = gen.uniform_open({4, 6}), v = gen.uniform_open({4, 6});
    // the samples from uniforms are the library samplers' (same uniforms, same values)
    const Tensor fused = binary_concrete_from_uniforms(logits, u, BinaryConcreteOptions().hard(true));
    CHECK(bernoulli_from_uniforms(logits, u).value() == fused.value());
    const Tensor fused_cat = gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions().hard(true).classes(3));
    CHECK(categorical_from_uniforms(logits, u, 3).value() == fused_cat.value());
    const Tensor relaxed = relaxed_sample(logits, u, Tensor::scalar(0.7f), Discrete::categorical(3));
    CHECK(xt::allclose(relaxed.value(), gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions().tau(0.7f).classes(3)).value(), 1e-5, 1e-6));
    // the conditional noise lands where the sample says: argmax at the one-hot, sign at b
    const Tensor d = categorical_from_uniforms(logits, u, 3);
    const Tensor z = conditional_gumbel(logits, d, xt::eval(-xt::log(v)), 3);
    const Tensor one_hot_of_z = reshape(one_hot(argmax(reshape(z, {4, 2, 3}), -1), 3), {4, 6});
    CHECK(one_hot_of_z.value() == d.value());
    const Tensor b = bernoulli_from_uniforms(logits, u);
    const Tensor zb = conditional_logistic(logits, b, v);
    CHECK(xt::cast<float>(zb.value() > 0.0f) == b.value());
    // differentiable in the logits and in the temperature
    tgtest::check_gradients([&](const std::vector<Tensor>& in) { return conditional_gumbel(in[0], d, xt::eval(-xt::log(v)), 3); }, {logits});
    tgtest::check_gradients([&](const std::vector<Tensor>& in) { return conditional_logistic(in[0], b, v); }, {logits});
    const Tensor tau = Tensor::scalar(0.8f, true);
    tgtest::check_gradients([&](const std::vector<Tensor>& in) { return relaxed_sample(in[0], u, in[1], Discrete::categorical(3)); }, {logits, tau});
    tgtest::check_gradients([&](const std::vector<Tensor>& in) { return relaxed_sample(in[0], u, in[1], Discrete::bernoulli()); }, {logits, tau});
    tgtest::check_gradients([&](const std::vector<Tensor>& in) { return discrete_log_prob(in[0], d, Discrete::categorical(3)); }, {logits});
    // bad input names the op and the value
    CHECK_THROWS_WITH_AS(bernoulli_from_uniforms(logits, xt::zeros<float>({4, 6})), doctest::Contains("bernoulli_from_uniforms"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(categorical_from_uniforms(logits, u, 4), doctest::Contains("whole variables of 4 classes"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(reinmax(logits, Discrete::bernoulli(), 0.5f, gen), doctest::Contains(">= 1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_rao(logits, Discrete::bernoulli(), 0, 1.0f, gen), doctest::Contains("at least one"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(Discrete::categorical(1), doctest::Contains("at least 2 classes"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(rloo_surrogate(Tensor::zeros({1, 3}), Tensor::zeros({1, 3})), doctest::Contains("m >= 2"), std::invalid_argument);
}

TEST_CASE("Estimators by name: every estimator that claims to be unbiased is, on the toy and the categorical model") {
    for (const Discrete kind : {Discrete::bernoulli(), Discrete::categorical(3)}) {
        const Small m(kind);
        std::uint64_t seed = 500;
        for (const std::string& name : estimators::names_for(kind)) {
            estimators::Estimator est(name);
            CAPTURE(name);
            Generator init(3);
            est.make_control_variate(kind, m.row.size(), &init);  // rebar-tuned's and relax's, untrained
            const double z = worst_z(estimate(m.row, draws, [&](const Tensor& l, Generator& g) {
                return est.surrogate(l, kind, m.f, g, 3);
            }, ++seed), m.exact);
            if (est.info().unbiased && name != "vimco") CHECK(z < 4.0);  // vimco's objective is the next test's
        }
    }
    CHECK(estimators::names_for(Discrete::categorical(3)).size() + 2 == estimators::names_for(Discrete::bernoulli()).size());
    CHECK_THROWS_WITH_AS(estimators::Estimator("reinmx"), doctest::Contains("gs, st-gs, st"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(estimators::Estimator("arm").require(Discrete::categorical(3)),
                         doctest::Contains("does not apply to categorical"), std::invalid_argument);
    Generator gen(1);
    CHECK_THROWS_WITH_AS(estimators::Estimator("rloo").sample(Tensor::zeros({2, 3}), Discrete::bernoulli(), gen),
                         doctest::Contains("needs the loss"), std::invalid_argument);
    const SampleLoss f = toy_loss(0.45f);
    estimators::Estimator relax("relax");
    CHECK_THROWS_WITH_AS(relax.surrogate(Tensor::zeros({2, 1}, true), Discrete::bernoulli(), f, gen),
                         doctest::Contains("make_control_variate"), std::invalid_argument);
    CHECK(relax.make_control_variate(Discrete::bernoulli(), 1)->parameters().size() == 6);
    CHECK_THROWS_WITH_AS(relax.surrogate(Tensor::zeros({2, 3}, true), Discrete::categorical(3), f, gen),
                         doctest::Contains("made for bernoulli"), std::invalid_argument);
    CHECK(estimators::Estimator("rebar-tuned").make_control_variate(Discrete::bernoulli(), 1)->parameters().size() == 2);
    CHECK(estimators::Estimator("rebar").make_control_variate(Discrete::bernoulli(), 1) == nullptr);
}

TEST_CASE("Estimators exact: VIMCO against the exact gradient of the 3-sample bound -log mean exp(-f)") {
    constexpr std::size_t m = 3;
    for (const Discrete kind : {Discrete::bernoulli(), Discrete::categorical(3)}) {
        const Small model(kind);
        const bool bern = model.bern;
        const Array& row = model.row;
        const SampleLoss& f = model.f;
        const std::size_t width = row.size(), per = bern ? 1 : 3, vars = width / per;
        const Tensor one({xt::eval(xt::reshape_view(row, {std::size_t(1), width}))}, true);
        // the m samples' variables side by side: state[s * vars + v] is variable v of sample s
        const ExactGradient e = exact_gradient(
            std::vector<std::size_t>(m * vars, kind.values()),
            [&](const std::vector<std::size_t>& state) {
                Array z = xt::zeros<float>({m, width});
                for (std::size_t i = 0; i < state.size(); ++i)
                    z.data()[(i / vars) * width + (bern ? i % vars : (i % vars) * per + state[i])] = bern ? float(state[i]) : 1.0f;
                const Tensor zt(z), logits = add(one, Tensor::zeros({m, width}));
                return StateTerms{sum(discrete_log_prob(logits, zt, kind)), neg(log_mean_exp(neg(f(zt)), 0))};
            },
            {one});
        const std::vector<double> exact = flat(e.gradients[0]);
        const std::string name = kind.name();
        CAPTURE(name);
        CHECK(worst_z(estimate(row, draws, [&](const Tensor& l, Generator& g) { return vimco(l, kind, f, m, g); }, 61), exact) < 4.0);
        // the bound of the samples alone, without VIMCO's score term, misses the gradient
        CHECK(worst_z(estimate(row, draws, [&](const Tensor& l, Generator& g) {
            const Tensor all = concat(std::vector<Tensor>(m, l), 0);
            const Tensor z = discrete_sample(all, kind, g);
            return neg(log_mean_exp(neg(reshape(f(z), {m, l.shape()[0]})), 0));
        }, 62), exact) > 4.0);
    }
}

namespace {

// RELAX on Bernoulli units from the public pieces; `broken` leaves out the -grad c(z~) term.
ControlledEstimate relax_copy(const Tensor& logits, const SampleLoss& f, const SampleLoss& c, Generator& gen, bool broken) {
    const Array u = gen.uniform_open(logits.shape()), v = gen.uniform_open(logits.shape());
    const Tensor z = add(logits, Tensor(xt::eval(xt::log(u) - xt::log(1.0f - u))));
    const Tensor d = bernoulli_from_uniforms(logits, u);
    const Tensor z_tilde = conditional_logistic(logits, d, v);
    const GradOptions keep = GradOptions().retain_graph(true).create_graph(true);
    const Tensor score = grad({sum(discrete_log_prob(logits, d, Discrete::bernoulli()))}, {logits}, {}, keep)[0];
    const Tensor c_zt = c(z_tilde);
    const Tensor slope = grad({sum(broken ? c(z) : sub(c(z), c_zt))}, {logits}, {}, keep)[0];
    const Tensor value = f(d);
    return {value, add(mul(reshape(sub(value, c_zt), Shape{logits.shape()[0], 1}), score), slope)};
}

using Controlled = std::function<ControlledEstimate(const Tensor& logits, Generator& gen)>;

Summary controlled_estimates(float phi, std::size_t n, const Controlled& run, std::uint64_t seed) {
    Tape tape;
    TapeScope scope(tape);
    const Tensor logits = Tensor::full({n, 1}, phi, true);
    Generator gen(seed);
    return over_rows(run(logits, gen).gradient.value());
}

// Adam on the control variate's parameters, descending the batch mean of the single-sample g^2.
void tune(nn::ControlVariate& cv, float phi, const SampleLoss& f, std::size_t steps) {
    optim::AdamOptions o;
    o.lr = 0.03f;
    optim::Adam adam(cv.parameters(), o);
    Generator gen(7);
    for (std::size_t s = 0; s < steps; ++s) {
        Tape tape;
        TapeScope scope(tape);
        cv.variance_backward(cv.estimate(Tensor::full({64, 1}, phi, true), f, gen));
        adam.step();
    }
}

}  // namespace

TEST_CASE("Estimators exact: REBAR and RELAX tuned by the gradient of their variance stay unbiased, with less variance") {
    const float phi = 0.3f;
    const Discrete kind = Discrete::bernoulli();
    for (const float t : {0.45f, 0.499f})
        for (const bool network : {false, true}) {
            const SampleLoss f = toy_loss(t);
            const Tensor one = Tensor::full({1, 1}, phi, true);
            const std::vector<double> exact = flat(exact_gradient(one, kind, f, {one}).gradients[0]);
            Generator init(3);
            nn::ControlVariate cv(kind, 1, network ? 10 : 0, 1.0f, 0.5f, &init);  // 10 tanh units: duvenaud/relax's toy
            const SampleLoss c = cv.of(f);
            const Controlled run = [&](const Tensor& l, Generator& g) { return cv.estimate(l, f, g); };
            const Summary before = controlled_estimates(phi, draws, run, 11);
            // leaving out -grad c(z~) shows (on the untuned c, which tuning may shrink for REBAR)
            const Summary broken = controlled_estimates(phi, 8 * draws, [&](const Tensor& l, Generator& g) {
                return relax_copy(l, f, c, g, true);
            }, 11);
            CHECK(worst_z(broken, exact) > 4.0);
            tune(cv, phi, f, 60);
            const Summary after = controlled_estimates(phi, draws, run, 12);
            const std::string what = std::string(network ? "relax" : "rebar") + " t = " + std::to_string(t) + ": se " +
                                     std::to_string(before.se[0]) + " -> " + std::to_string(after.se[0]) + ", eta " +
                                     std::to_string(cv.eta()) + ", tau " + std::to_string(cv.tau());
            INFO(what);
            MESSAGE(what);
            CHECK(worst_z(before, exact) < 4.0);
            CHECK(worst_z(after, exact) < 4.0);
            CHECK(after.se[0] < before.se[0]);
            // the library's estimate is the public pieces' own
            const Summary copy = controlled_estimates(phi, draws, [&](const Tensor& l, Generator& g) {
                return relax_copy(l, f, c, g, false);
            }, 12);
            CHECK(copy.mean[0] == doctest::Approx(after.mean[0]).epsilon(1e-4));
        }
}

TEST_CASE("Estimators: the gradient of REBAR's and RELAX's single-sample variance matches finite differences") {
    // gradcheck evaluates under NoGradGuard, where no estimate of a gradient can be made: by hand.
    // A tape of its own: the estimates keep their graphs (retain_graph) until it ends.
    Tape tape;
    TapeScope scope(tape);
    const SampleLoss f = toy_loss(0.45f);
    const Tensor eta = Tensor::scalar(0.8f, true), log_tau = Tensor::scalar(std::log(0.7f), true);
    const Tensor w(Array{{0.3f, -0.2f, 0.5f}}, true);  // r(z) = sum(tanh(z w))
    // logits outlives the grad below: tg::grad puts back the gradients of the leaves it met, and
    // (as of ca8ece1) a leaf whose last owner was a node freed by that pass is used after its end
    const Tensor logits = Tensor::full({4, 1}, 0.3f, true);
    for (const bool network : {false, true}) {
        const auto variance = [&] {
            Generator gen(5);
            const SampleLoss c = [&](const Tensor& z) {
                const Tensor v = mul(eta, f(relax(z, exp(log_tau), Discrete::bernoulli())));
                return network ? add(v, sum(tanh(matmul(z, w)), -1)) : v;
            };
            const ControlledEstimate e = network ? relax_gradient(logits, Discrete::bernoulli(), f, c, gen)
                                                 : rebar_gradient(logits, Discrete::bernoulli(), f, eta, exp(log_tau), gen);
            return sum(square(e.gradient));
        };
        const std::vector<Tensor> params = network ? std::vector<Tensor>{eta, log_tau, w} : std::vector<Tensor>{eta, log_tau};
        const std::vector<Tensor> analytic = grad({variance()}, params);
        for (std::size_t i = 0; i < params.size(); ++i)
            for (std::size_t k = 0; k < params[i].size(); ++k) {
                Tensor p = params[i];
                const float h = 1e-2f, x = p.value().data()[k];
                p.value().data()[k] = x + h;
                const double up = variance().item();
                p.value().data()[k] = x - h;
                const double down = variance().item();
                p.value().data()[k] = x;
                INFO((network ? "relax" : "rebar") << ", parameter " << i << " element " << k);
                CHECK(analytic[i].value().data()[k] == doctest::Approx((up - down) / (2 * h)).epsilon(2e-2).scale(1e-3));
            }
    }
    Generator gen(1);
    NoGradGuard no_grad;
    CHECK_THROWS_WITH_AS(rebar_gradient(logits, Discrete::bernoulli(), f, eta, exp(log_tau), gen),
                         doctest::Contains("NoGradGuard"), std::invalid_argument);
}

TEST_CASE("Estimators exact: NVIL's input-dependent baseline network cuts the variance and stays unbiased") {
    // Each row's loss is the toy's plus an offset set by its input (one of four): a baseline of
    // the input can take the offset out of the signal, a running mean cannot.
    const Discrete kind = Discrete::bernoulli();
    const Array row{0.3f, -0.5f};
    const Tensor one(Array{{0.3f, -0.5f}}, true);
    const std::vector<double> exact = flat(exact_gradient(one, kind, toy_loss(0.45f), {one}).gradients[0]);
    struct Batch {
        Tensor input;  // one-hot of the row's case [n, 4]
        SampleLoss f;
    };
    const auto batch = [](std::size_t n) {
        Array input = xt::zeros<float>({n, std::size_t(4)}), offset = Array::from_shape({n});
        for (std::size_t r = 0; r < n; ++r) input(r, r % 4) = 1.0f, offset(r) = 10.0f * float(r % 4);
        const Tensor off(offset);
        return Batch{Tensor(input), [off](const Tensor& z) { return add(sum(square(add(z, -0.45f)), -1), off); }};
    };
    Summary with_baseline, without;
    for (const bool learned : {true, false}) {
        estimators::Estimator est("nvil");
        Generator init(4), gen(5);
        if (learned) est.use_baseline(std::make_shared<nn::Linear>(4, 1, nn::LinearOptions{true, &init}));
        // 300 steps of 64 rows: the running statistics settle and the baseline learns the offsets
        std::unique_ptr<optim::Adam> adam;
        if (learned) adam = std::make_unique<optim::Adam>(est.baseline()->parameters(), optim::AdamOptions{0.1f});
        const Batch train = batch(64);
        for (int s = 0; s < 300; ++s) {
            const Tensor logits = Tensor::full({64, 2}, 0.0f, true);
            sum(est.surrogate(logits, kind, train.f, gen, 2, train.input)).backward();
            if (adam) adam->step(), adam->zero_grad();
        }
        // the estimate is the gradient divided by the scale of the earlier batches' signal
        const double scale = est.nvil().scale();
        const Batch b = batch(draws);
        Summary s = estimate(row, draws, [&](const Tensor& l, Generator& g) { return est.surrogate(l, kind, b.f, g, 2, b.input); }, 31);
        for (std::size_t k = 0; k < s.mean.size(); ++k) s.mean[k] *= scale, s.se[k] *= scale;
        CAPTURE(learned);
        CHECK(worst_z(s, exact) < 4.0);
        (learned ? with_baseline : without) = s;
    }
    MESSAGE("nvil se with the baseline network " << with_baseline.se[0] << ", without " << without.se[0]);
    CHECK(with_baseline.se[0] * 5.0 < without.se[0]);
    CHECK(with_baseline.se[1] * 5.0 < without.se[1]);
    // a network that does not give one value per example is refused with the shapes
    estimators::Estimator bad("nvil");
    bad.use_baseline(std::make_shared<nn::Linear>(4, 2));
    Generator gen(1);
    const Batch b = batch(8);
    CHECK_THROWS_WITH_AS(bad.surrogate(Tensor::zeros({8, 2}, true), kind, b.f, gen, 2, b.input),
                         doctest::Contains("one value per example"), std::invalid_argument);
}

TEST_CASE("Estimators: nn::ControlVariate without a network is REBAR, and refuses what it cannot use") {
    Tape tape;
    TapeScope scope(tape);
    const Discrete kind = Discrete::bernoulli();
    const SampleLoss f = toy_loss(0.45f);
    nn::ControlVariate cv(kind, 3, 0, 0.7f, 0.4f);
    CHECK(cv.parameters().size() == 2);
    const Tensor logits = Tensor::full({5, 3}, 0.2f, true);
    Generator a(9), b(9);
    const Array mine = cv.estimate(logits, f, a).gradient.value();
    const Array rebar = rebar_gradient(logits, kind, f, Tensor::scalar(0.7f), Tensor::scalar(0.4f), b).gradient.value();
    CHECK(xt::allclose(mine, rebar, 1e-5, 1e-6));
    CHECK(nn::ControlVariate(kind, 3, 10).parameters().size() == 6);
    CHECK_THROWS_WITH_AS(nn::ControlVariate(kind, 0), doctest::Contains("number of units"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(nn::ControlVariate(kind, 3, 0, 1.0f, 0.0f), doctest::Contains("tau"), std::invalid_argument);
    nn::ControlVariate wide(kind, 4, 10);
    Generator g(1);
    CHECK_THROWS_WITH_AS(wide.estimate(logits, f, g), doctest::Contains("[B, 4]"), std::invalid_argument);
}

TEST_CASE("Estimators: nn::ControlVariate::surrogate's backward is the estimate, f's gradient at D and the variance gradient") {
    Tape tape;
    TapeScope scope(tape);
    const Discrete kind = Discrete::bernoulli();
    Generator init(4);
    nn::ControlVariate cv(kind, 3, 4, 0.8f, 0.6f, &init);
    const Tensor w = Tensor(Array{0.3f, -0.2f, 0.7f}, true);
    const SampleLoss f = [&](const Tensor& z) { return sum(square(sub(z, w)), 1); };  // f with a parameter of its own
    const Tensor logits = Tensor(Array{{0.2f, -1.0f, 0.5f}, {1.5f, 0.1f, -0.4f}, {0.0f, 0.9f, -2.0f}}, true);
    const std::vector<Tensor> params = cv.parameters();
    Generator a(9), b(9);
    // the parts as ControlledEstimate's comment has a model take them
    const ControlledEstimate e = cv.estimate(logits, f, a);
    const Array estimate = e.gradient.value(), value = e.value.value();
    const Array f_grad = grad({mean(e.value)}, {w}, {}, GradOptions().retain_graph(true))[0].value();
    cv.variance_backward(e);
    std::vector<Array> variance;
    for (const Tensor& p : params) variance.push_back(p.grad());
    for (Tensor p : params) p.zero_grad();
    // the same draw as one surrogate, averaged over the batch
    const Tensor s = cv.surrogate(logits, f, b);
    CHECK(s.value() == value);
    mean(s).backward();
    CHECK(xt::allclose(logits.grad(), estimate / 3.0f, 1e-5, 1e-6));
    CHECK(xt::allclose(w.grad(), f_grad, 1e-5, 1e-6));
    for (std::size_t i = 0; i < params.size(); ++i) {
        CAPTURE(i);
        CHECK(xt::allclose(params[i].grad(), variance[i], 1e-4, 1e-6));
    }
    CHECK(xt::any(xt::abs(variance[0]) > 0.0f));  // eta's: not trivially zero
}

TEST_CASE("Estimators exact: categorical DARN is Shekhovtsov's (D - pi) <g, D - pi>, not the uniform-mean first-order term") {
    // The ReinMax authors' experiment code (LiyuanLucasLiu/ReinMax, reinmax_mean_baseline) has no
    // DARN; its first-order half is (D - pi)(g_D - mean_j g_j). Averaged with ST, as ZGR, only the
    // pi-weighted form is exact for a quadratic f.
    const Discrete kind = Discrete::categorical(3);
    const SampleLoss f = categorical_loss();
    const Array row{1.0f, 0.0f, -1.0f, -1.0f, 0.0f, 1.0f};  // pi far from uniform: the terms differ
    const Tensor one({xt::eval(xt::reshape_view(row, {1, 6}))}, true);
    const std::vector<double> exact = flat(exact_gradient(one, kind, f, {one}).gradients[0]);
    const auto uniform_mean_zgr = [&](const Tensor& l, Generator& g) {
        const Tensor d = discrete_sample(l, kind, g);
        const Shape grouped{l.shape()[0], 2, 3};
        const Tensor log_q = sum(mul(reshape(d, grouped), log_softmax(reshape(l, grouped), -1)), -1, true);
        const Tensor log_q_each = reshape(add(log_q, Tensor::zeros(grouped)), l.shape());  // each group's on its entries
        const Tensor first_order = mul(add(d, -1.0f / 3.0f), grad_only(log_q_each));  // (D - pi)(g_D - mean g)
        return f(add(d, mul(add(grad_only(discrete_mean(l, kind)), first_order), 0.5f)));
    };
    const double ours = worst_z(estimate(row, draws, [&](const Tensor& l, Generator& g) { return f(zgr(l, kind, g)); }, 71), exact);
    const double uniform = worst_z(estimate(row, draws, uniform_mean_zgr, 71), exact);
    MESSAGE("zgr: " << ours << " SE off the exact gradient; with the uniform-mean first-order term: " << uniform << " SE");
    CHECK(ours < 4.0);
    CHECK(uniform > 4.0);
}
