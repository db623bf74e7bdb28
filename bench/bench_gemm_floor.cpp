// The GEMM floor of one training step, its GEMMs alone through OpenBLAS into reused buffers:
// no training step can be faster than this. --model sbn (default): the structured-output model
// (392-200-200-392, batch 100), eight GEMMs: forward y = x W^T for three layers, backward
// dW = G^T x for three and dx = G W for the two hidden layers (the input needs no gradient).
// --model vae: discrete_vae's linear model (784-200-784, batch 100), five GEMMs: two forward,
// dW for both layers and dz for the latent.
// Usage: bench_gemm_floor [threads=1] [reps=41] [--model sbn|vae]; prints gemm_floor_ms= and
// gemm_floor_steps_per_s=.
#include <algorithm>
#include <chrono>
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
    std::string model = "sbn";
    app.add_option("--model", model, "sbn (392-200-200-392) or vae (784-200-784)")->check(CLI::IsMember({"sbn", "vae"}));
    app.add_option("threads", threads, "OpenBLAS threads")->check(CLI::Range(1, 256));
    app.add_option("reps", reps, "timed blocks of 50 steps (the median is printed)")->check(CLI::Range(1, 1000000));
    CLI11_PARSE(app, argc, argv);
    tg::set_num_threads(threads);
    const bool vae = model == "vae";
    const std::size_t n = 100, d = vae ? 784 : 392, h = 200;
    tg::Generator g(1);
    auto filled = [&](std::size_t size) {
        std::vector<float> v(size);
        for (float& x : v) x = g.uniform() - 0.5f;
        return v;
    };
    const std::vector<float> x = filled(n * d), w1 = filled(h * d), w2 = filled(h * h), w3 = filled(d * h);
    std::vector<float> y1 = filled(n * h), y2 = filled(n * h), y3 = filled(n * d), gw1(h * d), gw2(h * h),
                       gw3(d * h), gx2(n * h), gx3(n * h);
    auto step = [&] {
        using tg::kernels::gemm;
        if (vae) {  // x -> y1 (latent), y1 -> y3 (pixels); dW3 = G^T y1, dy1 = G W3, dW1 = G1^T x
            gemm(false, true, n, h, d, 1, x.data(), d, w1.data(), d, 0, y1.data(), h);
            gemm(false, true, n, d, h, 1, y1.data(), h, w3.data(), h, 0, y3.data(), d);
            gemm(true, false, d, h, n, 1, y3.data(), d, y1.data(), h, 0, gw3.data(), h);
            gemm(false, false, n, h, d, 1, y3.data(), d, w3.data(), h, 0, gx3.data(), h);
            gemm(true, false, h, d, n, 1, gx3.data(), h, x.data(), d, 0, gw1.data(), d);
            return;
        }
        gemm(false, true, n, h, d, 1, x.data(), d, w1.data(), d, 0, y1.data(), h);
        gemm(false, true, n, h, h, 1, y1.data(), h, w2.data(), h, 0, y2.data(), h);
        gemm(false, true, n, d, h, 1, y2.data(), h, w3.data(), h, 0, y3.data(), d);
        gemm(true, false, d, h, n, 1, y3.data(), d, y2.data(), h, 0, gw3.data(), h);
        gemm(false, false, n, h, d, 1, y3.data(), d, w3.data(), h, 0, gx3.data(), h);
        gemm(true, false, h, h, n, 1, gx3.data(), h, y1.data(), h, 0, gw2.data(), h);
        gemm(false, false, n, h, h, 1, gx3.data(), h, w2.data(), h, 0, gx2.data(), h);
        gemm(true, false, h, d, n, 1, gx2.data(), h, x.data(), d, 0, gw1.data(), d);
    };
    // The median of `reps` blocks of 50 steps: robust to other processes taking the CPU now and then.
    const int inner = 50;
    for (int i = 0; i < inner; ++i) step();
    std::vector<double> t;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < inner; ++i) step();
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / inner);
    }
    std::sort(t.begin(), t.end());
    const double s = t[t.size() / 2];
    const double flops = vae ? 2.0 * n * d * h * 5 : 2.0 * n * (d * h + h * h + h * d) * 3 - 2.0 * n * d * h;
    std::printf("OpenBLAS core %s, %d thread(s): %.1f MFLOP per step, %.1f GFLOP/s\n", openblas_get_corename(),
                threads, flops * 1e-6, flops / s * 1e-9);
    std::printf("gemm_floor_ms=%.4f\n", s * 1e3);
    std::printf("gemm_floor_steps_per_s=%.1f\n", 1.0 / s);
    return 0;
}
