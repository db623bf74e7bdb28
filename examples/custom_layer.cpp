// Trains a user-defined layer (examples/custom_layer.hpp) on a toy regression: two gated
// residual blocks learn y = x + 0.5 tanh(x A). Exits with 1 if the loss does not fall tenfold.
#include <cstdio>

#include "examples/custom_layer.hpp"

int main() {
    using namespace tg;
    Generator gen(2024);
    const std::size_t n = 256, d = 4;
    const Tensor x(gen.normal({n, d}));
    const Tensor a(gen.normal({d, d}));
    const Tensor y = x + 0.5f * tanh(matmul(x, a));

    nn::Sequential model{std::make_shared<user::GatedResidual>(d, user::GatedResidualOptions{1.0f, &gen}),
                         std::make_shared<user::GatedResidual>(d, user::GatedResidualOptions{1.0f, &gen})};
    for (const auto& [name, p] : model.named_parameters())
        std::printf("%-16s %s\n", name.c_str(), shape_str(p.shape()).c_str());

    optim::Adam adam(model.parameters(), {0.01f});
    float first = 0.0f, last = 0.0f;
    for (int step = 0; step <= 400; ++step) {
        adam.zero_grad();
        const Tensor diff = model(x) - y;
        const Tensor loss = mean(diff * diff);
        loss.backward();
        adam.step();
        if (step == 0) first = loss.item();
        last = loss.item();
        if (step % 100 == 0) std::printf("step %3d  loss %.6f\n", step, last);
    }
    const bool ok = last < first / 10.0f;
    std::printf("%s: loss %.6f -> %.6f\n", ok ? "ok" : "FAILED", first, last);
    return ok ? 0 : 1;
}
