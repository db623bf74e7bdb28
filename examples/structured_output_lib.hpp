// Structured output prediction on MNIST (Jang, Gu and Poole 2017, section 4.1): predict the
// lower 14 rows of a binarized digit from the upper 14 through two layers of discrete
// stochastic units. The program examples/structured_output.cpp is a thin main() over this
// library, which the tests call directly.
#pragma once

#include <csignal>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "datasets/mnist.hpp"
#include "layers/linear.hpp"
#include "layers/estimators.hpp"
#include "layers/module.hpp"

namespace tg::structured {

enum class Latent { bernoulli, categorical };
// gs: relaxed samples (Binary Concrete / Gumbel-Softmax); st_gs: their straight-through
// version (discrete forward, relaxed gradient); st: plain straight-through (a discrete
// sample forward, the gradient of the probabilities backward); sf: score function
// (REINFORCE) with a moving-average baseline.
enum class Estimator { gs, st_gs, st, sf };

Latent parse_latent(const std::string& name);  // "bernoulli", "categorical"
Estimator parse_estimator(const std::string& name);  // "gs", "st-gs", "st", "sf"
const char* latent_name(Latent latent);
const char* estimator_name(Estimator estimator);

constexpr std::size_t classes = 10;  // of each categorical variable

// Everything the command line sets, with the defaults of the program.
struct Config {
    std::string data_dir = "data/mnist";
    Latent latent = Latent::bernoulli;
    Estimator estimator = Estimator::gs;
    mnist::Binarization binarization = mnist::Binarization::fixed;
    std::string optimizer = "adam";  // or "sgd"
    float lr = 1e-3f;
    float momentum = 0.9f;  // SGD only
    std::size_t batch_size = 100;
    std::size_t epochs = 10;
    std::size_t max_steps = 0;  // 0: no limit
    std::size_t hidden = 200;
    float tau = 1.0f;  // tau = max(tau_min, tau * exp(-anneal_rate * step)), updated every anneal_every steps
    float tau_min = 0.5f;
    float anneal_rate = 1e-5f;
    std::size_t anneal_every = 1000;
    std::size_t samples = 1;         // m of the training objective
    std::size_t eval_samples = 1000; // m of the test NLL; 0 skips it
    std::size_t val_samples = 5;     // m of the per-epoch validation NLL; 0 skips it
    std::uint64_t seed = 0;
    int threads = 1;
    std::string out;  // empty: runs/<latent>-<estimator>
    bool resume = false;

    // Not flags: for tests on small synthetic data.
    std::size_t validation_size = mnist::validation_size;
    bool progress_tty = false;                              // draw a progress bar (stderr is a terminal)
    volatile std::sig_atomic_t* stop_requested = nullptr;  // set by a signal handler: checkpoint and stop

    std::string out_dir() const;  // out, or its default
};

// A flag the user got wrong: the program exits with status 2.
class UsageError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Checks the values of the flags; throws UsageError naming the flag. Besides the bounds of
// each flag (see --help), a training step or an evaluation chunk must fit in this machine's
// memory (estimate_memory), so that --samples 100000 is refused now, not by the OOM killer.
void validate(const Config& config);

// Bytes, about, that a training step (the tape of batch-size x samples rows, the parameters,
// their gradients and optimizer state, the data) and an evaluation chunk need with these flags.
struct MemoryNeed {
    double training_step = 0.0, evaluation = 0.0;
};
MemoryNeed estimate_memory(const Config& config);
// "--batch-size 100 --samples 1 --hidden 200: about 12 MB a training step, 9 MB an evaluation chunk".
std::string describe_memory(const Config& config);

// Creates the output folder and writes (tg::write_file_atomic) and removes a probe file in it:
// an unwritable --out is found before any work, not after the first epoch. Throws UsageError.
void check_writable(const std::string& dir);

// The command line: a Config, or the exit status when the program should stop now (0 after
// --help, 2 after an error, whose one-line message went to err).
struct ParsedArgs {
    std::optional<Config> config;
    int exit_status = 0;
};
ParsedArgs parse_command_line(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// ---- The model ---------------------------------------------------------------------------

// 392 -> Linear -> hidden stochastic units -> Linear -> hidden stochastic units -> Linear -> 392
// Bernoulli logits. Categorical units are hidden / 10 variables of 10 classes (one-hot).
class Model : public nn::Module {
public:
    Model(Latent latent, std::size_t hidden, Generator& init);

    Latent latent() const { return latent_; }
    std::size_t hidden() const { return hidden_; }

    std::shared_ptr<nn::Linear> fc1, fc2, fc3;

private:
    Latent latent_;
    std::size_t hidden_;
};

struct TrainOptions {
    Estimator estimator = Estimator::gs;
    float tau = 1.0f;
    std::size_t samples = 1;
};

// The training objective on one batch, recorded on the tape, and the figure to report: the
// batch mean of the per-example loss f (the NLL of the lower half given the sampled units;
// with samples m > 1, -log-mean-exp of the m likelihoods). For sf the objective is the
// surrogate mean(f + stop_grad(f - b) log q(h)) with reinforce's baseline b, which is then
// updated (reinforce may be nullptr for the other estimators).
struct Loss {
    Tensor objective;
    double nll = 0.0;
};
Loss training_loss(const Model& model, const Tensor& upper, const Tensor& lower, const TrainOptions& options,
                   Generator& gen, nn::Reinforce* reinforce = nullptr);

// ---- Evaluation on raw arrays ------------------------------------------------------------

struct EvalRng;  // the evaluation's random numbers (structured_output_lib.cpp)

// The test NLL with m discrete samples per image: mean over images of
// -log((1/m) sum_i p(lower | h_i)). No tape: GEMMs straight into reused buffers, the first
// layer's logits once per image, chunks of about 2000 rows (images x samples) as one batch.
// The buffers hold one chunk whatever n: with 200 units about 8 MB (m = 1000: 2 images per
// chunk; m = 5: 400 images, whose floats add 1.3 MB).
// Thrown by the Evaluator when its stop request is set (checked between chunks).
class EvaluationStopped : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Sampling units whose probabilities are NaN would silently give a finite NLL (a uniform is
// never below NaN): the Evaluator throws std::domain_error instead, naming the layer.
class Evaluator {
public:
    // stop_requested (if given) is checked between chunks: once set, nll throws EvaluationStopped.
    explicit Evaluator(const volatile std::sig_atomic_t* stop_requested = nullptr) : stop_(stop_requested) {}

    // Mean NLL in nats over the rows of upper/lower [n, 392]; per_image (if given) gets each.
    double nll(const Model& model, const Array& upper, const Array& lower, std::size_t m, std::uint64_t seed,
               std::vector<double>* per_image = nullptr);
    // The same on the images of a data set (rows 0-13 given, 14-27 predicted), converted to
    // float one chunk at a time: the same numbers as on its gathered halves.
    double nll(const Model& model, const mnist::DataSet& data, std::size_t m, std::uint64_t seed,
               std::vector<double>* per_image = nullptr);
    // Pixel probabilities of the lower half given k discrete samples of the units, for each
    // image: [n * k, 392], the k rows of image i together.
    Array lower_probabilities(const Model& model, const Array& upper, std::size_t k, std::uint64_t seed);

private:
    // Rows of upper halves `stride` floats apart; leaves images * m rows of logits without fc3's bias.
    void forward(const Model& model, const float* upper, std::size_t stride, std::size_t images, std::size_t m,
                 EvalRng& rng);
    struct Rows;  // where nll_rows reads the halves: float arrays, or a data set's bytes
    double nll_rows(const Model& model, const Rows& rows, std::size_t n, std::size_t m, std::uint64_t seed,
                    std::vector<double>* per_image);
    const volatile std::sig_atomic_t* stop_ = nullptr;
    std::vector<float> a1_, h1_, a2_, h2_, logits_;
    std::vector<float> images_;  // a chunk of a data set's images as floats
};

// ---- The program -------------------------------------------------------------------------

// One row of metrics.csv.
struct EpochMetrics {
    std::size_t epoch = 0;  // from 1
    std::size_t step = 0;   // training steps done at its end
    double train_loss = 0.0;
    double val_nll = 0.0;  // NaN when not measured
    float tau = 0.0f, lr = 0.0f;
    double train_seconds = 0.0, val_seconds = 0.0;
};

// Trains, writes metrics.csv, checkpoint.npz, completions.png and curves.png into the output
// directory, evaluates, and prints the per-epoch lines and the final machine-readable lines
// to out (progress on err). Returns the exit status: 0, or 3 when a non-finite loss, gradient
// or state stopped training, or 130 after stop_requested (during training or evaluation).
// Throws UsageError for flags that do not fit the data, checkpoint or output folder, other
// exceptions for files (a checkpoint's name the file).
int run(const Config& config, std::ostream& out, std::ostream& err);

// metrics.csv back as rows (for resuming and tests).
std::vector<EpochMetrics> read_metrics(const std::string& path);

}  // namespace tg::structured
