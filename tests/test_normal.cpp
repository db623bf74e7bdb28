// dist::Normal: values against closed forms, gradients against finite differences, and its
// argument checks.
#include <cmath>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

TEST_CASE("Normal: log_prob, entropy and kl_divergence equal their closed forms and broadcast") {
    const Tensor loc(Array{0.0f, 1.0f, -2.0f}), scale(Array{1.0f, 0.5f, 2.0f});
    const dist::Normal p(loc, scale);
    const Array lp = p.log_prob(Tensor(Array{0.5f, 1.0f, 1.0f})).value();
    const double c = 0.5 * std::log(2.0 * M_PI);
    CHECK(lp(0) == doctest::Approx(-0.125 - c));
    CHECK(lp(1) == doctest::Approx(-std::log(0.5) - c));
    CHECK(lp(2) == doctest::Approx(-9.0 / 8.0 - std::log(2.0) - c));
    const Array h = p.entropy().value();
    CHECK(h(1) == doctest::Approx(0.5 + c + std::log(0.5)));
    // q broadcasts: one standard normal against the three
    const dist::Normal q(Tensor::zeros({1}), Tensor::ones({1}));
    const Array kl = kl_divergence(p, q).value();
    for (std::size_t i = 0; i < 3; ++i) {
        const double s = scale.value()(i), m = loc.value()(i);
        CHECK(kl(i) == doctest::Approx(0.5 * (s * s + m * m - 1.0) - std::log(s)));
    }
    CHECK(kl_divergence(p, p).value() == Array{0.0f, 0.0f, 0.0f});
    // batch shapes broadcast: loc [2, 1] with scale [3] -> [2, 3]; a value [3] -> [2, 3]
    const dist::Normal wide(Tensor::zeros({2, 1}), Tensor::ones({3}));
    CHECK(shape_str(wide.entropy().shape()) == "(2, 3)");
    CHECK(shape_str(wide.log_prob(Tensor::zeros({3})).shape()) == "(2, 3)");
    CHECK(shape_str(wide.rsample().shape()) == "(2, 3)");
    CHECK(shape_str(kl_divergence(wide, q).shape()) == "(2, 3)");
    // KL = E_p[log p - log q], by many samples
    Generator gen(5);
    const dist::Normal many(Tensor::full({200000}, 0.3f), Tensor::full({200000}, 0.7f));
    const dist::Normal other(Tensor::scalar(-0.2f), Tensor::scalar(1.3f));
    const Tensor z = many.sample(&gen);
    CHECK(!z.requires_grad());
    CHECK(mean(z).item() == doctest::Approx(0.3).epsilon(0.01));
    CHECK(mean(square(z - 0.3f)).item() == doctest::Approx(0.49).epsilon(0.02));
    CHECK(mean(many.log_prob(z) - other.log_prob(z)).item() ==
          doctest::Approx(kl_divergence(many, other).value()(0)).epsilon(0.02));
}

TEST_CASE("Normal: rsample is loc + scale * eps, and every method's gradient passes the finite-difference check") {
    const Tensor loc = random_tensor({2, 3}, 1), log_scale = random_tensor({2, 3}, 2, -0.5f, 0.5f);
    const Tensor value = random_tensor({3}, 3, -2.0f, 2.0f);
    Generator g1(9), g2(9);
    const Tensor z = dist::Normal(loc, exp(log_scale)).rsample(&g1);
    const Array eps = g2.normal({2, 3});
    for (std::size_t i = 0; i < 6; ++i)
        CHECK(z.value().data()[i] == doctest::Approx(loc.value().data()[i] + std::exp(log_scale.value().data()[i]) * eps.data()[i]));
    check_gradients([](auto& in) {
        Generator gen(9);  // the same eps at every evaluation
        return dist::Normal(in[0], exp(in[1])).rsample(&gen);
    }, {loc, log_scale});
    check_gradients([](auto& in) { return dist::Normal(in[0], exp(in[1])).log_prob(in[2]); }, {loc, log_scale, value});
    check_gradients([](auto& in) { return dist::Normal(in[0], exp(in[1])).entropy(); }, {loc, log_scale});
    check_gradients([](auto& in) {
        return kl_divergence(dist::Normal(in[0], exp(in[1])), dist::Normal(in[2], Tensor::full({3}, 1.5f)));
    }, {loc, log_scale, value});
    check_gradients([](auto& in) {
        return kl_divergence(dist::Normal(Tensor::zeros({3}), Tensor::ones({3})), dist::Normal(in[0], exp(in[1])));
    }, {loc, log_scale});
}

TEST_CASE("Normal: a scale that is not positive is refused by the method that uses it, shapes by name") {
    const dist::Normal bad(Tensor::zeros({3}), Tensor(Array{1.0f, 0.0f, 2.0f}));
    CHECK_THROWS_WITH_AS(bad.log_prob(Tensor::zeros({3})),
                         "Normal::log_prob: scale must be positive and finite, got 0 at flat index 1", std::invalid_argument);
    CHECK_THROWS_WITH_AS(bad.rsample(), doctest::Contains("Normal::rsample: scale must be positive"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(bad.entropy(), doctest::Contains("Normal::entropy"), std::invalid_argument);
    const dist::Normal ok(Tensor::zeros({3}), Tensor::ones({3}));
    CHECK_THROWS_WITH_AS(kl_divergence(ok, bad), doctest::Contains("kl_divergence(Normal, Normal): scale must be positive"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Normal(Tensor::zeros({3}), Tensor(Array{1.0f, NAN, 1.0f})).sample(),
                         doctest::Contains("got nan at flat index 1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Normal(Tensor::zeros({3}), Tensor::ones({2})),
                         "Normal: loc of shape (3,) and scale of shape (2,) cannot be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(ok.log_prob(Tensor::zeros({4})), doctest::Contains("Normal::log_prob: loc of shape (3,) and value"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(dist::Normal(Tensor(), Tensor::ones({1})), doctest::Contains("Normal: the loc is a null tensor"),
                         std::invalid_argument);
}
