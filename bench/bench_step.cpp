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
#include <vector>

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
    bool data_parallel = false;
    app.add_option("latent", latent, "bernoulli or categorical")->check(CLI::IsMember({"bernoulli", "categorical"}));
    app.add_option("steps", steps, "timed steps")->check(CLI::Range(1, 1000000));
    app.add_option("threads", threads, "threads")->check(CLI::Range(1, 256));
    app.add_flag("--data-parallel", data_parallel, "split the batch over the threads, not the GEMMs");
    CLI11_PARSE(app, argc, argv);
    if (data_parallel && 100 % threads != 0) {  // the slices would leave rows of the batch out
        std::fprintf(stderr, "bench_step: --data-parallel splits the batch of 100 evenly, so threads must divide 100 "
                             "(1, 2, 4, 5, 10, ...); got %d\n", threads);
        return 2;
    }
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
    const std::size_t slices = data_parallel ? std::size_t(threads) : 1, rows = 100 / slices;
    std::vector<Generator> slice_noise;
    std::vector<Tensor> slice_upper, slice_lower;
    for (std::size_t p = 0; p < slices; ++p) {
        slice_noise.emplace_back(10 + p);
        slice_upper.emplace_back(Array::from_shape({rows, mnist::half_pixels}));
        slice_lower.emplace_back(Array::from_shape({rows, mnist::half_pixels}));
    }
    std::vector<double> slice_loss(slices);
    auto step = [&] {
        if (!batches.next()) batches.next();
        if (slices > 1) {
            parallel_tasks(slices, [&](std::size_t p) {
                const std::vector<std::size_t> part(batches.indices().begin() + p * rows,
                                                    batches.indices().begin() + (p + 1) * rows);
                mnist::gather_halves(data, part, slice_upper[p].value(), slice_lower[p].value());
                const structured::Loss l =
                    structured::training_loss(model, slice_upper[p], slice_lower[p], gs, 1.0f, 1, slice_noise[p]);
                mul(l.objective, 1.0f / float(slices)).backward();  // the mean over the whole batch
                slice_loss[p] = l.value;
            });
            loss = 0.0;
            for (double v : slice_loss) loss += v / double(slices);
        } else {
            mnist::gather_halves(data, batches.indices(), upper.value(), lower.value());
            const structured::Loss l = structured::training_loss(model, upper, lower, gs, 1.0f, 1, noise);
            l.objective.backward();
            loss = l.value;
        }
        adam.step();
        adam.zero_grad();
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
