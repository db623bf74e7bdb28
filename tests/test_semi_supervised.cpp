// The semi-supervised example: its model M2 and bounds (examples/semi_supervised.hpp) in-process,
// and the program (build/examples/semi_supervised) on small synthetic IDX files made here.
#include <algorithm>
#include <cmath>

#include "datasets/mnist.hpp"
#include "examples/semi_supervised.hpp"
#include "example_helpers.hpp"
#include "helpers.hpp"

using namespace tg;
using namespace m2;

namespace {

// Bars of 10 patterns, one per class.
mnist::DataSet bars(std::size_t n, std::uint64_t seed) { return tgtest::bars(n, seed, 10); }

std::vector<std::size_t> range(std::size_t begin, std::size_t end) {
    std::vector<std::size_t> r;
    for (std::size_t i = begin; i < end; ++i) r.push_back(i);
    return r;
}

const std::string program = std::string(TAPEGRAD_BINARY_DIR) + "/examples/semi_supervised";

// The program's exit status on bars of 10 patterns with a quick run's flags, then `args`;
// stdout and stderr in dir/stdout and dir/stderr.
int semi_program(const tgtest::TempDir& dir, const std::string& args) {
    return tgtest::run_example(program, dir, "--validation 80 --labels-per-class 2 --batch-size 50 --epochs 2 "
                                             "--hidden 32 --latent 4 --lr 3e-3 " + args, 10);
}

}  // namespace

TEST_CASE("SemiSupervised: Gumbel-Softmax's estimate of U(x) approaches the marginalized value as tau falls") {
    set_num_threads(1);
    Generator init(3);
    Model model(3, 16, 2, init);
    for (auto& p : model.classifier->parameters()) p.value() *= 3.0f;  // q(y | x) far from uniform
    const mnist::DataSet set = bars(2, 1);
    Array images;
    mnist::gather(set, {1}, images);
    const Tensor x = reshape(repeat(Tensor(images), {1000, 1}), {1000, mnist::image_pixels});  // one image, 1000 rows
    NoGradGuard no_grad;
    // mean and standard error of U over 10 batches of 1000 draws (under ASan 40,000 took minutes)
    const auto estimate = [&](Method method, float tau, std::uint64_t seed) {
        Generator gen(seed);
        double s = 0.0, s2 = 0.0, n = 0.0;
        for (int b = 0; b < 10; ++b) {
            const Array u = unlabeled_bound(model, x, method, tau, gen).value();
            for (float v : u) s += v, s2 += double(v) * v, n += 1;
        }
        const double m = s / n;
        return std::make_pair(m, std::sqrt((s2 / n - m * m) / n));
    };
    const std::pair<double, double> exact = estimate(Method::marginal, 1.0f, 10);
    const double marginal = exact.first, marginal_se = exact.second;  // plain names: clang 14 cannot capture a binding
    double previous_gap = INFINITY;
    for (const float tau : {4.0f, 1.0f, 0.1f, 0.01f}) {
        CAPTURE(tau);
        const std::pair<double, double> relaxed = estimate(Method::gs, tau, 11);
        const double gs = relaxed.first, gs_se = relaxed.second;
        const double gap = std::abs(gs - marginal), se = std::sqrt(marginal_se * marginal_se + gs_se * gs_se);
        INFO("marginal " << marginal << " +- " << marginal_se << ", gs " << gs << " +- " << gs_se);
        CHECK((gap < previous_gap || gap < 4 * se));  // falls with tau until it is lost in the noise
        if (tau == 4.0f) CHECK(gap > 10 * se);  // a relaxed y far from one-hot is another model's input
        if (tau == 0.01f) CHECK(gap < 4 * se);
        previous_gap = gap;
    }
    // straight-through's one-hot forward is an exact sample of y: its mean agrees at any tau
    const std::pair<double, double> st = estimate(Method::st_gs, 4.0f, 12);
    CHECK(std::abs(st.first - marginal) < 4 * std::sqrt(marginal_se * marginal_se + st.second * st.second));
}

namespace {

// A short training run of `method` on bars, with `unlabeled` unlabeled images, lowers the loss
// and learns the labels.
void check_short_training_run(Method method, std::size_t unlabeled_count = 180) {
    set_num_threads(1);
    const std::size_t n = 20 + unlabeled_count;
    const mnist::DataSet set = bars(n, 2);
    Array labeled_x, unlabeled_x;
    Batch b;
    mnist::gather(set, range(0, 20), labeled_x, b.labels);  // two labels per class
    mnist::gather(set, range(20, n), unlabeled_x);
    b.labeled_x = Tensor(labeled_x);
    b.unlabeled_x = Tensor(unlabeled_x);
    Generator init(1), gen(2);
    Model model(10, 32, 4, init);
    optim::Adam adam(model.parameters(), {3e-3f});
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 150; ++step) {
        const Loss loss = training_loss(model, b, method, 1.0f, 5.0f, gen);
        REQUIRE(std::isfinite(loss.objective.item()));
        (step == 0 ? first : last) = loss.labeled + loss.unlabeled;
        loss.objective.backward();
        adam.step();
        adam.zero_grad();
    }
    CHECK(last < 0.5 * first);
    mnist::DataSet unlabeled = mnist::slice(set, 20, n);
    const Scores scores = evaluate(model, unlabeled, unlabeled_count, 3);
    CHECK(scores.accuracy > 0.9);
    CHECK(scores.elbo < 0.0);
    CHECK(-scores.elbo < 0.5 * first);
}

}  // namespace

// One test case per method: a ctest each, short under the sanitizers.
TEST_CASE("SemiSupervised: a short training run lowers the loss and learns the labels, marginalizing y") {
    check_short_training_run(Method::marginal, 30);  // 10 decoder passes an image: 30 images, as long as the others
}

TEST_CASE("SemiSupervised: a short training run lowers the loss and learns the labels, with Gumbel-Softmax") {
    check_short_training_run(Method::gs);
}

TEST_CASE("SemiSupervised: a short training run lowers the loss and learns the labels, with straight-through GS") {
    check_short_training_run(Method::st_gs);
}

TEST_CASE("SemiSupervised: labels are drawn per class with the seed, and too few of a class is an error naming it") {
    const mnist::DataSet set = bars(100, 1);
    Generator a(5), b(5), c(6);
    const std::vector<std::size_t> chosen = choose_labeled(set.labels, 10, 3, a);
    REQUIRE(chosen.size() == 30);
    for (std::size_t i = 0; i < chosen.size(); ++i) CHECK(set.labels[chosen[i]] == i / 3);
    CHECK(choose_labeled(set.labels, 10, 3, b) == chosen);
    CHECK(choose_labeled(set.labels, 10, 3, c) != chosen);
    std::vector<std::size_t> sorted = chosen;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
    CHECK_THROWS_WITH_AS(choose_labeled(set.labels, 10, 11, a), doctest::Contains("class 0 has 10 training images"),
                         std::invalid_argument);
}

TEST_CASE("SemiSupervised: the program trains, reports accuracy and ELBO, and a resumed run equals an uninterrupted one") {
    for (const std::string method : {"marginal", "st-gs"}) {
        CAPTURE(method);
        const std::string flags = "--method " + method + " --anneal-rate 0.05 --anneal-every 3 --epochs 3";
        tgtest::TempDir a, b;
        REQUIRE(semi_program(a, flags) == 0);
        const std::string out = tgtest::read_bytes(a / "stdout");
        INFO(out);
        const auto rows = tgtest::metrics_without_seconds(a);
        REQUIRE(rows.size() == 4);
        CHECK(rows[0] == "epoch,step,train_loss,val_accuracy,val_elbo,tau");
        CHECK(rows[3].rfind("3,18,", 0) == 0);  // 300 unlabeled images in batches of 50
        const std::size_t acc_at = out.rfind("\ntest_accuracy="), elbo_at = out.rfind("\ntest_elbo=");
        REQUIRE(acc_at != std::string::npos);
        REQUIRE(elbo_at != std::string::npos);
        CHECK(out.find('\n', elbo_at + 1) == out.size() - 1);  // the last line
        const double accuracy = std::stod(out.substr(acc_at + 15));
        CHECK(accuracy >= 0.0);
        CHECK(accuracy <= 1.0);
        CHECK(std::stod(out.substr(elbo_at + 11)) < 0.0);

        REQUIRE(semi_program(b, flags + " --epochs 1") == 0);               // stopped at an epoch's end...
        REQUIRE(semi_program(b, flags + " --max-steps 10 --resume") == 0);  // ...then mid-epoch
        REQUIRE(semi_program(b, flags + " --resume") == 0);
        CHECK(tgtest::metrics_without_seconds(a) == tgtest::metrics_without_seconds(b));
        const std::string resumed = tgtest::read_bytes(b / "stdout");
        CHECK(resumed.substr(resumed.rfind("test_accuracy=")) == out.substr(acc_at + 1));
    }
}

TEST_CASE("SemiSupervised: bad flags exit 2 with one line naming the flag") {
    tgtest::TempDir dir;
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"--method sum", "--method"}, {"--alpha -1", "--alpha"}, {"--classes 1", "--classes"},
        {"--classes 101", "--classes"}, {"--labels-per-class 0", "--labels-per-class"},
        {"--labels-per-class 40", "--labels-per-class"}, {"--hidden 0", "--hidden"}, {"--latent 0", "--latent"},
        {"--tau 0.2", "--tau-min"}, {"--anneal-every 0", "--anneal-every"}, {"--test-images 10001", "--test-images"},
        {"--lr -1", "--lr"}, {"--batch-size 0", "--batch-size"}, {"--resume", "no checkpoint"},
        {"--data /nonexistent", "/nonexistent"}};
    for (const auto& flag_and_named : bad) {
        const std::string &args = flag_and_named.first, &named = flag_and_named.second;
        CAPTURE(args);
        CHECK(semi_program(dir, args) == 2);
        const std::string err = tgtest::read_bytes(dir / "stderr");
        CHECK(err.rfind("semi_supervised: ", 0) == 0);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);
        CHECK(err.find(named) != std::string::npos);
    }
    REQUIRE(semi_program(dir, "--epochs 1 --test-images 0") == 0);
    CHECK(semi_program(dir, "--resume --method gs") == 2);
    CHECK(tgtest::read_bytes(dir / "stderr").find("--method marginal") != std::string::npos);
}

TEST_CASE("SemiSupervised: the evaluation's chunks spread over 2 threads give the same scores bit for bit") {
    const mnist::DataSet set = bars(1200, 5);  // 500 images a chunk: 3 chunks
    Generator init(1);
    const Model model(10, 16, 4, init);
    Scores s[2];
    for (const int threads : {1, 2}) {
        set_num_threads(threads);
        s[threads - 1] = evaluate(model, set, 1200, 3);
    }
    set_num_threads(1);
    CHECK(s[0].accuracy == s[1].accuracy);
    CHECK(s[0].elbo == s[1].elbo);
}
