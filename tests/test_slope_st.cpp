// slope-st's annealed slope (Table 1's Annealed ST) in both programs: the schedule of --slope,
// --slope-growth and --slope-max (examples/harness/annealing.hpp), its column, its resume and
// its flags, on the small synthetic IDX files of example_helpers.hpp.
#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "example_helpers.hpp"
#include "examples/harness/annealing.hpp"
#include "helpers.hpp"

namespace {

const std::string structured = std::string(TAPEGRAD_BINARY_DIR) + "/examples/structured_output";
const std::string vae = std::string(TAPEGRAD_BINARY_DIR) + "/examples/discrete_vae";

// 320 training images in batches of 70: 5 steps an epoch, the last one smaller.
const std::string quick = " --validation 80 --batch-size 70 --epochs 3 --val-samples 2 --eval-samples 4 --lr 3e-3 ";

int run(const std::string& program, const tgtest::TempDir& dir, const std::string& args) {
    return tgtest::run_example(program + (program == structured ? " --hidden 20" : ""), dir, quick + args);
}

std::string err_of(const tgtest::TempDir& dir) { return tgtest::read_bytes(dir / "stderr"); }
std::string out_of(const tgtest::TempDir& dir) { return tgtest::read_bytes(dir / "stdout"); }

// Column `name` of dir/out/metrics.csv, one number per epoch.
std::vector<double> column(const tgtest::TempDir& dir, const std::string& name) {
    const std::vector<std::string> rows = tgtest::metrics_without_seconds(dir);
    std::vector<double> values;
    std::size_t at = 0;
    for (std::size_t r = 0; r < rows.size(); ++r) {
        std::stringstream fields(rows[r]);
        std::string field;
        for (std::size_t i = 0; std::getline(fields, field, ','); ++i) {
            if (r == 0 && field == name) at = i + 1;
            if (r > 0 && i + 1 == at) values.push_back(std::strtod(field.c_str(), nullptr));
        }
    }
    return values;
}

// A slope-st run (flags) stopped at an epoch's end and mid-epoch, resumed each time, equals the
// run made at once: metrics (slope column included) and test figures.
void check_resumed_equals_uninterrupted(const std::string& program, const std::string& flags) {
    tgtest::TempDir a, b;
    REQUIRE(run(program, a, flags) == 0);
    REQUIRE(run(program, b, flags + " --epochs 1") == 0);
    REQUIRE(run(program, b, flags + " --max-steps 7 --resume") == 0);
    CHECK(out_of(b).find("resumed from") != std::string::npos);
    REQUIRE(run(program, b, flags + " --resume") == 0);
    CHECK(tgtest::metrics_without_seconds(a) == tgtest::metrics_without_seconds(b));
    // the results: the last lines, after the speed's
    const std::string out_a = out_of(a), out_b = out_of(b);
    const std::size_t results_a = out_a.find('\n', out_a.rfind("train_steps_per_s="));
    const std::size_t results_b = out_b.find('\n', out_b.rfind("train_steps_per_s="));
    REQUIRE(results_a != std::string::npos);
    REQUIRE(results_b != std::string::npos);
    CHECK(out_a.find("test_nll=", results_a) != std::string::npos);
    CHECK(out_a.substr(results_a) == out_b.substr(results_b));
}

// --resume of a slope-st checkpoint with another --slope-growth is refused naming both values;
// a gs run's identity leaves the slope's flags out.
void check_resume_refuses_other_growth(const std::string& program) {
    tgtest::TempDir dir, gs;
    REQUIRE(run(program, dir, "--estimator slope-st --epochs 1") == 0);
    CHECK(run(program, dir, "--estimator slope-st --epochs 2 --resume --slope-growth 0.1") == 2);
    CHECK(err_of(dir).find("was made with --slope-growth 0.04, not 0.1") != std::string::npos);
    CHECK(run(program, dir, "--estimator slope-st --epochs 2 --resume --slope 2 --slope-max 6") == 2);
    CHECK(err_of(dir).find("was made with --slope 1, not 2") != std::string::npos);
    CHECK(run(program, dir, "--estimator slope-st --epochs 2 --resume") == 0);
    REQUIRE(run(program, gs, "--estimator gs --epochs 1") == 0);
    CHECK(run(program, gs, "--estimator gs --epochs 2 --resume --slope-growth 0.1") == 0);
}

}  // namespace

TEST_CASE("StructuredOutput: slope-st's slope is --slope in the first epoch, grows by --slope-growth an epoch, and "
          "stops at --slope-max") {
    const harness::SlopeAnnealing paper;  // the reimplementations': from 1, +0.04 an epoch, up to 5
    CHECK(paper.slope == 1.0f);
    CHECK(harness::slope_at(paper, 0, 500) == 1.0f);
    CHECK(harness::slope_at(paper, 499, 500) == 1.0f);
    CHECK(harness::slope_at(paper, 500, 500) == doctest::Approx(1.04));
    CHECK(harness::slope_at(paper, 50 * 500 + 3, 500) == doctest::Approx(3.0));
    CHECK(harness::slope_at(paper, 100 * 500 - 1, 500) == doctest::Approx(4.96));
    CHECK(harness::slope_at(paper, 100 * 500, 500) == 5.0f);
    CHECK(harness::slope_at(paper, 1000000 * 500, 500) == 5.0f);
    const harness::SlopeAnnealing fixed{2.5f, 0.0f, 5.0f};
    CHECK(harness::slope_at(fixed, 1000000, 7) == 2.5f);
}

TEST_CASE("StructuredOutput: slope-st trains and shows the annealed slope, and a resumed run equals an uninterrupted one") {
    tgtest::TempDir grown, fixed;
    REQUIRE(run(structured, grown, "--estimator slope-st --slope-growth 0.5 --slope-max 1.8") == 0);
    const std::vector<double> slopes = column(grown, "slope");
    REQUIRE(slopes.size() == 3);
    CHECK(slopes[0] == 1.0);
    CHECK(slopes[1] == 1.5);
    CHECK(float(slopes[2]) == 1.8f);  // capped (metrics.csv holds floats to 9 digits)
    CHECK(out_of(grown).find("slope 1.50") != std::string::npos);  // on the epoch line
    // the slope is the estimator's: the same run at a fixed slope matches for one epoch, then not
    REQUIRE(run(structured, fixed, "--estimator slope-st --slope-growth 0") == 0);
    CHECK(column(fixed, "slope") == std::vector<double>{1.0, 1.0, 1.0});
    const std::vector<double> loss_grown = column(grown, "train_loss"), loss_fixed = column(fixed, "train_loss");
    REQUIRE(loss_fixed.size() == 3);
    CHECK(loss_grown[0] == loss_fixed[0]);
    CHECK(loss_grown[1] != loss_fixed[1]);
    // other estimators have no slope column
    tgtest::TempDir gs;
    REQUIRE(run(structured, gs, "--estimator gs --epochs 1") == 0);
    CHECK(column(gs, "slope").empty());
    CHECK(tgtest::metrics_without_seconds(gs)[0] == "epoch,step,train_loss,val_nll,tau,lr");

    check_resumed_equals_uninterrupted(structured, "--estimator slope-st --latent categorical --slope-growth 0.5 "
                                                   "--slope-max 1.8");
}

TEST_CASE("StructuredOutput: bad slope flags are refused naming the flag, and --resume refuses another --slope-growth") {
    tgtest::TempDir dir;
    for (const auto& args_and_named : std::vector<std::pair<std::string, std::string>>{
             {"--slope 0", "--slope: must be positive"}, {"--slope -1", "--slope"}, {"--slope nan", "--slope"},
             {"--slope-growth -0.1", "--slope-growth"}, {"--slope-growth inf", "--slope-growth"},
             {"--slope-max 0", "--slope-max"}, {"--slope-max 1e39", "--slope-max"}, {"--slope x", "--slope"},
             {"--slope 6", "--slope 6 is above --slope-max 5"},
             {"--estimator slope-st --slope-max 0.5", "--slope 1 is above --slope-max 0.5"}}) {
        const std::string &args = args_and_named.first, &named = args_and_named.second;  // clang: no CAPTURE of a binding
        CAPTURE(args);
        CHECK(run(structured, dir, args) == 2);
        const std::string err = err_of(dir);
        CHECK(err.rfind("structured_output: ", 0) == 0);
        CHECK(std::count(err.begin(), err.end(), '\n') == 1);
        CHECK(err.find(named) != std::string::npos);
    }
    check_resume_refuses_other_growth(structured);
}

TEST_CASE("DiscreteVAE: slope-st anneals its slope, a resumed run equals an uninterrupted one, and --resume refuses "
          "other slope flags") {
    tgtest::TempDir dir;
    REQUIRE(run(vae, dir, "--estimator slope-st --slope 2 --slope-growth 1 --slope-max 3.5") == 0);
    CHECK(column(dir, "slope") == std::vector<double>{2.0, 3.0, 3.5});
    CHECK(tgtest::metrics_without_seconds(dir)[0] == "epoch,step,train_loss,val_neg_elbo,val_nll,tau,lr,slope");
    CHECK(run(vae, dir, "--slope-growth -1") == 2);
    CHECK(err_of(dir).find("--slope-growth") != std::string::npos);
    check_resumed_equals_uninterrupted(vae, "--estimator slope-st --latent categorical --slope-growth 0.5");
    check_resume_refuses_other_growth(vae);
}
