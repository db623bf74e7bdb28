// Pictures for the examples: an RGB canvas with rectangles, lines and text (stb_easy_font),
// saved as PNG (stb_image_write), a line plot of learning curves and a grid of digit
// completions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"
#include "examples/harness/harness.hpp"

namespace harness::images {

using tg::Array;

struct Color {
    std::uint8_t r = 0, g = 0, b = 0;
};

class Canvas {
public:
    Canvas(int width, int height, Color background);

    int width() const { return width_; }
    int height() const { return height_; }
    Color at(int x, int y) const;

    void pixel(int x, int y, Color c);  // ignored outside the canvas
    void rect(int x, int y, int w, int h, Color c);
    void line(double x0, double y0, double x1, double y1, Color c, int thickness = 1);
    // Text with its top-left corner at (x, y), each font pixel drawn as scale x scale.
    void text(int x, int y, const std::string& s, Color c, int scale = 1);
    static int text_width(const std::string& s, int scale = 1);
    static int text_height(int scale = 1);

    // Encoded in memory, then written with tg::write_file_atomic (throws tg::FileWriteError).
    void save_png(const std::string& path) const;

private:
    int width_, height_;
    std::vector<std::uint8_t> rgb_;
};

struct Series {
    std::string label;
    std::vector<double> x, y;  // non-finite y values are skipped
    Color color;
};

// A line plot with axes, ticks, labels, a title and (unless with_legend is false) a legend.
Canvas plot(const std::vector<Series>& series, const std::string& title, const std::string& x_label,
            const std::string& y_label, int width = 720, int height = 440, bool with_legend = true);
// The legend of series alone, for plots that share one (side_by_side).
Canvas legend(const std::vector<Series>& series, int height);
// Canvases left to right, top-aligned, on white.
Canvas side_by_side(const std::vector<Canvas>& parts);
// The i-th of a set of distinct colours (cycling after 20), for the series of one plot.
Color series_color(std::size_t i);

// The learning curves of a run: train_loss and the metric `column` (labelled `label`) against
// the epoch, from trained.history.
Canvas learning_curves(const Trained& trained, const std::string& column, const std::string& label,
                       const std::string& title, const std::string& y_label = "nats");

// The first image of each digit 0 to n - 1 (or the first n images if a digit is missing): the
// rows to draw.
std::vector<std::size_t> first_of_each_digit(const std::vector<std::uint8_t>& labels, std::size_t n = 8);

// One row per digit: the given upper half alone, `k` completions (the upper half over a lower
// half of pixel probabilities, in gray), and the true digit. upper and truth are [n, 392],
// completions [n * k, 392] (the k rows of digit i together). Each pixel becomes scale x scale.
Canvas completion_grid(const Array& upper, const Array& truth, const Array& completions, std::size_t k,
                       int scale = 3);

// Whole digits [n, 784] (pixel intensities or probabilities in [0, 1], gray), `columns` to a
// row in order, under a title. Each pixel becomes scale x scale.
Canvas digit_grid(const Array& digits, std::size_t columns, const std::string& title, int scale = 2);

}  // namespace harness::images
