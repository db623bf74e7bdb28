// Engine micro-benchmarks: the tape's cost per op, and one training step of a
// 392-200-200-392 MLP at batch 100 against its GEMMs alone (the floor a step can approach).
// Usage: bench_engine [threads=1] [steps=500]
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/threads.hpp"
#include "examples/harness/memory.hpp"
#include "tapegrad.hpp"

using namespace tg;
using clock_type = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// Median seconds per call of f over `reps` timed blocks of `inner` calls each.
template <class F>
double time_per_call(F&& f, int reps, int inner) {
    for (int i = 0; i < inner; ++i) f();  // warm-up
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = clock_type::now();
        for (int i = 0; i < inner; ++i) f();
        t.push_back(std::chrono::duration<double>(clock_type::now() - t0).count() / inner);
    }
    return median(t);
}

Tensor uniform_param(Generator& g, std::size_t rows, std::size_t cols) {
    const float bound = 1.0f / std::sqrt(float(cols));
    Array a = Array::from_shape({rows, cols});
    for (float& v : a) v = (2.0f * g.uniform() - 1.0f) * bound;
    return Tensor(std::move(a), true);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("tapegrad engine micro-benchmarks: tape cost per op, MLP step against its GEMMs");
    int threads = 1, steps = 500;
    app.add_option("threads", threads, "OpenBLAS threads")->check(CLI::Range(1, 256));
    app.add_option("steps", steps, "timed MLP steps")->check(CLI::Range(1, 1000000));
    CLI11_PARSE(app, argc, argv);
    set_num_threads(threads);
    std::printf("tapegrad engine bench, %d OpenBLAS thread(s), OpenBLAS core %s\n\n", threads, blas_core());

    // 1. Tape overhead: a chain of 100 one-element adds, forward and backward.
    {
        Tensor a = Tensor::scalar(1.0f, true), b = Tensor::scalar(0.5f);
        const int chain = 100;
        const double t = time_per_call(
            [&] {
                a.zero_grad();
                Tensor y = a;
                for (int i = 0; i < chain; ++i) y = y + b;
                y.backward();
            },
            21, 200);
        std::printf("tape overhead: %.3f us per op (one-element add, forward + backward)\n", t / chain * 1e6);
    }

    // 2. MLP training step vs its GEMMs.
    const std::size_t n = 100, d_in = 392, h = 200, d_out = 392;
    Generator g(1);
    Array x = Array::from_shape({n, d_in}), target = Array::from_shape({n, d_out});
    for (float& v : x) v = g.uniform() < 0.3f ? 1.0f : 0.0f;
    for (float& v : target) v = g.uniform() < 0.3f ? 1.0f : 0.0f;
    Tensor input(x), target_t(target);
    Tensor w1 = uniform_param(g, h, d_in), w2 = uniform_param(g, h, h), w3 = uniform_param(g, d_out, h);
    Tensor b1 = Tensor::zeros({h}, true), b2 = Tensor::zeros({h}, true), b3 = Tensor::zeros({d_out}, true);
    std::vector<Tensor> params{w1, b1, w2, b2, w3, b3};
    auto train_step = [&] {
        for (Tensor& p : params) p.zero_grad();
        Tensor h1 = sigmoid(linear(input, w1, b1));
        Tensor h2 = sigmoid(linear(h1, w2, b2));
        Tensor loss = binary_cross_entropy_with_logits(linear(h2, w3, b3), target_t, Reduction::sum) * (1.0f / n);
        loss.backward();
        for (Tensor& p : params) {  // plain SGD, in place
            float* v = p.value().data();
            const float* gr = p.grad().data();
            const std::size_t count = p.size();  // hoisted: Tensor::size() is an out-of-line call
            for (std::size_t i = 0; i < count; ++i) v[i] -= 1e-3f * gr[i];
        }
    };

    // The same GEMMs (3 forward, 3 weight gradients, 2 input gradients) into fixed buffers.
    std::vector<float> y1(n * h), y2(n * h), y3(n * d_out), gw1(h * d_in), gw2(h * h), gw3(d_out * h), gx2(n * h),
        gx3(n * h);
    auto gemms_only = [&] {
        using kernels::gemm;
        gemm(false, true, n, h, d_in, 1, x.data(), d_in, w1.value().data(), d_in, 0, y1.data(), h);
        gemm(false, true, n, h, h, 1, y1.data(), h, w2.value().data(), h, 0, y2.data(), h);
        gemm(false, true, n, d_out, h, 1, y2.data(), h, w3.value().data(), h, 0, y3.data(), d_out);
        gemm(true, false, d_out, h, n, 1, y3.data(), d_out, y2.data(), h, 0, gw3.data(), h);
        gemm(false, false, n, h, d_out, 1, y3.data(), d_out, w3.value().data(), h, 0, gx3.data(), h);
        gemm(true, false, h, h, n, 1, gx3.data(), h, y1.data(), h, 0, gw2.data(), h);
        gemm(false, false, n, h, h, 1, gx3.data(), h, w2.value().data(), h, 0, gx2.data(), h);
        gemm(true, false, h, d_in, n, 1, gx2.data(), h, x.data(), d_in, 0, gw1.data(), d_in);
    };

    const double t_gemm = time_per_call(gemms_only, 21, 50);
    for (int i = 0; i < 50; ++i) train_step();
    const long rss0 = harness::memory::rss_kb();
    const std::size_t heap0 = mallinfo2().uordblks;
    const double t_step = time_per_call(train_step, 21, std::max(1, steps / 21));
    const long rss1 = harness::memory::rss_kb();
    const std::size_t heap1 = mallinfo2().uordblks;
    const double flops = 2.0 * n * (d_in * h + h * h + h * d_out) * 3 - 2.0 * n * d_in * h;
    std::printf("MLP 392-200-200-392, batch 100 (sigmoid, BCE with logits, SGD):\n");
    std::printf("  GEMMs alone:   %8.3f ms/step  (%.1f GFLOP/s)\n", t_gemm * 1e3, flops / t_gemm * 1e-9);
    std::printf("  training step: %8.3f ms/step  (%.0f steps/s)\n", t_step * 1e3, 1.0 / t_step);
    std::printf("  step / GEMMs:  %8.3f\n", t_step / t_gemm);
    std::printf("  RSS after warm-up %ld kB, after %d more steps %ld kB; heap in use %zu -> %zu bytes\n", rss0,
                steps, rss1, heap0, heap1);
    return 0;
}
