// The speed comparison of Jang et al. (2017, section 4.3): training steps per second of M2
// (examples/semi_supervised.hpp) with the unlabeled class marginalized (k encoder and decoder
// passes) against one Gumbel-Softmax sample, for k classes. As the paper, the labels are random
// (only the cost of y's k values matters): here the images are synthetic binary ones too, so no
// MNIST is needed (a step's cost does not depend on the pixels). Methods alternate, A B A B, and
// each figure is the median of --pairs timings; the table goes to stdout and the plot to --plot.
//
//     build/bench/bench_semi_speed --classes 10,20,50,100 --plot speed.png
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "autograd/threads.hpp"
#include "examples/harness/images.hpp"
#include "examples/semi_supervised.hpp"
#include "optim/adam.hpp"

using namespace tg;

namespace {

struct Setup {
    std::size_t batch = 100, hidden = 500, latent = 50;
    double seconds = 2.0;  // of each timing
};

// Steps per second of training M2 with k classes by `method` for about setup.seconds (at least 2
// steps), after one warm-up step.
double steps_per_second(std::size_t k, m2::Method method, const Setup& setup, std::uint64_t seed) {
    Generator gen(seed), init(1);
    m2::Model model(k, setup.hidden, setup.latent, init);
    optim::Adam adam(model.parameters(), {1e-3f});
    m2::Batch b;
    const dist::Bernoulli pixels = dist::Bernoulli::from_probs(Tensor::full({setup.batch, mnist::image_pixels}, 0.3f));
    b.labeled_x = pixels.sample(&gen);
    b.unlabeled_x = pixels.sample(&gen);
    b.labels = Indices::from_shape({setup.batch});
    for (auto& l : b.labels) l = gen.below(k);
    const auto step = [&] {
        const m2::Loss loss = m2::training_loss(model, b, method, 0.5f, 50.0f, gen);
        loss.objective.backward();
        adam.step();
        adam.zero_grad();
    };
    step();
    const auto start = std::chrono::steady_clock::now();
    double elapsed = 0.0;
    int steps = 0;
    while (steps < 2 || elapsed < setup.seconds) {
        step();
        ++steps;
        elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return steps / elapsed;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Milliseconds of one pass of the encoder and decoder, L(x, y) forward and backward, on `rows`
// images with k classes (no optimizer step): I + G at rows = batch, marginalization's one
// big pass at rows = k x batch. The median of `repeats` timings after a warm-up.
double pass_ms(std::size_t k, std::size_t rows, const Setup& setup, int repeats) {
    Generator gen(3), init(1);
    m2::Model model(k, setup.hidden, setup.latent, init);
    const Tensor x = dist::Bernoulli::from_probs(Tensor::full({rows, mnist::image_pixels}, 0.3f)).sample(&gen);
    const Tensor y = m2::every_class(k, rows / k + 1);
    const Tensor y_rows = slice(y, 0, 0, rows);
    std::vector<double> ms;
    for (int r = 0; r <= repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        sum(m2::labeled_bound(model, x, y_rows, gen)).backward();
        if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    model.zero_grad();
    return median(ms);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("Training steps/s of M2 with the unlabeled class marginalized against one Gumbel-Softmax sample");
    Setup setup;
    std::vector<std::size_t> classes = {10, 20, 50, 100};
    int pairs = 3, threads = 1;
    std::string plot;
    app.add_option("--classes", classes, "k of each comparison")->delimiter(',')->check(CLI::Range(2, 1000));
    app.add_option("--pairs", pairs, "Timings of each method per k (alternating)")->check(CLI::Range(1, 100));
    app.add_option("--seconds", setup.seconds, "Length of each timing")->check(CLI::Range(0.1, 600.0));
    app.add_option("--batch-size", setup.batch, "Labeled and unlabeled images per step (each)")->check(CLI::Range(1, 10000));
    app.add_option("--hidden", setup.hidden, "Hidden units of each MLP")->check(CLI::Range(1, 100000));
    app.add_option("--latent", setup.latent, "Dimensions of z")->check(CLI::Range(1, 10000));
    app.add_option("--threads", threads, "Threads")->check(CLI::Range(1, 256));
    app.add_option("--plot", plot, "Write the plot (PNG) here");
    CLI11_PARSE(app, argc, argv);
    set_num_threads(std::size_t(threads));

    std::printf("| k | marginalization steps/s | Gumbel-Softmax steps/s | speed-up | ms/step marginal / GS | I + G ms "
                "(one pass, batch rows) | D ms (GS step - I - G) | one pass of k x batch rows, ms | D + k (I + G) ms "
                "(its speed-up) |\n|---|---|---|---|---|---|---|---|---|\n");
    std::vector<double> ks, ms_marginal, ms_gs, speedup;
    for (const std::size_t k : classes) {
        std::vector<double> m, g, r;
        for (int p = 0; p < pairs; ++p) {
            m.push_back(steps_per_second(k, m2::Method::marginal, setup, 10 + p));
            g.push_back(steps_per_second(k, m2::Method::gs, setup, 10 + p));
            r.push_back(g.back() / m.back());
        }
        const double one = pass_ms(k, setup.batch, setup, 5), big = pass_ms(k, k * setup.batch, setup, 2);
        const double d = 1000.0 / median(g) - one;  // D: the GS step without its one pass
        std::printf("| %zu | %.2f | %.2f | %.2fx | %.0f / %.0f | %.1f | %.0f | %.0f | %.0f (%.2fx) |\n", k, median(m),
                    median(g), median(r), 1000.0 / median(m), 1000.0 / median(g), one, d, big, d + double(k) * one,
                    (d + double(k) * one) / (d + one));
        std::fflush(stdout);
        ks.push_back(double(k));
        ms_marginal.push_back(1000.0 / median(m));
        ms_gs.push_back(1000.0 / median(g));
        speedup.push_back(median(r));
    }
    if (!plot.empty()) {
        using harness::images::Series;
        harness::images::Canvas canvas(1440, 440, {255, 255, 255});
        const auto blit = [&](const harness::images::Canvas& part, int x0) {
            for (int y = 0; y < part.height(); ++y)
                for (int x = 0; x < part.width(); ++x) canvas.pixel(x0 + x, y, part.at(x, y));
        };
        blit(harness::images::plot({Series{"marginalization", ks, ms_marginal, {200, 60, 40}},
                                    Series{"Gumbel-Softmax", ks, ms_gs, {40, 90, 200}}},
                                   "M2 training step, 1 thread (lower is faster)", "classes k", "ms/step"), 0);
        blit(harness::images::plot({Series{"GS steps/s / marginalization steps/s", ks, speedup, {0, 0, 0}}},
                                   "Gumbel-Softmax speed-up over marginalization", "classes k", "x"), 720);
        canvas.save_png(plot);
    }
    return 0;
}
