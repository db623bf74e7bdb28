// The fused fast paths against the plain compositions they replace.
#include <algorithm>
#include <cmath>
#include <vector>

#include "helpers.hpp"
#include "layers/gumbel.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

TEST_CASE("Engine: fill_uniform_open is reproducible, open, uniform, and moves the generator on") {
    Generator a(5), b(5);
    std::vector<float> x(200003), y(200003);
    a.fill_uniform_open(x.data(), x.size());
    b.fill_uniform_open(y.data(), y.size());
    CHECK(x == y);
    CHECK(a.next_u64() == b.next_u64());
    a.fill_uniform_open(y.data(), y.size());
    CHECK(x != y);  // the next call draws new numbers
    // 16 equal bins: Pearson's statistic with 15 degrees of freedom (0.999 quantile 37.7)
    std::vector<double> bins(16, 0.0);
    float lo = 1.0f, hi = 0.0f;
    for (float v : x) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        bins[static_cast<std::size_t>(v * 16.0f)] += 1.0;
    }
    CHECK(lo > 0.0f);
    CHECK(hi < 1.0f);
    CHECK(lo < 1e-4f);
    CHECK(hi > 1.0f - 1e-4f);
    double chi2 = 0.0;
    const double expected = static_cast<double>(x.size()) / 16.0;
    for (double c : bins) chi2 += (c - expected) * (c - expected) / expected;
    CHECK(chi2 < 37.7);
    // the two halves of each output and neighbouring lanes are uncorrelated
    double cov_next = 0.0, cov_half = 0.0;
    for (std::size_t i = 0; i + 16 < x.size(); i += 16) {
        cov_next += (x[i] - 0.5) * (x[i + 1] - 0.5);
        cov_half += (x[i] - 0.5) * (x[i + 8] - 0.5);
    }
    const double rounds = static_cast<double>(x.size() / 16);
    CHECK(std::abs(cov_next / rounds) < 4.0 / 12.0 / std::sqrt(rounds));
    CHECK(std::abs(cov_half / rounds) < 4.0 / 12.0 / std::sqrt(rounds));
    // the same numbers whatever the vector width (measured with AVX-512, AVX2 and SSE2 builds)
    Generator e(1);
    std::vector<float> golden(1000);
    e.fill_uniform_open(golden.data(), golden.size());
    CHECK(golden[0] == 0.173888385f);
    CHECK(golden[999] == 0.76977402f);
    // short fills are the scalar sequence
    Generator c(6), d(6);
    std::vector<float> few(63);
    c.fill_uniform_open(few.data(), few.size());
    for (float v : few) CHECK(v == d.uniform_open());
}

TEST_CASE("Gumbel: the classes option equals reshape, gumbel_softmax, reshape back") {
    for (bool hard : {false, true}) {
        Tensor logits = random_tensor({7, 30}, 21, -3.0f, 3.0f);
        const Array seed = random_tensor({7, 30}, 23, -1.0f, 1.0f, false).value();
        Generator a(22), b(22);
        Tensor grouped = gumbel_softmax(logits, GumbelSoftmaxOptions().tau(0.7f).hard(hard).classes(10).generator(&a));
        grouped.backward(seed);
        const Array g1 = logits.grad();
        logits.zero_grad();
        Tensor reference =
            reshape(gumbel_softmax(reshape(logits, {7, 3, 10}), GumbelSoftmaxOptions().tau(0.7f).hard(hard).generator(&b)),
                    {7, 30});
        CHECK(grouped.shape() == reference.shape());
        CHECK(grouped.value() == reference.value());
        reference.backward(seed);
        CHECK(xt::allclose(g1, logits.grad(), 1e-6, 1e-7));
    }
}

TEST_CASE("Gumbel: the classes option: gradients, errors, and along another axis") {
    // classes: two batches of 4 or 8 lanes (overlapping or not), or the general path
    for (std::size_t classes : {4, 8, 10, 16, 20, 40}) {
        CAPTURE(classes);
        check_gradients(
            [&](const std::vector<Tensor>& in) {
                Generator g(31);  // the same noise at every evaluation
                return gumbel_softmax(in[0], GumbelSoftmaxOptions().tau(0.8f).classes(classes).generator(&g));
            },
            {random_tensor({3, 2 * classes}, 32)});
    }
    Tensor logits = random_tensor({2, 9}, 33);
    CHECK_THROWS_WITH_AS(gumbel_softmax(logits, GumbelSoftmaxOptions().classes(4)),
                         "gumbel_softmax: axis 1 of length 9 does not hold whole groups of 4 classes, got shape (2, 9)",
                         std::invalid_argument);
    // groups along axis 0 of [6, 2]: rows {0,1,2} and {3,4,5} of each column are the variables
    Tensor tall = random_tensor({6, 2}, 34, -2.0f, 2.0f, false);
    Generator a(35), b(35);
    const Array y = gumbel_max(tall, GumbelSoftmaxOptions().axis(0).classes(3).generator(&a)).value();
    const Array u = b.uniform_open({6, 2});
    const Array z = tall.value() + gumbel_noise(u);
    for (std::size_t group = 0; group < 2; ++group)
        for (std::size_t c = 0; c < 2; ++c) {
            std::size_t best = 0;
            for (std::size_t k = 1; k < 3; ++k) best = z(3 * group + k, c) > z(3 * group + best, c) ? k : best;
            for (std::size_t k = 0; k < 3; ++k) CHECK(y(3 * group + k, c) == (k == best ? 1.0f : 0.0f));
        }
}

TEST_CASE("Gumbel: binary_concrete from the generator equals the given-uniforms path") {
    Tensor logits = random_tensor({5, 37}, 41, -4.0f, 4.0f);
    for (bool hard : {false, true}) {
        Generator a(42), b(42);
        const BinaryConcreteOptions options = BinaryConcreteOptions().tau(0.6f).hard(hard);
        const Array y = binary_concrete(logits, BinaryConcreteOptions(options).generator(&a)).value();
        const Array u = b.uniform_open({5, 37});
        CHECK(tgtest::bitwise_equal(y, binary_concrete_from_uniforms(logits, u, options).value()));
        const Array expected = hard ? Array(xt::cast<float>(logits.value() + logistic_noise(u) > 0.0f))
                                    : Array(1.0f / (1.0f + xt::exp(-(logits.value() + logistic_noise(u)) / 0.6f)));
        CHECK(xt::allclose(y, expected, 1e-5, 1e-6));
        CHECK(xt::allclose(logistic_noise(u), xt::log(u) - xt::log1p(-u), 1e-5, 1e-5));
    }
}

TEST_CASE("Loss: BCE with logits keeps its gradient when requires_grad is switched on after the forward") {
    Tensor x = random_tensor({4, 5}, 51, -3.0f, 3.0f, false);
    Tensor t = random_tensor({4, 5}, 52, 0.0f, 1.0f, false);
    Tensor w = random_tensor({4, 5}, 53);  // makes the loss recorded while x needs no gradient yet
    Tensor loss = binary_cross_entropy_with_logits(x * w, t, Reduction::sum);
    loss.backward();
    CHECK(w.has_grad());
    // and the fused gradient against finite differences, for each reduction
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean})
        check_gradients(
            [&](const std::vector<Tensor>& in) {
                Tensor l = binary_cross_entropy_with_logits(in[0], in[1], r);
                return r == Reduction::none ? sum(l * l) : l;
            },
            {random_tensor({3, 19}, 54, -5.0f, 5.0f), random_tensor({3, 19}, 55, 0.0f, 1.0f)});
}
