// Sparse products of discrete samples against the dense GEMMs, in one run (alternating pairs):
// the m-sample NLL bound of examples/structured_output (evaluation, exact samples) and its
// straight-through training step (st-gs), and the importance-weighted bound of
// examples/discrete_vae, for both latent kinds, on synthetic binary images and freshly
// initialized models. Usage: bench_sparse [--images 100] [--samples 1000] [--pairs 3]
// [--steps 500]; run it with OPENBLAS_NUM_THREADS=1 and `uptime` beside it.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "autograd/kernels/sparse.hpp"
#include "autograd/threads.hpp"
#include "examples/discrete_vae.hpp"
#include "examples/structured_output.hpp"
#include "optim/adam.hpp"

using namespace tg;

namespace {

template <class F>
double seconds(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// The fraction of ones in the first layer's exact samples over the data set (what the sparse
// form's work is proportional to, min(ones, zeros) per row for Bernoulli units).
double sample_density(const structured::Model& model, const mnist::DataSet& data) {
    NoGradGuard no_grad;
    Generator gen(11);
    Array upper, lower;
    std::vector<std::size_t> rows(std::min<std::size_t>(data.size(), 500));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
    mnist::gather_halves(data, rows, upper, lower);
    const Tensor h = structured::discrete_units(model.fc1->forward(Tensor(upper)), model.latent, gen);
    double ones = 0.0;
    for (float v : h.value()) ones += v;
    return ones / double(h.size());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app("Sparse products of discrete samples against the dense GEMMs (structured_output's model)");
    std::size_t images = 100, samples = 1000, pairs = 3, steps = 500;
    app.add_option("--images", images, "images of the evaluation (the bound with m samples each)")->check(CLI::Range(1, 10000));
    app.add_option("--samples", samples, "m of the evaluation bound")->check(CLI::Range(1, 100000));
    app.add_option("--pairs", pairs, "alternating dense/sparse pairs")->check(CLI::Range(1, 100));
    app.add_option("--steps", steps, "training steps per timing (0: no training)")->check(CLI::Range(0, 1000000));
    CLI11_PARSE(app, argc, argv);
    set_num_threads(1);
    Generator data_gen(7);
    mnist::DataSet data;
    data.pixels.resize(std::max<std::size_t>(images, 1000) * mnist::image_pixels);
    for (std::uint8_t& b : data.pixels) b = data_gen.uniform() < 0.2f ? 255 : 0;  // binarized: 0 or 255
    data.labels.assign(data.pixels.size() / mnist::image_pixels, 0);
    mnist::DataSet eval_set = data;
    eval_set.pixels.resize(images * mnist::image_pixels);
    eval_set.labels.resize(images);

    for (const auto latent : {structured::Latent::bernoulli, structured::Latent::categorical}) {
        const char* name = latent == structured::Latent::bernoulli ? "bernoulli" : "categorical";
        Generator init(1);
        structured::Model model(latent, 200, init);
        std::vector<double> dense_s, sparse_s, dense_nll, sparse_nll;
        for (std::size_t p = 0; p < pairs; ++p)
            for (const bool sparse : {false, true}) {
                kernels::set_sparse_samples(sparse);
                double nll = 0.0;
                const double s = seconds([&] { nll = structured::nll(model, eval_set, samples, 5); });
                (sparse ? sparse_s : dense_s).push_back(s);
                (sparse ? sparse_nll : dense_nll).push_back(nll);
            }
        std::printf("%s evaluation, %zu images x m = %zu (ones: %.3f of the units): dense %.3f s, sparse %.3f s "
                    "(medians of %zu pairs), %.2fx; NLL dense %.6f sparse %.6f (relative difference %.2g)\n",
                    name, images, samples, sample_density(model, data), median(dense_s), median(sparse_s), pairs,
                    median(dense_s) / median(sparse_s), dense_nll[0], sparse_nll[0],
                    std::abs(sparse_nll[0] - dense_nll[0]) / std::abs(dense_nll[0]));
        if (steps == 0) continue;
        // The straight-through training step (st-gs: exact samples forward): the same steps,
        // model and noise for both forms, from the same start.
        std::vector<double> dense_t, sparse_t;
        double dense_loss = 0.0, sparse_loss = 0.0;
        for (std::size_t p = 0; p < pairs; ++p)
            for (const bool sparse : {false, true}) {
                kernels::set_sparse_samples(sparse);
                Generator init2(1), noise(2);
                structured::Model m(latent, 200, init2);
                optim::Adam adam(m.parameters());
                mnist::BatchIterator batches(data.size(), {100});
                Tensor upper(Array::from_shape({100, mnist::half_pixels})), lower(Array::from_shape({100, mnist::half_pixels}));
                structured::Estimator st("st-gs");
                double loss = 0.0;
                const double s = seconds([&] {
                    for (std::size_t i = 0; i < steps; ++i) {
                        if (!batches.next()) batches.next();
                        mnist::gather_halves(data, batches.indices(), upper.value(), lower.value());
                        const structured::Loss l = structured::training_loss(m, upper, lower, st, 1.0f, 1, noise);
                        l.objective.backward();
                        adam.step();
                        adam.zero_grad();
                        loss = l.value;
                    }
                });
                (sparse ? sparse_t : dense_t).push_back(s);
                (sparse ? sparse_loss : dense_loss) = loss;
            }
        std::printf("%s st-gs training step (batch 100): dense %.1f steps/s, sparse %.1f steps/s, %.2fx; last loss "
                    "dense %.4f sparse %.4f\n",
                    name, double(steps) / median(dense_t), double(steps) / median(sparse_t),
                    median(dense_t) / median(sparse_t), dense_loss, sparse_loss);
    }
    for (const auto latent : {vae::Latent::bernoulli, vae::Latent::categorical}) {
        const bool bernoulli = latent == vae::Latent::bernoulli;
        Generator init(1);
        const vae::Model model(latent, bernoulli ? 200 : 20, init);
        std::vector<double> dense_s, sparse_s, dense_nll, sparse_nll;
        for (std::size_t p = 0; p < pairs; ++p)
            for (const bool sparse : {false, true}) {
                kernels::set_sparse_samples(sparse);
                double nll = 0.0;
                const double s = seconds([&] { nll = vae::evaluate(model, eval_set, samples, 5).nll; });
                (sparse ? sparse_s : dense_s).push_back(s);
                (sparse ? sparse_nll : dense_nll).push_back(nll);
            }
        std::printf("discrete VAE %s evaluation, %zu images x m = %zu: dense %.3f s, sparse %.3f s (medians of %zu "
                    "pairs), %.2fx; NLL dense %.6f sparse %.6f (relative difference %.2g)\n",
                    bernoulli ? "bernoulli" : "categorical", images, samples, median(dense_s), median(sparse_s), pairs,
                    median(dense_s) / median(sparse_s), dense_nll[0], sparse_nll[0],
                    std::abs(sparse_nll[0] - dense_nll[0]) / std::abs(dense_nll[0]));
    }
    kernels::set_sparse_samples(true);
    return 0;
}
