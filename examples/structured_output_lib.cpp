#include "examples/structured_output_lib.hpp"

#include <CLI/CLI.hpp>
#include <xsimd/xsimd.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <sstream>

#include <unistd.h>

#include "autograd/threads.hpp"
#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"
#include "examples/harness/flags.hpp"
#include "examples/harness/images.hpp"
#include "examples/harness/memory.hpp"
#include "layers/distributions.hpp"
#include "layers/estimators.hpp"
#include "layers/gumbel.hpp"
#include "optim/adam.hpp"
#include "serialize/atomic_file.hpp"
#include "serialize/checkpoint.hpp"
#include "optim/sgd.hpp"
#include "layers/temperature.hpp"

namespace tg::structured {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- Names -------------------------------------------------------------------------------

Latent parse_latent(const std::string& name) {
    if (name == "bernoulli") return Latent::bernoulli;
    if (name == "categorical") return Latent::categorical;
    throw UsageError("unknown --latent '" + name + "' (expected bernoulli or categorical)");
}

Estimator parse_estimator(const std::string& name) {
    if (name == "gs") return Estimator::gs;
    if (name == "st-gs") return Estimator::st_gs;
    if (name == "st") return Estimator::st;
    if (name == "sf") return Estimator::sf;
    throw UsageError("unknown --estimator '" + name + "' (expected gs, st-gs, st or sf)");
}

const char* latent_name(Latent latent) { return latent == Latent::bernoulli ? "bernoulli" : "categorical"; }

const char* estimator_name(Estimator estimator) {
    switch (estimator) {
    case Estimator::gs: return "gs";
    case Estimator::st_gs: return "st-gs";
    case Estimator::st: return "st";
    case Estimator::sf: return "sf";
    }
    return "?";
}

std::string Config::out_dir() const {
    return out.empty() ? std::string("runs/") + latent_name(latent) + "-" + estimator_name(estimator) : out;
}

// ---- The command line --------------------------------------------------------------------

namespace {

std::string num(double v) {
    std::ostringstream s;
    s << v;
    return s.str();
}

void require_flag(bool ok, const std::string& message) {
    if (!ok) throw UsageError(message);
}

// The bounds of the flags (besides memory): larger values are typos, not plans.
constexpr int max_threads = 256;
constexpr std::uint64_t max_epochs = 100000, max_batch = mnist::max_images, max_hidden = 100000,
                        max_samples = 100000, max_steps_flag = 1000000000000ull;

std::string megabytes(double bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, bytes >= 1e9 ? "%.1f GB" : "%.0f MB", bytes >= 1e9 ? bytes / 1e9 : bytes / 1e6);
    return buf;
}

// The machine's physical memory in bytes, or 0 where it is unknown.
double physical_memory() {
    const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

void check_memory(const Config& c) {
    const double have = physical_memory();
    if (have <= 0.0) return;
    const MemoryNeed need = estimate_memory(c);
    require_flag(need.training_step <= have,
                 "--batch-size " + std::to_string(c.batch_size) + " x --samples " + std::to_string(c.samples) +
                     " rows with --hidden " + std::to_string(c.hidden) + " need about " +
                     megabytes(need.training_step) + " for a training step, more than this machine's " +
                     megabytes(have) + " of memory");
    require_flag(need.evaluation <= have,
                 "--eval-samples " + std::to_string(c.eval_samples) + " / --val-samples " +
                     std::to_string(c.val_samples) + " with --hidden " + std::to_string(c.hidden) + " need about " +
                     megabytes(need.evaluation) + " for an evaluation chunk, more than this machine's " +
                     megabytes(have) + " of memory");
}

}  // namespace

void validate(const Config& c) {
    require_flag(std::isfinite(c.tau) && c.tau > 0.0f, "--tau must be positive, got " + num(c.tau));
    require_flag(std::isfinite(c.lr) && c.lr > 0.0f, "--lr must be positive, got " + num(c.lr));
    require_flag(std::isfinite(c.momentum) && c.momentum >= 0.0f && c.momentum < 1.0f,
                 "--momentum must be in [0, 1), got " + num(c.momentum));
    const auto in_range = [](const char* flag, std::size_t v, std::uint64_t lo, std::uint64_t hi) {
        require_flag(v >= lo && v <= hi, std::string(flag) + " must be from " + std::to_string(lo) + " to " +
                                             std::to_string(hi) + ", got " + std::to_string(v));
    };
    in_range("--batch-size", c.batch_size, 1, max_batch);
    in_range("--hidden", c.hidden, 1, max_hidden);
    in_range("--epochs", c.epochs, 0, max_epochs);
    in_range("--max-steps", c.max_steps, 0, max_steps_flag);
    in_range("--samples", c.samples, 1, max_samples);
    in_range("--eval-samples", c.eval_samples, 0, max_samples);
    in_range("--val-samples", c.val_samples, 0, max_samples);
    require_flag(c.latent != Latent::categorical || c.hidden % classes == 0,
                 "--hidden " + std::to_string(c.hidden) +
                     " is not divisible by 10: categorical units are variables of 10 classes");
    require_flag(std::isfinite(c.anneal_rate) && c.anneal_rate >= 0.0f,
                 "--anneal-rate must be non-negative, got " + num(c.anneal_rate));
    in_range("--anneal-every", c.anneal_every, 1, max_steps_flag);
    if (c.anneal_rate > 0.0f) {
        require_flag(std::isfinite(c.tau_min) && c.tau_min > 0.0f,
                     "--tau-min must be positive, got " + num(c.tau_min));
        require_flag(c.tau_min <= c.tau, "--tau " + num(c.tau) + " is below --tau-min " + num(c.tau_min) +
                                             " (lower --tau-min, or use --anneal-rate 0 for a fixed tau)");
    }
    require_flag(c.optimizer == "adam" || c.optimizer == "sgd",
                 "unknown --optimizer '" + c.optimizer + "' (expected adam or sgd)");
    require_flag(c.threads >= 1 && c.threads <= max_threads,
                 "--threads must be from 1 to " + std::to_string(max_threads) + ", got " + std::to_string(c.threads));
    require_flag(c.validation_size > 0, "the validation set must not be empty");
    check_memory(c);
}

MemoryNeed estimate_memory(const Config& c) {
    // Floats, in double so that no product of absurd flags overflows.
    const double H = static_cast<double>(c.hidden), P = static_cast<double>(mnist::half_pixels);
    const double params = P * H + H + H * H + H + H * P + P;
    const double rows = static_cast<double>(c.batch_size) * static_cast<double>(c.samples);
    // per row: the copied halves, the tape's values and gradients (units, their noise and
    // relaxations, logits, per-pixel losses)
    const double per_row = 2.0 * (2.0 * P + 8.0 * H + 2.0 * P);
    const double data = 70000.0 * mnist::image_pixels / 4.0;  // the bytes of MNIST, in floats
    MemoryNeed need;
    need.training_step = 4.0 * (rows * per_row + 4.0 * params + data);
    // an evaluation chunk: about 2000 rows of images x samples, at least one image's m samples
    const double m = static_cast<double>(std::max(c.eval_samples, c.val_samples));
    const double eval_rows = std::max(m, 2000.0);
    need.evaluation = 4.0 * (eval_rows * (3.0 * H + P) + params + data);
    return need;
}

std::string describe_memory(const Config& c) {
    const MemoryNeed need = estimate_memory(c);
    return "--batch-size " + std::to_string(c.batch_size) + " --samples " + std::to_string(c.samples) +
           " --hidden " + std::to_string(c.hidden) + " --eval-samples " + std::to_string(c.eval_samples) +
           ": about " + megabytes(need.training_step) + " a training step, " + megabytes(need.evaluation) +
           " an evaluation chunk";
}

ParsedArgs parse_command_line(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
    Config c;
    std::string latent = "bernoulli", estimator = "gs", binarize = "fixed";
    CLI::App app{
        "Structured output prediction on binarized MNIST (Jang, Gu and Poole 2017, section 4.1): a network\n"
        "with two layers of discrete stochastic units predicts the lower 14 rows of a digit from the upper 14.\n"
        "Model: 392 -> Linear -> hidden units -> Linear -> hidden units -> Linear -> 392 Bernoulli logits.\n"
        "Trains on 50,000 training images, validates on the last 10,000 of the training file, tests on t10k.",
        "structured_output"};
    app.get_formatter()->column_width(34);
    app.add_option("--data", c.data_dir, "Directory of the four MNIST IDX files (scripts/fetch-mnist DIR gets them)")
        ->capture_default_str();
    app.add_option("--latent", latent,
                   "bernoulli: binary units (Binary Concrete when relaxed); categorical: hidden/10 variables of 10 "
                   "classes (Gumbel-Softmax when relaxed)")
        ->capture_default_str();
    app.add_option("--estimator", estimator,
                   "Gradient estimator: gs (relaxed samples), st-gs (straight-through Gumbel-Softmax: discrete "
                   "forward, relaxed gradient), st (plain straight-through: discrete sample forward, gradient of the "
                   "probabilities backward), sf (score function / REINFORCE with a moving-average baseline)")
        ->capture_default_str();
    app.add_option("--binarize", binarize,
                   "fixed: each pixel sampled once from its intensity (fixed seed, the paper's data); threshold: "
                   "intensity > 0.5 (an easier data set, lower NLL); dynamic: training images resampled every batch")
        ->capture_default_str();
    app.add_option("--optimizer", c.optimizer, "adam or sgd (SGD with --momentum)")->capture_default_str();
    app.add_option("--lr", c.lr, "Learning rate (constant)")->capture_default_str();
    app.add_option("--momentum", c.momentum, "Momentum of SGD (the paper: 0.9)")->capture_default_str();
    // Counts through flags::add_count: CLI11 alone would read "-1" as 2^64 - 1.
    flags::add_count(app, "--batch-size", c.batch_size, 1, max_batch, "Images per training step")->capture_default_str();
    flags::add_count(app, "--epochs", c.epochs, 0, max_epochs,
                     "Epochs in all (a resumed run counts the epochs already done)")
        ->capture_default_str();
    flags::add_count(app, "--max-steps", c.max_steps, 0, max_steps_flag,
                     "Stop after this many training steps in all, even mid-epoch (0: no limit)")
        ->capture_default_str();
    flags::add_count(app, "--hidden", c.hidden, 1, max_hidden,
                     "Stochastic units per layer (a multiple of 10 for categorical)")
        ->capture_default_str();
    app.add_option("--tau", c.tau, "Temperature of the relaxed samples at step 0")->capture_default_str();
    app.add_option("--tau-min", c.tau_min, "Floor of the annealed temperature")->capture_default_str();
    app.add_option("--anneal-rate", c.anneal_rate,
                   "r in tau = max(tau-min, tau exp(-r step)) (0: a fixed tau)")
        ->capture_default_str();
    flags::add_count(app, "--anneal-every", c.anneal_every, 1, max_steps_flag, "Steps between temperature updates")
        ->capture_default_str();
    flags::add_count(app, "--samples", c.samples, 1, max_samples,
                   "m of the training objective: -log((1/m) sum_i p(lower | h_i)) over m samples per image (1: the "
                   "plain NLL of one sample)")
        ->capture_default_str();
    flags::add_count(app, "--eval-samples", c.eval_samples, 0, max_samples,
                   "m of the test NLL after training, on the 10,000 test images with discrete samples (0: skip)")
        ->capture_default_str();
    flags::add_count(app, "--val-samples", c.val_samples, 0, max_samples,
                   "m of the validation NLL after each epoch, on the 10,000 validation images (0: skip). The "
                   "default 5 costs about a quarter of a training epoch; log-mean-exp over few samples overstates "
                   "the NLL (a trained model: by about 6 nats against m = 1000), which is fine for comparing epochs "
                   "and settings")
        ->capture_default_str();
    flags::add_count(app, "--seed", c.seed, 0, UINT64_MAX,
                   "Seed of the initial weights, the batch order and the noise (the fixed binarization of the data "
                   "always uses seed 0, so that every run sees the same data)")
        ->capture_default_str();
    app.add_option("--threads", c.threads, "Threads (tg::set_num_threads: GEMMs and the optimizer split over them)")
        ->check(CLI::Range(1, max_threads))
        ->capture_default_str();
    app.add_option("--out", c.out, "Output directory (default: runs/<latent>-<estimator>)");
    app.add_flag("--resume", c.resume,
                 "Continue from DIR/checkpoint.npz (same model flags); --epochs and --max-steps may be raised");
    app.footer(
        "Outputs in --out: metrics.csv (a row per epoch), checkpoint.npz (model, optimizer, generators, batch\n"
        "order, step, tau, baseline: written atomically at the end of every epoch and at the end of the run),\n"
        "completions.png (sampled lower halves of 8 test digits) and curves.png (loss and validation NLL).\n"
        "A line per epoch on stdout ends with the process's resident memory (rss); the last lines are\n"
        "train_steps_per_s=<float> (training only) and test_nll=<float>.\n"
        "\n"
        "Stopping and resuming: Ctrl-C (SIGINT) or SIGTERM finishes the current step, saves the checkpoint\n"
        "(mid-epoch state included) and exits with status 130; --resume then continues exactly (with one\n"
        "thread, bit for bit as an uninterrupted run). A run killed outright (kill -9, power loss) keeps the\n"
        "checkpoint of its last completed epoch, so it loses at most that epoch's work.\n"
        "\n"
        "Ctrl-C during the validation after an epoch records that epoch without its validation NLL; during\n"
        "the test evaluation it stops it (the trained model is in the checkpoint already).\n"
        "\n"
        "Limits: counts are whole numbers (a negative one is refused); --batch-size at most 60000, --hidden\n"
        "100000, --samples, --eval-samples and --val-samples 100000, --epochs 100000, --threads 256; and a\n"
        "training step and an evaluation chunk must fit in this machine's memory. --out is checked for\n"
        "writing before the data is read.\n"
        "\n"
        "Exit status: 0 done; 2 bad flags, data, checkpoint or output folder; 3 a non-finite loss, gradient\n"
        "or parameter stopped training (the last good checkpoint is kept); 130 stopped by a signal.");

    try {
        app.parse(argc, argv);
        c.latent = parse_latent(latent);
        c.estimator = parse_estimator(estimator);
        try {
            c.binarization = mnist::parse_binarization(binarize);
        } catch (const std::invalid_argument&) {
            throw UsageError("unknown --binarize '" + binarize + "' (expected fixed, threshold or dynamic)");
        }
        validate(c);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return {std::nullopt, 0};
    } catch (const CLI::ParseError& e) {
        err << "structured_output: " << e.what() << " (see --help)\n";
        return {std::nullopt, 2};
    } catch (const std::exception& e) {
        err << "structured_output: " << e.what() << "\n";
        return {std::nullopt, 2};
    }
    return {c, 0};
}

// ---- The model ---------------------------------------------------------------------------

Model::Model(Latent latent, std::size_t hidden, Generator& init) : latent_(latent), hidden_(hidden) {
    if (hidden == 0 || (latent == Latent::categorical && hidden % classes != 0))
        throw std::invalid_argument("Model: " + std::to_string(hidden) + " hidden units do not fit the " +
                                    latent_name(latent) + " latent kind");
    nn::LinearOptions options;
    options.generator = &init;
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(mnist::half_pixels, hidden, options));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(hidden, hidden, options));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(hidden, mnist::half_pixels, options));
}

namespace {

// Groups of `classes` along the last axis of [rows, hidden]: [rows, hidden / classes, classes].
Shape grouped(const Tensor& a) { return {a.shape()[0], a.shape()[1] / classes, classes}; }
Shape flat(const Tensor& a) { return {a.shape()[0], a.shape()[1]}; }

// One layer of stochastic units from its logits [rows, hidden]. For sf the sample is discrete
// and carries no gradient; log_q [rows] receives sum over units of log q(h | logits).
Tensor stochastic_units(const Tensor& logits, Latent latent, Estimator estimator, float tau, Generator& gen,
                        Tensor* log_q) {
    const bool bernoulli = latent == Latent::bernoulli;
    switch (estimator) {
    case Estimator::gs:
    case Estimator::st_gs: {
        const bool hard = estimator == Estimator::st_gs;
        if (bernoulli) return binary_concrete(logits, BinaryConcreteOptions().tau(tau).hard(hard).generator(&gen));
        return gumbel_softmax(logits, GumbelSoftmaxOptions().tau(tau).hard(hard).classes(classes).generator(&gen));
    }
    case Estimator::st:
        if (bernoulli) return straight_through_bernoulli(logits, &gen);
        return reshape(straight_through_categorical(reshape(logits, grouped(logits)), GumbelSoftmaxOptions().generator(&gen)),
                       flat(logits));
    case Estimator::sf: {
        if (bernoulli) {
            const dist::Bernoulli q = dist::Bernoulli::from_logits(logits);
            Tensor h = q.sample(&gen);
            *log_q = sum(q.log_prob(h), 1);
            return h;
        }
        const dist::Categorical q(reshape(logits, grouped(logits)));
        const Tensor h = q.sample(&gen);  // one-hot [rows, groups, classes]
        *log_q = sum(q.log_prob(h), 1);
        return reshape(h, flat(logits));
    }
    }
    throw std::logic_error("stochastic_units: unknown estimator");
}

}  // namespace

Loss training_loss(const Model& model, const Tensor& upper, const Tensor& lower, const TrainOptions& options,
                   Generator& gen, nn::Reinforce* reinforce) {
    const bool sf = options.estimator == Estimator::sf;
    if (sf && !reinforce) throw std::invalid_argument("training_loss: the score function needs a Reinforce baseline");
    const std::size_t batch = upper.shape()[0], m = options.samples;
    Tensor x = upper, y = lower;
    if (m > 1) {  // the batch m times over, sample-major: row s * batch + i is image i
        Array xs = Array::from_shape({m * batch, upper.shape()[1]}), ys = Array::from_shape({m * batch, lower.shape()[1]});
        for (std::size_t s = 0; s < m; ++s) {
            std::copy(upper.value().begin(), upper.value().end(), xs.data() + s * upper.size());
            std::copy(lower.value().begin(), lower.value().end(), ys.data() + s * lower.size());
        }
        x = Tensor(std::move(xs));
        y = Tensor(std::move(ys));
    }
    Tensor log_q1, log_q2;
    Tensor h1 = stochastic_units(model.fc1->forward(x), model.latent(), options.estimator, options.tau, gen, &log_q1);
    Tensor h2 = stochastic_units(model.fc2->forward(h1), model.latent(), options.estimator, options.tau, gen, &log_q2);
    Tensor logits = model.fc3->forward(h2);

    if (m == 1 && !sf) {  // the common case: one fused node, summed over pixels and the batch
        Tensor objective = mul(binary_cross_entropy_with_logits(logits, y, Reduction::sum), 1.0f / batch);
        return {objective, static_cast<double>(objective.item())};
    }
    // f [batch]: each example's loss, -log p(lower | h), or -log((1/m) sum_s p(lower | h_s))
    Tensor f = sum(binary_cross_entropy_with_logits(logits, y, Reduction::none), 1);
    if (m > 1) f = neg(log_mean_exp(neg(reshape(f, {m, batch})), 0));
    double mean_f = 0.0;
    for (float v : f.value()) mean_f += v;
    mean_f /= static_cast<double>(batch);
    if (!sf) return {mean(f), mean_f};
    // the surrogate f + stop_grad(f - b) log q(h), with log q of all m samples of an example
    Tensor log_q = add(log_q1, log_q2);
    if (m > 1) log_q = sum(reshape(log_q, {m, batch}), 0);
    Tensor objective = mean(reinforce->surrogate(f, log_q));
    reinforce->update(f);
    return {objective, mean_f};
}

// ---- Evaluation --------------------------------------------------------------------------

// xoshiro256** in SIMD lanes (independent streams, one per 64-bit lane), inline: evaluation
// with m = 1000 draws billions of numbers. Each draw gives one 24-bit uniform per float lane.
struct EvalRng {
    using Words = xsimd::batch<std::uint64_t>;
    using Batch = xsimd::batch<float>;
    static_assert(Words::size * 2 == Batch::size, "two 32-bit halves per 64-bit lane");
    Words s0, s1, s2, s3;

    explicit EvalRng(std::uint64_t seed) {
        Generator g(seed);
        alignas(64) std::uint64_t w[4][Words::size];
        for (auto& row : w)
            for (auto& v : row) v = g.next_u64();
        s0 = Words::load_aligned(w[0]), s1 = Words::load_aligned(w[1]);
        s2 = Words::load_aligned(w[2]), s3 = Words::load_aligned(w[3]);
    }
    static Words rotl(const Words& x, int k) { return (x << k) | (x >> (64 - k)); }
    // Uniforms k * 2^-24, k < 2^24, in every float lane.
    Batch uniform() {
        const Words x = s1 + (s1 << 2);  // s1 * 5
        const Words r = rotl(x, 7);
        const Words result = r + (r << 3);  // * 9
        const Words t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = rotl(s3, 45);
        const auto high = xsimd::bitwise_cast<xsimd::batch<std::int32_t>>(result) >> 8;  // arithmetic: sign bits
        return xsimd::to_float(high & xsimd::batch<std::int32_t>(0xFFFFFF)) * Batch(0x1p-24f);
    }
    float uniform_scalar() {  // one lane's worth, for the few categorical draws
        if (used_ == Batch::size) {
            uniform().store_aligned(buffer_);
            used_ = 0;
        }
        return buffer_[used_++];
    }

private:
    alignas(64) float buffer_[Batch::size] = {};
    std::size_t used_ = Batch::size;
};

namespace {

using Batch = xsimd::batch<float>;
constexpr std::size_t lanes = Batch::size;

// a := f(a + b) for a row of n floats (b: a bias row, or nullptr), f mapping batches. The tail
// goes through a padded batch too: a scalar exp or log1p costs as much as a whole batch.
template <class F>
void map_row(float* a, const float* b, std::size_t n, F f) {
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes) {
        Batch v = Batch::load_unaligned(a + j);
        if (b) v += Batch::load_unaligned(b + j);
        f(v).store_unaligned(a + j);
    }
    if (j == n) return;
    alignas(64) float t[lanes] = {};
    for (std::size_t k = 0; j + k < n; ++k) t[k] = a[j + k] + (b ? b[j + k] : 0.0f);
    f(Batch::load_aligned(t)).store_aligned(t);
    for (std::size_t k = 0; j + k < n; ++k) a[j + k] = t[k];
}

Batch sigmoid(const Batch& v) { return Batch(1.0f) / (Batch(1.0f) + xsimd::exp(-v)); }

// sum_j x_j l_j - softplus(l_j) with l = a + b: log p(x | logits l) of independent Bernoulli pixels.
double log_likelihood(const float* a, const float* b, const float* x, std::size_t n) {
    const Batch zero(0.0f);
    auto term = [&](const Batch& l, const Batch& xv) {
        return xv * l - (xsimd::max(l, zero) + xsimd::log1p(xsimd::exp(-xsimd::abs(l))));
    };
    Batch acc(0.0f);
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes)
        acc += term(Batch::load_unaligned(a + j) + Batch::load_unaligned(b + j), Batch::load_unaligned(x + j));
    double s = xsimd::hadd(acc);
    if (j < n) {
        alignas(64) float tl[lanes] = {}, tx[lanes] = {};
        for (std::size_t k = 0; j + k < n; ++k) tl[k] = a[j + k] + b[j + k], tx[k] = x[j + k];
        term(Batch::load_aligned(tl), Batch::load_aligned(tx)).store_aligned(tl);
        for (std::size_t k = 0; j + k < n; ++k) s += tl[k];
    }
    return s;
}

// y [rows, out] = x [rows, in] W^T of an nn::Linear; its bias is added by the next pass.
void gemm_weights(const nn::Linear& fc, const float* x, std::size_t rows, float* y) {
    const std::size_t in = fc.in_features(), out = fc.out_features();
    detail::gemm(false, true, rows, out, in, 1.0f, x, in, fc.weight.value().data(), in, 0.0f, y, out);
}

// A row of logits a (plus bias b) := the probabilities of Bernoulli units, or the unnormalized
// class weights exp(a - group maximum) of categorical units.
void unit_weights(float* a, const float* b, std::size_t n, bool bernoulli) {
    if (bernoulli) return map_row(a, b, n, sigmoid);
    map_row(a, b, n, [](const Batch& v) { return v; });
    for (std::size_t g = 0; g < n; g += classes) {
        const float mx = *std::max_element(a + g, a + g + classes);
        for (std::size_t j = 0; j < classes; ++j) a[g + j] -= mx;
    }
    map_row(a, nullptr, n, [](const Batch& v) { return xsimd::exp(v); });
}

// `repeat` rows of samples into h from one row of weights w: Bernoulli units 1 with probability
// w (a 24-bit uniform below w), or a one-hot per group of classes by inverse CDF.
void sample_units(const float* w, std::size_t n, bool bernoulli, std::size_t repeat, float* h, EvalRng& rng) {
    const Batch one(1.0f), zero(0.0f);
    for (std::size_t s = 0; s < repeat; ++s, h += n) {
        if (bernoulli) {
            std::size_t j = 0;
            for (; j + lanes <= n; j += lanes)
                xsimd::select(rng.uniform() < Batch::load_unaligned(w + j), one, zero).store_unaligned(h + j);
            if (j < n) {
                alignas(64) float t[lanes] = {};
                std::copy(w + j, w + n, t);
                xsimd::select(rng.uniform() < Batch::load_aligned(t), one, zero).store_aligned(t);
                std::copy(t, t + (n - j), h + j);
            }
            continue;
        }
        std::fill(h, h + n, 0.0f);
        for (std::size_t g = 0; g < n; g += classes) {
            float total = 0.0f;
            for (std::size_t j = 0; j < classes; ++j) total += w[g + j];
            const float u = rng.uniform_scalar() * total;
            std::size_t pick = 0;
            float cum = 0.0f;
            for (std::size_t j = 0; j < classes; ++j) {
                if (w[g + j] > 0.0f) pick = j;  // the last possible class, should rounding leave u above the sum
                cum += w[g + j];
                if (u < cum) break;
            }
            h[g + pick] = 1.0f;
        }
    }
}

void check_halves(const Array& upper, const char* what) {
    if (upper.dimension() != 2 || upper.shape()[1] != mnist::half_pixels)
        throw std::invalid_argument(std::string("Evaluator: ") + what + " must be [n, 392], got " +
                                    shape_str(upper.shape()));
}

// Throws std::domain_error unless every unit weight of the layer is finite: a NaN probability
// would sample 0 every time (a uniform is never below NaN) and give a finite NLL of a broken model.
void check_unit_weights(const std::vector<float>& w, const char* layer) {
    std::uint32_t bad = 0;  // an exponent of all ones is NaN or infinity; integer tests vectorize
    for (float v : w) {
        std::uint32_t b;
        std::memcpy(&b, &v, 4);
        bad |= (b & 0x7f800000u) == 0x7f800000u;
    }
    if (bad)
        throw std::domain_error(std::string("Evaluator: the units of ") + layer +
                                " have non-finite probabilities (NaN or infinite weights or logits): cannot sample them");
}

// Images per chunk: about 2000 rows of images x samples at once (big enough for GEMMs near
// their peak, small enough for the buffers to stay in cache).
std::size_t chunk_images(std::size_t m) { return std::max<std::size_t>(1, 2000 / m); }

}  // namespace

void Evaluator::forward(const Model& model, const float* upper, std::size_t stride, std::size_t images, std::size_t m,
                        EvalRng& rng) {
    const std::size_t H = model.hidden(), rows = images * m;
    const bool bernoulli = model.latent() == Latent::bernoulli;
    a1_.resize(images * H);
    h1_.resize(rows * H);
    a2_.resize(rows * H);
    h2_.resize(rows * H);
    logits_.resize(rows * mnist::half_pixels);
    // the first layer's logits once per image, then m samples of each
    detail::gemm(false, true, images, H, mnist::half_pixels, 1.0f, upper, stride, model.fc1->weight.value().data(),
                 mnist::half_pixels, 0.0f, a1_.data(), H);
    for (std::size_t i = 0; i < images; ++i) {
        unit_weights(a1_.data() + i * H, model.fc1->bias.value().data(), H, bernoulli);
        sample_units(a1_.data() + i * H, H, bernoulli, m, h1_.data() + i * m * H, rng);
    }
    check_unit_weights(a1_, "fc1");
    gemm_weights(*model.fc2, h1_.data(), rows, a2_.data());
    for (std::size_t r = 0; r < rows; ++r) {
        unit_weights(a2_.data() + r * H, model.fc2->bias.value().data(), H, bernoulli);
        sample_units(a2_.data() + r * H, H, bernoulli, 1, h2_.data() + r * H, rng);
    }
    check_unit_weights(a2_, "fc2");
    gemm_weights(*model.fc3, h2_.data(), rows, logits_.data());  // fc3's bias: added by the caller
}

struct Evaluator::Rows {
    const float* upper = nullptr;  // [n, 392] each
    const float* lower = nullptr;
    const mnist::DataSet* data = nullptr;  // or whole images as bytes
};

double Evaluator::nll(const Model& model, const Array& upper, const Array& lower, std::size_t m, std::uint64_t seed,
                      std::vector<double>* per_image) {
    check_halves(upper, "upper");
    check_halves(lower, "lower");
    if (lower.shape() != upper.shape())
        throw std::invalid_argument("Evaluator::nll: upper " + shape_str(upper.shape()) + " and lower " +
                                    shape_str(lower.shape()) + " halves differ in shape");
    Rows rows;
    rows.upper = upper.data();
    rows.lower = lower.data();
    return nll_rows(model, rows, upper.shape()[0], m, seed, per_image);
}

double Evaluator::nll(const Model& model, const mnist::DataSet& data, std::size_t m, std::uint64_t seed,
                      std::vector<double>* per_image) {
    mnist::check_data_set(data, "Evaluator::nll");
    Rows rows;
    rows.data = &data;
    return nll_rows(model, rows, data.size(), m, seed, per_image);
}

double Evaluator::nll_rows(const Model& model, const Rows& rows, std::size_t n, std::size_t m, std::uint64_t seed,
                           std::vector<double>* per_image) {
    if (n == 0 || m == 0)
        throw std::invalid_argument("Evaluator::nll: needs at least one image and m >= 1, got " + std::to_string(n) +
                                    " images and m = " + std::to_string(m));
    const std::size_t P = mnist::half_pixels, chunk = chunk_images(m);
    EvalRng rng(seed);
    const float* b3 = model.fc3->bias.value().data();
    std::vector<double> ll(m);
    if (per_image) per_image->assign(n, 0.0);
    double total = 0.0;
    for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
        if (stop_ && *stop_) throw EvaluationStopped("evaluation stopped by a signal");
        const std::size_t c = std::min(chunk, n - i0);
        const float *upper, *lower;
        std::size_t stride = P;
        if (rows.data) {  // whole images: rows 0-13 then 14-27
            images_.resize(c * mnist::image_pixels);
            mnist::to_float(rows.data->image(i0), c * mnist::image_pixels, images_.data());
            upper = images_.data(), lower = images_.data() + P, stride = mnist::image_pixels;
        } else {
            upper = rows.upper + i0 * P, lower = rows.lower + i0 * P;
        }
        forward(model, upper, stride, c, m, rng);
        for (std::size_t i = 0; i < c; ++i) {
            const float* x = lower + i * stride;
            double mx = -std::numeric_limits<double>::infinity();
            for (std::size_t s = 0; s < m; ++s) {
                ll[s] = log_likelihood(logits_.data() + (i * m + s) * P, b3, x, P);
                mx = std::max(mx, ll[s]);
            }
            // -log((1/m) sum_s exp(ll_s)), shifted by the maximum
            double acc = 0.0;
            for (std::size_t s = 0; s < m; ++s) acc += std::exp(ll[s] - mx);
            const double nll_i = -(mx + std::log(acc) - std::log(static_cast<double>(m)));
            total += nll_i;
            if (per_image) (*per_image)[i0 + i] = nll_i;
        }
    }
    return total / static_cast<double>(n);
}

Array Evaluator::lower_probabilities(const Model& model, const Array& upper, std::size_t k, std::uint64_t seed) {
    check_halves(upper, "upper");
    const std::size_t n = upper.shape()[0], P = mnist::half_pixels, chunk = chunk_images(k);
    Array out = Array::from_shape({n * k, P});
    EvalRng rng(seed);
    for (std::size_t i0 = 0; i0 < n; i0 += chunk) {
        const std::size_t c = std::min(chunk, n - i0);
        forward(model, upper.data() + i0 * P, P, c, k, rng);
        for (std::size_t r = 0; r < c * k; ++r) map_row(logits_.data() + r * P, model.fc3->bias.value().data(), P, sigmoid);
        std::copy(logits_.data(), logits_.data() + c * k * P, out.data() + i0 * k * P);
    }
    return out;
}

// ---- The program -------------------------------------------------------------------------

namespace {

// Seeds of the run's generators, all derived from --seed.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose) {
    return seed * 0x9E3779B97F4A7C15ull + purpose * 0xBF58476D1CE4E5B9ull + 1;
}
enum SeedPurpose : std::uint64_t { init_seed = 1, batch_seed, noise_seed, binarize_seed, eval_seed, picture_seed };

std::unique_ptr<optim::TemperatureSchedule> temperature_schedule(const Config& c) {
    if (c.anneal_rate <= 0.0f) return std::make_unique<optim::ConstantTemperature>(c.tau);
    return std::make_unique<optim::ExponentialTemperature>(c.tau, c.anneal_rate, c.tau_min,
                                                           static_cast<std::int64_t>(c.anneal_every));
}

std::string fmt(const char* format, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v);
    return buf;
}

std::string duration(double seconds) {
    const long s = std::lround(std::max(0.0, seconds));
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

// A progress bar redrawn in place on a terminal; elsewhere a plain line every half minute.
class Progress {
public:
    Progress(std::ostream& err, bool tty) : err_(err), tty_(tty), last_(Clock::now()) {}

    void update(std::size_t epoch, std::size_t epochs, std::size_t done, std::size_t total, double loss,
                double seconds_per_step, std::size_t steps_left) {
        const auto now = Clock::now();
        const double since = std::chrono::duration<double>(now - last_).count();
        if (since < (tty_ ? 0.1 : 30.0)) return;
        last_ = now;
        std::ostringstream line;
        line << "epoch " << epoch << "/" << epochs << " ";
        if (tty_) {
            const int width = 30, filled = static_cast<int>(width * done / std::max<std::size_t>(total, 1));
            line << "[" << std::string(filled, '=') << (filled < width ? ">" : "")
                 << std::string(width - filled - (filled < width ? 1 : 0), ' ') << "] ";
        }
        line << done << "/" << total << "  loss " << fmt("%.3f", loss) << "  " << fmt("%.2f", seconds_per_step * 1e3)
             << " ms/step  ETA " << duration(seconds_per_step * steps_left);
        if (tty_) {
            err_ << "\r" << line.str() << "\x1b[K" << std::flush;
            drawn_ = true;
        } else {
            err_ << line.str() << "\n" << std::flush;
        }
    }
    void clear() {
        if (drawn_) err_ << "\r\x1b[K" << std::flush;
        drawn_ = false;
    }

private:
    std::ostream& err_;
    bool tty_;
    bool drawn_ = false;
    Clock::time_point last_;
};

// A double as the bits of a uint64, so that checkpoints keep it exactly.
std::uint64_t bits_of(double v) {
    std::uint64_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
}
double double_of(std::uint64_t b) {
    double v;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

constexpr std::size_t metric_fields = 8;
std::vector<double> metric_values(const EpochMetrics& e) {
    return {static_cast<double>(e.epoch), static_cast<double>(e.step), e.train_loss, e.val_nll, e.tau, e.lr,
            e.train_seconds, e.val_seconds};
}
EpochMetrics metrics_from(const double* v) {
    EpochMetrics e;
    e.epoch = static_cast<std::size_t>(v[0]);
    e.step = static_cast<std::size_t>(v[1]);
    e.train_loss = v[2];
    e.val_nll = v[3];
    e.tau = static_cast<float>(v[4]);
    e.lr = static_cast<float>(v[5]);
    e.train_seconds = v[6];
    e.val_seconds = v[7];
    return e;
}

const char* metrics_header = "epoch,step,train_loss,val_nll,tau,lr,train_seconds,val_seconds";

std::string metrics_row(const EpochMetrics& e) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%zu,%zu,%.9g,%.9g,%.9g,%.9g,%.3f,%.3f", e.epoch, e.step, e.train_loss, e.val_nll,
                  static_cast<double>(e.tau), static_cast<double>(e.lr), e.train_seconds, e.val_seconds);
    return buf;
}

// Written whole each epoch (atomically), from the history the checkpoint also keeps.
void write_metrics(const std::string& path, const std::vector<EpochMetrics>& history) {
    std::string csv = std::string(metrics_header) + "\n";
    for (const EpochMetrics& e : history) csv += metrics_row(e) + "\n";
    write_file_atomic(path, csv);
}

// The flags that define the model and its training, kept in the checkpoint: resuming with
// other values would not continue the same run.
std::vector<std::int64_t> config_codes(const Config& c) {
    return {static_cast<std::int64_t>(c.latent),     static_cast<std::int64_t>(c.estimator),
            static_cast<std::int64_t>(c.hidden),     static_cast<std::int64_t>(c.samples),
            static_cast<std::int64_t>(c.batch_size), static_cast<std::int64_t>(c.binarization),
            c.optimizer == "sgd" ? 1 : 0,           static_cast<std::int64_t>(c.seed)};
}

void check_config_codes(const std::vector<std::int64_t>& saved, const Config& c, const std::string& path) {
    const std::vector<std::int64_t> now = config_codes(c);
    if (saved.size() != now.size())
        throw UsageError("--resume: " + path + " is not a checkpoint of this program (run.config has " +
                         std::to_string(saved.size()) + " entries)");
    const char* names[] = {"--latent", "--estimator", "--hidden", "--samples", "--batch-size", "--binarize",
                           "--optimizer", "--seed"};
    for (std::size_t i = 0; i < now.size(); ++i) {
        if (saved[i] == now[i]) continue;
        std::string was = std::to_string(saved[i]), is = std::to_string(now[i]);
        if (i == 0) was = latent_name(static_cast<Latent>(saved[i])), is = latent_name(c.latent);
        if (i == 1) was = estimator_name(static_cast<Estimator>(saved[i])), is = estimator_name(c.estimator);
        if (i == 5) was = mnist::binarization_name(static_cast<mnist::Binarization>(saved[i])),
            is = mnist::binarization_name(c.binarization);
        if (i == 6) was = saved[i] ? "sgd" : "adam", is = c.optimizer;
        throw UsageError("--resume: the checkpoint " + path + " was made with " + names[i] + " " + was + ", not " +
                         is + " (resume with the same model flags, or choose another --out)");
    }
}

// Everything of the run that is not the model or the optimizer.
struct RunState {
    std::size_t epoch = 0;  // epochs completed
    std::size_t step = 0;
    float tau = 1.0f;
    float baseline = std::numeric_limits<float>::quiet_NaN();  // of sf's Reinforce; NaN: not set yet
    double epoch_loss = 0.0;  // sum of the batch losses of the current epoch so far
    std::size_t epoch_batches = 0;
    double epoch_seconds = 0.0;
    std::vector<EpochMetrics> history;
};

Checkpoint run_checkpoint(const Config& c, const RunState& st, const Generator& noise, const Generator& binarize,
                          const mnist::BatchIterator& batches) {
    Checkpoint ck;
    ck.put_ints("run.config", config_codes(c));
    ck.put_ints("run.progress", {static_cast<std::int64_t>(st.epoch), static_cast<std::int64_t>(st.step),
                                 static_cast<std::int64_t>(st.epoch_batches)});
    Array floats = Array::from_shape({2});
    floats(0) = st.tau;
    floats(1) = st.baseline;
    ck.put("run.tau_baseline", std::move(floats));
    ck.put_uints("run.epoch_sums", {bits_of(st.epoch_loss), bits_of(st.epoch_seconds)});
    std::vector<std::uint64_t> history;
    for (const EpochMetrics& e : st.history)
        for (double v : metric_values(e)) history.push_back(bits_of(v));
    ck.put_uints("run.history", std::move(history));
    ck.put_generator("rng.noise", noise);
    ck.put_generator("rng.binarize", binarize);
    ck.put_uints("data.batches", batches.state().words());
    return ck;
}

void restore_run(const Checkpoint& ck, RunState& st, Generator& noise, Generator& binarize,
                 mnist::BatchIterator& batches) {
    const std::vector<std::int64_t>& progress = ck.get_ints("run.progress");
    const Array& floats = ck.get("run.tau_baseline");
    const std::vector<std::uint64_t>& sums = ck.get_uints("run.epoch_sums");
    const std::vector<std::uint64_t>& history = ck.get_uints("run.history");
    if (progress.size() != 3 || floats.size() != 2 || sums.size() != 2 || history.size() % metric_fields != 0)
        throw CheckpointError("checkpoint: the run.* entries have unexpected sizes");
    mnist::BatchState bs = mnist::BatchState::from_words(ck.get_uints("data.batches"));
    batches.set_state(bs);  // throws for another data set size
    ck.get_generator("rng.noise", noise);
    ck.get_generator("rng.binarize", binarize);
    st.epoch = static_cast<std::size_t>(progress[0]);
    st.step = static_cast<std::size_t>(progress[1]);
    st.epoch_batches = static_cast<std::size_t>(progress[2]);
    st.tau = floats(0);
    st.baseline = floats(1);
    st.epoch_loss = double_of(sums[0]);
    st.epoch_seconds = double_of(sums[1]);
    st.history.clear();
    std::vector<double> v(metric_fields);
    for (std::size_t i = 0; i < history.size(); i += metric_fields) {
        for (std::size_t j = 0; j < metric_fields; ++j) v[j] = double_of(history[i + j]);
        st.history.push_back(metrics_from(v.data()));
    }
}

// The first gradient entry that is NaN or infinite, as "parameter name", or "".
std::string non_finite_gradient(const nn::Module& model) {
    for (const auto& [name, p] : model.named_parameters()) {
        if (!p.has_grad()) continue;
        const float* g = p.grad().data();
        const std::size_t n = p.grad().size();
        // an exponent of all ones is NaN or infinity; integer tests vectorize
        std::uint32_t bad = 0;
        for (std::size_t i = 0; i < n; ++i) {
            std::uint32_t b;
            std::memcpy(&b, g + i, 4);
            bad |= (b & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) return name;
    }
    return "";
}

// The first test image of each digit 0-7 (or the first 8 images if some digit is missing).
std::vector<std::size_t> picture_rows(const mnist::DataSet& test) {
    std::vector<std::size_t> rows;
    for (std::uint8_t d = 0; d < 8; ++d)
        for (std::size_t i = 0; i < test.size(); ++i)
            if (test.labels[i] == d) {
                rows.push_back(i);
                break;
            }
    if (rows.size() < 8) {
        rows.clear();
        for (std::size_t i = 0; i < std::min<std::size_t>(8, test.size()); ++i) rows.push_back(i);
    }
    return rows;
}

void save_pictures(const Config& c, const std::string& dir, const Model& model, Evaluator& evaluator,
                   const mnist::DataSet& test, const std::vector<EpochMetrics>& history) {
    constexpr std::size_t k = 6;
    Array upper, lower;
    mnist::gather_halves(test, picture_rows(test), upper, lower);
    const Array probs = evaluator.lower_probabilities(model, upper, k, derive_seed(c.seed, picture_seed));
    images::completion_grid(upper, lower, probs, k).save_png((fs::path(dir) / "completions.png").string());

    images::Series train{"train loss", {}, {}, {200, 60, 40}}, val{"validation NLL (m = " + std::to_string(c.val_samples) + ")", {}, {}, {40, 90, 200}};
    for (const EpochMetrics& e : history) {
        train.x.push_back(static_cast<double>(e.epoch));
        train.y.push_back(e.train_loss);
        val.x.push_back(static_cast<double>(e.epoch));
        val.y.push_back(e.val_nll);
    }
    const std::string title = std::string(latent_name(c.latent)) + " " + estimator_name(c.estimator) +
                              ": NLL of the lower half, " + mnist::binarization_name(c.binarization) + " MNIST";
    images::plot({train, val}, title, "epoch", "nats").save_png((fs::path(dir) / "curves.png").string());
}

// Restores model, optimizer and run from the checkpoint at path; every error names the file.
void resume_from(const std::string& path, const Config& c, Model& model, optim::Optimizer& optimizer, RunState& st,
                 Generator& noise, Generator& binarize, mnist::BatchIterator& batches) {
    const auto with_path = [&](const std::string& what) {
        return what.find(path) != std::string::npos ? what : "--resume " + path + ": " + what;
    };
    try {
        const Checkpoint ck = Checkpoint::load(path);
        check_config_codes(ck.get_ints("run.config"), c, path);
        load_state_dict(ck, model, &optimizer);
        restore_run(ck, st, noise, binarize, batches);
    } catch (const UsageError&) {
        throw;
    } catch (const CheckpointError& e) {
        throw CheckpointError(with_path(e.what()));
    } catch (const std::invalid_argument& e) {  // the batch order of another data set
        throw CheckpointError(with_path(e.what()));
    }
}

// Whether a signal asked the run to stop.
bool stop_requested(const Config& c) { return c.stop_requested && *c.stop_requested; }

}  // namespace

void check_writable(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UsageError("--out " + dir + ": cannot create the folder: " + ec.message());
    const std::string probe = (fs::path(dir) / ".write-probe").string();
    try {
        write_file_atomic(probe, "a probe of structured_output, removed at once\n");
    } catch (const FileWriteError& e) {
        throw UsageError("--out " + dir + " is not writable: " + e.what());
    }
    fs::remove(probe, ec);
}

std::vector<EpochMetrics> read_metrics(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::string line;
    std::getline(f, line);
    if (line != metrics_header) throw std::runtime_error(path + ": unexpected header '" + line + "'");
    std::vector<EpochMetrics> rows;
    while (std::getline(f, line)) {
        std::vector<double> v;
        std::stringstream s(line);
        std::string field;
        while (std::getline(s, field, ',')) v.push_back(std::strtod(field.c_str(), nullptr));
        if (v.size() != metric_fields) throw std::runtime_error(path + ": malformed row '" + line + "'");
        rows.push_back(metrics_from(v.data()));
    }
    return rows;
}

int run(const Config& c, std::ostream& out, std::ostream& err) {
    validate(c);
    set_num_threads(c.threads);
    const std::string dir = c.out_dir();
    const std::string ckpt_path = (fs::path(dir) / "checkpoint.npz").string();
    const std::string metrics_path = (fs::path(dir) / "metrics.csv").string();
    if (c.resume && !fs::exists(ckpt_path))
        throw UsageError("--resume: no checkpoint at " + ckpt_path + " (a run writes one at the end of each epoch)");

    mnist::LoadOptions load;
    load.binarization = c.binarization;
    load.seed = 0;  // the same data for every --seed
    load.validation = c.validation_size;
    const mnist::Mnist data = mnist::load(c.data_dir, load);
    if (c.batch_size > data.train.size())
        throw UsageError("--batch-size " + std::to_string(c.batch_size) + " is larger than the training set (" +
                         std::to_string(data.train.size()) + " images)");

    Generator init(derive_seed(c.seed, init_seed));
    Model model(c.latent, c.hidden, init);
    std::unique_ptr<optim::Optimizer> optimizer;
    if (c.optimizer == "sgd") {
        optim::SGDOptions o;
        o.lr = c.lr;
        o.momentum = c.momentum;
        optimizer = std::make_unique<optim::SGD>(model.parameters(), o);
    } else {
        optim::AdamOptions o;
        o.lr = c.lr;
        optimizer = std::make_unique<optim::Adam>(model.parameters(), o);
    }
    mnist::BatchOptions bo;
    bo.batch_size = c.batch_size;
    bo.seed = derive_seed(c.seed, batch_seed);
    mnist::BatchIterator batches(data.train.size(), bo);
    Generator noise(derive_seed(c.seed, noise_seed)), binarize(derive_seed(c.seed, binarize_seed));
    RunState st;
    const std::unique_ptr<optim::TemperatureSchedule> temperature = temperature_schedule(c);
    st.tau = temperature->at(0);
    nn::Reinforce reinforce(0.9f);

    if (c.resume) {
        resume_from(ckpt_path, c, model, *optimizer, st, noise, binarize, batches);
        if (!std::isnan(st.baseline)) reinforce.set_baseline(st.baseline);
        out << "resumed from " << ckpt_path << ": epoch " << st.epoch << ", step " << st.step << "\n";
    }
    // Nothing in the directory changes before the first epoch ends (check_writable's probe is
    // gone again): a run that fails early leaves the previous run's files as they were.
    check_writable(dir);
    // false: the state is not finite, so not saved (the message is on err).
    auto save = [&] {
        // the baseline stays unset (NaN) until the score function's first batch
        st.baseline = c.estimator == Estimator::sf && st.step > 0 ? reinforce.baseline()
                                                                  : std::numeric_limits<float>::quiet_NaN();
        try {
            save_checkpoint(ckpt_path, model, optimizer.get(), run_checkpoint(c, st, noise, binarize, batches));
        } catch (const NonFiniteStateError& e) {
            err << "structured_output: " << e.what() << " at step " << st.step << "; stopped; the last good checkpoint is kept\n";
            return false;
        }
        return true;
    };

    Evaluator evaluator(c.stop_requested);
    Progress progress(err, c.progress_tty);
    const std::size_t rows = data.train.size(), per_epoch = batches.batches_per_epoch();
    Tensor upper(Array::from_shape({c.batch_size, mnist::half_pixels}));
    Tensor lower(Array::from_shape({c.batch_size, mnist::half_pixels}));
    TrainOptions to;
    to.estimator = c.estimator;
    to.samples = c.samples;
    double train_seconds = 0.0;
    std::size_t steps_here = 0;
    bool stopped = false;

    while (st.epoch < c.epochs) {
        const auto epoch_start = Clock::now();
        bool epoch_done = false;
        while (true) {
            // a stop between two batches of an epoch; at its end the epoch is completed first
            const bool out_of_steps = c.max_steps > 0 && st.step >= c.max_steps;
            const bool signalled = stop_requested(c);
            if ((out_of_steps || signalled) && batches.state().position < rows) {
                stopped = signalled;
                break;
            }
            if (!batches.next()) {
                epoch_done = true;
                break;
            }
            mnist::gather_halves(data.train, batches.indices(), upper.value(), lower.value());
            if (c.binarization == mnist::Binarization::dynamic) {
                mnist::binarize_sample(upper.value(), binarize);
                mnist::binarize_sample(lower.value(), binarize);
            }
            st.tau = temperature->at(static_cast<std::int64_t>(st.step));
            to.tau = st.tau;
            const Loss loss = training_loss(model, upper, lower, to, noise, &reinforce);
            if (!std::isfinite(loss.objective.item()) || !std::isfinite(loss.nll)) {
                progress.clear();
                err << "structured_output: non-finite loss at step " << st.step + 1 << " (epoch " << st.epoch + 1
                    << "); stopped; the last good checkpoint is kept in " << ckpt_path << "\n";
                return 3;
            }
            loss.objective.backward();
            if (const std::string bad = non_finite_gradient(model); !bad.empty()) {
                progress.clear();
                err << "structured_output: non-finite gradient of " << bad << " at step " << st.step + 1
                    << " (epoch " << st.epoch + 1 << "); stopped; the last good checkpoint is kept in " << ckpt_path
                    << "\n";
                return 3;
            }
            optimizer->step();
            optimizer->zero_grad();
            ++st.step;
            ++steps_here;
            st.epoch_loss += loss.nll;
            ++st.epoch_batches;
            const double elapsed = train_seconds + std::chrono::duration<double>(Clock::now() - epoch_start).count();
            std::size_t left = (c.epochs - st.epoch) * per_epoch - std::min(per_epoch, st.epoch_batches);
            if (c.max_steps) left = std::min(left, c.max_steps - std::min(c.max_steps, st.step));
            progress.update(st.epoch + 1, c.epochs, st.epoch_batches, per_epoch, st.epoch_loss / st.epoch_batches,
                            elapsed / steps_here, left);
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
        train_seconds += seconds;
        st.epoch_seconds += seconds;
        progress.clear();
        if (!epoch_done) break;

        EpochMetrics e;
        e.epoch = st.epoch + 1;
        e.step = st.step;
        e.train_loss = st.epoch_batches ? st.epoch_loss / static_cast<double>(st.epoch_batches) : 0.0;
        e.val_nll = std::numeric_limits<double>::quiet_NaN();
        const auto val_start = Clock::now();
        try {
            if (c.val_samples > 0)
                e.val_nll = evaluator.nll(model, data.validation, c.val_samples,
                                          derive_seed(c.seed, eval_seed) + st.epoch);
        } catch (const EvaluationStopped&) {
            stopped = true;  // the epoch's training is complete: recorded and saved, without its NLL
        }
        e.val_seconds = std::chrono::duration<double>(Clock::now() - val_start).count();
        e.tau = st.tau;
        e.lr = optimizer->lr();
        e.train_seconds = st.epoch_seconds;
        st.history.push_back(e);
        ++st.epoch;
        st.epoch_loss = 0.0;
        st.epoch_batches = 0;
        st.epoch_seconds = 0.0;

        out << "epoch " << std::setw(3) << e.epoch << "  step " << std::setw(7) << e.step << "  train_loss "
            << fmt("%8.3f", e.train_loss) << "  val_nll " << fmt("%8.3f", e.val_nll) << "  tau "
            << fmt("%.4f", e.tau) << "  lr " << fmt("%g", e.lr) << "  " << fmt("%.1f", e.train_seconds) << " s (+"
            << fmt("%.1f", e.val_seconds) << " s validation)  rss " << fmt("%.1f", memory::rss_kb() / 1024.0) << " MB"
            << std::endl;
        if (!save()) return 3;
        write_metrics(metrics_path, st.history);
        memory::release_free_heap();  // the checkpoint's buffers: RSS stays flat from epoch to epoch
        if (stopped) break;
    }
    if (!stopped && steps_here > 0 && st.epoch_batches > 0 && !save()) return 3;  // stopped mid-epoch by --max-steps
    if (stopped) {
        if (st.epoch_batches > 0 && !save()) return 3;
        out << "stopped by a signal at step " << st.step << "; checkpoint saved to " << ckpt_path
            << " (continue with --resume)" << std::endl;
        return 130;
    }

    save_pictures(c, dir, model, evaluator, data.test, st.history);
    const double steps_per_s = train_seconds > 0.0 ? static_cast<double>(steps_here) / train_seconds : 0.0;
    std::optional<double> test_nll;
    if (c.eval_samples > 0) {
        const auto t0 = Clock::now();
        try {
            test_nll = evaluator.nll(model, data.test, c.eval_samples, derive_seed(c.seed, eval_seed) - 1);
        } catch (const EvaluationStopped&) {
            out << "stopped by a signal during the test evaluation; the trained model is in " << ckpt_path
                << std::endl;
            return 130;
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        out << "test NLL " << fmt("%.3f", *test_nll) << " nats (m = " << c.eval_samples << ", "
            << data.test.size() << " images, " << fmt("%.1f", seconds) << " s)\n";
    }
    out << "outputs in " << dir << ":";
    for (const char* name : {"metrics.csv", "checkpoint.npz", "completions.png", "curves.png"})
        if (fs::exists(fs::path(dir) / name)) out << " " << name;
    out << "\n";
    out << "train_steps_per_s=" << fmt("%.2f", steps_per_s) << "\n";
    if (test_nll) out << "test_nll=" << fmt("%.4f", *test_nll) << "\n";
    out << std::flush;
    return 0;
}

}  // namespace tg::structured
