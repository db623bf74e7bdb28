// The discrete VAE example: its model, loss and bounds (examples/discrete_vae.hpp) in-process,
// and the program (build/examples/discrete_vae) on small synthetic IDX files made here.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <sys/wait.h>

#include "datasets/mnist.hpp"
#include "examples/discrete_vae.hpp"
#include "example_helpers.hpp"
#include "helpers.hpp"

using namespace tg;
using namespace vae;
namespace fs = std::filesystem;

namespace {

using tgtest::bars;

Array as_floats(const mnist::DataSet& set) {
    std::vector<std::size_t> all(set.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    Array images;
    mnist::gather(set, all, images);
    return images;
}

// log q(value) of variable v under logits a (of a linear model's width), in double: a unit's
// Bernoulli, or the softmax of the variable's 10 logits.
double log_q_of(const Model& model, const std::vector<double>& a, std::size_t v, std::size_t value) {
    if (model.latent == Latent::bernoulli) return -std::log1p(std::exp(value ? -a[v] : a[v]));
    double norm = 0.0;
    for (std::size_t c = 0; c < classes; ++c) norm += std::exp(a[v * classes + c]);
    return a[v * classes + value] - std::log(norm);
}

std::vector<double> prior_of(const Model& model) {
    return std::vector<double>(model.prior_logits.value().begin(), model.prior_logits.value().end());
}

// -log p(x) and the negative ELBO of one image under a linear model, summed exactly over every z,
// in double.
std::pair<double, double> exact_bounds(const Model& model, const float* x) {
    const auto& encoder = dynamic_cast<const nn::Linear&>(*model.encoder);
    const auto& decoder = dynamic_cast<const nn::Linear&>(*model.decoder);
    const Array& we = encoder.weight.value();
    const Array& wd = decoder.weight.value();
    const std::size_t w = model.width();
    std::vector<double> a(w);
    for (std::size_t o = 0; o < w; ++o) {
        a[o] = encoder.bias.value()(o);
        for (std::size_t j = 0; j < mnist::image_pixels; ++j) a[o] += double(we(o, j)) * x[j];
    }
    const std::vector<double> prior = prior_of(model);
    const bool bernoulli = model.latent == Latent::bernoulli;
    const std::size_t k = bernoulli ? 2 : classes;
    std::size_t states = 1;
    for (std::size_t v = 0; v < model.variables; ++v) states *= k;
    double p_x = 0.0, neg_elbo = 0.0;
    for (std::size_t s = 0; s < states; ++s) {
        std::vector<double> z(w, 0.0);
        double log_q = 0.0, log_p = 0.0;
        for (std::size_t v = 0, rest = s; v < model.variables; ++v, rest /= k) {
            const std::size_t value = rest % k;
            z[bernoulli ? v : v * classes + value] = bernoulli ? double(value) : 1.0;
            log_q += log_q_of(model, a, v, value);
            log_p += log_q_of(model, prior, v, value);
        }
        double log_px_z = 0.0;
        for (std::size_t j = 0; j < mnist::image_pixels; ++j) {
            double l = decoder.bias.value()(j);
            for (std::size_t o = 0; o < w; ++o) l += double(wd(j, o)) * z[o];
            log_px_z += x[j] * l - (std::max(l, 0.0) + std::log1p(std::exp(-std::abs(l))));
        }
        p_x += std::exp(log_px_z + log_p);
        neg_elbo -= std::exp(log_q) * (log_px_z + log_p - log_q);
    }
    return {-std::log(p_x), neg_elbo};
}

const std::string program = std::string(TAPEGRAD_BINARY_DIR) + "/examples/discrete_vae";

// The program's exit status on bars with a quick run's flags (after `args`, which may override
// them), run behind shell_prefix (a ulimit, say); stdout and stderr in dir/stdout and dir/stderr.
int vae_program(const tgtest::TempDir& dir, const std::string& args, const std::string& shell_prefix = "") {
    return tgtest::run_example(shell_prefix + program, dir, "--validation 80 --batch-size 40 --epochs 2 --val-samples 3 "
                                                            "--eval-samples 5 --lr 3e-3 " + args);
}

}  // namespace

TEST_CASE("DiscreteVAE: the bounds converge to the exact -log p(x) and -ELBO of a tiny model, and tighten with m") {
    for (const Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(int(latent));
        Generator init(4);
        Model model(latent, latent == Latent::bernoulli ? 4 : 2, init);  // 16 or 100 states of z
        for (auto& p : model.parameters()) p.value() *= 4.0f;             // a posterior far from uniform
        model.prior_logits.value() = tgtest::random_tensor({model.width()}, 5, -2.0f, 2.0f, false).value();  // and a learned prior
        const mnist::DataSet set = bars(3, 1);
        const Array x = as_floats(set);
        double nll = 0.0, neg_elbo = 0.0;
        for (std::size_t i = 0; i < 3; ++i) {
            const auto [exact_nll, exact_neg_elbo] = exact_bounds(model, x.data() + i * mnist::image_pixels);
            CHECK(evaluate(model, mnist::slice(set, i, i + 1), 4000, 7 + i).nll == doctest::Approx(exact_nll).epsilon(1e-3));
            CHECK(exact_nll < exact_neg_elbo);
            nll += exact_nll / 3, neg_elbo += exact_neg_elbo / 3;
        }
        const Bounds many = evaluate(model, set, 4000, 7);
        CHECK(many.nll == doctest::Approx(nll).epsilon(1e-3));
        CHECK(many.neg_elbo == doctest::Approx(neg_elbo).epsilon(2e-3));
        // the IWAE bound falls with m towards -log p(x); with m = 1 it estimates the negative ELBO
        double mean_1 = 0.0, mean_10 = 0.0;
        for (std::uint64_t seed = 0; seed < 20; ++seed) {
            mean_1 += evaluate(model, set, 1, 100 + seed).nll / 20;
            mean_10 += evaluate(model, set, 10, 200 + seed).nll / 20;
        }
        CHECK(mean_1 == doctest::Approx(neg_elbo).epsilon(0.03));
        CHECK(mean_10 < mean_1);
        CHECK(many.nll < mean_10);
    }
}

TEST_CASE("DiscreteVAE: the KL against a learned prior matches a sum over the values by hand") {
    for (const Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(int(latent));
        Generator init(6);
        Model model(latent, 3, init);
        model.prior_logits.value() = tgtest::random_tensor({model.width()}, 7, -3.0f, 3.0f, false).value();
        const Tensor logits = tgtest::random_tensor({2, model.width()}, 8, -3.0f, 3.0f, false);
        const Tensor kl = kl_to_prior(model, logits);
        REQUIRE(kl.shape() == Shape{2});
        const std::vector<double> prior = prior_of(model);
        const std::size_t k = latent == Latent::bernoulli ? 2 : classes;
        for (std::size_t r = 0; r < 2; ++r) {
            const std::vector<double> a(logits.value().begin() + r * model.width(), logits.value().begin() + (r + 1) * model.width());
            double expected = 0.0;  // sum over variables and values of q log(q / p)
            for (std::size_t v = 0; v < model.variables; ++v)
                for (std::size_t value = 0; value < k; ++value) {
                    const double log_q = log_q_of(model, a, v, value);
                    expected += std::exp(log_q) * (log_q - log_q_of(model, prior, v, value));
                }
            CHECK(kl.value()(r) == doctest::Approx(expected).epsilon(1e-5));
        }
        // the learned prior's logits get a gradient from the KL; a uniform prior is no parameter
        sum(kl_to_prior(model, logits)).backward();
        CHECK(model.prior_logits.has_grad());
        Generator other(6);
        const Model uniform(latent, 3, other, Arch::linear, Prior::uniform);
        CHECK(uniform.parameters().size() + 1 == model.parameters().size());
    }
}

TEST_CASE("DiscreteVAE: with nvil the KL's gradient is divided by NVIL's scale, as its signal is, and its value kept") {
    set_num_threads(1);
    const Tensor x(as_floats(bars(8, 2)));
    Estimator estimator("nvil");
    Generator init(3), gen(4);
    Model model(Latent::bernoulli, 6, init);
    harness::attach_estimator_parts(estimator, model, mnist::image_pixels, Discrete::bernoulli(), 6, init);
    model.prior_logits.value() = tgtest::random_tensor({model.width()}, 5, -2.0f, 2.0f, false).value();
    for (int step = 0; step < 3; ++step) {  // running statistics of a few batches: a scale above 1
        (void)training_loss(model, x, estimator, 1.0f, gen);
        model.zero_grad();
    }
    const float scale = estimator.nvil().scale();
    REQUIRE(scale > 1.5f);
    const Loss loss = training_loss(model, x, estimator, 1.0f, gen);
    loss.objective.backward();
    const Array got = model.prior_logits.grad();  // the prior's logits: the KL alone reaches them
    model.zero_grad();
    const Tensor kl = sum(kl_to_prior(model, model.encoder->forward(x)));
    mul(kl, 1.0f / float(x.shape()[0])).backward();
    const Array exact = model.prior_logits.grad();
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got(i) == doctest::Approx(exact(i) / scale).epsilon(1e-4));
    // the value: the reconstruction of the sample plus the whole KL
    CHECK(std::isfinite(loss.neg_elbo));
    CHECK(loss.neg_elbo > kl.item() / double(x.shape()[0]));
}

TEST_CASE("DiscreteVAE: training lowers the negative ELBO of bars for both architectures and priors") {
    set_num_threads(1);
    const mnist::DataSet set = bars(40, 2);
    const Tensor x(as_floats(set));
    for (const Latent latent : {Latent::bernoulli, Latent::categorical})
        for (const Arch arch : {Arch::linear, Arch::nonlinear})
            for (const Prior prior : {Prior::learned, Prior::uniform}) {
                CAPTURE(int(latent));
                CAPTURE(int(arch));
                CAPTURE(int(prior));
                Estimator estimator("gs");
                Generator init(1), gen(2);
                Model model(latent, latent == Latent::bernoulli ? 20 : 4, init, arch, prior);
                optim::Adam adam(model.parameters(), {3e-3f});
                const double before = evaluate(model, set, 20, 3).nll;
                for (int step = 0; step < 100; ++step) {
                    const Loss loss = training_loss(model, x, estimator, 1.0f, gen);
                    REQUIRE(std::isfinite(loss.neg_elbo));
                    loss.objective.backward();
                    adam.step();
                    adam.zero_grad();
                }
                CHECK(evaluate(model, set, 20, 3).nll < 0.7 * before);
                // a learned prior moved away from uniform; a uniform one stayed
                const double spread = xt::amax(xt::abs(model.prior_logits.value()))();
                CHECK((prior == Prior::learned ? spread > 0.01 : spread == 0.0));
            }
}

TEST_CASE("DiscreteVAE: a checkpoint of the nonlinear model with a learned prior round-trips, bounds and all") {
    tgtest::TempDir dir;
    const mnist::DataSet set = bars(10, 3);
    for (const Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(int(latent));
        Generator a_init(1), b_init(2);
        Model a(latent, 5, a_init, Arch::nonlinear), b(latent, 5, b_init, Arch::nonlinear);
        a.prior_logits.value() = tgtest::random_tensor({a.width()}, 9, -1.0f, 1.0f, false).value();
        const auto names = a.named_parameters();
        CHECK(names.front().first == "prior_logits");
        CHECK(names.size() == 13);  // the prior, then 3 layers of weight and bias on each side
        save_checkpoint(dir / "vae.npz", a);
        load_checkpoint(dir / "vae.npz", b);
        const Bounds from_a = evaluate(a, set, 7, 4), from_b = evaluate(b, set, 7, 4);
        CHECK(from_a.nll == from_b.nll);
        CHECK(from_a.neg_elbo == from_b.neg_elbo);
        // a model of another architecture or prior is refused, naming the entry
        Generator c_init(3);
        Model linear(latent, 5, c_init), uniform(latent, 5, c_init, Arch::nonlinear, Prior::uniform);
        CHECK_THROWS_WITH_AS(load_checkpoint(dir / "vae.npz", linear), doctest::Contains("encoder"), CheckpointError);
        CHECK_THROWS_WITH_AS(load_checkpoint(dir / "vae.npz", uniform), doctest::Contains("prior_logits"), CheckpointError);
    }
}

namespace {

// The negative ELBO of bars falls under `name`'s gradients, relaxed and on discrete samples.
void check_relaxed_training(Latent latent, const std::string& name) {
    set_num_threads(1);
    const mnist::DataSet set = bars(80, 2);
    const Tensor x(as_floats(set));
    Estimator estimator(name);
    Generator init(1), gen(2);
    Model model(latent, latent == Latent::bernoulli ? 20 : 4, init);
    optim::Adam adam(model.parameters(), {1e-2f});
    const optim::ExponentialTemperature tau(1.0f, 1e-2f, 0.5f, 50);
    const double before = evaluate(model, set, 20, 3).neg_elbo;
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 300; ++step) {
        const Loss loss = training_loss(model, x, estimator, tau.at(step), gen);
        REQUIRE(std::isfinite(loss.neg_elbo));
        (step == 0 ? first : last) = loss.neg_elbo;
        loss.objective.backward();
        adam.step();
        adam.zero_grad();
    }
    CHECK(last < 0.3 * first);
    const Bounds after = evaluate(model, set, 20, 3);  // discrete samples: the real bounds fell too
    CHECK(after.neg_elbo < 0.3 * before);
    CHECK(after.nll <= after.neg_elbo + 0.5);
}

// `name` (rebar-tuned or relax) trains the model and tunes its control variate.
void check_control_variate_training(Latent latent, const std::string& name) {
    set_num_threads(1);
    const mnist::DataSet set = bars(80, 2);
    const Tensor x(as_floats(set));
    Estimator estimator(name);
    Generator init(1), gen(2);
    Model model(latent, latent == Latent::bernoulli ? 20 : 4, init);
    const std::size_t own = model.parameters().size();
    harness::attach_estimator_parts(estimator, model, mnist::image_pixels, discrete_kind(model), model.width(), init);
    REQUIRE(estimator.control_variate());
    CHECK(model.parameters().size() == own + estimator.control_variate()->parameters().size());
    optim::Adam adam(model.parameters(), {1e-2f});
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 150; ++step) {
        const Loss loss = training_loss(model, x, estimator, 1.0f, gen);
        REQUIRE(std::isfinite(loss.neg_elbo));
        if (step < 10) first += loss.neg_elbo / 10;
        if (step >= 140) last += loss.neg_elbo / 10;
        loss.objective.backward();
        adam.step();
        adam.zero_grad();
    }
    CHECK(last < 0.6 * first);
    CHECK(estimator.control_variate()->eta() != 1.0f);  // tuned away from where it started
    CHECK(estimator.control_variate()->tau() != doctest::Approx(0.5f).epsilon(1e-6));
}

}  // namespace

// One test case per latent kind and estimator below: a ctest each, short under the sanitizers.
TEST_CASE("DiscreteVAE: training lowers the negative ELBO of bars, Bernoulli latents, relaxed and straight-through") {
    for (const std::string name : {"gs", "st-gs"}) {
        CAPTURE(name);
        check_relaxed_training(Latent::bernoulli, name);
    }
}

TEST_CASE("DiscreteVAE: training lowers the negative ELBO of bars, categorical latents, relaxed and straight-through") {
    for (const std::string name : {"gs", "st-gs"}) {
        CAPTURE(name);
        check_relaxed_training(Latent::categorical, name);
    }
}

TEST_CASE("DiscreteVAE: rebar-tuned trains the Bernoulli model and, by the variance gradient, its control variate") {
    check_control_variate_training(Latent::bernoulli, "rebar-tuned");
}

TEST_CASE("DiscreteVAE: rebar-tuned trains the categorical model and, by the variance gradient, its control variate") {
    check_control_variate_training(Latent::categorical, "rebar-tuned");
}

TEST_CASE("DiscreteVAE: relax trains the Bernoulli model and, by the variance gradient, its control variate") {
    check_control_variate_training(Latent::bernoulli, "relax");
}

TEST_CASE("DiscreteVAE: relax trains the categorical model and, by the variance gradient, its control variate") {
    check_control_variate_training(Latent::categorical, "relax");
}

namespace {

// The program with `kind`'s flags writes its files and bounds, and resumes bit for bit.
void check_program_run(const std::string& kind) {
    const std::string flags = kind + " --anneal-rate 0.05 --anneal-every 3 --tau-min 0.3 --epochs 3 --arch nonlinear "
                                     "--lr-schedule plateau --lr-patience 0";
    tgtest::TempDir a, b;
    REQUIRE(vae_program(a, flags) == 0);
    const std::string out = tgtest::read_bytes(a / "stdout");
    INFO(out);
    for (const char* name : {"metrics.csv", "checkpoint.npz", "best.npz", "reconstructions.png", "samples.png", "curves.png"})
        CHECK(fs::exists(a.path / "out" / name));
    CHECK(tgtest::read_bytes(a / "out/samples.png").compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    const auto rows = tgtest::metrics_without_seconds(a);
    REQUIRE(rows.size() == 4);
    CHECK(rows[0] == "epoch,step,train_loss,val_neg_elbo,val_nll,tau,lr");
    CHECK(rows[3].rfind("3,24,", 0) == 0);  // 320 images in batches of 40
    const std::size_t nll_at = out.rfind("\ntest_nll="), elbo_at = out.rfind("\ntest_neg_elbo=");
    REQUIRE(nll_at != std::string::npos);
    REQUIRE(elbo_at != std::string::npos);
    CHECK(out.find('\n', nll_at + 1) == out.size() - 1);  // the last line
    CHECK(std::stod(out.substr(nll_at + 10)) <= std::stod(out.substr(elbo_at + 15)) + 1.0);

    // relax's control variate (eta, log tau, its network) is the model's, so in the checkpoint
    CHECK((tgtest::read_bytes(a / "out/checkpoint.npz").find("control_variate") != std::string::npos) ==
          (kind == "--estimator relax"));
    REQUIRE(vae_program(b, flags + " --epochs 1") == 0);           // stopped at an epoch's end...
    REQUIRE(vae_program(b, flags + " --max-steps 13 --resume") == 0);  // ...then mid-epoch
    CHECK(tgtest::read_bytes(b / "stdout").find("resumed from") != std::string::npos);
    REQUIRE(vae_program(b, flags + " --resume") == 0);
    CHECK(tgtest::metrics_without_seconds(a) == tgtest::metrics_without_seconds(b));
    CHECK(tgtest::read_bytes(b / "stdout").substr(tgtest::read_bytes(b / "stdout").rfind("test_neg_elbo=")) ==
          out.substr(elbo_at + 1));
}

}  // namespace

// One test case per latent kind and estimator: a ctest each, short under the sanitizers.
// sf's baseline and nvil's running statistics are in the checkpoint too (keep_estimator_state).
TEST_CASE("DiscreteVAE: the program writes metrics, pictures and bounds, and resumes bit for bit, Bernoulli gs") {
    check_program_run("--latent bernoulli");
}

TEST_CASE("DiscreteVAE: the program writes metrics, pictures and bounds, and resumes bit for bit, categorical st-gs") {
    check_program_run("--latent categorical --estimator st-gs");
}

TEST_CASE("DiscreteVAE: the program writes metrics, pictures and bounds, and resumes bit for bit, relax") {
    check_program_run("--estimator relax");
}

TEST_CASE("DiscreteVAE: the program writes metrics, pictures and bounds, and resumes bit for bit, sf") {
    check_program_run("--estimator sf");
}

TEST_CASE("DiscreteVAE: the program writes metrics, pictures and bounds, and resumes bit for bit, categorical nvil") {
    check_program_run("--latent categorical --estimator nvil");
}

TEST_CASE("DiscreteVAE: bad flags and a checkpoint of another model are refused with one line naming the flag") {
    tgtest::TempDir dir;
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"--latent gaussian", "gaussian"}, {"--estimator vimcoo", "vimcoo"}, {"--latent categorical --estimator arm", "does not apply to categorical"}, {"--tau 0", "--tau"}, {"--tau 0.2", "--tau-min"},
        {"--estimator reinmax", "takes tau >= 1, but the annealed tau goes down to --tau-min 0.5 (give --tau-min 1"},
        {"--lr -1", "--lr"}, {"--anneal-every 0", "--anneal-every"}, {"--eval-samples 20000", "--eval-samples"},
        {"--val-samples -1", "--val-samples"}, {"--validation 0", "--validation"}, {"--batch-size 321", "--batch-size"},
        {"--optimizer rmsprop", "--optimizer"}, {"--momentum 1", "--momentum"},
        {"--epochs x", "--epochs"}, {"--resume", "no checkpoint"}, {"--data /nonexistent", "/nonexistent"},
        // values a float cannot hold as given, named with their flag
        {"--lr 1e-50", "--lr: must be at least 1.1754944e-38 in magnitude, the smallest normal float (it would be "
                       "stored as 0), got 1e-50"},
        {"--lr 1e39", "--lr: must be at most 3.4028235e+38 (the largest float), got 1e39"},
        {"--tau 1e-45", "got 1e-45"}, {"--tau-min 1e-50", "--tau-min"}, {"--anneal-rate 1e-45", "--anneal-rate"},
        {"--optimizer sgd --momentum 0.99999999",
         "--momentum: must be in [0, 1), got 0.99999999, which a float rounds to 1"},
        {"--arch deep", "--arch"}, {"--prior gaussian", "--prior"}, {"--lr-schedule cosine", "--lr-schedule"},
        {"--lr-factor 1", "--lr-factor: must be in [0, 1), got 1"}, {"--lr-factor 0", "--lr-factor: must be positive, got 0"},
        {"--lr-patience -1", "--lr-patience"}, {"--lr-step 0", "--lr-step"}, {"--min-lr -1", "--min-lr"},
        {"--lr-schedule step --min-lr 0.01", "--min-lr 0.01 is above --lr 0.003"}, {"--test-model first", "--test-model"}};
    for (const auto& flag_and_named : bad) {
        const std::string &args = flag_and_named.first, &named = flag_and_named.second;  // clang: no CAPTURE of a binding
        CAPTURE(args);
        CHECK(vae_program(dir, args) == 2);
        const std::string err = tgtest::read_bytes(dir / "stderr");
        CHECK(err.rfind("discrete_vae: ", 0) == 0);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);
        CHECK(err.find(named) != std::string::npos);
    }
    REQUIRE(vae_program(dir, "--epochs 1 --eval-samples 0") == 0);
    CHECK(vae_program(dir, "--resume --latent categorical") == 2);
    CHECK(tgtest::read_bytes(dir / "stderr").find("--latent bernoulli") != std::string::npos);
    // the flags the checkpoint fixes, beyond the model's: refused, naming the flag and both values
    for (const std::string flag : {"--lr 0.01", "--tau 0.9", "--anneal-rate 0.001", "--tau-min 0.25",
                                    "--anneal-every 7", "--optimizer sgd", "--validation 150", "--arch nonlinear",
                                    "--prior uniform"}) {
        CAPTURE(flag);
        CHECK(vae_program(dir, "--epochs 2 --resume " + flag) == 2);
        const std::string err = tgtest::read_bytes(dir / "stderr");
        CHECK(err.find("was made with " + flag.substr(0, flag.find(' '))) != std::string::npos);
        CHECK(err.find(", not " + flag.substr(flag.find(' ') + 1)) != std::string::npos);
    }
}

TEST_CASE("DiscreteVAE: under a memory limit (ulimit -v) a run ends, out of memory with one line and status 2") {
    tgtest::check_memory_limits("discrete_vae", [](const std::string& shell_prefix) {
        tgtest::TempDir dir;
        const int status = vae_program(dir, "--epochs 1", shell_prefix);
        return std::make_pair(status, tgtest::read_bytes(dir / "stderr"));
    });
}

TEST_CASE("DiscreteVAE: the evaluation's chunks spread over 2 threads give the same bounds bit for bit") {
    const mnist::DataSet set = bars(9, 4);
    for (const Latent latent : {Latent::bernoulli, Latent::categorical}) {
        CAPTURE(int(latent));
        Generator init(5);
        const Model model(latent, 5, init);
        Bounds b[2];
        for (const int threads : {1, 2}) {
            set_num_threads(threads);
            b[threads - 1] = evaluate(model, set, 500, 6);  // 4 images a chunk: 3 chunks
        }
        set_num_threads(1);
        CHECK(b[0].nll == b[1].nll);
        CHECK(b[0].neg_elbo == b[1].neg_elbo);
    }
}
