// scripts/table1, the grid of Table 1, on a tiny synthetic data set: one epoch, two estimators
// (one of which applies to a single row), every row, one seed, two runs at a time.
#include <regex>
#include <string>

#include "example_helpers.hpp"
#include "helpers.hpp"

namespace {

// The exit status of scripts/table1 with args on dir's bars (stdout and stderr in dir/stdout and
// dir/stderr), with quick runs' flags for every program.
int table1(const tgtest::TempDir& dir, const std::string& args) {
    tgtest::write_bars(dir);
    const std::string cmd = std::string("TAPEGRAD_BUILD_DIR=") + TAPEGRAD_BINARY_DIR + " " + TAPEGRAD_SOURCE_DIR +
                            "/scripts/table1 --data " + (dir / "data") + " --out " + (dir / "grid") + " --seeds 1 " +
                            "--estimators gs,arm --jobs 2 " + args +
                            " -- --validation 80 --batch-size 40 --val-samples 2 --eval-samples 3 >" + (dir / "stdout") +
                            " 2>" + (dir / "stderr");
    const int raw = std::system(cmd.c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("Table1: the grid trains every row, marks what does not apply, writes table1.md and curves.png, and resumes") {
    tgtest::TempDir dir;
    REQUIRE(table1(dir, "--epochs 1") == 0);
    INFO(tgtest::read_bytes(dir / "stderr"));
    const std::string md = tgtest::read_bytes(dir / "grid/table1.md");
    INFO(md);
    CHECK(md.find("| | Gumbel-S. | arm |\n|---|---|---|\n") != std::string::npos);
    const std::string number = "[0-9]+\\.[0-9]{2} \\(1\\)";
    for (const auto& [row, paper, arm] : {std::tuple<std::string, std::string, std::string>{"SBN Bernoulli", "58.5", "n/a"},
                                          {"SBN categorical", "59.0", "n/a"}, {"VAE Bernoulli", "105.0", number},
                                          {"VAE categorical", "101.5", "n/a"}}) {
        CAPTURE(row);
        CHECK(md.find("| " + row + " (paper) | " + paper + " |  |\n") != std::string::npos);
        CHECK(std::regex_search(md, std::regex("\\| " + row + " \\(tapegrad\\) \\| " + number + " \\| " + arm + " \\|\n")));
    }
    const std::string log = tgtest::read_bytes(dir / "grid/vae-bernoulli/gs/seed-0/log.txt");
    CHECK(count(log, "test_nll=") == 1);
    CHECK(tgtest::read_bytes(dir / "grid/curves.png").substr(0, 8) == "\x89PNG\r\n\x1a\n");

    // again: nothing runs; with more epochs every run that applies resumes
    REQUIRE(table1(dir, "--epochs 1") == 0);
    CHECK(tgtest::read_bytes(dir / "grid/vae-bernoulli/gs/seed-0/log.txt") == log);
    REQUIRE(table1(dir, "--epochs 2") == 0);
    for (const char* run : {"sbn-bernoulli/gs", "sbn-categorical/gs", "vae-bernoulli/gs", "vae-bernoulli/arm",
                            "vae-categorical/gs"}) {
        CAPTURE(run);
        const std::string resumed = tgtest::read_bytes(dir / ("grid/" + std::string(run) + "/seed-0/log.txt"));
        CHECK(count(resumed, "resumed from") == 1);
        CHECK(count(resumed, "test_nll=") == 2);
    }
    CHECK(tgtest::read_bytes(dir / "grid/table1.md").find("after 2 epochs") != std::string::npos);

    // --table-only: the same table from the finished runs, nothing run
    const std::string resumed = tgtest::read_bytes(dir / "grid/vae-bernoulli/gs/seed-0/log.txt");
    const std::string before = tgtest::read_bytes(dir / "grid/table1.md");
    REQUIRE(table1(dir, "--epochs 2 --table-only") == 0);
    const std::string after = tgtest::read_bytes(dir / "grid/table1.md");
    CHECK(after.find("--table-only from the finished runs") != std::string::npos);
    CHECK(after.substr(0, after.find("Generated")) == before.substr(0, before.find("Generated")));
    CHECK(tgtest::read_bytes(dir / "grid/vae-bernoulli/gs/seed-0/log.txt") == resumed);
}

TEST_CASE("Table1: reinmax runs at a fixed tau = 1, which it needs, where the programs anneal tau to 0.5") {
    tgtest::TempDir dir;
    REQUIRE(table1(dir, "--rows sbn-bernoulli,vae-bernoulli --estimators reinmax --epochs 1") == 0);
    INFO(tgtest::read_bytes(dir / "stderr"));
    for (const char* row : {"sbn-bernoulli", "vae-bernoulli"}) {
        CAPTURE(row);
        const std::string log = tgtest::read_bytes(dir / ("grid/" + std::string(row) + "/reinmax/seed-0/log.txt"));
        CHECK(log.find("tau 1.0000") != std::string::npos);
        CHECK(count(log, "test_nll=") == 1);
    }
}

TEST_CASE("Table1: bad options are refused with exit status 2, naming the option") {
    tgtest::TempDir dir;
    for (const auto& [args, named] : {std::pair<std::string, std::string>{"--epochs 0", "--epochs"},
                                      {"--rows sbn-gaussian", "sbn-gaussian"}, {"--jobs x", "--jobs"},
                                      {"--sshloginfile /nonexistent", "/nonexistent"}, {"--frobnicate", "--frobnicate"},
                                      {"--table-only --out /nonexistent/grid", "--table-only: no grid in"}}) {
        CAPTURE(args);
        CHECK(table1(dir, args) == 2);
        CHECK(tgtest::read_bytes(dir / "stderr").find(named) != std::string::npos);
    }
}

TEST_CASE("Table1: plot_curves draws metrics.csv files and names the file, line or series it cannot use") {
    tgtest::TempDir dir;
    tgtest::write_bytes(dir / "good.csv", "epoch,step,val_nll\n1,10,90.5\n2,20,80.25\n3,30,79\n");
    tgtest::write_bytes(dir / "ragged.csv", "epoch,step,val_nll\n1,10,90.5\n2,20\n");
    const auto plot = [&](const std::string& args) {
        const std::string cmd = std::string(TAPEGRAD_BINARY_DIR) + "/examples/plot_curves --out " + (dir / "c.png") +
                                " " + args + " >" + (dir / "stdout") + " 2>" + (dir / "stderr");
        const int raw = std::system(cmd.c_str());
        return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    };
    REQUIRE(plot("'A row/gs=" + (dir / "good.csv") + "' 'A row/st=" + (dir / "good.csv") + "' 'B/gs=" +
                 (dir / "good.csv") + "'") == 0);
    CHECK(tgtest::read_bytes(dir / "c.png").substr(0, 8) == "\x89PNG\r\n\x1a\n");
    for (const auto& [args, named] :
         {std::pair<std::string, std::string>{"A/gs=" + (dir / "missing.csv"), "cannot read " + (dir / "missing.csv")},
          {"A/gs=" + (dir / "ragged.csv"), (dir / "ragged.csv") + ":3: expected 3 numbers"},
          {"--column tau A/gs=" + (dir / "good.csv"), "no column 'epoch' or 'tau'"},
          {"no-panel=" + (dir / "good.csv"), "expected PANEL/LABEL=FILE"}}) {
        CAPTURE(args);
        CHECK(plot(args) == 2);
        CHECK(tgtest::read_bytes(dir / "stderr").find(named) != std::string::npos);
    }
}
