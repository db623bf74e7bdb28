// The user-defined layer of examples/custom_layer.hpp, compiled here as a user would.
#include "examples/custom_layer.hpp"
#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

TEST_CASE("Module: the custom layer's own op (swish with a learnable beta) matches its formula and gradcheck") {
    const Tensor z = random_tensor({5, 3}, 31, -3.0f, 3.0f);
    const Tensor beta = random_tensor({3}, 32, 0.2f, 2.0f);
    const Tensor y = user::swish(z, beta);
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t j = 0; j < 3; ++j) {
            const double v = z.value()(i, j), b = beta.value()(j);
            CHECK(y.value()(i, j) == doctest::Approx(v / (1.0 + std::exp(-b * v))));
        }
    current_tape().clear();
    check_gradients([](const std::vector<Tensor>& in) { return user::swish(in[0], in[1]); }, {z, beta});
    CHECK_THROWS_WITH_AS(user::swish(z, Tensor::ones({4})), doctest::Contains("swish: beta of shape (4,)"),
                         std::invalid_argument);
}

TEST_CASE("Module: the custom GatedResidual layer registers its parts, passes gradcheck and trains") {
    Generator g(33);
    user::GatedResidual block(3, {0.5f, &g});
    std::vector<std::string> names;
    for (const auto& p : block.named_parameters()) names.push_back(p.first);
    CHECK(names == std::vector<std::string>{"beta", "gate.weight", "gate.bias", "hidden.weight", "hidden.bias"});

    const Tensor x = random_tensor({4, 3}, 34);
    std::vector<Tensor> inputs{x};
    for (const auto& p : block.parameters()) inputs.push_back(p);
    check_gradients([&](const std::vector<Tensor>& in) { return block(in[0]); }, inputs);

    // A few Adam steps towards a fixed target lower the loss.
    const Tensor target = random_tensor({4, 3}, 35, -1.0f, 1.0f, false);
    const Tensor input = random_tensor({4, 3}, 36, -1.0f, 1.0f, false);
    optim::Adam adam(block.parameters(), {0.05f});
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step < 50; ++step) {
        adam.zero_grad();
        const Tensor d = block(input) - target;
        const Tensor loss = mean(d * d);
        if (step == 0) first = loss.item();
        last = loss.item();
        loss.backward();
        adam.step();
    }
    CHECK(last < 0.2f * first);
}
