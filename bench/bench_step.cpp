// One training step of examples/structured_output on synthetic binary images, for profiling
// (callgrind, perf) without loading MNIST: gather a batch, the Gumbel-Softmax loss, backward,
// Adam. Usage: bench_step [bernoulli|categorical] [steps=2000] [threads=1]
// On an AVX-512 CPU that OpenBLAS 0.3.21 does not know, run it with OPENBLAS_CORETYPE=SkylakeX
// (the library warns when OpenBLAS fell back to its slow kernels).
// Per-step instruction counts: valgrind --tool=callgrind --toggle-collect=timed_steps bench_step ...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <malloc.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>

#include "autograd/threads.hpp"
#include "examples/structured_output.hpp"
#include "optim/adam.hpp"

using namespace tg;

// Not inlined, so that callgrind can count the timed steps alone (--toggle-collect=timed_steps).
template <class F>
__attribute__((noinline)) void timed_steps(int n, F& step) {
    for (int i = 0; i < n; ++i) step();
}

int main(int argc, char** argv) {
    CLI::App app("One training step of examples/structured_output on synthetic binary images, for profiling");
    std::string latent = "bernoulli";
    int steps = 2000, threads = 1;  // bounded: atoi took "-1" and "abc" silently
    app.add_option("latent", latent, "bernoulli or categorical")->check(CLI::IsMember({"bernoulli", "categorical"}));
    app.add_option("steps", steps, "timed steps")->check(CLI::Range(1, 1000000));
    app.add_option("threads", threads, "threads")->check(CLI::Range(1, 256));
    CLI11_PARSE(app, argc, argv);
    set_num_threads(threads);
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
    structured::Estimator gs("gs");
    auto step = [&] {
        if (!batches.next()) batches.next();
        mnist::gather_halves(data, batches.indices(), upper.value(), lower.value());
        const structured::Loss l = structured::training_loss(model, upper, lower, gs, 1.0f, 1, noise);
        l.objective.backward();
        adam.step();
        adam.zero_grad();
        loss = l.value;
    };
    for (int i = 0; i < 20; ++i) step();
    // Memory taken from the system: page faults (a block given back to the OS and taken again
    // faults its pages in anew) and the bytes glibc holds, over the timed steps.
    const auto faults = [] {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        return u.ru_minflt;
    };
    const auto held = [] {
        const struct mallinfo2 mi = mallinfo2();
        return mi.arena + mi.hblkhd;
    };
    const long faults0 = faults();
    const std::size_t held0 = held();
    const auto t0 = std::chrono::steady_clock::now();
    timed_steps(steps, step);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%s: %.4f ms/step, %.1f steps/s (loss %.3f); %.2f page faults/step, malloc'd memory %+.1f kB\n",
                latent.c_str(), s / steps * 1e3, steps / s, loss, double(faults() - faults0) / steps,
                (double(held()) - double(held0)) / 1024);
    return 0;
}
