// Structured output prediction on MNIST with discrete latent units (Jang et al. 2017, 4.1):
// the flags, the hookup of the model (structured_output.hpp) to the shared training loop
// (examples/harness), the test NLL and the pictures.
//
//     scripts/fetch-mnist && build/examples/structured_output --epochs 10
//     build/examples/structured_output --help
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "examples/harness/images.hpp"
#include "examples/structured_output.hpp"

using namespace structured;
namespace fs = std::filesystem;

namespace {

// Seeds of the run's generators, derived from --seed (2 is the harness's batch order).
enum Purpose : std::uint64_t { init_seed = 1, noise_seed = 3, binarize_seed = 4, eval_seed = 5, picture_seed = 6 };

struct Options {
    harness::Flags run;
    std::string latent = "bernoulli", estimator = "gs", binarize = "fixed", optimizer = "adam";
    float lr = 1e-3f, momentum = 0.9f, tau = 1.0f, tau_min = 0.5f, anneal_rate = 1e-5f;
    std::size_t hidden = 200, anneal_every = 1000, samples = 1, eval_samples = 1000, val_samples = 5;
    std::size_t validation = mnist::validation_size;
};

const std::vector<std::string> latents = {"bernoulli", "categorical"}, estimators = {"gs", "st-gs", "st", "sf"},
                               binarizations = {"fixed", "threshold", "dynamic"};

// The first test image of each digit 0-7 (or the first 8 images if some digit is missing).
std::vector<std::size_t> picture_rows(const mnist::DataSet& test) {
    std::vector<std::size_t> rows;
    for (std::uint8_t d = 0; d < 8; ++d)
        for (std::size_t i = 0; i < test.size(); ++i)
            if (test.labels[i] == d) {
                rows.push_back(i);
                break;
            }
    if (rows.size() == 8) return rows;
    rows.clear();
    for (std::size_t i = 0; i < std::min<std::size_t>(8, test.size()); ++i) rows.push_back(i);
    return rows;
}

void save_pictures(const Options& o, const std::string& dir, const Model& model, const mnist::DataSet& test,
                   const harness::Trained& trained) {
    constexpr std::size_t k = 6;  // sampled completions per digit
    Array upper, lower;
    mnist::gather_halves(test, picture_rows(test), upper, lower);
    Generator gen(harness::derive_seed(o.run.seed, picture_seed));
    const Array probs = sigmoid(lower_logits(model, upper, k, gen)).value();
    harness::images::completion_grid(upper, lower, probs, k).save_png((fs::path(dir) / "completions.png").string());

    harness::images::Series train{"train loss", {}, {}, {200, 60, 40}};
    harness::images::Series val{"validation NLL (m = " + std::to_string(o.val_samples) + ")", {}, {}, {40, 90, 200}};
    for (const std::vector<double>& row : trained.history) {  // epoch, step, train_loss, val_nll, ...
        train.x.push_back(row[0]), train.y.push_back(row[2]);
        val.x.push_back(row[0]), val.y.push_back(row[3]);
    }
    const std::string title = o.latent + " " + o.estimator + ": NLL of the lower half, " + o.binarize + " MNIST";
    harness::images::plot({train, val}, title, "epoch", "nats").save_png((fs::path(dir) / "curves.png").string());
}

int run(int argc, char** argv) {
    Options o;
    CLI::App app{
        "Structured output prediction on binarized MNIST (Jang, Gu and Poole 2017, section 4.1): a network\n"
        "with two layers of discrete stochastic units predicts the lower 14 rows of a digit from the upper 14.\n"
        "Model: 392 -> Linear -> hidden units -> Linear -> hidden units -> Linear -> 392 Bernoulli logits.\n"
        "Trains on 50,000 training images, validates on the last 10,000 of the training file, tests on t10k.",
        "structured_output"};
    app.get_formatter()->column_width(34);
    harness::add_common_flags(app, o.run);
    harness::add_choice(app, "--latent", o.latent, "bernoulli: binary units (Binary Concrete when relaxed); categorical: "
                                         "hidden/10 variables of 10 classes (Gumbel-Softmax when relaxed)", latents);
    harness::add_choice(app, "--estimator", o.estimator,
                   "Gradient estimator: gs (relaxed samples), st-gs (straight-through Gumbel-Softmax: discrete "
                   "forward, relaxed gradient), st (plain straight-through: discrete sample forward, gradient of the "
                   "probabilities backward), sf (score function / REINFORCE with a moving-average baseline)", estimators);
    harness::add_choice(app, "--binarize", o.binarize,
                   "fixed: each pixel sampled once from its intensity (fixed seed, the paper's data); threshold: "
                   "intensity > 0.5 (an easier data set, lower NLL); dynamic: training images resampled every batch", binarizations);
    harness::add_choice(app, "--optimizer", o.optimizer, "adam or sgd (SGD with --momentum)", {"adam", "sgd"});
    harness::add_positive(app, "--lr", o.lr, "Learning rate (constant)");
    harness::add_real(app, "--momentum", o.momentum, "Momentum of SGD (the paper: 0.9)", 0.0f, 1.0f);
    harness::add_count(app, "--hidden", o.hidden, "Stochastic units per layer (a multiple of 10 for categorical)", 1, 100000);
    harness::add_positive(app, "--tau", o.tau, "Temperature of the relaxed samples at step 0");
    harness::add_positive(app, "--tau-min", o.tau_min, "Floor of the annealed temperature");
    harness::add_real(app, "--anneal-rate", o.anneal_rate, "r in tau = max(tau-min, tau exp(-r step)) (0: a fixed tau)",
                      0.0f, INFINITY);
    harness::add_count(app, "--anneal-every", o.anneal_every, "Steps between temperature updates", 1, std::size_t{1} << 40);
    harness::add_count(app, "--samples", o.samples, "m of the training objective: -log((1/m) sum_i p(lower | h_i)) "
                                                    "over m samples per image (1: the plain NLL of one sample)", 1, 10000);
    harness::add_count(app, "--eval-samples", o.eval_samples,
                       "m of the test NLL after training, on the 10,000 test images with discrete samples (0: skip)", 0, 100000);
    harness::add_count(app, "--val-samples", o.val_samples,
                       "m of the validation NLL after each epoch (0: skip). The default 5 overstates the NLL (a trained "
                       "model: by about 6 nats against m = 1000), which is fine for comparing epochs and settings", 0, 100000);
    harness::add_count(app, "--validation", o.validation, "Images from the end of the training file held out for "
                                                          "validation", 1, 59999);
    app.footer(
        "Outputs in --out (default runs/<latent>-<estimator>): metrics.csv (a row per epoch), checkpoint.npz\n"
        "(written atomically after every epoch and at the end), completions.png (sampled lower halves of 8 test\n"
        "digits) and curves.png. A line per epoch on stdout ends with the resident memory (rss); the last lines\n"
        "are train_steps_per_s=<float> (training only) and test_nll=<float>.\n"
        "Ctrl-C or SIGTERM saves the checkpoint and exits with 130; --resume continues exactly (with one thread,\n"
        "bit for bit). Exit status: 0 done; 2 bad flags, data or checkpoint; 3 a non-finite loss or gradient.");
    if (const auto status = harness::parse(app, argc, argv)) return *status;

    const Latent latent = Latent(harness::index_of(o.latent, latents));
    const Estimator estimator = Estimator(harness::index_of(o.estimator, estimators));
    const auto binarization = mnist::Binarization(harness::index_of(o.binarize, binarizations));
    harness::require(latent == Latent::bernoulli || o.hidden % classes == 0,
                     "--hidden " + std::to_string(o.hidden) + " is not divisible by 10: categorical units are variables of 10 classes");
    harness::require(o.anneal_rate == 0.0f || o.tau_min <= o.tau,
                     "--tau " + harness::format("%g", o.tau) + " is below --tau-min " + harness::format("%g", o.tau_min) +
                         " (lower --tau-min, or use --anneal-rate 0 for a fixed tau)");
    // A step's tape holds about 2 (4 * 392 + 8 * hidden) floats per row (batch x samples): flags
    // whose step cannot fit in this machine's memory are refused now, not by the OOM killer.
    const double step_gb = 8.0 * (4.0 * mnist::half_pixels + 8.0 * double(o.hidden)) * double(o.samples) *
                           double(o.run.batch_size) / 1e9;
    const double ram_gb = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE)) / 1e9;
    harness::require(step_gb <= ram_gb, "--batch-size " + std::to_string(o.run.batch_size) + " x --samples " +
                                            std::to_string(o.samples) + " rows with --hidden " + std::to_string(o.hidden) +
                                            " need about " + harness::format("%.1f", step_gb) + " GB a training step, more than " +
                                            "this machine's " + harness::format("%.1f", ram_gb) + " GB");
    const std::string dir = o.run.out.empty() ? "runs/" + o.latent + "-" + o.estimator : o.run.out;

    harness::now_doing("loading MNIST from " + o.run.data);
    mnist::LoadOptions load;
    load.binarization = binarization;
    load.seed = 0;  // the same data for every --seed
    load.validation = o.validation;
    const mnist::Mnist data = mnist::load(o.run.data, load);

    Generator init(harness::derive_seed(o.run.seed, init_seed));
    Model model(latent, o.hidden, init);
    std::unique_ptr<optim::Optimizer> optimizer;
    if (o.optimizer == "sgd") optimizer = std::make_unique<optim::SGD>(model.parameters(), optim::SGDOptions{o.lr, o.momentum});
    else optimizer = std::make_unique<optim::Adam>(model.parameters(), optim::AdamOptions{o.lr});
    Generator noise(harness::derive_seed(o.run.seed, noise_seed)), binarize(harness::derive_seed(o.run.seed, binarize_seed));
    std::unique_ptr<optim::TemperatureSchedule> temperature;
    if (o.anneal_rate > 0.0f)
        temperature = std::make_unique<optim::ExponentialTemperature>(o.tau, o.anneal_rate, o.tau_min, std::int64_t(o.anneal_every));
    else temperature = std::make_unique<optim::ConstantTemperature>(o.tau);
    nn::Reinforce reinforce(0.9f);
    bool baseline_set = false;  // the score function's baseline: after its first batch
    Tensor upper(Array::from_shape({o.run.batch_size, mnist::half_pixels}));
    Tensor lower(Array::from_shape({o.run.batch_size, mnist::half_pixels}));

    harness::Experiment ex;
    ex.program = "structured_output";
    ex.model = &model;
    ex.optimizer = optimizer.get();
    ex.train_size = data.train.size();
    ex.loss = [&](const std::vector<std::size_t>& rows, std::size_t step) {
        mnist::gather_halves(data.train, rows, upper.value(), lower.value());
        if (binarization == mnist::Binarization::dynamic) {
            mnist::binarize_sample(upper.value(), binarize);
            mnist::binarize_sample(lower.value(), binarize);
        }
        const float tau = temperature->at(std::int64_t(step));
        const Loss loss = training_loss(model, upper, lower, estimator, tau, o.samples, noise, &reinforce);
        baseline_set = baseline_set || estimator == Estimator::sf;
        return harness::Loss{loss.objective, loss.nll};
    };
    ex.columns = {{"val_nll", "%8.3f"}, {"tau", "%.4f"}, {"lr", "%g"}};
    ex.after_epoch = [&](std::size_t epoch, std::size_t step) {
        const double val = o.val_samples == 0 ? NAN : nll(model, data.validation, o.val_samples,
                                                            harness::derive_seed(o.run.seed, eval_seed) + epoch - 1);
        return std::vector<double>{val, temperature->at(std::int64_t(step) - 1), optimizer->lr()};
    };
    ex.generators = {{"noise", &noise}, {"binarize", &binarize}};
    ex.identity = {{"--latent", o.latent}, {"--estimator", o.estimator}, {"--hidden", std::to_string(o.hidden)},
                   {"--samples", std::to_string(o.samples)}, {"--batch-size", std::to_string(o.run.batch_size)},
                   {"--binarize", o.binarize}, {"--optimizer", o.optimizer}, {"--seed", std::to_string(o.run.seed)}};
    ex.save_state = [&](Checkpoint& ck) {
        Array b = Array::from_shape({1});
        b(0) = baseline_set ? reinforce.baseline() : NAN;
        ck.put("run.baseline", std::move(b));
    };
    ex.load_state = [&](const Checkpoint& ck) {
        const float b = ck.get("run.baseline").data()[0];
        if ((baseline_set = !std::isnan(b))) reinforce.set_baseline(b);
    };
    const harness::Trained trained = harness::train(o.run, dir, ex);
    if (trained.status != 0) return trained.status;

    harness::now_doing("drawing the pictures");
    save_pictures(o, dir, model, data.test, trained);
    double test_nll = NAN;
    if (o.eval_samples > 0) {
        harness::now_doing("evaluating the test NLL with m = " + std::to_string(o.eval_samples));
        const auto t0 = std::chrono::steady_clock::now();
        test_nll = nll(model, data.test, o.eval_samples, harness::derive_seed(o.run.seed, eval_seed) - 1);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::cout << "test NLL " << harness::format("%.3f", test_nll) << " nats (m = " << o.eval_samples << ", "
                  << data.test.size() << " images, " << harness::format("%.1f", seconds) << " s)\n";
    }
    std::cout << "outputs in " << dir << ":";
    for (const char* name : {"metrics.csv", "checkpoint.npz", "completions.png", "curves.png"})
        if (fs::exists(fs::path(dir) / name)) std::cout << " " << name;
    std::cout << "\ntrain_steps_per_s=" << harness::format("%.2f", trained.steps_per_s) << "\n";
    if (o.eval_samples > 0) std::cout << "test_nll=" << harness::format("%.4f", test_nll) << "\n";
    std::cout << std::flush;
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return harness::main("structured_output", argc, argv, run); }
