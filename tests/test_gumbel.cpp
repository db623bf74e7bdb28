#include <cmath>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xview.hpp>

#include "helpers.hpp"
#include "layers/gumbel.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {

// n rows, each a copy of the given logits.
Tensor repeated_rows(const std::vector<float>& logits, std::size_t n, bool requires_grad = false) {
    Array a = Array::from_shape({n, logits.size()});
    for (std::size_t r = 0; r < n; ++r)
        for (std::size_t k = 0; k < logits.size(); ++k) a(r, k) = logits[k];
    return Tensor(std::move(a), requires_grad);
}

std::vector<double> softmax_of(const std::vector<float>& logits) {
    double z = 0.0;
    std::vector<double> p;
    for (float l : logits) z += std::exp(double(l));
    for (float l : logits) p.push_back(std::exp(double(l)) / z);
    return p;
}

// Pearson's statistic of the per-class counts of argmax over each row of a [n, K] array.
double chi_square_of_argmax(const Array& samples, const std::vector<double>& p) {
    const std::size_t n = samples.shape()[0], k = samples.shape()[1];
    std::vector<double> counts(k, 0.0);
    const xt::xarray<std::size_t> idx = argmax(Tensor(samples));
    for (std::size_t r = 0; r < n; ++r) counts[idx(r)] += 1.0;
    double chi2 = 0.0;
    for (std::size_t c = 0; c < k; ++c) {
        const double expected = p[c] * double(n);
        chi2 += (counts[c] - expected) * (counts[c] - expected) / expected;
    }
    return chi2;
}

// Each row of a [n, K] array has exactly one 1 and zeros elsewhere.
bool rows_are_one_hot(const Array& a) {
    const std::size_t k = a.shape().back();
    for (std::size_t r = 0; r < a.size() / k; ++r) {
        int ones = 0;
        for (std::size_t c = 0; c < k; ++c) {
            const float v = a.data()[r * k + c];
            if (v == 1.0f) ++ones;
            else if (v != 0.0f) return false;
        }
        if (ones != 1) return false;
    }
    return true;
}

// Gumbel noise at the two ends of Generator::uniform_open's range, u = 2^-24 and 1 - 2^-24,
// and in between.
Array extreme_gumbel_noise(const Shape& shape) {
    Array g = Array::from_shape(shape);
    const double ends[] = {0x1.0p-24, 1.0 - 0x1.0p-24, 0.5};
    for (std::size_t i = 0; i < g.size(); ++i) g.data()[i] = float(-std::log(-std::log(ends[i % 3])));
    return g;
}

const std::vector<float> k_logits{1.0f, -0.5f, 0.3f, 2.0f, -2.0f};
const double k_chi2_999_df4 = 18.467;  // 0.999 quantile of chi-square with 4 degrees of freedom

}  // namespace

TEST_CASE("Gumbel: Gumbel-Max frequencies match softmax(logits) (chi-square, 1e5 samples)") {
    Generator gen(123);
    const Tensor s = gumbel_max(repeated_rows(k_logits, 100000), &gen);
    REQUIRE(rows_are_one_hot(s.value()));
    CHECK_FALSE(s.requires_grad());
    const double chi2 = chi_square_of_argmax(s.value(), softmax_of(k_logits));
    CAPTURE(chi2);
    CHECK(chi2 < k_chi2_999_df4);
}

TEST_CASE("Gumbel: rounding property, argmax of a relaxed sample is distributed as softmax(logits)") {
    for (float tau : {0.3f, 1.0f, 3.0f}) {
        CAPTURE(tau);
        Generator gen(7);
        const Tensor y = gumbel_softmax(repeated_rows(k_logits, 100000), tau, false, &gen);
        const double chi2 = chi_square_of_argmax(y.value(), softmax_of(k_logits));
        CAPTURE(chi2);
        CHECK(chi2 < k_chi2_999_df4);
    }
}

TEST_CASE("Gumbel: relaxed samples lie on the simplex, nearly one-hot at tau = 0.05") {
    Generator gen(8);
    const std::size_t n = 20000;
    const Array y1 = gumbel_softmax(repeated_rows(k_logits, n), 1.0f, false, &gen).value();
    const Array y = gumbel_softmax(repeated_rows(k_logits, n), 0.05f, false, &gen).value();
    double mean_max = 0.0, mean_max_1 = 0.0;
    std::size_t near_one_hot = 0;
    for (std::size_t r = 0; r < n; ++r) {
        float row_max = 0.0f, row_max_1 = 0.0f;
        double total = 0.0;
        for (std::size_t c = 0; c < k_logits.size(); ++c) {
            row_max = std::max(row_max, y(r, c));
            row_max_1 = std::max(row_max_1, y1(r, c));
            total += y(r, c);
        }
        REQUIRE(total == doctest::Approx(1.0).epsilon(1e-5));
        mean_max += row_max / double(n);
        mean_max_1 += row_max_1 / double(n);
        near_one_hot += row_max > 0.99f;
    }
    CAPTURE(mean_max);
    CAPTURE(mean_max_1);
    CHECK(mean_max > 0.97);  // measured 0.980 at this seed
    CHECK(double(near_one_hot) / double(n) > 0.85);  // measured 0.870
    CHECK(mean_max_1 < 0.9);  // at tau = 1 they are not
}

TEST_CASE("Gumbel: straight-through output is exactly one-hot and its gradient is the relaxed one") {
    Tensor logits = random_tensor({6, 5}, 3, -2.0f, 2.0f);
    const Array noise = Generator(4).gumbel({6, 5});
    const Array seed = Generator(5).normal({6, 5});

    Tensor soft = gumbel_softmax_with_noise(logits, noise, 0.7f, false);
    soft.backward(seed);
    const Array soft_grad = logits.grad();
    logits.zero_grad();
    Tensor hard = gumbel_softmax_with_noise(logits, noise, 0.7f, true);
    REQUIRE(rows_are_one_hot(hard.value()));
    CHECK(hard.value() == one_hot(argmax(soft), 5).value());
    hard.backward(seed);
    CHECK(logits.grad() == soft_grad);
    CHECK(xt::amax(xt::abs(soft_grad))() > 0.0f);
    // along another axis: each column one-hot, at the argmax of the relaxed column
    const Tensor soft0 = gumbel_softmax_with_noise(logits, noise, 0.7f, false, 0);
    const Tensor hard0 = gumbel_softmax_with_noise(logits, noise, 0.7f, true, 0);
    const xt::xarray<std::size_t> winners = argmax(soft0, 0);
    for (std::size_t c = 0; c < 5; ++c)
        for (std::size_t r = 0; r < 6; ++r) CHECK(hard0.value()(r, c) == (r == winners(c) ? 1.0f : 0.0f));
}

TEST_CASE("Gumbel: gradcheck of the relaxed sample with fixed noise, over tau and axes") {
    Tensor logits = random_tensor({4, 5}, 9, -2.0f, 2.0f);
    const Array noise = Generator(10).gumbel({4, 5});
    for (float tau : {0.5f, 1.0f, 3.0f}) {
        CAPTURE(tau);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return gumbel_softmax_with_noise(in[0], noise, tau); }, {logits});
    }
    Tensor cube = random_tensor({2, 3, 4}, 11, -2.0f, 2.0f);
    const Array noise3 = Generator(12).gumbel({2, 3, 4});
    for (int axis : {0, 1, 2}) {
        CAPTURE(axis);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return gumbel_softmax_with_noise(in[0], noise3, 0.8f, false, axis); },
            {cube});
    }
}

TEST_CASE("Gumbel: the generator path draws the same noise as Generator::gumbel") {
    Tensor logits = random_tensor({3, 4}, 13, -1.0f, 1.0f, false);
    Generator a(14), b(14);
    const Array y = gumbel_softmax(logits, 0.8f, false, &a).value();
    const Array expected = gumbel_softmax_with_noise(logits, b.gumbel({3, 4}), 0.8f).value();
    CHECK(xt::allclose(y, expected, 1e-5, 1e-6));
}

TEST_CASE("Gumbel: no NaN or inf at tau = 0.01, logits +-255 and u at the ends of its range") {
    Array l = Array::from_shape({30, 4});
    for (std::size_t i = 0; i < l.size(); ++i) l.data()[i] = (i % 2 ? 255.0f : -255.0f) * ((i / 4) % 2 ? 1.0f : 0.5f);
    for (bool hard : {false, true})
        for (float tau : {0.01f, 1.0f}) {
            CAPTURE(hard);
            CAPTURE(tau);
            Tensor logits(l, true);
            Tensor y = gumbel_softmax_with_noise(logits, extreme_gumbel_noise({30, 4}), tau, hard);
            REQUIRE(all_finite(y.value()));
            y.backward(Generator(1).normal({30, 4}));
            CHECK(all_finite(logits.grad()));
            logits.zero_grad();
            Generator gen(2);
            Tensor y2 = gumbel_softmax(logits, tau, hard, &gen);
            REQUIRE(all_finite(y2.value()));
            y2.backward(Generator(1).normal({30, 4}));
            CHECK(all_finite(logits.grad()));
        }
}

TEST_CASE("Gumbel: eval mode gives exact one-hot samples, the argmax of the training sample") {
    Generator gen(21);
    nn::GumbelSoftmaxOptions opt;
    opt.tau = 0.5f;
    opt.generator = &gen;
    nn::GumbelSoftmax layer(opt);
    Tensor logits = random_tensor({50, 6}, 22, -2.0f, 2.0f);
    const Tensor relaxed = layer(logits);
    CHECK(relaxed.requires_grad());
    CHECK_FALSE(rows_are_one_hot(relaxed.value()));
    layer.eval();
    gen.seed_with(21);
    const Tensor sample = layer(logits);
    CHECK_FALSE(sample.requires_grad());
    REQUIRE(rows_are_one_hot(sample.value()));
    CHECK(sample.value() == one_hot(argmax(relaxed), 6).value());
}

TEST_CASE("Gumbel: same seed, same samples, the default generator follows manual_seed") {
    Tensor logits = random_tensor({8, 3}, 23);
    Generator g1(5), g2(5);
    nn::GumbelSoftmaxOptions o1, o2;
    o1.generator = &g1;
    o2.generator = &g2;
    nn::GumbelSoftmax a(o1), b(o2);
    CHECK(a(logits).value() == b(logits).value());
    CHECK(a(logits).value() != a(logits).value());  // the generator moves on
    nn::GumbelSoftmax d;
    manual_seed(77);
    const Array first = d(logits).value();
    manual_seed(77);
    CHECK(d(logits).value() == first);
}

TEST_CASE("Gumbel: straight-through layer forwards one-hot and passes gradients, set_tau anneals") {
    nn::GumbelSoftmaxOptions opt;
    opt.hard = true;
    nn::GumbelSoftmax layer(opt);
    Tensor logits = random_tensor({5, 4}, 24);
    Tensor y = layer(logits);
    REQUIRE(rows_are_one_hot(y.value()));
    y.backward(Generator(3).normal({5, 4}));
    CHECK(xt::amax(xt::abs(logits.grad()))() > 0.0f);
    layer.set_tau(0.25f);
    CHECK(layer.tau() == 0.25f);
}

TEST_CASE("Gumbel: a non-positive temperature or mismatched noise is a clear error") {
    Tensor logits = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_AS(gumbel_softmax(logits, 0.0f), doctest::Contains("tau must be positive"),
                         std::invalid_argument);
    CHECK_THROWS_AS(gumbel_softmax(logits, std::nanf("")), std::invalid_argument);
    CHECK_THROWS_AS(binary_concrete(logits, -1.0f), std::invalid_argument);
    nn::GumbelSoftmaxOptions bad;
    bad.tau = -0.5f;
    CHECK_THROWS_WITH_AS(nn::GumbelSoftmax{bad}, doctest::Contains("GumbelSoftmax"), std::invalid_argument);
    nn::GumbelSoftmax layer;
    CHECK_THROWS_AS(layer.set_tau(0.0f), std::invalid_argument);
    CHECK(layer.tau() == 1.0f);
    CHECK_THROWS_WITH_AS(gumbel_softmax_with_noise(logits, Array::from_shape({3, 2}), 1.0f),
                         "gumbel_softmax: noise of shape (3, 2) does not match logits of shape (2, 3)",
                         std::invalid_argument);
    CHECK_THROWS_AS(gumbel_softmax(logits, 1.0f, false, nullptr, 2), std::out_of_range);
}

TEST_CASE("Concrete: binary concrete follows its CDF P(Y <= x) = sigmoid(tau logit(x) - a)") {
    const float a = 0.7f, tau = 0.5f;
    const std::size_t n = 100000;
    Generator gen(31);
    const Array y = binary_concrete(Tensor::full({n}, a), tau, false, &gen).value();
    for (double x : {0.1, 0.3, 0.5, 0.7, 0.9}) {
        CAPTURE(x);
        double below = 0.0;
        for (float v : y) below += v <= x;
        const double p = 1.0 / (1.0 + std::exp(-(tau * std::log(x / (1.0 - x)) - a)));
        CHECK(std::abs(below / double(n) - p) < 4.0 * std::sqrt(p * (1.0 - p) / double(n)));
    }
}

TEST_CASE("Concrete: gradcheck of binary concrete with fixed noise, hard is {0,1} with the relaxed gradient") {
    Tensor logits = random_tensor({3, 4}, 32, -2.0f, 2.0f);
    const Array noise = Generator(33).logistic({3, 4});
    for (float tau : {0.5f, 1.0f, 2.0f}) {
        CAPTURE(tau);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return binary_concrete_with_noise(in[0], noise, tau); }, {logits});
    }
    const Array seed = Generator(34).normal({3, 4});
    Tensor soft = binary_concrete_with_noise(logits, noise, 0.6f);
    soft.backward(seed);
    const Array soft_grad = logits.grad();
    logits.zero_grad();
    Tensor hard = binary_concrete_with_noise(logits, noise, 0.6f, true);
    CHECK(hard.value() == Array(xt::cast<float>(soft.value() > 0.5f)));
    hard.backward(seed);
    CHECK(logits.grad() == soft_grad);
}

TEST_CASE("Concrete: no NaN or inf at tau = 0.01, logits +-255 and u at the ends of its range") {
    Array l = {-255.0f, 255.0f, -255.0f, 255.0f, 0.0f, 3.0f};
    const double ends[] = {0x1.0p-24, 1.0 - 0x1.0p-24};
    Array noise = Array::from_shape({6});
    for (std::size_t i = 0; i < 6; ++i) noise(i) = float(std::log(ends[i % 2]) - std::log1p(-ends[i % 2]));
    for (bool hard : {false, true}) {
        Tensor logits(l, true);
        Tensor y = binary_concrete_with_noise(logits, noise, 0.01f, hard);
        REQUIRE(all_finite(y.value()));
        y.backward(Array(xt::ones<float>({6})));
        CHECK(all_finite(logits.grad()));
    }
}

TEST_CASE("Concrete: eval mode gives {0,1} samples with P(1) = sigmoid(logits)") {
    Generator gen(41);
    nn::BinaryConcreteOptions opt;
    opt.tau = 0.3f;
    opt.generator = &gen;
    nn::BinaryConcrete layer(opt);
    const std::size_t n = 50000;
    Tensor logits = Tensor::full({n}, -0.4f, true);
    const Tensor relaxed = layer(logits);
    CHECK(relaxed.requires_grad());
    layer.eval();
    const Tensor s = layer(logits);
    CHECK_FALSE(s.requires_grad());
    double ones = 0.0;
    for (float v : s.value()) {
        REQUIRE((v == 0.0f || v == 1.0f));
        ones += v;
    }
    const double p = 1.0 / (1.0 + std::exp(0.4));
    CHECK(std::abs(ones / double(n) - p) < 4.0 * std::sqrt(p * (1.0 - p) / double(n)));
}

namespace {

// The README's example: a model with a discrete bottleneck of one 4-way categorical variable.
struct DiscreteAutoencoder : nn::Module {
    std::shared_ptr<nn::Linear> encoder, decoder;
    std::shared_ptr<nn::GumbelSoftmax> latent;

    explicit DiscreteAutoencoder(Generator* gen) {
        nn::LinearOptions init;
        init.generator = gen;
        nn::GumbelSoftmaxOptions gumbel;
        gumbel.tau = 1.0f;
        gumbel.generator = gen;
        encoder = register_module("encoder", std::make_shared<nn::Linear>(4, 4, init));
        latent = register_module("latent", std::make_shared<nn::GumbelSoftmax>(gumbel));
        decoder = register_module("decoder", std::make_shared<nn::Linear>(4, 4, init));
    }
    Tensor forward(const Tensor& x) { return decoder->forward(latent->forward(encoder->forward(x))); }
};

}  // namespace

TEST_CASE("Gumbel: an autoencoder with a GumbelSoftmax bottleneck learns to pass 4 classes through it") {
    Generator gen(2017);
    DiscreteAutoencoder model(&gen);
    optim::Adam adam(model.parameters(), {0.05f});
    const optim::ExponentialTemperature schedule(1.0f, 2e-3f, 0.5f, 50);
    auto batch = [&](std::size_t n, std::vector<std::size_t>& labels) {
        labels.resize(n);
        for (auto& c : labels) c = gen.below(4);
        return one_hot(xt::adapt(labels, {n}), 4);
    };
    std::vector<std::size_t> labels;
    for (int step = 0; step < 400; ++step) {
        model.latent->set_tau(schedule.at(step));
        const Tensor x = batch(64, labels);
        adam.zero_grad();
        cross_entropy(model.forward(x), Indices(xt::adapt(labels, {labels.size()}))).backward();
        adam.step();
    }
    model.eval();  // discrete one-hot codes now
    const Tensor x = batch(1000, labels);
    const xt::xarray<std::size_t> predicted = argmax(model.forward(x));
    std::size_t correct = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted(i) == labels[i];
    CAPTURE(correct);
    CHECK(correct > 950);
    CHECK(model.latent->tau() == 0.5f);
}
