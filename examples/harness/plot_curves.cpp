// plot_curves: one column of several metrics.csv files (harness::train's) against the epoch, a
// panel for each group of runs, side by side in one PNG: scripts/table1's curves.png.
//
//   plot_curves --out curves.png --column val_nll
//       "SBN Bernoulli/gs=runs/table1/sbn-bernoulli/gs/seed-0/metrics.csv"
//       "SBN Bernoulli/st=runs/table1/sbn-bernoulli/st/seed-0/metrics.csv"
//       "VAE Bernoulli/gs=runs/table1/vae-bernoulli/gs/seed-0/metrics.csv"   (one command line)
//
// Each series is PANEL/LABEL=FILE; panels appear in the order of their first series.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "examples/harness/harness.hpp"
#include "examples/harness/images.hpp"

namespace {

using harness::UsageError;
namespace img = harness::images;

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> cells;
    std::stringstream in(line);
    for (std::string cell; std::getline(in, cell, ',');) cells.push_back(cell);
    return cells;
}

// The epoch and `column` of each row of a metrics.csv, from epoch `from` on.
img::Series read_series(const std::string& path, const std::string& column, double from) {
    std::ifstream in(path);
    if (!in) throw UsageError("cannot read " + path);
    std::string line;
    if (!std::getline(in, line)) throw UsageError(path + " is empty: expected a metrics.csv header");
    const std::vector<std::string> header = split(line);
    std::size_t epoch = header.size(), value = header.size();
    for (std::size_t i = 0; i < header.size(); ++i) {
        if (header[i] == "epoch") epoch = i;
        if (header[i] == column) value = i;
    }
    if (epoch == header.size() || value == header.size())
        throw UsageError(path + " has no column 'epoch' or '" + column + "' (its header: " + line + ")");
    img::Series s;
    for (std::size_t number = 2; std::getline(in, line); ++number) {
        const std::vector<std::string> cells = split(line);
        double e = NAN, v = NAN;
        try {
            if (cells.size() != header.size()) throw std::invalid_argument("cells");
            e = std::stod(cells[epoch]), v = std::stod(cells[value]);
        } catch (const std::exception&) {
            throw UsageError(path + ":" + std::to_string(number) + ": expected " + std::to_string(header.size()) +
                             " numbers separated by commas, got '" + line + "'");
        }
        if (e >= from) s.x.push_back(e), s.y.push_back(v);
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"One column of several metrics.csv files against the epoch, a panel per group, in one PNG."};
    std::string out, column = "val_nll", y_label = "nats";
    std::vector<std::string> specs;
    double from = 1;
    app.add_option("--out", out, "the PNG to write (atomically)")->required();
    app.add_option("--column", column, "the column to draw")->capture_default_str();
    app.add_option("--y-label", y_label, "the label of the vertical axis")->capture_default_str();
    app.add_option("--from-epoch", from, "draw the epochs from this one on (the first are far above the rest)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("series", specs, "PANEL/LABEL=FILE: a metrics.csv drawn as LABEL in the panel PANEL")->required();
    if (const auto status = harness::parse(app, argc, argv)) return *status;
    try {
        std::vector<std::string> titles;
        std::vector<std::vector<img::Series>> panels;
        for (const std::string& spec : specs) {
            const std::size_t slash = spec.find('/'), equals = spec.find('=', slash == std::string::npos ? 0 : slash);
            if (slash == std::string::npos || equals == std::string::npos || slash == 0 || equals == slash + 1)
                throw UsageError("series '" + spec + "': expected PANEL/LABEL=FILE");
            const std::string title = spec.substr(0, slash);
            std::size_t p = 0;
            while (p < titles.size() && titles[p] != title) ++p;
            if (p == titles.size()) titles.push_back(title), panels.emplace_back();
            img::Series s = read_series(spec.substr(equals + 1), column, from);
            s.label = spec.substr(slash + 1, equals - slash - 1);
            s.color = img::series_color(panels[p].size());
            panels[p].push_back(std::move(s));
        }
        std::vector<img::Canvas> canvases;
        for (std::size_t p = 0; p < panels.size(); ++p)
            canvases.push_back(img::plot(panels[p], titles[p], "epoch", y_label, 560, 420));
        img::side_by_side(canvases).save_png(out);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "plot_curves: %s\n", e.what());
        return 2;
    }
}
