// What every example needs and no library does: the common flags (bounded), the optimizer
// flags and the optimizer they make (the temperature's are in annealing.hpp), the --help
// footer, MNIST loading, a progress bar with ETA, the per-epoch line, metrics.csv,
// checkpoint/resume of a whole run, Ctrl-C, the closing lines and a main() that turns errors
// into one line on stderr. An example describes its run as an Experiment (model, optimizer,
// the loss of a batch, what to measure after each epoch) and hands it to harness::train; what
// it does after training (a test set, pictures with harness::images) is its own, and
// harness::report prints the last lines.
//
// The shape of an example's run():
//     Options o; CLI::App app{...}; add_common_flags(app, o.run); ...its own flags...;
//     if (auto status = parse(app, argc, argv)) return *status;
//     ...check its flags (require), load_mnist, make the model and make_optimizer...;
//     Experiment ex("name", model, *optimizer, data.train.size()); ex.loss = ...; ex.after_epoch = ...;
//     Trained t = train(o.run, dir, ex);
//     if (t.status != 0) return t.status; ...pictures, test figures...; report(dir, t, ...);
// and main() is `return harness::main("name", argc, argv, run);`.
//
// Exit statuses of every example: 0 done, 2 bad flags, data or checkpoint (one line on
// stderr), 3 a non-finite loss or gradient (the last good checkpoint is kept), 130 stopped by
// SIGINT/SIGTERM (a checkpoint was saved first; --resume continues).
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "datasets/mnist.hpp"
#include "layers/estimator_choice.hpp"
#include "layers/module.hpp"
#include "optim/lr_schedule.hpp"
#include "optim/optimizer.hpp"
#include "serialize/checkpoint.hpp"

namespace harness {

// A flag the user got wrong (or one that does not fit the data or the checkpoint): exit 2.
class UsageError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// ---- Flags -------------------------------------------------------------------------------

struct Flags {
    std::string data = "data/mnist";
    std::size_t epochs = 10, batch_size = 100, max_steps = 0;
    std::uint64_t seed = 0;
    std::size_t threads = 1;
    std::string out;  // the example picks the default
    bool resume = false;
    std::string test_model = "best";  // best: the epoch with the best validation metric; last
};

// --data --epochs --batch-size --max-steps --seed --threads --out --resume --test-model, with
// bounds; a flag given twice takes its last value. Sets the help's column width for every example.
void add_common_flags(CLI::App& app, Flags& flags);

// --optimizer adam|sgd, --lr (the initial learning rate), --momentum (of SGD) and the schedule of
// the learning rate over epochs: --lr-schedule constant|plateau|step, --lr-factor, --lr-patience
// (plateau), --lr-step (step), --min-lr; the optimizer and the schedule they make.
struct OptimizerFlags {
    std::string name = "adam";
    float lr = 1e-3f, momentum = 0.9f;
    std::string schedule = "constant";
    float lr_factor = 0.5f, min_lr = 0.0f;
    std::size_t lr_patience = 10, lr_step = 100;
};
void add_optimizer_flags(CLI::App& app, OptimizerFlags& flags);
// The flags of the optimizer that a resumed run must repeat (--lr; --momentum for SGD; those of a
// schedule other than constant), for Experiment::identity.
std::vector<std::pair<std::string, std::string>> identity(const OptimizerFlags& flags);
std::unique_ptr<tg::optim::Optimizer> make_optimizer(const OptimizerFlags& flags, std::vector<tg::Tensor> parameters);
// The schedule of --lr-schedule over the optimizer (nullptr for constant), for Experiment::schedule:
// train() steps it after each epoch. Throws UsageError for a --min-lr above --lr.
std::unique_ptr<tg::optim::LRSchedule> make_schedule(const OptimizerFlags& flags, tg::optim::Optimizer& optimizer);

// The --help footer of a training example: its outputs in --out (default_out when not given):
// metrics.csv, checkpoint.npz, best.npz, then `pictures` (a phrase: "a.png (what) and b.png"); its last
// lines on stdout (`results`, "name=<float>"); Ctrl-C, --resume and the exit statuses.
std::string footer(const std::string& default_out, const std::string& pictures, const std::string& results);

// An unsigned option in [min, max]: a negative number or one out of range is refused with a
// message naming the flag (CLI11 alone would wrap "-1" around to 2^64 - 1).
CLI::Option* add_count(CLI::App& app, const std::string& name, std::size_t& value, const std::string& help,
                       std::size_t min, std::size_t max);
CLI::Option* add_count(CLI::App& app, const std::string& name, std::uint64_t& value, const std::string& help);
// A finite float in [min, below) (below may be infinity), or one that must be positive. The
// value must survive its conversion to float: one that overflows, underflows to 0 or to a
// denormal, or rounds out of its range is refused, naming the flag and the text given.
CLI::Option* add_real(CLI::App& app, const std::string& name, float& value, const std::string& help, float min,
                      float below);
CLI::Option* add_positive(CLI::App& app, const std::string& name, float& value, const std::string& help);
// One of the names in choices (index_of gives its position after parsing).
CLI::Option* add_choice(CLI::App& app, const std::string& name, std::string& value, const std::string& help,
                        const std::vector<std::string>& choices);
// The position of value in choices (add_choice has checked that it is there).
std::size_t index_of(const std::string& value, const std::vector<std::string>& choices);
// --estimator: any estimator of the library (tg::estimators) that applies to one of the latent
// kinds, each listed with its summary and the kinds it takes; note adds what the model refuses.
CLI::Option* add_estimator_flag(CLI::App& app, std::string& value, const std::vector<tg::Discrete>& kinds,
                                const std::string& note);
// Runs check, which throws std::invalid_argument when the estimator does not fit the model, and
// turns that into a UsageError (exit 2) with its message.
void require_estimator(const std::function<void()>& check);
// The estimator's learned parts, registered in the model so that the optimizer made afterwards
// from model.parameters() trains them and checkpoints hold them: for nvil its input-dependent
// baseline network (Mnih and Gregor 2014: `inputs` -> 100 tanh units -> 1) as "nvil_baseline";
// for rebar-tuned and relax their control variate over `units` latents of `kind` (Estimator::
// make_control_variate) as "control_variate". Nothing for the other estimators. Call before
// making the optimizer.
void attach_estimator_parts(tg::estimators::Estimator& estimator, tg::nn::Module& model, std::size_t inputs,
                            tg::Discrete kind, std::size_t units, tg::Generator& init);

// Parses argv into app's variables: nothing to go on, or the exit status to stop with now (0
// after --help, 2 after a one-line error on err, "program: message").
std::optional<int> parse(CLI::App& app, int argc, const char* const* argv, std::ostream& out = std::cout,
          std::ostream& err = std::cerr);

// Throws UsageError(message) unless ok.
void require(bool ok, const std::string& message);
// Throws UsageError unless a training step of `bytes` (the example's estimate) fits in this
// machine's physical memory: flags whose step cannot fit are refused now, not by the OOM
// killer. The message is "<flags> need about X GB a training step, more than this machine's Y GB".
void require_memory(double bytes, const std::string& flags);

// The seed of one of a run's generators, derived from --seed and a purpose number.
std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose);
constexpr std::uint64_t batch_order_purpose = 2;  // the harness's own: the shuffling of the batches

// The batches train hands out: flags.batch_size, shuffled by derive_seed(flags.seed, batch_order_purpose).
tg::mnist::BatchOptions batch_options(const Flags& flags);

// ---- Stopping ----------------------------------------------------------------------------

// The first SIGINT or SIGTERM asks the run to checkpoint and stop; a second one ends the
// process at once. install_signal_handlers() is called by harness::main.
void install_signal_handlers();
bool stop_requested();
void request_stop(bool on = true);  // what the handler does; for tests
// Thrown by check_stop() (call it between chunks of a long evaluation) when a stop was asked.
struct Interrupted : std::runtime_error {
    Interrupted() : std::runtime_error("stopped by a signal") {}
};
void check_stop();

// Calls f(c, indices) for the consecutive chunks c = 0, 1, ... of 0..rows-1, at most `chunk`
// rows each, with check_stop() before each: a long evaluation of a data set that Ctrl-C can
// interrupt. The chunks are spread over tapegrad's threads (tg::parallel_tasks), each run with
// gradients off: f must write only its chunk's results (by row or by c) and draw from a
// generator of its own seeded from c, which makes the results independent of the thread count.
void for_each_chunk(std::size_t rows, std::size_t chunk,
                    const std::function<void(std::size_t, const std::vector<std::size_t>&)>& f);

// What the program is doing, for the message if memory runs out ("out of memory while ...").
void now_doing(std::string what);

// ---- Data and files -------------------------------------------------------------------------------

// MNIST from flags.data, binarized as asked (fixed: always from seed 0, the same data for
// every --seed), with the last `validation` training images held out.
tg::mnist::Mnist load_mnist(const Flags& flags, tg::mnist::Binarization binarization, std::size_t validation);

// Creates dir and writes and removes a probe file in it: a run that cannot save its results
// fails before training, not after. Throws UsageError naming the directory (flag: --out).
void check_writable(const std::string& dir);

// Atomically (tg::write_file_atomic): a header line of names, then one row per entry.
void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& rows);

// ---- The training loop -------------------------------------------------------------------

struct Loss {
    tg::Tensor objective;  // what backward() differentiates
    double value = 0.0;    // the figure averaged into the epoch's train_loss
};

// A metric the experiment measures after each epoch: its metrics.csv column and how the
// epoch line prints it (a printf format).
struct Column {
    std::string name;
    const char* format;
};

struct Experiment {
    Experiment(std::string program, tg::nn::Module& model, tg::optim::Optimizer& optimizer, std::size_t train_size)
        : program(std::move(program)), model(&model), optimizer(&optimizer), train_size(train_size) {}
    std::string program;  // names the messages ("structured_output: ...")
    tg::nn::Module* model = nullptr;
    tg::optim::Optimizer* optimizer = nullptr;
    std::size_t train_size = 0;  // rows of the training set; the harness shuffles their order
    // The loss of a batch (rows of the training set) at a step (from 0), recorded on the tape.
    std::function<Loss(const std::vector<std::size_t>& rows, std::size_t step)> loss;
    // After each epoch (from 1, `step` steps done): the values of `columns`. May throw Interrupted.
    std::vector<Column> columns;
    std::function<std::vector<double>(std::size_t epoch, std::size_t step)> after_epoch;
    // The column measuring the model on the validation set (lower is better unless maximize):
    // a plateau schedule follows it, and the epoch that does best on it is kept as best.npz.
    // Epochs where it is NaN (not measured) count for neither.
    std::string monitor;
    bool maximize = false;
    // The learning-rate schedule (make_schedule), stepped after each epoch's evaluation, or none.
    tg::optim::LRSchedule* schedule = nullptr;
    // The run's generators besides the batch order's (saved and restored in the checkpoint).
    std::vector<std::pair<std::string, tg::Generator*>> generators;
    // The flags that define the run, as "--flag" and value: --resume refuses other values.
    std::vector<std::pair<std::string, std::string>> identity;
    // Anything else of the run's state (a baseline), into and out of the checkpoint.
    std::function<void(tg::Checkpoint&)> save_state;
    std::function<void(const tg::Checkpoint&)> load_state;  // see keep_estimator_state
};

// Sets ex.save_state and ex.load_state to keep the estimator's running statistics in the
// checkpoint ("run.baseline": sf's moving average, NaN before its first batch; "run.nvil": nvil's
// mean and variance), so that a resumed run with them equals an uninterrupted one.
void keep_estimator_state(Experiment& ex, tg::estimators::Estimator& estimator);

struct Console {
    std::ostream& out = std::cout;  // epoch lines and results
    std::ostream& err = std::cerr;  // progress and errors
    bool tty = false;               // err is a terminal: a progress bar redrawn in place
};
Console terminal();  // std::cout, std::cerr, tty if stderr is a terminal

struct Trained {
    int status = 0;  // 0, or 3 (non-finite) or 130 (signal): return it from main
    double steps_per_s = 0.0;  // of this process's training
    // metrics.csv: epoch, step, train_loss, the experiment's columns, train_seconds, val_seconds
    std::vector<std::string> header;
    std::vector<std::vector<double>> history;
    std::string checkpoint;  // its path
    std::string best;        // best.npz beside it: the checkpoint of the best epoch on the monitor
    std::size_t best_epoch = 0;  // 0: no epoch measured the monitor
};

// Trains for flags.epochs (or flags.max_steps) from a fresh start or, with flags.resume,
// from out_dir/checkpoint.npz; writes out_dir/metrics.csv and the checkpoint after every epoch,
// and the same checkpoint as best.npz after an epoch that improves on the monitor.
// Resuming refuses a checkpoint whose identity flags differ from this run's, whose learning rate
// is not the one the schedule's saved state gives (--lr when constant), or whose run.* entries
// are not a run's state.
// Sets the threads (tg::set_num_threads). A stop (signal) checkpoints and returns 130.
Trained train(const Flags& flags, const std::string& out_dir, Experiment& experiment, Console console = terminal());

// With --test-model best and a best epoch that is not the last, loads best.npz's parameters into
// model and says so on out, for the test evaluation and pictures after training.
void use_best(const Flags& flags, const Trained& trained, tg::nn::Module& model, std::ostream& out = std::cout);

// The last lines of a trained run: "outputs in DIR:" with those of metrics.csv,
// checkpoint.npz, best.npz and `pictures` that exist there, then train_steps_per_s=<float> and each
// result as name=value (scripts read these lines; they come last).
void report(const std::string& dir, const Trained& trained, const std::vector<std::string>& pictures,
            const std::vector<std::pair<std::string, std::string>>& results, std::ostream& out = std::cout);

// A printf of one number.
std::string format(const char* format, double v);
// The shortest decimal that reads back as v ("0.001", not "0.00100000005"): a float flag's value
// in messages and in the checkpoint.
std::string float_text(float v);

// Wall-clock seconds since it was made (an evaluation's time, for the message).
class Stopwatch {
public:
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

private:
    std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The body of an example's main(): runs body(argc, argv) with the signal handlers installed
// and turns any exception into one line on stderr ("program: message") and exit status 2.
// First, unless OPENBLAS_NUM_THREADS is 1, it starts the program again with it set to 1: the
// examples run OpenBLAS single-threaded inside tapegrad's pool, and the threads OpenBLAS
// starts when it loads (before main) would only take 128 MB of address space each, and spin
// forever under a memory limit (ulimit -v) too small for that.
int main(const char* program, int argc, char** argv, const std::function<int(int, char**)>& body);

}  // namespace harness
