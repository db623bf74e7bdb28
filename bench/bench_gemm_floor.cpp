// The GEMM floor of one training step, its GEMMs alone through OpenBLAS into reused buffers:
// no training step can be faster than this. A model is a chain of dense layers; per layer the
// forward y = x W^T and the backward dW = G^T x, and dx = G W for every layer but the first (the
// input needs no gradient). --model sbn (default): the structured-output model (392-H-H-392),
// eight GEMMs; --model vae: discrete_vae's linear model (784-H-784), five; --model
// vae-nonlinear: its --arch nonlinear (784-200-200-H-200-200-784), seventeen. H is --hidden
// (200: the examples' width; the VAEs' latent units) and the rows are --batch (100).
// Usage: bench_gemm_floor [threads=1] [reps=41] [--model sbn|vae|vae-nonlinear] [--hidden H]
// [--batch B]; prints gemm_floor_ms= and gemm_floor_steps_per_s=.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/random.hpp"
#include "autograd/threads.hpp"

extern "C" char* openblas_get_corename(void);

int main(int argc, char** argv) {
    CLI::App app("The GEMM floor of one training step of the structured-output model or the VAE (its GEMMs alone)");
    int threads = 1, reps = 41;
    std::size_t hidden = 200, batch = 100;
    std::string model = "sbn";
    app.add_option("--model", model, "sbn (392-H-H-392), vae (784-H-784) or vae-nonlinear (784-200-200-H-200-200-784)")
        ->check(CLI::IsMember({"sbn", "vae", "vae-nonlinear"}));
    app.add_option("--hidden", hidden, "H: the hidden units of sbn, the latent units of the VAEs")->check(CLI::Range(1, 100000));
    app.add_option("--batch", batch, "rows of each GEMM's batch side")->check(CLI::Range(1, 100000));
    app.add_option("threads", threads, "OpenBLAS threads")->check(CLI::Range(1, 256));
    app.add_option("reps", reps, "timed blocks of steps (the median is printed)")->check(CLI::Range(1, 1000000));
    CLI11_PARSE(app, argc, argv);
    tg::set_num_threads(threads);
    const std::size_t n = batch, h = hidden;
    std::vector<std::size_t> sizes = {392, h, h, 392};
    if (model == "vae") sizes = {784, h, 784};
    if (model == "vae-nonlinear") sizes = {784, 200, 200, h, 200, 200, 784};
    const std::size_t layers = sizes.size() - 1;
    tg::Generator g(1);
    auto filled = [&](std::size_t size) {
        std::vector<float> v(size);
        for (float& x : v) x = g.uniform() - 0.5f;
        return v;
    };
    // y[i]: the activations [n, sizes[i]] (y[0] the input), dy[i] their gradients; w[i], dw[i]: layer i's [out, in]
    std::vector<std::vector<float>> y, dy, w, dw;
    double flops = 0;
    for (std::size_t i = 0; i <= layers; ++i) {
        y.push_back(filled(n * sizes[i]));
        dy.push_back(filled(n * sizes[i]));
        if (i == 0) continue;
        w.push_back(filled(sizes[i] * sizes[i - 1]));
        dw.push_back(std::vector<float>(sizes[i] * sizes[i - 1]));
        flops += 2.0 * double(n * sizes[i] * sizes[i - 1]) * (i == 1 ? 2 : 3);
    }
    auto step = [&] {
        using tg::kernels::gemm;
        for (std::size_t i = 1; i <= layers; ++i) {
            const std::size_t in = sizes[i - 1], out = sizes[i];
            gemm(false, true, n, out, in, 1, y[i - 1].data(), in, w[i - 1].data(), in, 0, y[i].data(), out);
        }
        for (std::size_t i = layers; i >= 1; --i) {
            const std::size_t in = sizes[i - 1], out = sizes[i];
            gemm(true, false, out, in, n, 1, dy[i].data(), out, y[i - 1].data(), in, 0, dw[i - 1].data(), in);
            if (i > 1) gemm(false, false, n, in, out, 1, dy[i].data(), out, w[i - 1].data(), in, 0, dy[i - 1].data(), in);
        }
    };
    // The median of `reps` blocks of steps, each about the work of 50 steps of the default sbn (102.4 MFLOP a
    // step): robust to other processes taking the CPU now and then, and a few seconds in all at any size.
    const int inner = int(std::clamp(std::lround(50 * 102.4e6 / flops), 1L, 50L));
    for (int i = 0; i < inner; ++i) step();
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < inner; ++i) step();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
    }
    std::sort(t.begin(), t.end());
    const double s = t[t.size() / 2];
    std::printf("OpenBLAS core %s, %d thread(s), %s hidden %zu batch %zu: %zu GEMMs, %.1f MFLOP per step, "
                "%.1f GFLOP/s\n", openblas_get_corename(), threads, model.c_str(), h, n, 3 * layers - 1, flops * 1e-6,
                flops / s * 1e-9);
    std::printf("gemm_floor_ms=%.4f\n", s * 1e3);
    std::printf("gemm_floor_steps_per_s=%.1f\n", 1.0 / s);
    return 0;
}
