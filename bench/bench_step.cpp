// One training step of examples/structured_output on synthetic binary images, for profiling
// (callgrind, perf) without loading MNIST: gather a batch, the Gumbel-Softmax loss, backward,
// Adam. Usage: bench_step [bernoulli|categorical] [steps=2000] [threads=1]
// Per-step instruction counts: valgrind --tool=callgrind --toggle-collect=timed_steps bench_step ...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "autograd/kernels/blas.hpp"
#include "examples/structured_output.hpp"
#include "optim/adam.hpp"

using namespace tg;

// Not inlined, so that callgrind can count the timed steps alone (--toggle-collect=timed_steps).
template <class F>
__attribute__((noinline)) void timed_steps(int n, F& step) {
    for (int i = 0; i < n; ++i) step();
}

int main(int argc, char** argv) {
    tg::use_avx512_blas_kernels(argv);  // the same kernels as structured_output
    const std::string latent = argc > 1 ? argv[1] : "bernoulli";
    const int steps = argc > 2 ? std::atoi(argv[2]) : 2000;
    set_num_threads(argc > 3 ? std::atoi(argv[3]) : 1);
    Generator data_gen(7), init(1), noise(2);
    mnist::DataSet data;
    data.pixels.resize(5000 * mnist::image_pixels);
    for (std::uint8_t& b : data.pixels) b = data_gen.uniform() < 0.2f ? 255 : 0;  // binarized: 0 or 255
    data.labels.assign(5000, 0);
    structured::Model model(latent == "categorical" ? structured::Latent::categorical : structured::Latent::bernoulli, 200, init);
    optim::Adam adam(model.parameters());
    mnist::BatchIterator batches(data.size(), {100});
    Tensor upper(Array::from_shape({100, mnist::half_pixels})), lower(Array::from_shape({100, mnist::half_pixels}));
    double loss = 0.0;
    auto step = [&] {
        if (!batches.next()) batches.next();
        mnist::gather_halves(data, batches.indices(), upper.value(), lower.value());
        const structured::Loss l = structured::training_loss(model, upper, lower, structured::Estimator::gs, 1.0f, 1, noise);
        l.objective.backward();
        adam.step();
        adam.zero_grad();
        loss = l.nll;
    };
    for (int i = 0; i < 20; ++i) step();
    const auto t0 = std::chrono::steady_clock::now();
    timed_steps(steps, step);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %.4f ms/step, %.1f steps/s (loss %.3f)\n", latent.c_str(), s / steps * 1e3, steps / s, loss);
    return 0;
}
