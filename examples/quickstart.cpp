// Quick start: a two-layer MLP learns which of two interleaved spirals a 2-D point is on.
#include <cmath>
#include <cstdio>

#include <tapegrad.hpp>

using namespace tg;

int main() {
    Generator gen(0);  // every random number below comes from this seed

    // 400 points on two spirals, label 0 or 1.
    const std::size_t n = 400;
    Array points = Array::from_shape({n, 2}), labels = Array::from_shape({n, 1});
    for (std::size_t i = 0; i < n; ++i) {
        const float r = float(i / 2) / (n / 2), angle = 3.0f * r * 3.14159f + (i % 2) * 3.14159f;
        points(i, 0) = r * std::cos(angle) + 0.02f * gen.normal();
        points(i, 1) = r * std::sin(angle) + 0.02f * gen.normal();
        labels(i, 0) = float(i % 2);
    }
    Tensor x(points), y(labels);

    // Linear 2->64, Tanh, Linear 64->64, Tanh, Linear 64->1 (an nn::Sequential)
    nn::MLP model({2, 64, 64, 1}, [] { return std::make_shared<nn::Tanh>(); }, nn::LinearOptions{true, &gen});
    optim::Adam opt(model.parameters(), {/*lr=*/0.01f});

    float first = 0, last = 0;
    for (int step = 0; step <= 1000; ++step) {
        opt.zero_grad();
        Tensor loss = binary_cross_entropy_with_logits(model(x), y);  // mean over the points
        loss.backward();  // gradients into every parameter; the tape is cleared for the next step
        opt.step();
        if (step == 0) first = loss.item();
        last = loss.item();
        if (step % 100 == 0) std::printf("step %4d  loss %.4f\n", step, loss.item());
    }

    NoGradGuard no_grad;  // evaluation: nothing is recorded
    const Array predicted = model(x).value();
    std::size_t correct = 0;
    for (std::size_t i = 0; i < n; ++i) correct += (predicted(i, 0) > 0) == (labels(i, 0) > 0.5f);
    std::printf("accuracy %.1f%%\n", 100.0 * correct / n);
    return last < 0.5f * first ? 0 : 1;  // the loss must fall (the test suite runs this)
}
