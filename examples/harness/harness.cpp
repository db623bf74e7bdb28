#include "examples/harness/harness.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <numeric>
#include <sstream>

#include "autograd/threads.hpp"
#include "datasets/mnist.hpp"
#include "examples/harness/memory.hpp"
#include "layers/activation.hpp"
#include "layers/sequential.hpp"
#include "optim/adam.hpp"
#include "optim/sgd.hpp"
#include "serialize/atomic_file.hpp"

namespace harness {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- Flags -------------------------------------------------------------------------------

namespace {

// A decimal count with nothing else: "-1", "1e3", "12abc" and values past max are refused.
std::string check_count(const std::string& text, std::size_t min, std::size_t max) {
    if (!text.empty() && text[0] == '-') return "must not be negative, got " + text;
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
        return "expects a whole number, got '" + text + "'";
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE || v > max) return "must be at most " + std::to_string(max) + ", got " + text;
    if (v < min) return "must be at least " + std::to_string(min) + ", got " + text;
    return "";
}

}  // namespace

CLI::Option* add_count(CLI::App& app, const std::string& name, std::size_t& value, const std::string& help,
                       std::size_t min, std::size_t max) {
    return app.add_option(name, value, help)
        ->capture_default_str()
        ->check(CLI::Validator([min, max](std::string& s) { return check_count(s, min, max); },
                               "in [" + std::to_string(min) + ", " + std::to_string(max) + "]"));
}

CLI::Option* add_count(CLI::App& app, const std::string& name, std::uint64_t& value, const std::string& help) {
    return app.add_option(name, value, help)->capture_default_str()->check(CLI::Validator(
        [](std::string& s) { return check_count(s, 0, std::numeric_limits<std::uint64_t>::max()); }, "UINT64"));
}

namespace {

// A finite number that a float holds as given (up to rounding): a value that overflows to
// infinity, or that underflows to 0 or to a denormal (1e-45 would be 1.4e-45), is refused, and
// so is one that the rounding carries outside its range (0.99999999 becomes 1).
std::string check_real(const std::string& text, float min, float below, bool positive) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0') return "expects a number, got '" + text + "'";
    if (!std::isfinite(v)) return "must be finite, got " + text;
    if (positive && !(v > 0)) return "must be positive, got " + text;
    const float f = static_cast<float>(v);
    if (!std::isfinite(f)) return "must be at most " + float_text(FLT_MAX) + " (the largest float), got " + text;
    if (v != 0.0 && std::fabs(f) < FLT_MIN)
        return std::string(positive ? "must be at least " : "must be 0 or at least ") + float_text(FLT_MIN) +
               " in magnitude, the smallest normal float (it would be stored as " + float_text(f) + "), got " + text;
    if (!positive && !(f >= min && f < below)) {
        const std::string range = "[" + float_text(min) + ", " + float_text(below) + ")";
        if (v >= min && v < below)
            return "must be in " + range + ", got " + text + ", which a float rounds to " + float_text(f);
        return "must be in " + range + ", got " + text;
    }
    return "";
}

}  // namespace

std::string float_text(float v) {
    char buf[32];
    for (int digits = 1; digits <= 9; ++digits) {  // the shortest that reads back as v
        std::snprintf(buf, sizeof buf, "%.*g", digits, double(v));
        if (std::strtof(buf, nullptr) == v) break;
    }
    return buf;
}

CLI::Option* add_real(CLI::App& app, const std::string& name, float& value, const std::string& help, float min,
                      float below) {
    return app.add_option(name, value, help)->capture_default_str()->check(CLI::Validator(
        [min, below](std::string& s) { return check_real(s, min, below, false); }, "FLOAT"));
}

CLI::Option* add_positive(CLI::App& app, const std::string& name, float& value, const std::string& help) {
    return app.add_option(name, value, help)->capture_default_str()->check(
        CLI::Validator([](std::string& s) { return check_real(s, 0, 0, true); }, "FLOAT > 0"));
}

CLI::Option* add_choice(CLI::App& app, const std::string& name, std::string& value, const std::string& help,
                        const std::vector<std::string>& choices) {
    std::string names;
    for (const std::string& c : choices) names += (names.empty() ? "" : ", ") + c;
    return app.add_option(name, value, help)->capture_default_str()->check(CLI::Validator(
        [choices, names](std::string& s) {
            return index_of(s, choices) < choices.size() ? "" : "unknown value '" + s + "' (expected " + names + ")";
        },
        "{" + names + "}"));
}

std::size_t index_of(const std::string& value, const std::vector<std::string>& choices) {
    return static_cast<std::size_t>(std::find(choices.begin(), choices.end(), value) - choices.begin());
}

CLI::Option* add_estimator_flag(CLI::App& app, std::string& value, const std::vector<tg::Discrete>& kinds,
                                const std::string& note) {
    std::vector<std::string> names;
    std::string help = "Gradient estimator of the discrete units:";
    for (const tg::estimators::Info& i : tg::estimators::all()) {
        std::string takes;
        for (const tg::Discrete& k : kinds)
            if (k.is_bernoulli() ? i.bernoulli : i.categorical) takes += (takes.empty() ? "" : "/") + std::string(k.name());
        if (takes.empty()) continue;
        names.emplace_back(i.name);
        help += std::string("\n  ") + i.name + ": " + i.summary + (takes.find('/') == std::string::npos ? " (" + takes + " only)" : "");
    }
    if (!note.empty()) help += "\n  " + note;
    return add_choice(app, "--estimator", value, help, names);
}

void attach_estimator_parts(tg::estimators::Estimator& estimator, tg::nn::Module& model, std::size_t inputs,
                            tg::Discrete kind, std::size_t units, tg::Generator& init) {
    if (estimator.name() == "nvil") {
        const auto net = tg::nn::mlp({inputs, 100, 1}, [] { return std::make_shared<tg::nn::Tanh>(); }, {true, &init});
        estimator.use_baseline(model.register_module("nvil_baseline", net));
    }
    if (const auto cv = estimator.make_control_variate(kind, units, &init)) model.register_module("control_variate", cv);
}

void keep_estimator_state(Experiment& ex, tg::estimators::Estimator& estimator) {
    ex.save_state = [&estimator](tg::Checkpoint& ck) {
        const tg::nn::Reinforce& sf = estimator.reinforce();
        ck.put("run.baseline", tg::Array{sf.started() ? sf.baseline() : NAN});
        ck.put("run.nvil", estimator.nvil().state());
    };
    ex.load_state = [&estimator](const tg::Checkpoint& ck) {
        const tg::Array& baseline = ck.get("run.baseline");
        if (baseline.size() != 1 || std::isinf(baseline.data()[0]))  // NaN: no baseline yet
            throw tg::CheckpointError("checkpoint: entry 'run.baseline' is not one finite number or NaN (not the "
                                      "state of a run)");
        if (!std::isnan(baseline.data()[0])) estimator.reinforce().set_baseline(baseline.data()[0]);
        try {
            estimator.nvil().set_state(ck.get("run.nvil"));
        } catch (const std::invalid_argument& e) {
            throw tg::CheckpointError(std::string("checkpoint: entry 'run.nvil': ") + e.what());
        }
    };
}

void require_estimator(const std::function<void()>& check) {
    try {
        check();
    } catch (const std::invalid_argument& e) {
        throw UsageError(std::string("--estimator: ") + e.what());
    }
}

void add_common_flags(CLI::App& app, Flags& f) {
    app.get_formatter()->column_width(34);
    // a flag given twice takes its last value: a script's defaults can be overridden after them
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.add_option("--data", f.data, "Directory of the four MNIST IDX files (scripts/fetch-mnist DIR gets them)")
        ->capture_default_str();
    add_count(app, "--epochs", f.epochs, "Epochs in all (a resumed run counts the epochs already done)", 0, 1000000);
    add_count(app, "--batch-size", f.batch_size, "Images per training step", 1, 1000000);
    add_count(app, "--max-steps", f.max_steps, "Stop after this many training steps in all, even mid-epoch (0: no limit)",
              0, std::size_t{1} << 40);
    add_count(app, "--seed", f.seed,
              "Seed of the initial weights, the batch order and the noise (the fixed binarization of the data "
              "always uses seed 0, so that every run sees the same data)");
    add_count(app, "--threads", f.threads, "Threads (tg::set_num_threads: GEMMs and the optimizer split over them)", 1,
              256);
    app.add_option("--out", f.out, "Output directory");
    app.add_flag("--resume", f.resume,
                 "Continue from OUT/checkpoint.npz (same model flags); --epochs and --max-steps may be raised");
    add_choice(app, "--test-model", f.test_model, "The parameters the test figures after training use: best (those of "
               "the epoch with the best validation metric, kept in OUT/best.npz) or last", {"best", "last"});
}

void add_optimizer_flags(CLI::App& app, OptimizerFlags& f) {
    add_choice(app, "--optimizer", f.name, "adam or sgd (SGD with --momentum)", {"adam", "sgd"});
    add_positive(app, "--lr", f.lr, "Learning rate (the initial one under a schedule)");
    add_real(app, "--momentum", f.momentum, "Momentum of SGD (the paper: 0.9)", 0.0f, 1.0f);
    add_choice(app, "--lr-schedule", f.schedule, "The learning rate over epochs: constant; plateau (times --lr-factor "
               "after more than --lr-patience epochs without a better validation metric); step (times --lr-factor "
               "every --lr-step epochs); never below --min-lr", {"constant", "plateau", "step"});
    add_real(app, "--lr-factor", f.lr_factor, "What plateau and step multiply the learning rate by", 0.0f, 1.0f)
        ->check(CLI::Validator([](std::string& s) { return std::strtod(s.c_str(), nullptr) > 0 ? "" : "must be positive, got " + s; }, ""));
    add_count(app, "--lr-patience", f.lr_patience, "Epochs without improvement that plateau waits out", 0, 1000000);
    add_count(app, "--lr-step", f.lr_step, "Epochs between two reductions of step", 1, 1000000);
    add_real(app, "--min-lr", f.min_lr, "The floor of the scheduled learning rate", 0.0f, INFINITY);
}

std::vector<std::pair<std::string, std::string>> identity(const OptimizerFlags& f) {
    std::vector<std::pair<std::string, std::string>> flags = {{"--optimizer", f.name}, {"--lr", float_text(f.lr)}};
    if (f.name == "sgd") flags.emplace_back("--momentum", float_text(f.momentum));
    if (f.schedule != "constant")  // absent for constant: checkpoints of constant runs resume as before
        flags.insert(flags.end(), {{"--lr-schedule", f.schedule}, {"--lr-factor", float_text(f.lr_factor)},
                                   {"--min-lr", float_text(f.min_lr)},
                                   f.schedule == "plateau" ? std::pair<std::string, std::string>{"--lr-patience", std::to_string(f.lr_patience)}
                                                           : std::pair<std::string, std::string>{"--lr-step", std::to_string(f.lr_step)}});
    return flags;
}

std::unique_ptr<tg::optim::Optimizer> make_optimizer(const OptimizerFlags& f, std::vector<tg::Tensor> parameters) {
    if (f.name == "sgd") return std::make_unique<tg::optim::SGD>(std::move(parameters), tg::optim::SGDOptions{f.lr, f.momentum});
    return std::make_unique<tg::optim::Adam>(std::move(parameters), tg::optim::AdamOptions{f.lr});
}

std::unique_ptr<tg::optim::LRSchedule> make_schedule(const OptimizerFlags& f, tg::optim::Optimizer& optimizer) {
    if (f.schedule == "constant") return nullptr;
    require(f.min_lr <= f.lr, "--min-lr " + float_text(f.min_lr) + " is above --lr " + float_text(f.lr));
    if (f.schedule == "step")
        return std::make_unique<tg::optim::StepLR>(optimizer, std::int64_t(f.lr_step), f.lr_factor, f.min_lr);
    return std::make_unique<tg::optim::ReduceLROnPlateau>(optimizer, f.lr_factor, std::int64_t(f.lr_patience), f.min_lr);
}

namespace {

// Words filled greedily into lines of at most `width` characters; "\n" ends a paragraph.
std::string wrap(const std::string& text, std::size_t width) {
    std::string out, line, word;
    std::istringstream paragraphs(text);
    for (std::string paragraph; std::getline(paragraphs, paragraph);) {
        std::istringstream words(paragraph);
        line.clear();
        while (words >> word) {
            if (!line.empty() && line.size() + 1 + word.size() > width) out += line + "\n", line.clear();
            line += (line.empty() ? "" : " ") + word;
        }
        out += line + "\n";
    }
    out.pop_back();  // CLI11 ends the footer with its own newline
    return out;
}

}  // namespace

std::string footer(const std::string& default_out, const std::string& pictures, const std::string& results) {
    return wrap("Outputs in --out (default " + default_out + "): metrics.csv (a row per epoch), checkpoint.npz (written "
                "atomically after every epoch and at the end), best.npz (the checkpoint of the epoch with the best "
                "validation metric, which the test figures use unless --test-model last), " + pictures + ". A line per epoch on stdout ends with "
                "the resident memory (rss); the last lines are train_steps_per_s=<float> (training only) and " +
                results + ".\nCtrl-C or SIGTERM saves the checkpoint and exits with 130; --resume continues exactly "
                "(with one thread, bit for bit). Exit status: 0 done; 2 bad flags, data or checkpoint; 3 a non-finite "
                "loss or gradient.", 104);
}

std::optional<int> parse(CLI::App& app, int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out << app.help();
        return 0;
    } catch (const CLI::ParseError& e) {
        err << app.get_name() << ": " << e.what() << " (see --help)\n";
        return 2;
    }
    return std::nullopt;
}

void require(bool ok, const std::string& message) {
    if (!ok) throw UsageError(message);
}

void require_memory(double bytes, const std::string& flags) {
    const double step_gb = bytes / 1e9;
    const double ram_gb = double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGESIZE)) / 1e9;
    require(step_gb <= ram_gb, flags + " need about " + format("%.1f", step_gb) + " GB a training step, more than " +
                                   "this machine's " + format("%.1f", ram_gb) + " GB");
}

std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t purpose) {
    return seed * 0x9E3779B97F4A7C15ull + purpose * 0xBF58476D1CE4E5B9ull + 1;
}

// ---- Stopping ----------------------------------------------------------------------------

namespace {

volatile std::sig_atomic_t stop_flag = 0;

extern "C" void on_signal(int sig) {
    if (stop_flag) {  // the second one: die as the signal would have
        std::signal(sig, SIG_DFL);
        std::raise(sig);
    }
    stop_flag = 1;
}

std::string doing = "starting";

}  // namespace

void install_signal_handlers() {
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
}
bool stop_requested() { return stop_flag != 0; }
void request_stop(bool on) { stop_flag = on ? 1 : 0; }
void check_stop() {
    if (stop_flag) throw Interrupted();
}
void for_each_chunk(std::size_t rows, std::size_t chunk,
                    const std::function<void(std::size_t, const std::vector<std::size_t>&)>& f) {
    chunk = std::max<std::size_t>(chunk, 1);
    tg::parallel_tasks((rows + chunk - 1) / chunk, [&](std::size_t c) {
        check_stop();
        tg::NoGradGuard no_grad;
        std::vector<std::size_t> indices(std::min(chunk, rows - c * chunk));
        std::iota(indices.begin(), indices.end(), c * chunk);
        f(c, indices);
    });
}
void now_doing(std::string what) { doing = std::move(what); }

// ---- Files -------------------------------------------------------------------------------

tg::mnist::Mnist load_mnist(const Flags& flags, tg::mnist::Binarization binarization, std::size_t validation) {
    now_doing("loading MNIST from " + flags.data);
    tg::mnist::LoadOptions load;
    load.binarization = binarization;
    load.seed = 0;
    load.validation = validation;
    try {
        return tg::mnist::load(flags.data, load);
    } catch (const std::invalid_argument& e) {  // the options, not the files: --validation
        throw UsageError("--validation " + std::to_string(validation) + ": " + e.what());
    }
}

void check_writable(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw UsageError("--out " + dir + ": cannot create the directory: " + ec.message());
    const std::string probe = (fs::path(dir) / ".write-probe").string();
    try {
        tg::write_file_atomic(probe, "probe\n");
    } catch (const std::exception& e) {
        throw UsageError("--out " + dir + " is not writable: " + e.what());
    }
    fs::remove(probe, ec);
}

void write_csv(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<double>>& rows) {
    std::string text;
    for (std::size_t i = 0; i < header.size(); ++i) text += (i ? "," : "") + header[i];
    text += "\n";
    char buf[64];
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) {
            // counts as integers, seconds to the millisecond, the rest exactly enough to read back
            const std::string& name = header[i];
            const bool count = name == "epoch" || name == "step";
            const bool seconds = name.size() > 8 && name.compare(name.size() - 8, 8, "_seconds") == 0;
            std::snprintf(buf, sizeof buf, count ? "%.0f" : seconds ? "%.3f" : "%.9g", row[i]);
            text += (i ? "," : "") + std::string(buf);
        }
        text += "\n";
    }
    tg::write_file_atomic(path, text);
}

std::string format(const char* fmt, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

// ---- Progress ----------------------------------------------------------------------------

namespace {

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
    explicit Progress(const Console& console) : err_(console.err), tty_(console.tty), last_(Clock::now()) {}

    void update(std::size_t epoch, std::size_t epochs, std::size_t done, std::size_t total, double loss,
                double seconds_per_step, std::size_t steps_left) {
        const auto now = Clock::now();
        if (std::chrono::duration<double>(now - last_).count() < (tty_ ? 0.1 : 30.0)) return;
        last_ = now;
        std::ostringstream line;
        line << "epoch " << epoch << "/" << epochs << " ";
        if (tty_) {
            const int width = 30, filled = static_cast<int>(width * done / std::max<std::size_t>(total, 1));
            line << "[" << std::string(filled, '=') << (filled < width ? ">" : "")
                 << std::string(width - filled - (filled < width ? 1 : 0), ' ') << "] ";
        }
        line << done << "/" << total << "  loss " << format("%.3f", loss) << "  "
             << format("%.2f", seconds_per_step * 1e3) << " ms/step  ETA " << duration(seconds_per_step * steps_left);
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

// ---- The run's state in the checkpoint ---------------------------------------------------

// Everything of a run that is neither the model, the optimizer nor the experiment's own.
struct RunState {
    std::size_t epoch = 0;  // epochs completed
    std::size_t step = 0;
    std::size_t epoch_batches = 0;  // of the current epoch so far
    bool trained = false;           // the current epoch's batches are done; its metrics are not
    double epoch_loss = 0.0;        // sum of the batch losses of the current epoch so far
    double epoch_seconds = 0.0;
    std::vector<std::vector<double>> history;  // metrics.csv
    double best = INFINITY;     // the best value of the monitor so far (negated when maximized)
    std::size_t best_epoch = 0; // its epoch, saved as best.npz; 0: none yet
};

std::uint64_t bits_of(double v) {  // doubles kept exactly
    std::uint64_t b;
    std::memcpy(&b, &v, sizeof b);
    return b;
}
double double_of(std::uint64_t b) {
    double v;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

std::vector<std::uint64_t> chars_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string string_of(const std::vector<std::uint64_t>& v) { return {v.begin(), v.end()}; }

tg::Checkpoint run_entries(const Experiment& ex, const RunState& st, const tg::mnist::BatchIterator& batches) {
    tg::Checkpoint ck;
    for (const auto& [flag, value] : ex.identity) ck.put_uints("run.flag" + flag, chars_of(value));
    ck.put_ints("run.progress", {static_cast<std::int64_t>(st.epoch), static_cast<std::int64_t>(st.step),
                                 static_cast<std::int64_t>(st.epoch_batches), st.trained ? 1 : 0});
    ck.put_uints("run.epoch_sums", {bits_of(st.epoch_loss), bits_of(st.epoch_seconds)});
    std::vector<std::uint64_t> history;
    for (const auto& row : st.history)
        for (double v : row) history.push_back(bits_of(v));
    ck.put_uints("run.history", std::move(history));
    ck.put_uints("run.best", {bits_of(st.best), st.best_epoch});
    if (auto* plateau = dynamic_cast<const tg::optim::ReduceLROnPlateau*>(ex.schedule))
        ck.put_uints("run.lr_schedule", {bits_of(plateau->best()), std::uint64_t(plateau->bad_observations()),
                                         std::uint64_t(plateau->count())});
    ck.put_uints("data.batches", batches.state().words());
    for (const auto& [name, gen] : ex.generators) ck.put_generator("rng." + name, *gen);
    if (ex.save_state) ex.save_state(ck);
    return ck;
}

// The flags of the checkpoint against this run's: resuming with others would not continue it.
void check_identity(const tg::Checkpoint& ck, const Experiment& ex, const std::string& path) {
    for (const auto& [flag, value] : ex.identity) {
        if (!ck.contains("run.flag" + flag))
            throw UsageError("--resume: " + path + " does not record " + flag + ": it is not a checkpoint of " +
                             ex.program + ", or one of an older version (choose another --out)");
        const std::string was = string_of(ck.get_uints("run.flag" + flag));
        if (was != value)
            throw UsageError("--resume: the checkpoint " + path + " was made with " + flag + " " + was + ", not " +
                             value + " (resume with the same model flags, or choose another --out)");
    }
    for (const std::string& name : ck.names()) {  // a flag this run leaves out (--lr-schedule when constant)
        if (name.rfind("run.flag", 0) != 0) continue;
        const std::string flag = name.substr(8);
        if (std::none_of(ex.identity.begin(), ex.identity.end(), [&](const auto& f) { return f.first == flag; }))
            throw UsageError("--resume: the checkpoint " + path + " was made with " + flag + " " +
                             string_of(ck.get_uints(name)) + ", which this run does not give (resume with the same "
                             "flags, or choose another --out)");
    }
}

// Every count and sum of the run.* entries is checked against the others, the batch order's
// state and the optimizer's step counts (a CRC only says the file is as written, not that what
// was written is a run's state): a doctored entry is refused, naming it, before it is used.
void restore_run(const tg::Checkpoint& ck, const Experiment& ex, std::size_t columns, RunState& st,
                 tg::mnist::BatchIterator& batches) {
    const std::vector<std::int64_t>& progress = ck.get_ints("run.progress");
    const std::vector<std::uint64_t>& sums = ck.get_uints("run.epoch_sums");
    const std::vector<std::uint64_t>& history = ck.get_uints("run.history");
    auto refuse = [](const std::string& entry, const std::string& what) {
        throw tg::CheckpointError("checkpoint: entry '" + entry + "': " + what + " (not the state of a run)");
    };
    if (progress.size() != 4) refuse("run.progress", std::to_string(progress.size()) + " numbers, not 4");
    if (sums.size() != 2) refuse("run.epoch_sums", std::to_string(sums.size()) + " numbers, not 2");
    if (history.size() % columns != 0)
        refuse("run.history", std::to_string(history.size()) + " numbers, not rows of " + std::to_string(columns));
    const std::size_t per_epoch = batches.batches_per_epoch(), rows = history.size() / columns;
    for (std::size_t i = 0; i < 4; ++i)
        if (progress[i] < 0) refuse("run.progress", "a negative count " + std::to_string(progress[i]));
    const auto epoch = static_cast<std::uint64_t>(progress[0]), step = static_cast<std::uint64_t>(progress[1]),
               epoch_batches = static_cast<std::uint64_t>(progress[2]), trained = static_cast<std::uint64_t>(progress[3]);
    if (epoch != rows)
        refuse("run.progress", "epoch " + std::to_string(epoch) + ", but 'run.history' holds " + std::to_string(rows) +
                                   " rows");
    if (trained > 1) refuse("run.progress", "the flag 'trained' is " + std::to_string(trained) + ", not 0 or 1");
    if (epoch_batches > per_epoch || (trained == 1 && epoch_batches != per_epoch))
        refuse("run.progress", std::to_string(epoch_batches) + " batches done in an epoch of " +
                                   std::to_string(per_epoch) + (trained ? " that is over" : ""));
    if (epoch > (std::uint64_t{1} << 40) || step != epoch * per_epoch + epoch_batches)
        refuse("run.progress", "step " + std::to_string(step) + " after " + std::to_string(epoch) + " epochs of " +
                                   std::to_string(per_epoch) + " batches and " + std::to_string(epoch_batches) +
                                   " batches of the next");
    const double loss = double_of(sums[0]), seconds = double_of(sums[1]);
    if (!std::isfinite(loss) || !(seconds >= 0.0 && std::isfinite(seconds)))
        refuse("run.epoch_sums", "loss " + format("%g", loss) + ", seconds " + format("%g", seconds));
    for (std::size_t r = 0; r < rows; ++r) {
        const std::uint64_t* row = &history[r * columns];
        if (double_of(row[0]) != double(r + 1) || double_of(row[1]) != double((r + 1) * per_epoch))
            refuse("run.history", "row " + std::to_string(r) + " is epoch " + format("%g", double_of(row[0])) +
                                      " at step " + format("%g", double_of(row[1])) + ", not epoch " +
                                      std::to_string(r + 1) + " at step " + std::to_string((r + 1) * per_epoch));
        for (std::size_t j = 2; j < columns; ++j)
            if (std::isinf(double_of(row[j])))  // NaN: a metric the run skipped
                refuse("run.history", "row " + std::to_string(r) + " holds an infinity");
    }
    tg::mnist::BatchState order;
    try {
        order = tg::mnist::BatchState::from_words(ck.get_uints("data.batches"));
    } catch (const std::invalid_argument& e) {
        refuse("data.batches", e.what());
    }
    const std::uint64_t position = trained ? 0 : std::min<std::uint64_t>(epoch_batches * batches.options().batch_size, ex.train_size);
    if (order.epoch != epoch + trained || order.position != position)
        refuse("data.batches", "epoch " + std::to_string(order.epoch) + " at row " + std::to_string(order.position) +
                                   ", not epoch " + std::to_string(epoch + trained) + " at row " +
                                   std::to_string(position));
    for (std::size_t i = 0; i < ex.optimizer->steps().size(); ++i)
        if (static_cast<std::uint64_t>(ex.optimizer->steps()[i]) > step)
            refuse("optim." + std::string(ex.optimizer->kind()) + ".step",
                   "parameter " + std::to_string(i) + " has had " + std::to_string(ex.optimizer->steps()[i]) +
                       " updates in a run of " + std::to_string(step) + " steps");
    try {
        batches.set_state(order);  // throws for another data set, or the all-zero generator state
    } catch (const std::invalid_argument& e) {
        refuse("data.batches", e.what());
    }
    const std::vector<std::uint64_t>& best = ck.get_uints("run.best");
    if (best.size() != 2 || best[1] > epoch || std::isnan(double_of(best[0])) || (best[1] > 0) == std::isinf(double_of(best[0])))
        refuse("run.best", "not a value and an epoch up to " + std::to_string(epoch));
    // the learning rate (loaded with the optimizer) must be the one the schedule's state gives
    const float lr = ex.optimizer->lr();
    if (auto* plateau = dynamic_cast<tg::optim::ReduceLROnPlateau*>(ex.schedule)) {
        const std::vector<std::uint64_t>& s = ck.get_uints("run.lr_schedule");
        if (s.size() != 3 || s[2] > epoch) refuse("run.lr_schedule", "not a plateau's state after " + std::to_string(epoch) + " epochs");
        try {
            plateau->restore(double_of(s[0]), std::int64_t(s[1]), std::int64_t(s[2]));
        } catch (const std::invalid_argument& e) {
            refuse("run.lr_schedule", e.what());
        }
    } else if (ex.schedule) {
        ex.schedule->set_count(std::int64_t(epoch));
    }
    if (ex.schedule && ex.optimizer->lr() != lr)
        refuse("optim." + std::string(ex.optimizer->kind()) + ".lr",
               "holds " + float_text(lr) + ", not the " + float_text(ex.optimizer->lr()) + " of the schedule's state");
    for (const auto& [name, gen] : ex.generators) ck.get_generator("rng." + name, *gen);
    if (ex.load_state) ex.load_state(ck);
    st.best = double_of(best[0]);
    st.best_epoch = static_cast<std::size_t>(best[1]);
    st.epoch = static_cast<std::size_t>(epoch);
    st.step = static_cast<std::size_t>(step);
    st.epoch_batches = static_cast<std::size_t>(epoch_batches);
    st.trained = trained != 0;
    st.epoch_loss = loss;
    st.epoch_seconds = seconds;
    st.history.clear();
    for (std::size_t i = 0; i < history.size(); i += columns) {
        st.history.emplace_back();
        for (std::size_t j = 0; j < columns; ++j) st.history.back().push_back(double_of(history[i + j]));
    }
}

// The first parameter whose gradient holds a NaN or an infinity, or "".
std::string non_finite_gradient(const tg::nn::Module& model) {
    for (const auto& [name, p] : model.named_parameters()) {
        if (!p.has_grad()) continue;
        const float* g = p.grad().data();
        std::uint32_t bad = 0;  // an exponent of all ones; integer tests vectorize
        for (std::size_t i = 0, n = p.grad().size(); i < n; ++i) {
            std::uint32_t b;
            std::memcpy(&b, g + i, 4);
            bad |= (b & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) return name;
    }
    return "";
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

Console terminal() { return Console{std::cout, std::cerr, ::isatty(STDERR_FILENO) != 0}; }

tg::mnist::BatchOptions batch_options(const Flags& flags) {
    tg::mnist::BatchOptions bo;
    bo.batch_size = flags.batch_size;
    bo.seed = derive_seed(flags.seed, batch_order_purpose);
    return bo;
}

Trained train(const Flags& flags, const std::string& dir, Experiment& ex, Console console) {
    tg::set_num_threads(static_cast<int>(flags.threads));
    Trained result;
    result.checkpoint = (fs::path(dir) / "checkpoint.npz").string();
    result.best = (fs::path(dir) / "best.npz").string();
    const std::string& ckpt = result.checkpoint;
    const std::string metrics_path = (fs::path(dir) / "metrics.csv").string();
    result.header = {"epoch", "step", "train_loss"};
    for (const Column& c : ex.columns) result.header.push_back(c.name);
    result.header.insert(result.header.end(), {"train_seconds", "val_seconds"});
    require(flags.batch_size <= ex.train_size, "--batch-size " + std::to_string(flags.batch_size) +
                                                   " is larger than the training set (" +
                                                   std::to_string(ex.train_size) + " images)");
    const std::size_t monitor = index_of(ex.monitor, result.header);
    if (monitor == result.header.size() && (!ex.monitor.empty() || dynamic_cast<tg::optim::ReduceLROnPlateau*>(ex.schedule)))
        throw std::logic_error(ex.program + ": the monitor '" + ex.monitor + "' is not one of the columns");
    if (flags.resume && !fs::exists(ckpt))
        throw UsageError("--resume: no checkpoint at " + ckpt + " (a run writes one at the end of each epoch)");

    tg::mnist::BatchIterator batches(ex.train_size, batch_options(flags));
    RunState st;
    if (flags.resume) {
        now_doing("reading the checkpoint " + ckpt);
        const tg::Checkpoint ck = tg::Checkpoint::load(ckpt);
        check_identity(ck, ex, ckpt);
        const float lr = ex.optimizer->lr();  // the flags' (constant), which the checkpoint must hold too
        try {
            tg::load_state_dict(ck, *ex.model, ex.optimizer);
            if (!ex.schedule && ex.optimizer->lr() != lr)
                throw tg::CheckpointError("entry 'optim." + std::string(ex.optimizer->kind()) + ".lr' holds " +
                                          float_text(ex.optimizer->lr()) + ", not the run's --lr " + float_text(lr));
            restore_run(ck, ex, result.header.size(), st, batches);
        } catch (const std::exception& e) {
            throw tg::CheckpointError("--resume: " + ckpt + ": " + e.what());
        }
        console.out << "resumed from " << ckpt << ": epoch " << st.epoch << ", step " << st.step << "\n";
    }
    // Nothing in the directory changes before the first epoch ends: a run that fails early
    // leaves the previous run's files as they were.
    check_writable(dir);
    auto save = [&](bool best) {
        now_doing("saving the checkpoint " + ckpt);
        const tg::Checkpoint entries = run_entries(ex, st, batches);
        if (best) tg::save_checkpoint(result.best, *ex.model, ex.optimizer, entries);  // first: a crash between leaves checkpoint.npz one epoch behind
        tg::save_checkpoint(ckpt, *ex.model, ex.optimizer, entries);
    };

    Progress progress(console);
    const std::size_t rows = ex.train_size, per_epoch = batches.batches_per_epoch();
    double train_seconds = 0.0;
    std::size_t steps_here = 0;
    bool stopped = false;
    auto stop_line = [&] {
        save(false);
        console.out << "stopped by a signal at step " << st.step << "; checkpoint saved to " << ckpt
                    << " (continue with --resume)" << std::endl;
        result.status = 130;
    };
    auto non_finite = [&](const std::string& what) {
        progress.clear();
        console.err << ex.program << ": non-finite " << what << " at step " << st.step + 1 << " (epoch "
                    << st.epoch + 1 << "); stopped; the last good checkpoint is kept in " << ckpt << "\n";
        result.status = 3;
    };

    while (st.epoch < flags.epochs) {
        const auto epoch_start = Clock::now();
        now_doing("training (epoch " + std::to_string(st.epoch + 1) + ")");
        while (!st.trained) {
            // a stop between two batches of an epoch; at its end the epoch is completed first
            const bool out_of_steps = flags.max_steps > 0 && st.step >= flags.max_steps;
            if ((out_of_steps || stop_requested()) && batches.state().position < rows) {
                stopped = stop_requested();
                break;
            }
            if (!batches.next()) {
                st.trained = true;
                break;
            }
            const Loss loss = ex.loss(batches.indices(), st.step);
            if (!std::isfinite(loss.objective.item()) || !std::isfinite(loss.value)) {
                non_finite("loss");
                return result;
            }
            loss.objective.backward();
            if (const std::string bad = non_finite_gradient(*ex.model); !bad.empty()) {
                non_finite("gradient of " + bad);
                return result;
            }
            ex.optimizer->step();
            ex.optimizer->zero_grad();
            ++st.step;
            ++steps_here;
            st.epoch_loss += loss.value;
            ++st.epoch_batches;
            const double elapsed = train_seconds + seconds_since(epoch_start);
            std::size_t left = (flags.epochs - st.epoch) * per_epoch - std::min(per_epoch, st.epoch_batches);
            if (flags.max_steps) left = std::min(left, flags.max_steps - std::min(flags.max_steps, st.step));
            progress.update(st.epoch + 1, flags.epochs, st.epoch_batches, per_epoch,
                            st.epoch_loss / st.epoch_batches, elapsed / steps_here, left);
        }
        const double seconds = seconds_since(epoch_start);
        train_seconds += seconds;
        st.epoch_seconds += seconds;
        progress.clear();
        if (!st.trained) break;

        std::vector<double> row = {double(st.epoch + 1), double(st.step),
                                   st.epoch_batches ? st.epoch_loss / double(st.epoch_batches) : 0.0};
        const auto val_start = Clock::now();
        now_doing("evaluating (epoch " + std::to_string(st.epoch + 1) + ")");
        try {
            const std::vector<double> values = ex.after_epoch(st.epoch + 1, st.step);
            if (values.size() != ex.columns.size())
                throw std::logic_error("after_epoch gave " + std::to_string(values.size()) + " values for " +
                                       std::to_string(ex.columns.size()) + " columns");
            row.insert(row.end(), values.begin(), values.end());
        } catch (const Interrupted&) {
            stop_line();  // the epoch's evaluation runs again on --resume
            return result;
        }
        const double val_seconds = seconds_since(val_start);
        row.insert(row.end(), {st.epoch_seconds, val_seconds});
        st.history.push_back(row);
        ++st.epoch;
        // after the row, which shows the lr this epoch trained with
        const double measured = monitor < row.size() ? (ex.maximize ? -row[monitor] : row[monitor]) : NAN;
        const bool best = measured < st.best;  // false for NaN
        if (best) st.best = measured, st.best_epoch = st.epoch;
        if (auto* plateau = dynamic_cast<tg::optim::ReduceLROnPlateau*>(ex.schedule)) {
            if (!std::isnan(measured)) plateau->observe(measured);
        } else if (ex.schedule) {
            ex.schedule->set_count(std::int64_t(st.epoch));
        }
        st.trained = false;
        st.epoch_loss = 0.0;
        st.epoch_batches = 0;
        st.epoch_seconds = 0.0;

        std::ostringstream line;
        line << "epoch " << format("%3.0f", row[0]) << "  step " << format("%7.0f", row[1]) << "  train_loss "
             << format("%8.3f", row[2]);
        for (std::size_t i = 0; i < ex.columns.size(); ++i)
            line << "  " << ex.columns[i].name << " " << format(ex.columns[i].format, row[3 + i]);
        line << "  " << format("%.1f", row[row.size() - 2]) << " s (+" << format("%.1f", val_seconds)
             << " s validation)  rss " << format("%.1f", memory::rss_kb() / 1024.0) << " MB";
        console.out << line.str() << std::endl;
        write_csv(metrics_path, result.header, st.history);
        save(best);
        memory::release_free_heap();  // the checkpoint's buffers: RSS stays flat from epoch to epoch
    }
    result.history = st.history;
    result.best_epoch = st.best_epoch;
    result.steps_per_s = train_seconds > 0.0 ? double(steps_here) / train_seconds : 0.0;
    if (stopped) stop_line();
    else if (steps_here > 0 && st.epoch_batches > 0) save(false);  // stopped mid-epoch by --max-steps
    return result;
}

void use_best(const Flags& flags, const Trained& trained, tg::nn::Module& model, std::ostream& out) {
    if (flags.test_model != "best" || trained.best_epoch == 0) return;
    now_doing("loading the best epoch's parameters from " + trained.best);
    tg::load_state_dict(tg::Checkpoint::load(trained.best), model);
    out << "the test uses epoch " << trained.best_epoch << " of " << trained.history.size()
        << ", the best on validation (" << trained.best << ")" << std::endl;
}

void report(const std::string& dir, const Trained& trained, const std::vector<std::string>& pictures,
            const std::vector<std::pair<std::string, std::string>>& results, std::ostream& out) {
    std::vector<std::string> files = {"metrics.csv", "checkpoint.npz", "best.npz"};
    files.insert(files.end(), pictures.begin(), pictures.end());
    out << "outputs in " << dir << ":";
    for (const std::string& name : files)
        if (fs::exists(fs::path(dir) / name)) out << " " << name;
    out << "\ntrain_steps_per_s=" << format("%.2f", trained.steps_per_s) << "\n";
    for (const auto& [name, value] : results) out << name << "=" << value << "\n";
    out << std::flush;
}

int main(const char* program, int argc, char** argv, const std::function<int(int, char**)>& body) {
    if (const char* n = std::getenv("OPENBLAS_NUM_THREADS"); !n || std::strcmp(n, "1") != 0) {
        ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
        ::execv("/proc/self/exe", argv);  // returns only on failure: then run with OpenBLAS's threads
    }
    install_signal_handlers();
    try {
        return body(argc, argv);
    } catch (const Interrupted&) {
        std::cout.flush();
        std::cerr << program << ": stopped by a signal while " << doing << "\n";
        return 130;
    } catch (const std::bad_alloc& e) {
        std::cout.flush();
        const std::string why = e.what();
        std::cerr << program << ": out of memory while " << doing
                  << (why == std::bad_alloc().what() ? "" : " (" + why + ")") << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cout.flush();
        std::cerr << program << ": " << e.what() << "\n";
        return 2;
    } catch (...) {
        std::cerr << program << ": unknown error while " << doing << "\n";
        return 2;
    }
}

}  // namespace harness
