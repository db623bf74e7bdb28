#include <cmath>
#include <limits>
#include <string>
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

// Uniforms at the two ends of Generator::uniform_open's range, u = 2^-24 and 1 - 2^-24, and
// in between.
Array extreme_uniforms(const Shape& shape) {
    Array u = Array::from_shape(shape);
    const float ends[] = {0x1.0p-24f, 1.0f - 0x1.0p-24f, 0.5f};
    for (std::size_t i = 0; i < u.size(); ++i) u.data()[i] = ends[i % 3];
    return u;
}

const std::vector<float> k_logits{1.0f, -0.5f, 0.3f, 2.0f, -2.0f};
const double k_chi2_999_df4 = 18.467;  // 0.999 quantile of chi-square with 4 degrees of freedom

}  // namespace

TEST_CASE("Gumbel: Gumbel-Max frequencies match softmax(logits) (chi-square, 1e5 samples)") {
    Generator gen(123);
    const Tensor s = gumbel_max(repeated_rows(k_logits, 100000), GumbelSoftmaxOptions().generator(&gen));
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
        const Tensor y = gumbel_softmax(repeated_rows(k_logits, 100000), GumbelSoftmaxOptions().tau(tau).generator(&gen));
        const double chi2 = chi_square_of_argmax(y.value(), softmax_of(k_logits));
        CAPTURE(chi2);
        CHECK(chi2 < k_chi2_999_df4);
    }
}

TEST_CASE("Gumbel: relaxed samples lie on the simplex, nearly one-hot at tau = 0.05") {
    Generator gen(8);
    const std::size_t n = 20000;
    const Array y1 = gumbel_softmax(repeated_rows(k_logits, n), GumbelSoftmaxOptions().generator(&gen)).value();
    const Array y = gumbel_softmax(repeated_rows(k_logits, n), GumbelSoftmaxOptions().tau(0.05f).generator(&gen)).value();
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
    const Array u = Generator(4).uniform_open({6, 5});
    const GumbelSoftmaxOptions cool = GumbelSoftmaxOptions().tau(0.7f);
    const Array seed = Generator(5).normal({6, 5});

    Tensor soft = gumbel_softmax_from_uniforms(logits, u, cool);
    soft.backward(seed);
    const Array soft_grad = logits.grad();
    logits.zero_grad();
    Tensor hard = gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions(cool).hard(true));
    REQUIRE(rows_are_one_hot(hard.value()));
    CHECK(hard.value() == one_hot(argmax(soft), 5).value());
    hard.backward(seed);
    CHECK(logits.grad() == soft_grad);
    CHECK(xt::amax(xt::abs(soft_grad))() > 0.0f);
    // along another axis: each column one-hot, at the argmax of the relaxed column
    const Tensor soft0 = gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions(cool).axis(0));
    const Tensor hard0 = gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions(cool).axis(0).hard(true));
    const xt::xarray<std::size_t> winners = argmax(soft0, 0);
    for (std::size_t c = 0; c < 5; ++c)
        for (std::size_t r = 0; r < 6; ++r) CHECK(hard0.value()(r, c) == (r == winners(c) ? 1.0f : 0.0f));
}

TEST_CASE("Gumbel: gradcheck of the relaxed sample with fixed noise, over tau and axes") {
    Tensor logits = random_tensor({4, 5}, 9, -2.0f, 2.0f);
    const Array u = Generator(10).uniform_open({4, 5});
    for (float tau : {0.5f, 1.0f, 3.0f}) {
        CAPTURE(tau);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return gumbel_softmax_from_uniforms(in[0], u, GumbelSoftmaxOptions().tau(tau)); }, {logits});
    }
    Tensor cube = random_tensor({2, 3, 4}, 11, -2.0f, 2.0f);
    const Array u3 = Generator(12).uniform_open({2, 3, 4});
    for (int axis : {0, 1, 2}) {
        CAPTURE(axis);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return gumbel_softmax_from_uniforms(in[0], u3, GumbelSoftmaxOptions().tau(0.8f).axis(axis)); },
            {cube});
    }
}

TEST_CASE("Gumbel: the generator path equals the given-uniforms path bit for bit, and softmax((logits + g) / tau)") {
    for (std::size_t n : {4, 40}) {  // the scalar and the bulk sequences of uniforms
        CAPTURE(n);
        Tensor logits = random_tensor({3, n}, 13, -1.0f, 1.0f, false);
        Generator a(14), b(14);
        const GumbelSoftmaxOptions options = GumbelSoftmaxOptions().tau(0.8f);
        const Array y = gumbel_softmax(logits, GumbelSoftmaxOptions(options).generator(&a)).value();
        const Array u = b.uniform_open({3, n});
        CHECK(tgtest::bitwise_equal(y, gumbel_softmax_from_uniforms(logits, u, options).value()));
        const Array g = gumbel_noise(u);
        CHECK(xt::allclose(g, -xt::log(-xt::log(u)), 1e-5, 1e-6));
        CHECK(xt::allclose(y, softmax((logits + Tensor(g)) * 1.25f).value(), 1e-5, 1e-6));
    }
}

TEST_CASE("Gumbel: no NaN or inf at tau = 0.01, logits +-255 and u at the ends of its range") {
    Array l = Array::from_shape({30, 4});
    for (std::size_t i = 0; i < l.size(); ++i) l.data()[i] = (i % 2 ? 255.0f : -255.0f) * ((i / 4) % 2 ? 1.0f : 0.5f);
    for (bool hard : {false, true})
        for (float tau : {0.01f, 1.0f}) {
            CAPTURE(hard);
            CAPTURE(tau);
            Tensor logits(l, true);
            const GumbelSoftmaxOptions options = GumbelSoftmaxOptions().tau(tau).hard(hard);
            Tensor y = gumbel_softmax_from_uniforms(logits, extreme_uniforms({30, 4}), options);
            REQUIRE(all_finite(y.value()));
            y.backward(Generator(1).normal({30, 4}));
            CHECK(all_finite(logits.grad()));
            logits.zero_grad();
            Generator gen(2);
            Tensor y2 = gumbel_softmax(logits, GumbelSoftmaxOptions(options).generator(&gen));
            REQUIRE(all_finite(y2.value()));
            y2.backward(Generator(1).normal({30, 4}));
            CHECK(all_finite(logits.grad()));
        }
}

TEST_CASE("Gumbel: eval mode gives exact one-hot samples, the argmax of the training sample") {
    Generator gen(21);
    nn::GumbelSoftmax layer(nn::GumbelSoftmaxOptions().tau(0.5f).generator(&gen));
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
    nn::GumbelSoftmax a(nn::GumbelSoftmaxOptions().generator(&g1)), b;
    b.set_generator(&g2);
    CHECK(b.options().generator() == &g2);
    CHECK(a(logits).value() == b(logits).value());
    CHECK(a(logits).value() != a(logits).value());  // the generator moves on
    nn::BinaryConcrete c;
    Generator g3(5), g4(5);
    c.set_generator(&g3);
    CHECK(c(logits).value() == binary_concrete(logits, BinaryConcreteOptions().generator(&g4)).value());
    nn::GumbelSoftmax d;
    manual_seed(77);
    const Array first = d(logits).value();
    manual_seed(77);
    CHECK(d(logits).value() == first);
}

TEST_CASE("Gumbel: straight-through layer forwards one-hot and passes gradients, set_tau anneals") {
    nn::GumbelSoftmax layer(nn::GumbelSoftmaxOptions().hard(true));
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
    CHECK_THROWS_WITH_AS(GumbelSoftmaxOptions().tau(0.0f),
                         "GumbelSoftmaxOptions::tau: the temperature tau must be positive and finite, got 0",
                         std::invalid_argument);
    CHECK_THROWS_AS(GumbelSoftmaxOptions().tau(std::nanf("")), std::invalid_argument);
    CHECK_THROWS_AS(BinaryConcreteOptions().tau(-1.0f), std::invalid_argument);
    nn::GumbelSoftmax layer;
    CHECK_THROWS_AS(layer.set_tau(0.0f), std::invalid_argument);
    CHECK(layer.tau() == 1.0f);
    CHECK_THROWS_WITH_AS(gumbel_softmax_from_uniforms(logits, Array::from_shape({3, 2})),
                         "gumbel_softmax_from_uniforms: uniforms u of shape (3, 2) do not match logits of shape (2, 3)",
                         std::invalid_argument);
    CHECK_THROWS_AS(gumbel_softmax(logits, GumbelSoftmaxOptions().axis(2)), std::out_of_range);
}

TEST_CASE("Concrete: binary concrete follows its CDF P(Y <= x) = sigmoid(tau logit(x) - a)") {
    const float a = 0.7f, tau = 0.5f;
    const std::size_t n = 100000;
    Generator gen(31);
    const Array y = binary_concrete(Tensor::full({n}, a), BinaryConcreteOptions().tau(tau).generator(&gen)).value();
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
    const Array u = Generator(33).uniform_open({3, 4});
    for (float tau : {0.5f, 1.0f, 2.0f}) {
        CAPTURE(tau);
        check_gradients(
            [&](const std::vector<Tensor>& in) { return binary_concrete_from_uniforms(in[0], u, BinaryConcreteOptions().tau(tau)); }, {logits});
    }
    const Array seed = Generator(34).normal({3, 4});
    Tensor soft = binary_concrete_from_uniforms(logits, u, BinaryConcreteOptions().tau(0.6f));
    soft.backward(seed);
    const Array soft_grad = logits.grad();
    logits.zero_grad();
    Tensor hard = binary_concrete_from_uniforms(logits, u, BinaryConcreteOptions().tau(0.6f).hard(true));
    CHECK(hard.value() == Array(xt::cast<float>(soft.value() > 0.5f)));
    hard.backward(seed);
    CHECK(logits.grad() == soft_grad);
}

TEST_CASE("Concrete: no NaN or inf at tau = 0.01, logits +-255 and u at the ends of its range") {
    Array l = {-255.0f, 255.0f, -255.0f, 255.0f, 0.0f, 3.0f};
    const Array u = extreme_uniforms({6});
    for (bool hard : {false, true}) {
        Tensor logits(l, true);
        Tensor y = binary_concrete_from_uniforms(logits, u, BinaryConcreteOptions().tau(0.01f).hard(hard));
        REQUIRE(all_finite(y.value()));
        y.backward(Array(xt::ones<float>({6})));
        CHECK(all_finite(logits.grad()));
    }
}

TEST_CASE("Concrete: eval mode gives {0,1} samples with P(1) = sigmoid(logits)") {
    Generator gen(41);
    nn::BinaryConcrete layer(nn::BinaryConcreteOptions().tau(0.3f).generator(&gen));
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
        const auto gumbel = nn::GumbelSoftmaxOptions().generator(gen);
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

TEST_CASE("Gumbel: an empty class axis is a clear error in every categorical sampler, not a crash") {
    // each of these stored through a null pointer (SIGSEGV) before
    const Tensor empty = Tensor::zeros({3, 0}, true);
    const char* what = ": the class axis 1 is empty, got shape (3, 0)";
    auto message = [&](const char* op) { return std::string(op) + what; };
    CHECK_THROWS_WITH_AS(gumbel_softmax(empty, GumbelSoftmaxOptions().hard(true)), message("gumbel_softmax").c_str(),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_softmax(empty), message("gumbel_softmax").c_str(), std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_softmax_from_uniforms(empty, Array::from_shape({3, 0}), GumbelSoftmaxOptions().hard(true)),
                         message("gumbel_softmax_from_uniforms").c_str(), std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_max(empty), message("gumbel_max").c_str(), std::invalid_argument);
    CHECK_THROWS_WITH_AS(straight_through_categorical(empty), message("straight_through_categorical").c_str(),
                         std::invalid_argument);
    nn::GumbelSoftmax layer(nn::GumbelSoftmaxOptions().classes(4));
    CHECK_THROWS_WITH_AS(layer(empty), message("gumbel_softmax").c_str(), std::invalid_argument);
    layer.eval();
    CHECK_THROWS_WITH_AS(layer(empty), message("gumbel_max").c_str(), std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_max(Tensor::zeros({0, 2}), GumbelSoftmaxOptions().axis(0)),
                         "gumbel_max: the class axis 0 is empty, got shape (0, 2)", std::invalid_argument);
    CHECK_THROWS_AS(gumbel_max(Tensor::scalar(1.0f)), std::out_of_range);  // no axis at all
    CHECK_THROWS_WITH_AS(log_mean_exp(Tensor::zeros({0, 2})), "log_mean_exp: the axis 0 of samples is empty, got shape (0, 2)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(gumbel_softmax(Tensor()), doctest::Contains("gumbel_softmax: the input is a null Tensor"),
                         std::invalid_argument);
    // an empty batch of non-empty variables is fine
    for (bool hard : {false, true}) {
        CHECK(gumbel_softmax(Tensor::zeros({0, 5}), GumbelSoftmaxOptions().hard(hard)).shape() == Array::shape_type{0, 5});
        CHECK(gumbel_max(Tensor::zeros({0, 6}), GumbelSoftmaxOptions().classes(3)).shape() == Array::shape_type{0, 6});
    }
}

TEST_CASE("Gumbel: uniforms outside the open interval (0, 1) are refused, naming the op and the entry") {
    const Tensor logits = Tensor::zeros({1, 3});
    CHECK_THROWS_WITH_AS(gumbel_softmax_from_uniforms(logits, Array{{0.5f, 0.0f, 0.2f}}),
                         "gumbel_softmax_from_uniforms: u must lie in the open interval (0, 1) (normal floats), got 0 at "
                         "flat index 1",
                         std::invalid_argument);
    for (float bad : {1.0f, -0.5f, std::nanf(""), 1e-40f}) {
        CAPTURE(bad);
        CHECK_THROWS_AS(gumbel_softmax_from_uniforms(logits, Array{{0.5f, 0.5f, bad}}), std::invalid_argument);
        CHECK_THROWS_AS(binary_concrete_from_uniforms(logits, Array{{bad, 0.5f, 0.5f}}), std::invalid_argument);
        CHECK_THROWS_AS(gumbel_noise(Array{bad}), std::invalid_argument);
        CHECK_THROWS_WITH_AS(logistic_noise(Array{bad}), doctest::Contains("logistic_noise: u must lie"),
                             std::invalid_argument);
    }
    CHECK_THROWS_WITH_AS(binary_concrete_from_uniforms(logits, Array{0.5f}),
                         "binary_concrete_from_uniforms: uniforms u of shape (1,) do not match logits of shape (1, 3)",
                         std::invalid_argument);
    // the smallest and largest accepted u give finite noise
    const Array ends{std::numeric_limits<float>::min(), 1.0f - 0x1.0p-24f, 0.5f};
    CHECK(all_finite(gumbel_noise(ends)));
    CHECK(all_finite(logistic_noise(ends)));
    CHECK(gumbel_noise(Array{0.5f})(0) == doctest::Approx(-std::log(std::log(2.0))));
    CHECK(logistic_noise(Array{0.25f})(0) == doctest::Approx(std::log(1.0 / 3.0)));
}

TEST_CASE("Gumbel: the layer with classes(K) samples G variables of K classes, one-hot per group in eval mode") {
    Tensor logits = random_tensor({8, 30}, 61, -2.0f, 2.0f);
    Generator gen(62);
    nn::GumbelSoftmax layer(nn::GumbelSoftmaxOptions().tau(0.7f).classes(10).generator(&gen));
    CHECK(layer.options().classes() == 10);
    const Tensor relaxed = layer(logits);
    REQUIRE(relaxed.shape() == logits.shape());
    // the same numbers as the reshaped call
    Generator again(62);
    const Tensor reference = gumbel_softmax(reshape(logits, {8, 3, 10}), GumbelSoftmaxOptions().tau(0.7f).generator(&again));
    CHECK(relaxed.value() == reshape(reference, {8, 30}).value());
    layer.eval();
    gen.seed_with(62);
    const Tensor sample = layer(logits);
    CHECK_FALSE(sample.requires_grad());
    const Tensor grouped = reshape(sample, {24, 10});
    REQUIRE(rows_are_one_hot(grouped.value()));
    CHECK(grouped.value() == one_hot(argmax(reshape(relaxed, {24, 10})), 10).value());
    CHECK_THROWS_WITH_AS(layer(Tensor::zeros({2, 25})),
                         "gumbel_max: axis 1 of length 25 does not hold whole groups of 10 classes, got shape (2, 25)",
                         std::invalid_argument);
}

TEST_CASE("Gumbel: straight_through_categorical with classes(K) equals the reshaped call") {
    Tensor logits = random_tensor({4, 12}, 63, -2.0f, 2.0f);
    const Array seed = Generator(64).normal({4, 12});
    Generator a(65), b(65);
    Tensor grouped = straight_through_categorical(logits, GumbelSoftmaxOptions().classes(3).generator(&a));
    grouped.backward(seed);
    const Array g1 = logits.grad();
    logits.zero_grad();
    Tensor reference =
        reshape(straight_through_categorical(reshape(logits, {4, 4, 3}), GumbelSoftmaxOptions().generator(&b)), {4, 12});
    CHECK(grouped.value() == reference.value());
    reference.backward(seed);
    CHECK(xt::allclose(g1, logits.grad(), 1e-6, 1e-7));
}

TEST_CASE("Gumbel: the README's Gumbel-Softmax snippet runs as written") {
    Generator gen(1);
    Tensor logits = Tensor::zeros({32, 20 * 10}, /*requires_grad=*/true);  // 20 variables of 10 classes
    Tensor y = gumbel_softmax(logits, GumbelSoftmaxOptions().tau(0.5f).classes(10).generator(&gen));
    Tensor h = gumbel_softmax(logits, GumbelSoftmaxOptions().hard(true).classes(10).generator(&gen));
    Tensor b = binary_concrete(logits, BinaryConcreteOptions().tau(0.5f).generator(&gen));

    nn::GumbelSoftmax latent(nn::GumbelSoftmaxOptions().classes(10));  // eval(): one-hot per group
    latent.set_generator(&gen);  // or nullptr for default_generator()
    latent.set_tau(0.7f);        // annealing

    // fixed noise: the uniforms u themselves, each in (0, 1); the same bits as the generator path
    Array u = Generator(2).uniform_open({32, 200});
    Tensor same = gumbel_softmax_from_uniforms(logits, u, GumbelSoftmaxOptions().classes(10));
    Array g = gumbel_noise(u), l = logistic_noise(u);  // -log(-log u) and log u - log(1 - u)

    // distributions broadcast like torch.distributions
    dist::Categorical q(reshape(logits, {32, 20, 10}));
    Tensor kl = kl_divergence(q, dist::Categorical(Tensor::zeros({10})));  // [32, 20], KL to uniform
    Tensor lp = q.log_prob(Indices(xt::zeros<std::size_t>({32, 20})));   // class indices or one-hot
    Tensor pixels = Tensor::full({32, 784}, 0.3f);
    Tensor binarized = dist::Bernoulli::from_probs(pixels).sample(&gen);  // or Bernoulli::from_logits
    dist::LogitRelaxedBernoulli lrb(Tensor::zeros({5}), /*temperature=*/0.1f);
    Tensor x = lrb.rsample(&gen), log_density = lrb.log_prob(x);  // exact where sigmoid(x) rounds to 1
    CHECK(y.shape() == logits.shape());
    REQUIRE(rows_are_one_hot(reshape(h, {32 * 20, 10}).value()));
    CHECK(xt::all(b.value() >= 0.0f && b.value() <= 1.0f));  // sigmoid rounds to 0 or 1 at the ends
    CHECK(latent.tau() == 0.7f);
    CHECK(same.shape() == logits.shape());
    CHECK(all_finite(g));
    CHECK(all_finite(l));
    CHECK(kl.shape() == Array::shape_type{32, 20});
    CHECK(xt::allclose(kl.value(), 0.0f, 1e-6, 1e-6));  // q is uniform too
    CHECK(lp.value()(5, 7) == doctest::Approx(-std::log(10.0f)));
    CHECK(xt::all(xt::equal(binarized.value(), 0.0f) || xt::equal(binarized.value(), 1.0f)));
    CHECK(all_finite(log_density.value()));
}
