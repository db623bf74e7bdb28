// Shared by the tests of the examples' programs: small synthetic IDX data sets, running a
// program on them, and its metrics.csv.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <sys/wait.h>

#include "datasets/mnist.hpp"
#include "helpers.hpp"

namespace tgtest {

// n binary images of `classes` bar patterns (label = pattern: a band of 4 rows for the first
// half of the patterns, of 4 columns for the others, at one of classes / 2 places), with 2% of
// the pixels flipped: a data set a small model can learn and tell apart.
inline tg::mnist::DataSet bars(std::size_t n, std::uint64_t seed, std::size_t classes = 8) {
    tg::Generator gen(seed);
    tg::mnist::DataSet set{std::vector<std::uint8_t>(n * tg::mnist::image_pixels), std::vector<std::uint8_t>(n)};
    const std::size_t places = classes / 2, spacing = 24 / places;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t pattern = i % classes, band = 4 + spacing * (pattern % places);
        set.labels[i] = static_cast<std::uint8_t>(pattern);
        for (std::size_t p = 0; p < tg::mnist::image_pixels; ++p) {
            const std::size_t line = pattern < places ? p / 28 : p % 28;
            const bool on = line >= band && line < band + 4;
            set.pixels[i * tg::mnist::image_pixels + p] = on != (gen.uniform() < 0.02f) ? 255 : 0;
        }
    }
    return set;
}

// dir/data, unless it exists: IDX files of 400 training images of bars of `classes` patterns (the
// programs hold the last 80 out for validation with --validation 80) and 80 test images.
inline void write_bars(const TempDir& dir, std::size_t classes = 8) {
    namespace fs = std::filesystem;
    if (!fs::exists(dir.path / "data")) {
        fs::create_directories(dir.path / "data");
        for (const auto& [images, labels, n] :
             {std::make_tuple(tg::mnist::train_images_file, tg::mnist::train_labels_file, 400),
              std::make_tuple(tg::mnist::test_images_file, tg::mnist::test_labels_file, 80)}) {
            const tg::mnist::DataSet set = bars(std::size_t(n), std::size_t(n), classes);
            tg::mnist::write_idx(dir / ("data/" + std::string(images)), {{set.size(), 28, 28}, set.pixels});
            tg::mnist::write_idx(dir / ("data/" + std::string(labels)), {{set.size()}, set.labels});
        }
    }
}

// The exit status of `command --data dir/data --out dir/out args` (stdout and stderr in
// dir/stdout and dir/stderr), on the data of write_bars(dir, classes).
inline int run_example(const std::string& command, const TempDir& dir, const std::string& args, std::size_t classes = 8) {
    write_bars(dir, classes);
    const std::string cmd = command + " --data " + (dir / "data") + " --out " + (dir / "out") + " " + args + " >" +
                            (dir / "stdout") + " 2>" + (dir / "stderr");
    const int raw = std::system(cmd.c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
}

// dir/out/metrics.csv without its wall-clock columns (the last two).
inline std::vector<std::string> metrics_without_seconds(const TempDir& dir) {
    std::istringstream csv(read_bytes(dir / "out/metrics.csv"));
    std::vector<std::string> rows;
    for (std::string line; std::getline(csv, line);) rows.push_back(line.substr(0, line.rfind(',', line.rfind(',') - 1)));
    return rows;
}

}  // namespace tgtest
