// The structured-output example: its model, loss and evaluation (examples/structured_output.hpp)
// in-process, and the program (build/examples/structured_output) on small synthetic IDX files
// written here, never the real download.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <unistd.h>

#include "datasets/mnist.hpp"
#include "examples/structured_output.hpp"
#include "helpers.hpp"
#include "serialize/checkpoint.hpp"

using namespace tg;
using namespace structured;
namespace fs = std::filesystem;

using tgtest::TempDir;

namespace {

// Digits that are 4 prototypes (random blobs, one per label mod 4) with 3% of the pixels
// flipped: the lower half is predictable from the upper one.
mnist::Idx synthetic_images(std::size_t n, std::uint64_t seed) {
    Generator proto_gen(99), gen(seed);
    std::vector<std::vector<std::uint8_t>> prototypes(4, std::vector<std::uint8_t>(784));
    for (auto& p : prototypes)
        for (auto& b : p) b = proto_gen.uniform() < 0.3f ? 255 : 0;
    mnist::Idx idx{{n, 28, 28}, std::vector<std::uint8_t>(n * 784)};
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t j = 0; j < 784; ++j) {
            const std::uint8_t b = prototypes[i % 4][j];
            idx.data[i * 784 + j] = gen.uniform() < 0.03f ? static_cast<std::uint8_t>(255 - b) : b;
        }
    return idx;
}

mnist::Idx synthetic_labels(std::size_t n) {
    mnist::Idx idx{{n}, std::vector<std::uint8_t>(n)};
    for (std::size_t i = 0; i < n; ++i) idx.data[i] = static_cast<std::uint8_t>(i % 10);
    return idx;
}

// dir/data: 300 training + 100 validation images in the training file, 100 test images.
void write_data(const TempDir& dir) {
    const fs::path data = dir.path / "data";
    fs::create_directories(data);
    mnist::write_idx((data / mnist::train_images_file).string(), synthetic_images(400, 1));
    mnist::write_idx((data / mnist::train_labels_file).string(), synthetic_labels(400));
    mnist::write_idx((data / mnist::test_images_file).string(), synthetic_images(100, 2));
    mnist::write_idx((data / mnist::test_labels_file).string(), synthetic_labels(100));
}

const std::string program = std::string(TAPEGRAD_BINARY_DIR) + "/examples/structured_output";

struct RunOutput {
    int status = -1;
    std::string out, err;
};

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The program with a quick run's flags on the synthetic data of dir (written on first use),
// writing to dir/out, and the extra arguments; shell_prefix goes before it ("ulimit -f 1 && exec ").
RunOutput run_program(const TempDir& dir, const std::string& args, bool small = true, const std::string& shell_prefix = "") {
    if (!fs::exists(dir.path / "data")) write_data(dir);
    std::string cmd = shell_prefix + program;
    if (small)
        cmd += " --data " + (dir / "data") + " --out " + (dir / "out") +
               " --validation 100 --batch-size 50 --hidden 20 --epochs 3 --val-samples 4 --eval-samples 8 --lr 3e-3";
    cmd += " " + args + " >" + (dir / "stdout") + " 2>" + (dir / "stderr");
    const int raw = std::system(cmd.c_str());
    RunOutput r;
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -2;
    r.out = file_bytes(dir / "stdout");
    r.err = file_bytes(dir / "stderr");
    return r;
}

// metrics.csv as numbers, without the wall-clock columns (the last two).
std::vector<std::vector<double>> metrics(const std::string& path, bool with_seconds = false) {
    std::ifstream f(path);
    std::string line;
    std::getline(f, line);
    CHECK(line == "epoch,step,train_loss,val_nll,tau,lr,train_seconds,val_seconds");
    std::vector<std::vector<double>> rows;
    while (std::getline(f, line)) {
        std::vector<double> v;
        std::stringstream s(line);
        std::string field;
        while (std::getline(s, field, ',')) v.push_back(std::strtod(field.c_str(), nullptr));
        REQUIRE(v.size() == 8);
        if (!with_seconds) v.resize(6);
        rows.push_back(v);
    }
    return rows;
}

// Every float32 entry of two checkpoints, bit for bit (the baseline may be NaN in both).
void check_same_checkpoints(const std::string& a, const std::string& b) {
    const Checkpoint ka = Checkpoint::load(a), kb = Checkpoint::load(b);
    for (const std::string& name : ka.names()) {
        if (ka.dtype(name) != DType::float32) continue;
        CAPTURE(name);
        const Array &va = ka.get(name), &vb = kb.get(name);
        REQUIRE(va.size() == vb.size());
        CHECK(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
    }
    CHECK(ka.get_uints("data.batches") == kb.get_uints("data.batches"));
}

// log p(y | logits) of independent Bernoulli pixels, in double.
double bernoulli_log_likelihood(const std::vector<double>& logits, const float* y) {
    double s = 0.0;
    for (std::size_t j = 0; j < logits.size(); ++j) {
        const double l = logits[j];
        s += y[j] * l - (std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l))));
    }
    return s;
}

std::vector<double> affine(const nn::Linear& fc, const std::vector<double>& x) {
    const Array& w = fc.weight.value();
    std::vector<double> y(fc.out_features());
    for (std::size_t o = 0; o < y.size(); ++o) {
        double s = fc.bias.value()(o);
        for (std::size_t i = 0; i < x.size(); ++i) s += double(w(o, i)) * x[i];
        y[o] = s;
    }
    return y;
}

// Every state of `hidden` Bernoulli units, or of one categorical variable of 10 classes, with
// its log-probability under the logits a.
std::vector<std::pair<std::vector<double>, double>> all_states(Latent latent, const std::vector<double>& a) {
    std::vector<std::pair<std::vector<double>, double>> states;
    const std::size_t n = a.size();
    if (latent == Latent::bernoulli) {
        for (std::size_t bits = 0; bits < (std::size_t{1} << n); ++bits) {
            std::vector<double> h(n);
            double lp = 0.0;
            for (std::size_t j = 0; j < n; ++j) {
                h[j] = double((bits >> j) & 1);
                lp += h[j] * a[j] - (std::max(a[j], 0.0) + std::log1p(std::exp(-std::abs(a[j]))));
            }
            states.emplace_back(h, lp);
        }
    } else {
        REQUIRE(n == classes);
        double mx = *std::max_element(a.begin(), a.end()), z = 0.0;
        for (double v : a) z += std::exp(v - mx);
        for (std::size_t k = 0; k < n; ++k) {
            std::vector<double> h(n, 0.0);
            h[k] = 1.0;
            states.emplace_back(h, a[k] - mx - std::log(z));
        }
    }
    return states;
}

// -log p(lower | upper) summed exactly over all states of both layers.
double exact_nll(const Model& model, const float* upper, const float* lower) {
    std::vector<double> x(upper, upper + mnist::half_pixels);
    double total = 0.0;
    for (const auto& [h1, lp1] : all_states(model.latent, affine(*model.fc1, x)))
        for (const auto& [h2, lp2] : all_states(model.latent, affine(*model.fc2, h1)))
            total += std::exp(lp1 + lp2 + bernoulli_log_likelihood(affine(*model.fc3, h2), lower));
    return -std::log(total);
}

// n random binary images (30% ones) as a data set, and their halves as floats.
mnist::DataSet random_images(std::size_t n, std::uint64_t seed, Array& upper, Array& lower) {
    Generator g(seed);
    mnist::DataSet set{std::vector<std::uint8_t>(n * mnist::image_pixels), std::vector<std::uint8_t>(n)};
    for (std::uint8_t& b : set.pixels) b = g.uniform() < 0.3f ? 255 : 0;
    std::vector<std::size_t> all(n);
    for (std::size_t i = 0; i < n; ++i) all[i] = i;
    mnist::gather_halves(set, all, upper, lower);
    return set;
}

// One test case per latent kind: the 40,000 samples per image take long under ASan.
void check_nll_converges(Latent latent) {
    Generator init(5);
    // 2 Bernoulli units (4 states per layer) or one variable of 10 classes per layer
    Model model(latent, latent == Latent::bernoulli ? 2 : 10, init);
    for (auto& p : model.parameters()) p.value() *= 3.0f;  // probabilities away from 1/2
    Array upper, lower;
    const mnist::DataSet set = random_images(3, 7, upper, lower);
    std::vector<double> per_image;
    const double estimate = nll(model, set, 40000, 11, &per_image);
    REQUIRE(per_image.size() == 3);
    double mean_exact = 0.0;
    for (std::size_t i = 0; i < 3; ++i) {
        const double exact = exact_nll(model, upper.data() + i * mnist::half_pixels,
                                       lower.data() + i * mnist::half_pixels);
        mean_exact += exact / 3.0;
        CHECK(per_image[i] == doctest::Approx(exact).epsilon(2e-4));
    }
    CHECK(estimate == doctest::Approx(mean_exact).epsilon(2e-4));
    // one sample: a higher (worse) bound on average, by Jensen's inequality
    CHECK(nll(model, set, 1, 12) > mean_exact);
}

}  // namespace

TEST_CASE("StructuredOutput: the NLL estimate converges to the exact sum over all states of a tiny Bernoulli model") {
    check_nll_converges(Latent::bernoulli);
}

TEST_CASE("StructuredOutput: the NLL estimate converges to the exact sum over all states of a tiny categorical model") {
    check_nll_converges(Latent::categorical);
}

TEST_CASE("StructuredOutput: with certain units the NLL is the Bernoulli likelihood of the known logits") {
    Generator init(3);
    Model model(Latent::bernoulli, 4, init);
    // fc1 and fc2 give logits of +-40: sigmoid is exactly 0 or 1 in float, the units are certain
    model.fc1->weight.value().fill(0.0f);
    model.fc2->weight.value().fill(0.0f);
    const float b1[4] = {40, -40, 40, -40}, b2[4] = {-40, -40, 40, 40};
    for (int j = 0; j < 4; ++j) model.fc1->bias.value()(j) = b1[j], model.fc2->bias.value()(j) = b2[j];
    Array upper, lower;
    mnist::DataSet set = random_images(5, 1, upper, lower);
    const std::vector<double> logits = affine(*model.fc3, {0, 0, 1, 1});
    for (std::size_t m : {1, 7, 1000}) {  // m = 7: 285 images a chunk; 1000: 2
        std::vector<double> per_image;
        const double mean = nll(model, set, m, 4, &per_image);
        double expected = 0.0;
        for (std::size_t i = 0; i < 5; ++i) {
            const double nll_i = -bernoulli_log_likelihood(logits, lower.data() + i * mnist::half_pixels);
            CHECK(per_image[i] == doctest::Approx(nll_i).epsilon(1e-5));
            expected += nll_i / 5.0;
        }
        CHECK(mean == doctest::Approx(expected).epsilon(1e-5));
    }
    set.labels.push_back(0);  // 6 labels, 5 images
    CHECK_THROWS_AS(nll(model, set, 1, 0), std::invalid_argument);
}

namespace {

// `name` lowers the loss on a fixed batch for both latent kinds, with 1 and 3 samples.
void check_lowers_loss(const std::string& name) {
    set_num_threads(1);
    Array upper, lower;
    {
        const mnist::Idx idx = synthetic_images(100, 3);
        Array images = Array::from_shape({100, 784});
        for (std::size_t i = 0; i < idx.data.size(); ++i) images.data()[i] = idx.data[i] / 255.0f;
        mnist::halves(images, upper, lower);
    }
    const Tensor x(upper), y(lower);
    for (Latent latent : {Latent::bernoulli, Latent::categorical})
        for (std::size_t samples : {std::size_t{1}, std::size_t{3}}) {
            if ((name == "rloo" || name == "vimco") && samples == 1) continue;
            CAPTURE(int(latent));
            CAPTURE(samples);
            Generator init(1), gen(2);
            Model model(latent, 20, init);
            optim::Adam adam(model.parameters(), {1e-2f});
            estimators::Settings settings;
            settings.draws = 3;  // gumbel-rao's conditional draws: 3, not 10, keeps it short under ASan
            Estimator estimator(name, settings);
            double first = 0.0, last = 0.0;
            for (int step = 0; step < 60; ++step) {
                const Loss loss = training_loss(model, x, y, estimator, 1.0f, samples, gen);
                REQUIRE(std::isfinite(loss.value));
                if (step == 0) first = loss.value;
                last = loss.value;
                loss.objective.backward();
                adam.step();
                adam.zero_grad();
            }
            // the score function learns the encoder more slowly (its gradients are noisier)
            const bool score = estimator.form() == estimators::Form::score;
            CHECK(last < (score ? 0.8 : 0.7) * first);
            if (name == "sf") CHECK(estimator.reinforce().baseline() > 0.0f);
        }
}

}  // namespace

// One test case per estimator: a ctest each, short under the sanitizers.
TEST_CASE("StructuredOutput: gs lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("gs"); }
TEST_CASE("StructuredOutput: st-gs lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("st-gs"); }
TEST_CASE("StructuredOutput: st lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("st"); }
TEST_CASE("StructuredOutput: sf lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("sf"); }
TEST_CASE("StructuredOutput: reinmax lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("reinmax"); }
TEST_CASE("StructuredOutput: gumbel-rao lowers the loss on a fixed batch for every latent kind") {
    check_lowers_loss("gumbel-rao");
}
TEST_CASE("StructuredOutput: rloo lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("rloo"); }
TEST_CASE("StructuredOutput: vimco lowers the loss on a fixed batch for every latent kind") { check_lowers_loss("vimco"); }

TEST_CASE("StructuredOutput: the score-function gradient is unbiased: it matches the exact gradient of a tiny model") {
    Generator init(8);
    Model model(Latent::bernoulli, 2, init);
    for (auto& p : model.parameters()) p.value() *= 2.0f;
    Array upper, lower;
    random_images(1, 3, upper, lower);
    // E_q[f] over the 16 states, f = -log p(lower | h2)
    auto expected_loss = [&] {
        std::vector<double> x(upper.data(), upper.data() + mnist::half_pixels);
        double total = 0.0;
        for (const auto& [h1, lp1] : all_states(Latent::bernoulli, affine(*model.fc1, x)))
            for (const auto& [h2, lp2] : all_states(Latent::bernoulli, affine(*model.fc2, h1)))
                total += std::exp(lp1 + lp2) * -bernoulli_log_likelihood(affine(*model.fc3, h2), lower.data());
        return total;
    };
    // the batch is the one image 1000 times over: 20 batches make 20,000 samples
    constexpr std::size_t batch = 1000, batches = 20;
    const Tensor xs = repeat_rows(Tensor(upper), batch), ys = repeat_rows(Tensor(lower), batch);
    Generator gen(9);
    Estimator sf("sf");
    sf.reinforce().set_baseline(static_cast<float>(expected_loss()) + 3.0f);  // any baseline keeps it unbiased
    for (std::size_t b = 0; b < batches; ++b)
        training_loss(model, xs, ys, sf, 1.0f, 1, gen).objective.backward();
    for (const auto& fc : {model.fc1, model.fc2, model.fc3})
        for (std::size_t j = 0; j < fc->out_features() && j < 2; ++j) {
            float& bias = fc->bias.value()(j);
            const float saved = bias, eps = 1e-2f;
            bias = saved + eps;
            const double up = expected_loss();
            bias = saved - eps;
            const double down = expected_loss();
            bias = saved;
            const double exact = (up - down) / (2.0 * eps);
            const double estimate = fc->bias.grad()(j) / batches;
            CAPTURE(exact);
            CHECK(std::abs(estimate - exact) < 0.05 * std::abs(exact) + 0.05);
        }
}

TEST_CASE("StructuredOutput: a short run on synthetic data lowers the loss and writes its files") {
    TempDir dir;
    const RunOutput r = run_program(dir, "--epochs 6");
    INFO(r.err);
    REQUIRE(r.status == 0);
    const auto rows = metrics(dir / "out/metrics.csv");
    REQUIRE(rows.size() == 6);
    CHECK(rows.back()[2] < 0.8 * rows.front()[2]);  // train_loss
    CHECK(rows.back()[3] < rows.front()[3]);        // val_nll
    CHECK(rows.back()[1] == 36);                    // 300 images in batches of 50
    for (const char* name : {"checkpoint.npz", "metrics.csv", "completions.png", "curves.png"})
        CHECK(fs::exists(dir.path / "out" / name));
    for (const char* name : {"completions.png", "curves.png"}) {
        const std::string png = file_bytes(dir / (std::string("out/") + name));
        REQUIRE(png.size() > 24);
        CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    }
    CHECK_FALSE(fs::exists(dir.path / "out/.write-probe"));
    // the machine-readable lines come last
    const std::size_t steps_at = r.out.rfind("train_steps_per_s=");
    const std::size_t nll_at = r.out.rfind("test_nll=");
    REQUIRE(steps_at != std::string::npos);
    REQUIRE(nll_at != std::string::npos);
    CHECK(steps_at < nll_at);
    CHECK(r.out.find('\n', nll_at) == r.out.size() - 1);
    CHECK(std::stod(r.out.substr(nll_at + 9)) > 0.0);
}

TEST_CASE("StructuredOutput: a resumed run equals an uninterrupted one bit for bit") {
    for (const std::string variant : {"--latent bernoulli --estimator gs --binarize dynamic",
                                      "--latent categorical --estimator sf --optimizer sgd",
                                      "--latent bernoulli --estimator nvil",
                                      "--latent bernoulli --estimator st-gs --lr-schedule plateau --lr-patience 0 --lr-factor 0.25"}) {
        CAPTURE(variant);
        const std::string flags = variant + " --anneal-rate 0.05 --anneal-every 2 --tau-min 0.3 --samples 2";
        TempDir a, b;
        REQUIRE(run_program(a, flags).status == 0);  // 3 epochs of 6 steps
        REQUIRE(run_program(b, flags + " --epochs 1").status == 0);  // stop at an epoch's end...
        const RunOutput mid = run_program(b, flags + " --max-steps 10 --resume");  // ...then mid-epoch
        INFO(mid.err);
        REQUIRE(mid.status == 0);
        CHECK(contains(mid.out, "resumed from"));
        CHECK(metrics(b / "out/metrics.csv").size() == 1);
        REQUIRE(run_program(b, flags + " --resume").status == 0);
        CHECK(metrics(a / "out/metrics.csv") == metrics(b / "out/metrics.csv"));
        check_same_checkpoints(a / "out/checkpoint.npz", b / "out/checkpoint.npz");
        check_same_checkpoints(a / "out/best.npz", b / "out/best.npz");
        CHECK(file_bytes(a / "stdout").substr(file_bytes(a / "stdout").rfind("test_nll=")) ==
              file_bytes(b / "stdout").substr(file_bytes(b / "stdout").rfind("test_nll=")));
    }
}

TEST_CASE("StructuredOutput: keep-best tests the epoch of the lowest validation NLL, and the step schedule scales the lr") {
    TempDir a;
    REQUIRE(run_program(a, "--epochs 4 --lr-schedule step --lr-step 2 --lr-factor 0.5 --lr 4e-3").status == 0);
    const auto rows = metrics(a / "out/metrics.csv");
    REQUIRE(rows.size() == 4);
    CHECK(rows[0][5] == doctest::Approx(4e-3));
    CHECK(rows[1][5] == doctest::Approx(4e-3));
    CHECK(rows[2][5] == doctest::Approx(2e-3));
    CHECK(rows[3][5] == doctest::Approx(2e-3));
    std::size_t best = 0;
    for (std::size_t i = 1; i < rows.size(); ++i)
        if (rows[i][3] < rows[best][3]) best = i;
    CHECK(contains(file_bytes(a / "stdout"), "the test uses epoch " + std::to_string(best + 1) + " of 4"));
    // the best checkpoint holds that epoch's progress; --test-model last tests the last one
    CHECK(Checkpoint::load(a / "out/best.npz").get_ints("run.progress")[0] == std::int64_t(best + 1));
    TempDir b;
    REQUIRE(run_program(b, "--epochs 4 --lr-schedule step --lr-step 2 --lr-factor 0.5 --lr 4e-3 --test-model last").status == 0);
    CHECK_FALSE(contains(file_bytes(b / "stdout"), "the test uses epoch"));
    CHECK(metrics(a / "out/metrics.csv") == metrics(b / "out/metrics.csv"));
    // a scheduled run resumes only under its schedule, which goes on from its epoch
    const RunOutput r = run_program(b, "--epochs 5 --resume --lr 4e-3");
    CHECK(r.status == 2);
    CHECK(contains(r.err, "was made with --lr-schedule step"));
    REQUIRE(run_program(b, "--epochs 5 --resume --lr-schedule step --lr-step 2 --lr-factor 0.5 --lr 4e-3").status == 0);
    CHECK(metrics(b / "out/metrics.csv")[4][5] == doctest::Approx(1e-3));
}

TEST_CASE("StructuredOutput: SIGINT during evaluation checkpoints and exits 130, and --resume continues exactly") {
    TempDir a, b;
    // One training step an epoch (the batch is the whole training set of 300): the run's only
    // check for a stop before the first validation comes before that step. A signal that arrives
    // after it stops the run in the validation, which completes the epoch's training first and
    // then checks before each chunk; m = 1000 keeps that validation running long past the signal.
    const std::string flags = " --batch-size 300 --epochs 1 --val-samples 1000 --eval-samples 0";
    REQUIRE(run_program(a, flags).status == 0);
    write_data(b);
    const fs::path out = b.path / "out";
    const std::string cmd = "exec " + program + " --data " + (b / "data") + " --out " + out.string() +
                            " --validation 100 --hidden 20 --lr 3e-3" + flags + " >" + (b / "stdout") + " 2>" +
                            (b / "stderr");
    // The signal goes when the run deletes its probe of --out (harness::check_writable), just
    // before its training loop. A signal that beats the loop's first check stops the run before
    // any step ("at step 0"): then the run is tried again.
    int raw = 0;
    std::string stdout_text;
    for (int attempt = 0; attempt < 5; ++attempt) {
        fs::remove_all(out);
        fs::create_directories(out);
        const int watch = inotify_init1(IN_CLOEXEC);
        REQUIRE(watch >= 0);
        REQUIRE(inotify_add_watch(watch, out.c_str(), IN_DELETE) >= 0);
        const pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        bool probed = false;
        alignas(inotify_event) char events[4096];
        for (pollfd p{watch, POLLIN, 0}; !probed && poll(&p, 1, 120000) == 1;) {
            const ssize_t n = read(watch, events, sizeof events);
            for (ssize_t at = 0; at < n;) {
                const auto* e = reinterpret_cast<const inotify_event*>(events + at);
                probed = probed || (e->len > 0 && std::strcmp(e->name, ".write-probe") == 0);
                at += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
            }
        }
        close(watch);
        CHECK(probed);
        kill(pid, SIGINT);
        waitpid(pid, &raw, 0);
        stdout_text = file_bytes(b / "stdout");
        if (!contains(stdout_text, "stopped by a signal at step 0")) break;
    }
    INFO(stdout_text);
    INFO(file_bytes(b / "stderr"));
    REQUIRE(WIFEXITED(raw));
    CHECK(WEXITSTATUS(raw) == 130);
    CHECK(contains(stdout_text, "stopped by a signal at step 1; checkpoint saved to"));
    CHECK_FALSE(fs::exists(out / "metrics.csv"));  // written only once the first validation is done
    REQUIRE(fs::exists(out / "checkpoint.npz"));
    const RunOutput resumed = run_program(b, flags + " --resume");
    INFO(resumed.err);
    REQUIRE(resumed.status == 0);
    CHECK(metrics(a / "out/metrics.csv") == metrics(b / "out/metrics.csv"));
    check_same_checkpoints(a / "out/checkpoint.npz", b / "out/checkpoint.npz");
}

TEST_CASE("StructuredOutput: a non-finite loss stops training with status 3 and keeps the last good checkpoint") {
    TempDir dir;
    REQUIRE(run_program(dir, "--epochs 1").status == 0);
    const std::string before = file_bytes(dir / "out/checkpoint.npz");
    const std::string metrics_before = file_bytes(dir / "out/metrics.csv");
    // SGD with the largest finite step: the logits overflow at the second step
    const RunOutput r = run_program(dir, "--optimizer sgd --momentum 0 --lr 3e38");
    CHECK(r.status == 3);
    CHECK(contains(r.err, "non-finite"));
    CHECK(contains(r.err, "at step "));
    CHECK(file_bytes(dir / "out/checkpoint.npz") == before);
    CHECK(file_bytes(dir / "out/metrics.csv") == metrics_before);
}

TEST_CASE("StructuredOutput: the command line refuses bad flags with one line naming the flag and exit status 2") {
    TempDir dir;
    CHECK(run_program(dir, "--help", false).status == 0);
    CHECK(contains(file_bytes(dir / "stdout"), "--estimator"));
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"--tau 0", "--tau"}, {"--tau -1", "--tau"}, {"--batch-size 0", "--batch-size"}, {"--lr -0.1", "--lr"},
        {"--lr abc", "--lr"}, {"--estimator arm", "two stochastic layers"}, {"--estimator relax", "two stochastic layers"},
        {"--estimator rebar-tuned", "two stochastic layers"}, {"--estimator vimco", "--samples"}, {"--latent gaussian", "gaussian"},
        {"--binarize x", "--binarize"}, {"--optimizer rmsprop", "rmsprop"}, {"--frobnicate", "frobnicate"},
        {"--latent categorical --hidden 205", "--hidden"}, {"--momentum 1.5", "--momentum"},
        {"--threads 0", "--threads"}, {"--samples 0", "--samples"}, {"--tau 0.2", "--tau-min"},
        // reinmax takes tau >= 1: refused at the start, not at the first step below 1
        {"--estimator reinmax", "--estimator reinmax takes tau >= 1, but the annealed tau goes down to --tau-min 0.5"},
        {"--estimator reinmax --anneal-rate 0 --tau 0.9", "--tau is 0.9"},
        {"extra-positional", "extra-positional"}, {"--epochs -1", "--epochs"}, {"--batch-size -5", "--batch-size"},
        {"--seed -3", "--seed"}, {"--hidden 99999999999", "--hidden"}, {"--eval-samples 1e9", "--eval-samples"},
        {"--samples 10000 --batch-size 100000", "--samples"}, {"--max-steps 18446744073709551615", "--max-steps"},
        // numbers a float does not hold as given: named with the flag and the text
        {"--lr 1e-50", "--lr: must be at least"}, {"--lr 1e39", "--lr: must be at most"},
        {"--tau 1e-45", "--tau: must be at least 1.1754944e-38"}, {"--tau 1e-50", "got 1e-50"},
        {"--anneal-rate 1e-45", "--anneal-rate: must be 0 or at least 1.1754944e-38"},
        {"--momentum 0.99999999", "--momentum: must be in [0, 1), got 0.99999999, which a float rounds to 1"},
        {"--anneal-rate 1e-50", "--anneal-rate"}, {"--tau-min 1e39", "--tau-min"},
        {"--lr-schedule cosine", "--lr-schedule"}, {"--lr-factor 1.5", "--lr-factor: must be in [0, 1), got 1.5"},
        {"--lr-factor 0", "--lr-factor: must be positive, got 0"}, {"--lr-patience -2", "--lr-patience"},
        {"--lr-step 0", "--lr-step"}, {"--min-lr x", "--min-lr"}, {"--test-model first", "first"}};
    for (const auto& flag_and_named : bad) {
        const std::string &args = flag_and_named.first, &named = flag_and_named.second;  // clang: no CAPTURE of a binding
        CAPTURE(args);
        const RunOutput r = run_program(dir, args, false);
        CHECK(r.status == 2);
        CHECK(r.err.rfind("structured_output: ", 0) == 0);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);  // one line
        CHECK(contains(r.err, named));
    }
    // errors found once the data or the output directory is known
    CHECK(run_program(dir, "--batch-size 301").status == 2);
    CHECK(run_program(dir, "--resume").status == 2);
    CHECK(contains(file_bytes(dir / "stderr"), "no checkpoint"));
    CHECK(run_program(dir, "--data " + (dir / "missing"), false).status == 2);
    // --out that cannot be written is refused before training
    std::ofstream(dir / "blocker") << "a file, not a directory\n";
    const RunOutput r = run_program(dir, "--out " + (dir / "blocker/out"));
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--out"));
    CHECK_FALSE(contains(r.out, "epoch "));
}

TEST_CASE("StructuredOutput: --resume refuses a checkpoint of another model, naming the flag and the file") {
    TempDir dir;
    REQUIRE(run_program(dir, "--epochs 1").status == 0);
    const RunOutput r = run_program(dir, "--epochs 2 --resume --latent categorical");
    CHECK(r.status == 2);
    CHECK(contains(r.err, "--latent bernoulli"));
    CHECK(contains(r.err, "checkpoint.npz"));
    CHECK(run_program(dir, "--epochs 2 --resume --hidden 30").status == 2);
}

TEST_CASE("StructuredOutput: --resume refuses other values of the flags the checkpoint fixes, naming both") {
    TempDir dir;
    REQUIRE(run_program(dir, "--epochs 1 --optimizer sgd --momentum 0.5").status == 0);
    for (const std::string flag : {"--lr 0.002", "--momentum 0.9", "--tau 0.75", "--tau-min 0.4", "--anneal-rate 0.0001",
                                    "--anneal-every 100", "--validation 150", "--seed 3", "--samples 2"}) {
        CAPTURE(flag);
        const RunOutput r = run_program(dir, "--epochs 2 --optimizer sgd --momentum 0.5 --resume " + flag);
        CHECK(r.status == 2);
        const std::string name = flag.substr(0, flag.find(' ')), value = flag.substr(flag.find(' ') + 1);
        CHECK(contains(r.err, "was made with " + name + " "));
        CHECK(contains(r.err, ", not " + value + " "));
    }
    // the same flags again: it continues
    const RunOutput same = run_program(dir, "--epochs 2 --optimizer sgd --momentum 0.5 --resume");
    CHECK(same.status == 0);
    CHECK(contains(same.out, "resumed from"));
}

TEST_CASE("StructuredOutput: doctored run.* entries with valid CRCs are refused, naming the entry") {
    TempDir dir;
    REQUIRE(run_program(dir, "--epochs 1 --max-steps 3").status == 0);  // mid-epoch: 3 of 6 batches
    const std::string path = dir / "out/checkpoint.npz";
    const Checkpoint good = Checkpoint::load(path);
    const std::vector<std::int64_t> progress = good.get_ints("run.progress");
    REQUIRE(progress == std::vector<std::int64_t>{0, 3, 3, 0});
    auto with = [&](const std::function<void(Checkpoint&)>& doctor) {
        Checkpoint ck = good;
        doctor(ck);
        ck.save(path);
        return run_program(dir, "--epochs 2 --resume");
    };
    auto progress_with = [&](std::size_t i, std::int64_t v) {
        return [=](Checkpoint& ck) {
            std::vector<std::int64_t> p = progress;
            p[i] = v;
            ck.put_ints("run.progress", p);
        };
    };
    auto bits = [](double v) {
        std::uint64_t b;
        std::memcpy(&b, &v, 8);
        return b;
    };
    const std::vector<std::pair<std::string, std::function<void(Checkpoint&)>>> doctored = {
        {"run.progress", progress_with(0, -1)},  // the audit's: resumed at epoch 2^64 - 1 and exited 0
        {"run.progress", progress_with(0, 1)},
        {"run.progress", progress_with(1, 4)},
        {"run.progress", progress_with(1, -1)},
        {"run.progress", progress_with(2, 7)},
        {"run.progress", progress_with(3, 1)},
        {"run.progress", progress_with(3, 2)},
        {"run.progress", [](Checkpoint& ck) { ck.put_ints("run.progress", {0, 3, 3}); }},
        {"run.epoch_sums", [&](Checkpoint& ck) { ck.put_uints("run.epoch_sums", {bits(NAN), bits(1.0)}); }},
        {"run.epoch_sums", [&](Checkpoint& ck) { ck.put_uints("run.epoch_sums", {bits(1.0), bits(-1.0)}); }},
        {"run.history", [&](Checkpoint& ck) { ck.put_uints("run.history", std::vector<std::uint64_t>(8, bits(1.0))); }},
        {"run.history", [&](Checkpoint& ck) { ck.put_uints("run.history", {1, 2, 3}); }},
        {"data.batches", [&](Checkpoint& ck) {
             std::vector<std::uint64_t> w = good.get_uints("data.batches");
             w[1] = 0;  // the position in the epoch
             ck.put_uints("data.batches", w);
         }},
        {"data.batches", [&](Checkpoint& ck) {
             std::vector<std::uint64_t> w = good.get_uints("data.batches");
             w[0] = 5;  // the epoch
             ck.put_uints("data.batches", w);
         }},
        {"data.batches", [&](Checkpoint& ck) {
             std::vector<std::uint64_t> w = good.get_uints("data.batches");
             w[3] = w[4] = w[5] = w[6] = 0;  // the invalid all-zero generator state
             ck.put_uints("data.batches", w);
         }},
        {"run.baseline", [](Checkpoint& ck) { ck.put("run.baseline", Array::from_shape({0})); }},
        {"run.baseline", [](Checkpoint& ck) { ck.put("run.baseline", Array{INFINITY}); }},
        {"optim.adam.lr", [](Checkpoint& ck) { ck.put("optim.adam.lr", Array(0.5f)); }},
        {"optim.adam.step", [&](Checkpoint& ck) {
             for (const std::string& name : good.names())
                 if (name.rfind("optim.adam.step.", 0) == 0) ck.put_int(name, 4);
         }},
    };
    for (const auto& [entry, doctor] : doctored) {
        const std::string named = entry;  // clang: no CAPTURE of a binding
        CAPTURE(named);
        const RunOutput r = with(doctor);
        CHECK(r.status == 2);
        CHECK(contains(r.err, "'" + named));
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK_FALSE(contains(r.out, "epoch "));
    }
    // the checkpoint as written still resumes
    good.save(path);
    CHECK(run_program(dir, "--epochs 2 --resume").status == 0);
}

TEST_CASE("StructuredOutput: past a file-size limit (ulimit -f) the checkpoint's write fails with one line and status "
          "2, keeping the last checkpoint and no temporary") {
    TempDir dir;
    REQUIRE(run_program(dir, "--epochs 1").status == 0);
    const std::string before = file_bytes(dir / "out/checkpoint.npz");
    // 100 blocks (of 512 bytes in dash, 1024 in bash): less than the checkpoint, more than any other file
    REQUIRE(before.size() > 100 * 1024);
    const RunOutput r = run_program(dir, "--epochs 2 --resume", true, "ulimit -f 100 && exec ");
    INFO(r.err);
    CHECK(r.status == 2);  // SIGXFSZ's default action would have killed it (status -2 here)
    CHECK(r.err.rfind("structured_output: ", 0) == 0);
    CHECK(contains(r.err, ".npz': write failed: File too large"));  // best.npz (written first) or checkpoint.npz
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(file_bytes(dir / "out/checkpoint.npz") == before);
    for (const auto& e : fs::directory_iterator(dir.path / "out")) CHECK_FALSE(contains(e.path().string(), ".tmp."));
}

TEST_CASE("StructuredOutput: under a memory limit (ulimit -v) a run ends, out of memory with one line and status 2") {
    tgtest::check_memory_limits("structured_output", [](const std::string& shell_prefix) {
        TempDir dir;
        const RunOutput r = run_program(dir, "--epochs 1", true, shell_prefix);
        return std::make_pair(r.status, r.err);
    });
}

TEST_CASE("StructuredOutput: the evaluation's chunks spread over 2 threads give the same NLL bit for bit") {
    Array upper, lower;
    const mnist::DataSet set = random_images(9, 21, upper, lower);
    for (const Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(int(latent));
        Generator init(5);
        const Model model(latent, 20, init);
        std::vector<double> per_image[2];
        double mean[2];
        for (const int threads : {1, 2}) {
            set_num_threads(threads);
            mean[threads - 1] = nll(model, set, 500, 6, &per_image[threads - 1]);  // 4 images a chunk: 3 chunks
        }
        set_num_threads(1);
        CHECK(mean[0] == mean[1]);
        CHECK(per_image[0] == per_image[1]);
        CHECK(per_image[0].size() == 9);
    }
}
