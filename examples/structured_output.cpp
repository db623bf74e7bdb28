// Structured output prediction on MNIST with discrete latent units (Jang et al. 2017, 4.1):
// the program around the model (structured_output.hpp): its flags, the training step and the
// evaluation after each epoch handed to the shared training loop (examples/harness), then the
// pictures and the test NLL.
//
//     scripts/fetch-mnist && build/examples/structured_output --epochs 10
//     build/examples/structured_output --help
#include <cmath>
#include <filesystem>
#include <iostream>

#include "examples/harness/annealing.hpp"
#include "examples/harness/images.hpp"
#include "examples/structured_output.hpp"

using namespace structured;
namespace fs = std::filesystem;

namespace {

// Seeds of the run's generators, derived from --seed (2 is the harness's batch order).
enum Purpose : std::uint64_t { init_seed = 1, noise_seed = 3, binarize_seed = 4, eval_seed = 5, picture_seed = 6 };

struct Options {
    harness::Flags run;
    harness::OptimizerFlags optimizer;
    harness::Annealing annealing;
    harness::SlopeAnnealing slope;
    std::string latent = "bernoulli", estimator = "gs", binarize = "fixed";
    std::size_t hidden = 200, samples = 1, eval_samples = 1000, val_samples = 5;
    std::size_t validation = mnist::validation_size;
};

const std::vector<std::string> latents = {"bernoulli", "categorical"}, binarizations = {"fixed", "threshold", "dynamic"};

void add_flags(CLI::App& app, Options& o) {
    harness::add_common_flags(app, o.run);
    harness::add_choice(app, "--latent", o.latent, "bernoulli: binary units (Binary Concrete when relaxed); categorical: "
                                         "hidden/10 variables of 10 classes (Gumbel-Softmax when relaxed)", latents);
    harness::add_estimator_flag(app, o.estimator, {Discrete::bernoulli(), Discrete::categorical(classes)},
                                "muprop, arm, disarm, rebar, rebar-tuned and relax need one layer of latents and do "
                                "not apply here; rloo and vimco need --samples >= 2");
    harness::add_choice(app, "--binarize", o.binarize,
                   "fixed: each pixel sampled once from its intensity (fixed seed, the paper's data); threshold: "
                   "intensity > 0.5 (an easier data set, lower NLL); dynamic: training images resampled every batch", binarizations);
    harness::add_optimizer_flags(app, o.optimizer);
    harness::add_count(app, "--hidden", o.hidden, "Stochastic units per layer (a multiple of 10 for categorical)", 1, 100000);
    harness::add_annealing_flags(app, o.annealing);
    harness::add_slope_flags(app, o.slope);
    harness::add_count(app, "--samples", o.samples, "m of the training objective: -log((1/m) sum_i p(lower | h_i)) "
                                                    "over m samples per image (1: the plain NLL of one sample)", 1, 10000);
    harness::add_count(app, "--eval-samples", o.eval_samples,
                       "m of the test NLL after training, on the 10,000 test images with discrete samples (0: skip)", 0, 100000);
    harness::add_count(app, "--val-samples", o.val_samples,
                       "m of the validation NLL after each epoch (0: skip). The default 5 overstates the NLL (a trained "
                       "model: by about 6 nats against m = 1000), which is fine for comparing epochs and settings", 0, 100000);
    harness::add_count(app, "--validation", o.validation, "Images from the end of the training file held out for "
                                                          "validation", 1, 59999);
    app.footer(harness::footer("runs/<latent>-<estimator>",
                               "completions.png (sampled lower halves of 8 test digits) and curves.png", "test_nll=<float>"));
}

int run(int argc, char** argv) {
    Options o;
    CLI::App app{
        "Structured output prediction on binarized MNIST (Jang, Gu and Poole 2017, section 4.1): a network\n"
        "with two layers of discrete stochastic units predicts the lower 14 rows of a digit from the upper 14.\n"
        "Model: 392 -> Linear -> hidden units -> Linear -> hidden units -> Linear -> 392 Bernoulli logits.\n"
        "Trains on 50,000 training images, validates on the last 10,000 of the training file, tests on t10k.",
        "structured_output"};
    add_flags(app, o);
    if (const auto status = harness::parse(app, argc, argv)) return *status;

    const Latent latent = Latent(harness::index_of(o.latent, latents));
    Estimator estimator(o.estimator);
    const auto binarization = mnist::Binarization(harness::index_of(o.binarize, binarizations));
    harness::require_estimator([&] { require_applies(estimator, latent, o.samples); });
    harness::require(latent == Latent::bernoulli || o.hidden % classes == 0,
                     "--hidden " + std::to_string(o.hidden) + " is not divisible by 10: categorical units are variables of 10 classes");
    const optim::ExponentialTemperature temperature = harness::temperature_schedule(o.annealing, estimator);
    // A step's tape holds about 2 (4 * 392 + 8 * hidden) floats per row (batch x samples).
    harness::require_memory(8.0 * (4.0 * mnist::half_pixels + 8.0 * double(o.hidden)) * double(o.samples) *
                                double(o.run.batch_size),
                            "--batch-size " + std::to_string(o.run.batch_size) + " x --samples " +
                                std::to_string(o.samples) + " rows with --hidden " + std::to_string(o.hidden));
    const std::string dir = o.run.out.empty() ? "runs/" + o.latent + "-" + o.estimator : o.run.out;
    const mnist::Mnist data = harness::load_mnist(o.run, binarization, o.validation);

    Generator init(harness::derive_seed(o.run.seed, init_seed));
    Model model(latent, o.hidden, init);
    harness::attach_estimator_parts(estimator, model, mnist::half_pixels, discrete_kind(latent), o.hidden, init);
    const std::unique_ptr<optim::Optimizer> optimizer = harness::make_optimizer(o.optimizer, model.parameters());
    const std::unique_ptr<optim::LRSchedule> schedule = harness::make_schedule(o.optimizer, *optimizer);
    Generator noise(harness::derive_seed(o.run.seed, noise_seed)), binarize(harness::derive_seed(o.run.seed, binarize_seed));
    Tensor upper(Array::from_shape({o.run.batch_size, mnist::half_pixels}));
    Tensor lower(Array::from_shape({o.run.batch_size, mnist::half_pixels}));

    // The training step: the halves of the batch (resampled for dynamic binarization), the
    // temperature of the step, the loss; the harness differentiates it and steps the optimizer.
    harness::Experiment ex("structured_output", model, *optimizer, data.train.size());
    ex.loss = [&](const std::vector<std::size_t>& rows, std::size_t step) {
        mnist::gather_halves(data.train, rows, upper.value(), lower.value());
        if (binarization == mnist::Binarization::dynamic) {
            mnist::binarize_sample(upper.value(), binarize);
            mnist::binarize_sample(lower.value(), binarize);
        }
        const float tau = temperature.at(std::int64_t(step));
        return training_loss(model, upper, lower, estimator, tau, o.samples, noise);
    };
    // The evaluation after each epoch: the validation NLL.
    ex.columns = {{"val_nll", "%8.3f"}, {"tau", "%.4f"}, {"lr", "%g"}};
    ex.after_epoch = [&](std::size_t epoch, std::size_t step) {
        const double val = o.val_samples == 0 ? NAN : nll(model, data.validation, o.val_samples,
                                                            harness::derive_seed(o.run.seed, eval_seed) + epoch - 1);
        return std::vector<double>{val, temperature.at(std::int64_t(step) - 1), optimizer->lr()};
    };
    ex.monitor = "val_nll";
    ex.schedule = schedule.get();
    ex.generators = {{"noise", &noise}, {"binarize", &binarize}};
    ex.identity = {{"--latent", o.latent}, {"--estimator", o.estimator}, {"--hidden", std::to_string(o.hidden)},
                   {"--samples", std::to_string(o.samples)}, {"--batch-size", std::to_string(o.run.batch_size)},
                   {"--binarize", o.binarize}, {"--seed", std::to_string(o.run.seed)},
                   {"--validation", std::to_string(o.validation)}};
    // the optimizer's and the temperature's flags: a resumed run with others would not continue this one
    for (const auto& flags : {harness::identity(o.optimizer), harness::identity(o.annealing)})
        ex.identity.insert(ex.identity.end(), flags.begin(), flags.end());
    harness::anneal_slope(ex, estimator, o.slope, o.run);
    harness::keep_estimator_state(ex, estimator);
    const harness::Trained trained = harness::train(o.run, dir, ex);
    if (trained.status != 0) return trained.status;
    harness::use_best(o.run, trained, model);

    // The pictures: sampled completions of 8 test digits, the learning curves.
    harness::now_doing("drawing the pictures");
    Array test_upper, test_lower;
    mnist::gather_halves(data.test, harness::images::first_of_each_digit(data.test.labels), test_upper, test_lower);
    Generator picture(harness::derive_seed(o.run.seed, picture_seed));
    constexpr std::size_t k = 6;  // sampled completions per digit
    const Array probs = sigmoid(lower_logits(model, test_upper, k, picture)).value();
    harness::images::completion_grid(test_upper, test_lower, probs, k).save_png((fs::path(dir) / "completions.png").string());
    harness::images::learning_curves(trained, "val_nll", "validation NLL (m = " + std::to_string(o.val_samples) + ")",
                                     o.latent + " " + o.estimator + ": NLL of the lower half, " + o.binarize + " MNIST")
        .save_png((fs::path(dir) / "curves.png").string());

    // The test NLL with m discrete samples per image.
    std::vector<std::pair<std::string, std::string>> results;
    if (o.eval_samples > 0) {
        harness::now_doing("evaluating the test NLL with m = " + std::to_string(o.eval_samples));
        const harness::Stopwatch clock;
        const double test_nll = nll(model, data.test, o.eval_samples, harness::derive_seed(o.run.seed, eval_seed) - 1);
        std::cout << "test NLL " << harness::format("%.3f", test_nll) << " nats (m = " << o.eval_samples << ", "
                  << data.test.size() << " images, " << harness::format("%.1f", clock.seconds()) << " s)\n";
        results.emplace_back("test_nll", harness::format("%.4f", test_nll));
    }
    harness::report(dir, trained, {"completions.png", "curves.png"}, results);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return harness::main("structured_output", argc, argv, run); }
