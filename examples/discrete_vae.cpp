// A variational autoencoder with discrete latent variables on MNIST (Jang et al. 2017, 4.2): the
// flags, the hookup of the model (discrete_vae.hpp) to the shared training loop
// (examples/harness), the test bounds and the pictures.
//
//     scripts/fetch-mnist && build/examples/discrete_vae --epochs 10
//     build/examples/discrete_vae --help
#include <cmath>
#include <filesystem>
#include <iostream>

#include "examples/discrete_vae.hpp"
#include "examples/harness/annealing.hpp"
#include "examples/harness/images.hpp"

using namespace vae;
namespace fs = std::filesystem;

namespace {

// Seeds of the run's generators, derived from --seed (2 is the harness's batch order).
enum Purpose : std::uint64_t { init_seed = 1, noise_seed = 3, eval_seed = 5, picture_seed = 6 };

struct Options {
    harness::Flags run;
    harness::Annealing annealing;
    harness::SlopeAnnealing slope;
    std::string latent = "bernoulli", estimator = "gs", arch = "linear", prior = "learned";
    harness::OptimizerFlags optimizer;
    std::size_t eval_samples = 1000, val_samples = 5, validation = mnist::validation_size;
};

const std::vector<std::string> latents = {"bernoulli", "categorical"}, archs = {"linear", "nonlinear"},
                               priors = {"learned", "uniform"};

// reconstructions.png: 8 test digits in the top row, under each 7 decodings of discrete samples
// z ~ q(z | x); samples.png: 64 digits decoded from samples of the prior (pixel probabilities).
void save_pictures(const Options& o, const std::string& dir, const Model& model, const mnist::DataSet& test) {
    constexpr std::size_t k = 7;
    Generator gen(harness::derive_seed(o.run.seed, picture_seed));
    std::vector<std::size_t> rows;
    for (std::size_t i = 0; i < std::min<std::size_t>(8, test.size()); ++i) rows.push_back(i);
    Array images;
    mnist::gather(test, rows, images);
    NoGradGuard no_grad;
    const Tensor x(images), z = discrete_latent(model, repeat(model.encoder->forward(x), k), gen);
    const Array grid = concat({x, sigmoid(model.decoder->forward(z))}, 0).value();  // row s * 8 + i: sample s of digit i
    const std::string kind = o.latent + " " + o.estimator;
    harness::images::digit_grid(grid, rows.size(), kind + ": test digits, decodings of z ~ q(z|x)")
        .save_png((fs::path(dir) / "reconstructions.png").string());
    harness::images::digit_grid(prior_samples(model, 64, gen), 8, kind + ": samples of the prior")
        .save_png((fs::path(dir) / "samples.png").string());
}

int run(int argc, char** argv) {
    Options o;
    o.annealing.rate = 1e-4f;  // the faster of the paper's rates: tau reaches its floor 0.5 after 7,000 steps
    CLI::App app{
        "A variational autoencoder with discrete latent variables on binarized MNIST (Jang, Gu and Poole 2017,\n"
        "section 4.2): 784 -> affine -> 200 Bernoulli units or 20 categorical variables of 10 classes -> affine\n"
        "-> 784 Bernoulli logits (--arch nonlinear: two layers of 200 tanh units each side), a learned prior\n"
        "(--prior uniform: a fixed one). Trains on the negative ELBO with relaxed samples.\n"
        "Uses 50,000 training images, validates on the last 10,000 of the training file, tests on t10k.\n"
        "Bounds on -log p(x), in nats, with m discrete samples z_i ~ q(z|x): nll = -log (1/m) sum_i p(x, z_i) / q(z_i|x)\n"
        "(the importance-weighted bound the paper reports with m = 1000) and neg_elbo, the negative ELBO.",
        "discrete_vae"};
    harness::add_common_flags(app, o.run);
    harness::add_choice(app, "--latent", o.latent, "bernoulli: 200 binary units (Binary Concrete when relaxed); "
                                                   "categorical: 20 variables of 10 classes (Gumbel-Softmax)", latents);
    harness::add_choice(app, "--arch", o.arch, "linear: affine maps between the layers; nonlinear: 784-200-200-latent "
                                               "and latent-200-200-784 with tanh", archs);
    harness::add_choice(app, "--prior", o.prior, "learned: the prior's logits are parameters (the published paper); "
                                                 "uniform: each value of a variable equally likely", priors);
    harness::add_estimator_flag(app, o.estimator, {Discrete::bernoulli(), Discrete::categorical(classes)},
                                "rloo and vimco draw 2 samples per image");
    harness::add_optimizer_flags(app, o.optimizer);
    harness::add_annealing_flags(app, o.annealing);
    harness::add_slope_flags(app, o.slope);
    harness::add_count(app, "--eval-samples", o.eval_samples, "m of the test bounds after training, on the 10,000 "
                                                              "test images with discrete samples (0: skip)", 0, 10000);
    harness::add_count(app, "--val-samples", o.val_samples, "m of the validation bounds after each epoch (0: skip)",
                       0, 10000);
    harness::add_count(app, "--validation", o.validation, "Images from the end of the training file held out", 1, 59999);
    app.footer(harness::footer("runs/vae-<latent>-<estimator>", "reconstructions.png (8 test digits and decodings of z ~ q(z|x)), samples.png (decodings "
                               "of prior samples) and curves.png (the learning curves)",
                               "test_neg_elbo=<float> then test_nll=<float>"));
    if (const auto status = harness::parse(app, argc, argv)) return *status;

    const Latent latent = Latent(harness::index_of(o.latent, latents));
    Estimator estimator(o.estimator);
    harness::require_estimator([&] { estimator.require(latent == Latent::bernoulli ? Discrete::bernoulli() : Discrete::categorical(classes)); });
    const optim::ExponentialTemperature temperature = harness::temperature_schedule(o.annealing, estimator);
    const std::string dir = o.run.out.empty() ? "runs/vae-" + o.latent + "-" + o.estimator : o.run.out;

    const mnist::Mnist data = harness::load_mnist(o.run, mnist::Binarization::fixed, o.validation);

    Generator init(harness::derive_seed(o.run.seed, init_seed)), noise(harness::derive_seed(o.run.seed, noise_seed));
    Model model(latent, latent == Latent::bernoulli ? 200 : 20, init, Arch(harness::index_of(o.arch, archs)),
                Prior(harness::index_of(o.prior, priors)));
    harness::attach_estimator_parts(estimator, model, mnist::image_pixels, discrete_kind(model), model.width(), init);
    const std::unique_ptr<optim::Optimizer> optimizer = harness::make_optimizer(o.optimizer, model.parameters());
    const std::unique_ptr<optim::LRSchedule> schedule = harness::make_schedule(o.optimizer, *optimizer);
    Tensor x(Array::from_shape({o.run.batch_size, mnist::image_pixels}));

    harness::Experiment ex("discrete_vae", model, *optimizer, data.train.size());
    ex.loss = [&](const std::vector<std::size_t>& rows, std::size_t step) {
        mnist::gather(data.train, rows, x.value());
        const Loss loss = training_loss(model, x, estimator, temperature.at(std::int64_t(step)), noise);
        return harness::Loss{loss.objective, loss.neg_elbo};
    };
    ex.columns = {{"val_neg_elbo", "%8.3f"}, {"val_nll", "%8.3f"}, {"tau", "%.4f"}, {"lr", "%g"}};
    ex.after_epoch = [&](std::size_t epoch, std::size_t step) {
        Bounds val{NAN, NAN};
        if (o.val_samples > 0)
            val = evaluate(model, data.validation, o.val_samples, harness::derive_seed(o.run.seed, eval_seed) + epoch);
        return std::vector<double>{val.neg_elbo, val.nll, temperature.at(std::int64_t(step) - 1), optimizer->lr()};
    };
    ex.monitor = "val_nll";
    ex.schedule = schedule.get();
    ex.generators = {{"noise", &noise}};
    ex.identity = {{"--latent", o.latent}, {"--estimator", o.estimator}, {"--arch", o.arch}, {"--prior", o.prior},
                   {"--batch-size", std::to_string(o.run.batch_size)},
                   {"--seed", std::to_string(o.run.seed)}, {"--validation", std::to_string(o.validation)}};
    // the optimizer's and the temperature's flags: a resumed run with others would not continue this one
    for (const auto& flags : {harness::identity(o.optimizer), harness::identity(o.annealing)})
        ex.identity.insert(ex.identity.end(), flags.begin(), flags.end());
    harness::anneal_slope(ex, estimator, o.slope, o.run);
    harness::keep_estimator_state(ex, estimator);
    const harness::Trained trained = harness::train(o.run, dir, ex);
    if (trained.status != 0) return trained.status;
    harness::use_best(o.run, trained, model);

    harness::now_doing("drawing the pictures");
    save_pictures(o, dir, model, data.test);
    harness::images::learning_curves(trained, "val_nll", "validation NLL bound (m = " + std::to_string(o.val_samples) + ")",
                                     o.latent + " " + o.estimator + " (" + o.arch + ", " + o.prior + " prior): " +
                                         "-ELBO and the NLL bound")
        .save_png((fs::path(dir) / "curves.png").string());
    std::vector<std::pair<std::string, std::string>> results;
    if (o.eval_samples > 0) {
        harness::now_doing("evaluating the test bounds with m = " + std::to_string(o.eval_samples));
        const harness::Stopwatch clock;
        const Bounds test = evaluate(model, data.test, o.eval_samples, harness::derive_seed(o.run.seed, eval_seed));
        std::cout << "test -ELBO " << harness::format("%.3f", test.neg_elbo) << ", NLL bound "
                  << harness::format("%.3f", test.nll) << " nats (m = " << o.eval_samples << ", " << data.test.size()
                  << " images, " << harness::format("%.1f", clock.seconds()) << " s)\n";
        results = {{"test_neg_elbo", harness::format("%.4f", test.neg_elbo)},
                   {"test_nll", harness::format("%.4f", test.nll)}};
    }
    harness::report(dir, trained, {"reconstructions.png", "samples.png", "curves.png"}, results);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return harness::main("discrete_vae", argc, argv, run); }
