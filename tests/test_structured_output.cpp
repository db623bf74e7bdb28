// The structured-output example (examples/structured_output_lib.hpp) on small synthetic IDX
// files written here, never the real download.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <sys/wait.h>
#include <unistd.h>

#include <xtensor/xbuilder.hpp>

#include "datasets/mnist.hpp"
#include "examples/structured_output_lib.hpp"
#include "serialize/atomic_file.hpp"
#include "helpers.hpp"

using namespace tg;
using namespace tg::structured;
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

// A quick run on the synthetic data in dir/data (written here), writing to dir/out.
Config small_config(const TempDir& dir) {
    write_data(dir);
    Config c;
    c.data_dir = dir / "data";
    c.out = dir / "out";
    c.validation_size = 100;
    c.batch_size = 50;
    c.hidden = 20;
    c.epochs = 3;
    c.val_samples = 4;
    c.eval_samples = 8;
    c.lr = 3e-3f;
    c.threads = 1;
    return c;
}

struct RunOutput {
    int status = -1;
    std::string out, err;
};

RunOutput run_quietly(const Config& c) {
    std::ostringstream out, err;
    RunOutput r;
    r.status = run(c, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
}

std::string file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The metrics that must not depend on the wall clock.
std::vector<std::vector<double>> deterministic_metrics(const std::string& path) {
    std::vector<std::vector<double>> rows;
    for (const EpochMetrics& e : read_metrics(path))
        rows.push_back({double(e.epoch), double(e.step), e.train_loss, e.val_nll, e.tau, e.lr});
    return rows;
}

// An exit status of the built program, or -1 when it is not built (examples switched off).
int run_program(const std::string& args) {
    const std::string exe = std::string(TAPEGRAD_BINARY_DIR) + "/examples/structured_output";
    if (!fs::exists(exe)) return -1;
    const int raw = std::system((exe + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -2;
}

ParsedArgs parse(std::vector<const char*> args, std::string* err_text = nullptr) {
    args.insert(args.begin(), "structured_output");
    std::ostringstream out, err;
    ParsedArgs r = parse_command_line(static_cast<int>(args.size()), args.data(), out, err);
    if (err_text) *err_text = err.str();
    return r;
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

// Every state of `hidden` Bernoulli units, or of hidden / 10 categorical variables, with its
// log-probability under the logits a.
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
    } else {  // one variable of 10 classes
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
    for (const auto& [h1, lp1] : all_states(model.latent(), affine(*model.fc1, x)))
        for (const auto& [h2, lp2] : all_states(model.latent(), affine(*model.fc2, h1)))
            total += std::exp(lp1 + lp2 + bernoulli_log_likelihood(affine(*model.fc3, h2), lower));
    return -std::log(total);
}

// Random halves [n, 392] of 0/1 pixels.
Array random_halves(std::size_t n, std::uint64_t seed) {
    Generator g(seed);
    Array a = Array::from_shape({n, mnist::half_pixels});
    for (float& v : a) v = g.uniform() < 0.3f ? 1.0f : 0.0f;
    return a;
}

}  // namespace

TEST_CASE("StructuredOutput: the NLL estimate converges to the exact sum over all states of a tiny model") {
    for (Latent latent : {Latent::bernoulli, Latent::categorical}) {
        const std::string kind = latent_name(latent);
        CAPTURE(kind);
        Generator init(5);
        // 2 Bernoulli units (4 states per layer) or one variable of 10 classes per layer
        Model model(latent, latent == Latent::bernoulli ? 2 : 10, init);
        for (auto& p : model.parameters()) p.value() *= 3.0f;  // probabilities away from 1/2
        const Array upper = random_halves(3, 7), lower = random_halves(3, 8);
        Evaluator evaluator;
        std::vector<double> per_image;
        const double estimate = evaluator.nll(model, upper, lower, 40000, 11, &per_image);
        double mean_exact = 0.0;
        for (std::size_t i = 0; i < 3; ++i) {
            const double exact = exact_nll(model, upper.data() + i * mnist::half_pixels,
                                           lower.data() + i * mnist::half_pixels);
            mean_exact += exact / 3.0;
            CHECK(per_image[i] == doctest::Approx(exact).epsilon(2e-4));
        }
        CHECK(estimate == doctest::Approx(mean_exact).epsilon(2e-4));
        // one sample: a higher (worse) bound on average, by Jensen's inequality
        CHECK(evaluator.nll(model, upper, lower, 1, 12) > mean_exact);
    }
}

TEST_CASE("StructuredOutput: with certain units the NLL is the Bernoulli likelihood of the known logits") {
    Generator init(3);
    Model model(Latent::bernoulli, 4, init);
    // fc1 and fc2 give logits of +-40: sigmoid is exactly 0 or 1 in float, the units are certain
    model.fc1->weight.value().fill(0.0f);
    model.fc2->weight.value().fill(0.0f);
    const float b1[4] = {40, -40, 40, -40}, b2[4] = {-40, -40, 40, 40};
    for (int j = 0; j < 4; ++j) model.fc1->bias.value()(j) = b1[j], model.fc2->bias.value()(j) = b2[j];
    const Array upper = random_halves(5, 1), lower = random_halves(5, 2);
    std::vector<double> h2 = {0, 0, 1, 1}, logits = affine(*model.fc3, h2);
    Evaluator evaluator;
    for (std::size_t m : {1, 7, 1000}) {
        std::vector<double> per_image;
        const double mean = evaluator.nll(model, upper, lower, m, 4, &per_image);
        double expected = 0.0;
        for (std::size_t i = 0; i < 5; ++i) {
            const double nll = -bernoulli_log_likelihood(logits, lower.data() + i * mnist::half_pixels);
            CHECK(per_image[i] == doctest::Approx(nll).epsilon(1e-5));
            expected += nll / 5.0;
        }
        CHECK(mean == doctest::Approx(expected).epsilon(1e-5));
    }
}

TEST_CASE("StructuredOutput: the NLL of a byte data set, chunk by chunk, is the NLL of its halves as floats") {
    // 600 images with m = 7 make three chunks of images (285 per chunk), the last one partial
    mnist::DataSet set{synthetic_images(600, 5).data, std::vector<std::uint8_t>(600)};
    for (std::size_t i = 0; i < set.pixels.size(); i += 3) set.pixels[i] = static_cast<std::uint8_t>(i % 256);
    std::vector<std::size_t> all(set.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    Array upper, lower;
    mnist::gather_halves(set, all, upper, lower);
    for (Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(latent_name(latent));
        Generator init(2);
        Model model(latent, 20, init);
        Evaluator evaluator;
        std::vector<double> from_bytes, from_floats;
        const double a = evaluator.nll(model, set, 7, 3, &from_bytes);
        const double b = evaluator.nll(model, upper, lower, 7, 3, &from_floats);
        CHECK(a == b);  // bit for bit: the same floats, chunks and random numbers
        CHECK(from_bytes == from_floats);
        CHECK(std::isfinite(a));
    }
    Generator init(2);
    Model model(Latent::bernoulli, 20, init);
    set.labels.push_back(0);  // 601 labels, 600 images
    CHECK_THROWS_AS(Evaluator().nll(model, set, 1, 0), std::invalid_argument);
}

TEST_CASE("StructuredOutput: every latent kind and estimator lowers the loss on a fixed batch") {
    set_num_threads(1);  // small GEMMs: two OpenBLAS threads only wait for each other, badly so on a busy machine
    Array upper, lower;
    {
        const mnist::Idx idx = synthetic_images(100, 3);
        Array images = Array::from_shape({100, 784});
        for (std::size_t i = 0; i < idx.data.size(); ++i) images.data()[i] = idx.data[i] / 255.0f;
        mnist::halves(images, upper, lower);
    }
    const Tensor x(upper), y(lower);
    for (Latent latent : {Latent::bernoulli, Latent::categorical})
        for (Estimator estimator : {Estimator::gs, Estimator::st_gs, Estimator::st, Estimator::sf})
            for (std::size_t samples : {std::size_t{1}, std::size_t{3}}) {
                const std::string what = std::string(latent_name(latent)) + " " + estimator_name(estimator) +
                                         " m=" + std::to_string(samples);
                CAPTURE(what);
                Generator init(1), gen(2);
                Model model(latent, 20, init);
                optim::Adam adam(model.parameters(), {1e-2f});
                TrainOptions options;
                options.estimator = estimator;
                options.samples = samples;
                nn::Reinforce reinforce;
                double first = 0.0, last = 0.0;
                for (int step = 0; step < 60; ++step) {
                    const Loss loss = training_loss(model, x, y, options, gen, &reinforce);
                    REQUIRE(std::isfinite(loss.nll));
                    if (step == 0) first = loss.nll;
                    last = loss.nll;
                    loss.objective.backward();
                    adam.step();
                    adam.zero_grad();
                }
                // the score function learns the encoder more slowly (its gradients are noisier)
                CHECK(last < (estimator == Estimator::sf ? 0.8 : 0.7) * first);
                if (estimator == Estimator::sf) CHECK(reinforce.baseline() > 0.0f);
            }
}

TEST_CASE("StructuredOutput: the score-function gradient is unbiased: it matches the exact gradient of a tiny model") {
    Generator init(8);
    Model model(Latent::bernoulli, 2, init);
    for (auto& p : model.parameters()) p.value() *= 2.0f;
    const Array upper = random_halves(1, 3), lower = random_halves(1, 4);
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
    Array xs = Array::from_shape({batch, mnist::half_pixels}), ys = Array::from_shape({batch, mnist::half_pixels});
    for (std::size_t i = 0; i < batch; ++i) {
        std::copy(upper.begin(), upper.end(), xs.data() + i * mnist::half_pixels);
        std::copy(lower.begin(), lower.end(), ys.data() + i * mnist::half_pixels);
    }
    TrainOptions options;
    options.estimator = Estimator::sf;
    Generator gen(9);
    nn::Reinforce reinforce;
    reinforce.set_baseline(static_cast<float>(expected_loss()) + 3.0f);  // any baseline keeps it unbiased
    for (std::size_t b = 0; b < batches; ++b)
        training_loss(model, Tensor(xs), Tensor(ys), options, gen, &reinforce).objective.backward();
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
    Config c = small_config(dir);
    c.epochs = 6;
    const RunOutput r = run_quietly(c);
    INFO(r.err);
    REQUIRE(r.status == 0);
    const std::vector<EpochMetrics> rows = read_metrics(dir / "out/metrics.csv");
    REQUIRE(rows.size() == 6);
    CHECK(rows.back().train_loss < 0.8 * rows.front().train_loss);
    CHECK(rows.back().val_nll < rows.front().val_nll);
    CHECK(rows.back().step == 36);  // 300 images in batches of 50
    for (const char* name : {"checkpoint.npz", "metrics.csv", "completions.png", "curves.png"})
        CHECK(fs::exists(dir.path / "out" / name));
    for (const char* name : {"completions.png", "curves.png"}) {
        const std::string png = file_bytes(dir / (std::string("out/") + name));
        REQUIRE(png.size() > 24);
        CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    }
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
    struct Variant {
        const char* name;
        Latent latent;
        Estimator estimator;
        mnist::Binarization binarization;
        std::string optimizer;
    };
    for (const Variant& v : {Variant{"bernoulli gs, dynamic binarization", Latent::bernoulli, Estimator::gs,
                                     mnist::Binarization::dynamic, "adam"},
                             Variant{"categorical sf, sgd", Latent::categorical, Estimator::sf,
                                     mnist::Binarization::fixed, "sgd"}}) {
        const std::string variant = v.name;
        CAPTURE(variant);
        TempDir a, b;
        Config ca = small_config(a), cb = small_config(b);
        for (Config* c : {&ca, &cb}) {
            c->latent = v.latent;
            c->estimator = v.estimator;
            c->binarization = v.binarization;
            c->optimizer = v.optimizer;
            c->anneal_rate = 0.05f;  // tau changes during these few steps
            c->anneal_every = 2;
            c->tau_min = 0.3f;
            c->samples = 2;
        }
        REQUIRE(run_quietly(ca).status == 0);  // 3 epochs of 6 steps

        cb.epochs = 1;  // stop at an epoch's end...
        REQUIRE(run_quietly(cb).status == 0);
        cb.epochs = 3;
        cb.max_steps = 10;  // ...then in the middle of the second epoch
        cb.resume = true;
        const RunOutput mid = run_quietly(cb);
        REQUIRE(mid.status == 0);
        CHECK(contains(mid.out, "resumed from"));
        CHECK(read_metrics(b / "out/metrics.csv").size() == 1);
        cb.max_steps = 0;
        REQUIRE(run_quietly(cb).status == 0);

        CHECK(deterministic_metrics(a / "out/metrics.csv") == deterministic_metrics(b / "out/metrics.csv"));
        const Checkpoint ka = Checkpoint::load(a / "out/checkpoint.npz"), kb = Checkpoint::load(b / "out/checkpoint.npz");
        for (const std::string& name : ka.names()) {
            if (ka.dtype(name) != DType::float32) continue;
            CAPTURE(name);
            const Array &va = ka.get(name), &vb = kb.get(name);  // bits: the baseline may be NaN in both
            REQUIRE(va.size() == vb.size());
            CHECK(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)) == 0);
        }
        CHECK(ka.get_uints("data.batches") == kb.get_uints("data.batches"));
    }
}

TEST_CASE("StructuredOutput: a non-finite loss stops training and keeps the last good checkpoint") {
    TempDir dir;
    Config c = small_config(dir);
    c.epochs = 1;
    REQUIRE(run_quietly(c).status == 0);
    const std::string before = file_bytes(dir / "out/checkpoint.npz");
    const std::string metrics_before = file_bytes(dir / "out/metrics.csv");
    // SGD with the largest finite step: the logits overflow at the second step
    c.optimizer = "sgd";
    c.momentum = 0.0f;
    c.lr = 3e38f;
    c.epochs = 3;
    const RunOutput r = run_quietly(c);
    CHECK(r.status == 3);
    CHECK(contains(r.err, "non-finite"));
    CHECK(contains(r.err, "at step "));
    CHECK(file_bytes(dir / "out/checkpoint.npz") == before);
    CHECK(file_bytes(dir / "out/metrics.csv") == metrics_before);
}

TEST_CASE("StructuredOutput: the command line refuses bad flags with exit status 2") {
    std::string err;
    const ParsedArgs ok = parse({"--latent", "categorical", "--estimator", "st-gs", "--lr", "3e-4", "--epochs", "2"});
    REQUIRE(ok.config);
    CHECK(ok.exit_status == 0);
    CHECK(ok.config->latent == Latent::categorical);
    CHECK(ok.config->estimator == Estimator::st_gs);
    CHECK(ok.config->lr == doctest::Approx(3e-4));
    CHECK(ok.config->out_dir() == "runs/categorical-st-gs");
    CHECK(parse({"--help"}).exit_status == 0);
    CHECK_FALSE(parse({"--help"}).config);

    const std::vector<std::vector<const char*>> bad = {
        {"--tau", "0"},          {"--tau", "-1"},           {"--batch-size", "0"},      {"--lr", "-0.1"},
        {"--lr", "abc"},         {"--estimator", "vimco"},  {"--latent", "gaussian"},   {"--binarize", "x"},
        {"--optimizer", "rmsprop"}, {"--frobnicate"},       {"--latent", "categorical", "--hidden", "205"},
        {"--momentum", "1.5"},   {"--threads", "0"},        {"--samples", "0"},         {"--tau", "0.2"},
        {"extra-positional"},
        // negative counts (CLI11 alone wraps them to 2^64 - 1), fractions, octal, absurd sizes
        {"--eval-samples", "-1"}, {"--epochs", "-1"}, {"--batch-size", "-1"}, {"--val-samples", "-1"},
        {"--max-steps", "-1"},   {"--hidden", "-20"},       {"--anneal-every", "-1"},   {"--seed", "-1"},
        {"--samples", "100000"}, {"--samples", "1.5"},      {"--threads", "-1"},        {"--threads", "100000"},
        {"--epochs", "1e9"},     {"--batch-size", "70000"}, {"--hidden", "100000"},     {"--eval-samples", "1000000"}};
    for (const auto& args : bad) {
        CAPTURE(args[0]);
        const ParsedArgs r = parse(args, &err);
        CHECK_FALSE(r.config);
        CHECK(r.exit_status == 2);
        CHECK(err.rfind("structured_output: ", 0) == 0);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);  // one line
    }
    parse({"--tau", "0"}, &err);
    CHECK(contains(err, "--tau"));
    parse({"--estimator", "vimco"}, &err);
    CHECK(contains(err, "vimco"));
    for (const char* flag : {"--eval-samples", "--epochs", "--batch-size", "--seed", "--max-steps"}) {
        parse({flag, "-1"}, &err);
        CHECK(contains(err, std::string(flag) + ": expected a whole number from "));
    }
    parse({"--samples", "100000"}, &err);  // 253 GB a step: refused by the memory estimate
    CHECK(contains(err, "--samples 100000"));
    CHECK(contains(err, "memory"));
    CHECK(parse({"--hidden", "010"}).config->hidden == 10);  // decimal, not octal
    CHECK(parse({"--seed", "18446744073709551615"}).config->seed == UINT64_MAX);

    // errors found once the data or the output directory is known
    TempDir dir;
    Config c = small_config(dir);
    c.batch_size = 301;
    CHECK_THROWS_AS(run_quietly(c), UsageError);
    c.batch_size = 50;
    c.resume = true;
    CHECK_THROWS_AS(run_quietly(c), UsageError);

    // and the program itself (when built): status 2, for those too
    const std::string data = "--data " + (dir / "data") + " --out " + (dir / "out");
    const int status = run_program("--tau 0");
    if (status == -1) {
        MESSAGE("examples/structured_output is not built: its exit statuses are not checked");
        return;
    }
    CHECK(status == 2);
    CHECK(run_program("--no-such-flag") == 2);
    CHECK(run_program("--estimator vimco") == 2);
    CHECK(run_program(data + " --resume") == 2);
    CHECK(run_program(data + " --batch-size 100000") == 2);
    CHECK(run_program("--data " + (dir / "missing")) == 2);
    CHECK(run_program(data + " --epochs -1") == 2);
    CHECK(run_program(data + " --samples 100000") == 2);
    CHECK(run_program("--help") == 0);
}

TEST_CASE("StructuredOutput: --resume refuses a checkpoint of another model") {
    TempDir dir;
    Config c = small_config(dir);
    c.epochs = 1;
    REQUIRE(run_quietly(c).status == 0);
    c.resume = true;
    c.epochs = 2;
    c.latent = Latent::categorical;
    try {
        run_quietly(c);
        FAIL("expected a UsageError");
    } catch (const UsageError& e) {
        CHECK(contains(e.what(), "--latent bernoulli"));
    }
    c.latent = Latent::bernoulli;
    c.hidden = 30;
    CHECK_THROWS_AS(run_quietly(c), UsageError);
}

TEST_CASE("StructuredOutput: a stop request ends the evaluation between chunks, and the run with 130") {
    TempDir dir;
    Config c = small_config(dir);
    c.epochs = 1;
    REQUIRE(run_quietly(c).status == 0);
    // the trained run resumed: straight to the pictures and the test evaluation, which stops
    volatile std::sig_atomic_t stop = 1;
    c.resume = true;
    c.stop_requested = &stop;
    const RunOutput r = run_quietly(c);
    CHECK(r.status == 130);
    CHECK(contains(r.out, "stopped by a signal during the test evaluation"));
    CHECK_FALSE(contains(r.out, "test_nll="));

    Generator init(3);
    const Model model(Latent::bernoulli, 20, init);
    const Array halves = Array(xt::zeros<float>({10, 392}));
    Evaluator stopping(&stop);
    CHECK_THROWS_AS(stopping.nll(model, halves, halves, 4, 1), EvaluationStopped);
    stop = 0;
    CHECK(std::isfinite(stopping.nll(model, halves, halves, 4, 1)));
}

TEST_CASE("StructuredOutput: units with NaN probabilities are an error of the Evaluator, not a finite NLL") {
    Generator init(3);
    for (Latent latent : {Latent::bernoulli, Latent::categorical}) {
        Model model(latent, 20, init);
        const Array halves = Array(xt::ones<float>({3, 392}));
        Evaluator evaluator;
        model.fc2->weight.value()(0, 0) = std::numeric_limits<float>::quiet_NaN();
        try {
            evaluator.nll(model, halves, halves, 4, 1);
            FAIL("expected std::domain_error");
        } catch (const std::domain_error& e) {
            CHECK(contains(e.what(), "the units of fc2 have non-finite probabilities"));
        }
        model.fc2->weight.value()(0, 0) = 0.0f;
        model.fc1->bias.value()(1) = std::numeric_limits<float>::infinity();
        if (latent == Latent::categorical)  // exp(inf - inf); a Bernoulli unit of logit +inf is simply 1
            CHECK_THROWS_AS(evaluator.lower_probabilities(model, halves, 2, 1), std::domain_error);
    }
}

TEST_CASE("StructuredOutput: an unwritable --out is refused before training") {
    TempDir dir;
    Config c = small_config(dir);
    detail::fail_next_write_at(detail::WriteStep::write, ENOSPC, ".write-probe");
    try {
        run_quietly(c);
        FAIL("expected a UsageError");
    } catch (const UsageError& e) {
        CHECK(contains(e.what(), "--out " + (dir / "out") + " is not writable"));
        CHECK(contains(e.what(), "No space left on device"));
    }
    detail::fail_next_write_at(detail::WriteStep::none, 0);
    CHECK(fs::is_empty(dir.path / "out"));  // no epoch ran, the probe is gone
}

TEST_CASE("StructuredOutput: a failed write of metrics or pictures keeps the old file, leaves no temporary, is no success") {
    TempDir dir;
    Config c = small_config(dir);
    c.epochs = 1;
    REQUIRE(run_quietly(c).status == 0);
    for (const char* name : {"metrics.csv", "completions.png", "curves.png", "checkpoint.npz"}) {
        CAPTURE(name);
        const std::string before = file_bytes(dir / (std::string("out/") + name));
        const std::vector<std::string> files_before = [&] {
            std::vector<std::string> v;
            for (const auto& e : fs::directory_iterator(dir.path / "out")) v.push_back(e.path().filename().string());
            std::sort(v.begin(), v.end());
            return v;
        }();
        Config again = c;
        again.out = dir / "out2";
        fs::remove_all(again.out);
        fs::copy(dir.path / "out", again.out);
        again.resume = true;
        again.epochs = 2;
        detail::fail_next_write_at(detail::WriteStep::write, ENOSPC, name);
        try {
            run_quietly(again);
            FAIL("expected a write error");
        } catch (const std::runtime_error& e) {
            CHECK(contains(e.what(), name));
            CHECK(contains(e.what(), "No space left on device"));
        }
        detail::fail_next_write_at(detail::WriteStep::none, 0);
        CHECK(file_bytes(again.out + "/" + name) == before);
        std::vector<std::string> files_after;
        for (const auto& e : fs::directory_iterator(again.out)) files_after.push_back(e.path().filename().string());
        std::sort(files_after.begin(), files_after.end());
        CHECK(files_after == files_before);  // no .tmp left
    }
}

TEST_CASE("StructuredOutput: --resume errors name the checkpoint file") {
    TempDir dir;
    Config c = small_config(dir);
    c.epochs = 1;
    REQUIRE(run_quietly(c).status == 0);
    const std::string path = dir / "out/checkpoint.npz";
    const Checkpoint full = Checkpoint::load(path);
    c.resume = true;
    c.epochs = 2;
    const auto message = [&] {
        try {
            run_quietly(c);
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    Checkpoint cut;  // without the run's progress
    for (const std::string& name : full.names()) {
        if (name == "run.progress") continue;
        if (full.dtype(name) == DType::float32) cut.put(name, full.get(name));
        else if (full.dtype(name) == DType::int64 && full.shape(name).empty()) cut.put_int(name, full.get_int(name));
        else if (full.dtype(name) == DType::int64) cut.put_ints(name, full.get_ints(name));
        else cut.put_uints(name, full.get_uints(name));
    }
    cut.save(path);
    std::string msg = message();
    INFO(msg);
    CHECK(contains(msg, path));
    CHECK(contains(msg, "run.progress"));
    // a NaN weight in a file with valid CRCs
    Checkpoint nan = full;
    Array w = nan.get("model.fc1.weight");
    w(0, 0) = std::numeric_limits<float>::quiet_NaN();
    nan.put("model.fc1.weight", w);
    nan.save(path);
    msg = message();
    CHECK(contains(msg, path));
    CHECK(contains(msg, "model.fc1.weight': holds NaN"));
    // a batch order for another data set
    Checkpoint other = full;
    std::vector<std::uint64_t> words = other.get_uints("data.batches");
    words[2] = 7;
    other.put_uints("data.batches", words);
    other.save(path);
    msg = message();
    CHECK(contains(msg, path));
}
