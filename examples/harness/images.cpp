#include "examples/harness/images.hpp"

#include <stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

#include "serialize/atomic_file.hpp"

// Header-only, all static: compiled here and nowhere else.
#include <stb_easy_font.h>

namespace harness::images {

using tg::Array;

Canvas::Canvas(int width, int height, Color background) : width_(width), height_(height) {
    if (width <= 0 || height <= 0)
        throw std::invalid_argument("Canvas: size must be positive, got " + std::to_string(width) + "x" +
                                    std::to_string(height));
    rgb_.resize(static_cast<std::size_t>(width) * height * 3);
    for (std::size_t i = 0; i < rgb_.size(); i += 3) {
        rgb_[i] = background.r;
        rgb_[i + 1] = background.g;
        rgb_[i + 2] = background.b;
    }
}

Color Canvas::at(int x, int y) const {
    const std::size_t i = (static_cast<std::size_t>(y) * width_ + x) * 3;
    return {rgb_.at(i), rgb_.at(i + 1), rgb_.at(i + 2)};
}

void Canvas::pixel(int x, int y, Color c) {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) return;
    const std::size_t i = (static_cast<std::size_t>(y) * width_ + x) * 3;
    rgb_[i] = c.r;
    rgb_[i + 1] = c.g;
    rgb_[i + 2] = c.b;
}

void Canvas::rect(int x, int y, int w, int h, Color c) {
    for (int yy = std::max(y, 0); yy < std::min(y + h, height_); ++yy)
        for (int xx = std::max(x, 0); xx < std::min(x + w, width_); ++xx) pixel(xx, yy, c);
}

void Canvas::line(double x0, double y0, double x1, double y1, Color c, int thickness) {
    const double steps = std::max({std::abs(x1 - x0), std::abs(y1 - y0), 1.0});
    const int lo = -(thickness - 1) / 2, hi = thickness / 2;
    for (int i = 0; i <= static_cast<int>(steps); ++i) {
        const double t = i / steps;
        const int x = static_cast<int>(std::lround(x0 + t * (x1 - x0)));
        const int y = static_cast<int>(std::lround(y0 + t * (y1 - y0)));
        for (int dy = lo; dy <= hi; ++dy)
            for (int dx = lo; dx <= hi; ++dx) pixel(x + dx, y + dy, c);
    }
}

void Canvas::text(int x, int y, const std::string& s, Color c, int scale) {
    // stb_easy_font emits quads (4 vertices of x, y, z floats and 4 color bytes) in font pixels
    struct Vertex {
        float x, y, z;
        unsigned char color[4];
    };
    std::vector<Vertex> quads(s.size() * 64 + 64);
    std::string copy = s;  // stb wants a char*
    const int n = stb_easy_font_print(0, 0, copy.data(), nullptr, quads.data(),
                                      static_cast<int>(quads.size() * sizeof(Vertex)));
    for (int q = 0; q < n; ++q) {
        const Vertex& a = quads[4 * q];
        const Vertex& b = quads[4 * q + 2];  // the opposite corner
        const int x0 = static_cast<int>(std::lround(a.x * scale)), y0 = static_cast<int>(std::lround(a.y * scale));
        const int x1 = static_cast<int>(std::lround(b.x * scale)), y1 = static_cast<int>(std::lround(b.y * scale));
        rect(x + std::min(x0, x1), y + std::min(y0, y1), std::abs(x1 - x0), std::abs(y1 - y0), c);
    }
}

int Canvas::text_width(const std::string& s, int scale) {
    std::string copy = s;
    return stb_easy_font_width(copy.data()) * scale;
}

int Canvas::text_height(int scale) { return 8 * scale; }

void Canvas::save_png(const std::string& path) const {
    std::string png;
    auto append = [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<std::size_t>(size));
    };
    if (!stbi_write_png_to_func(append, &png, width_, height_, 3, rgb_.data(), width_ * 3))
        throw std::runtime_error("cannot encode " + path + " as PNG");
    tg::write_file_atomic(path, png);
}

namespace {

// 1, 2 or 5 times a power of ten, near range / target.
double nice_step(double range, int target) {
    const double raw = range / target;
    const double p = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 5.0})
        if (m * p >= raw) return m * p;
    return 10.0 * p;
}

std::string format_tick(double v, double step) {
    char buf[32];
    const int decimals = step >= 1.0 ? 0 : static_cast<int>(std::ceil(-std::log10(step)));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
}

}  // namespace

Canvas plot(const std::vector<Series>& series, const std::string& title, const std::string& x_label,
            const std::string& y_label, int width, int height, bool with_legend) {
    const Color white{255, 255, 255}, black{0, 0, 0}, grid{225, 225, 225}, gray{90, 90, 90};
    Canvas c(width, height, white);
    const int left = 80, right = 20, top = 50, bottom = 60;
    const int pw = width - left - right, ph = height - top - bottom;

    double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
    for (const Series& s : series)
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i])) continue;
            x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
            y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
        }
    if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to draw: empty axes
    if (x1 - x0 < 1e-9) x0 -= 0.5, x1 += 0.5;
    if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
    const double ypad = 0.05 * (y1 - y0);
    y0 -= ypad, y1 += ypad;
    auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
    auto py = [&](double y) { return top + ph - (y - y0) / (y1 - y0) * ph; };

    // grid and ticks
    const double xs = std::max(nice_step(x1 - x0, 8), (x1 - x0 >= 2.0 ? 1.0 : 0.0));
    for (double v = std::ceil(x0 / xs) * xs; v <= x1 + 1e-9; v += xs) {
        const int x = static_cast<int>(std::lround(px(v)));
        c.rect(x, top, 1, ph, grid);
        const std::string t = format_tick(v, xs);
        c.text(x - Canvas::text_width(t, 2) / 2, top + ph + 8, t, gray, 2);
    }
    const double ys = nice_step(y1 - y0, 6);
    for (double v = std::ceil(y0 / ys) * ys; v <= y1 + 1e-9; v += ys) {
        const int y = static_cast<int>(std::lround(py(v)));
        c.rect(left, y, pw, 1, grid);
        const std::string t = format_tick(v, ys);
        c.text(left - 8 - Canvas::text_width(t, 2), y - Canvas::text_height(2) / 2 + 2, t, gray, 2);
    }
    // axes
    c.rect(left, top, 1, ph + 1, black);
    c.rect(left, top + ph, pw + 1, 1, black);

    for (const Series& s : series) {
        bool have = false;
        double lx = 0, ly = 0;
        for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
            if (!std::isfinite(s.y[i])) continue;
            const double x = px(s.x[i]), y = py(s.y[i]);
            if (have) c.line(lx, ly, x, y, s.color, 2);
            c.rect(static_cast<int>(x) - 2, static_cast<int>(y) - 2, 5, 5, s.color);  // a marker per point
            lx = x, ly = y, have = true;
        }
    }

    c.text((width - Canvas::text_width(title, 2)) / 2, 12, title, black, 2);
    c.text(left + (pw - Canvas::text_width(x_label, 2)) / 2, height - 26, x_label, black, 2);
    c.text(8, top - 24, y_label, black, 2);
    // legend, top right inside the plot
    int ly = top + 10;
    for (const Series& s : with_legend ? series : std::vector<Series>{}) {
        const int tw = Canvas::text_width(s.label, 2);
        const int lx = left + pw - tw - 40;
        c.rect(lx, ly + 6, 24, 3, s.color);
        c.text(lx + 30, ly, s.label, black, 2);
        ly += 22;
    }
    return c;
}

Canvas legend(const std::vector<Series>& series, int height) {
    int width = 0;
    for (const Series& s : series) width = std::max(width, Canvas::text_width(s.label, 2));
    Canvas c(width + 50, height, Color{255, 255, 255});
    int y = 20;
    for (const Series& s : series) {
        c.rect(8, y + 6, 24, 3, s.color);
        c.text(38, y, s.label, Color{0, 0, 0}, 2);
        y += 22;
    }
    return c;
}

Canvas side_by_side(const std::vector<Canvas>& parts) {
    int width = 0, height = 0;
    for (const Canvas& p : parts) width += p.width(), height = std::max(height, p.height());
    Canvas c(std::max(width, 1), std::max(height, 1), Color{255, 255, 255});
    int x0 = 0;
    for (const Canvas& p : parts) {
        for (int y = 0; y < p.height(); ++y)
            for (int x = 0; x < p.width(); ++x) c.pixel(x0 + x, y, p.at(x, y));
        x0 += p.width();
    }
    return c;
}

Color series_color(std::size_t i) {
    static const Color palette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207},
                                    {0, 0, 0},      {120, 120, 255}, {255, 90, 160},  {0, 110, 90},   {170, 0, 0},
                                    {90, 60, 0},    {0, 0, 140},     {255, 200, 0},   {100, 200, 120}, {160, 160, 220}};
    return palette[i % (sizeof(palette) / sizeof(palette[0]))];
}

Canvas learning_curves(const Trained& trained, const std::string& column, const std::string& label,
                       const std::string& title, const std::string& y_label) {
    const auto at = [&](const std::string& name) {
        const auto it = std::find(trained.header.begin(), trained.header.end(), name);
        if (it == trained.header.end()) throw std::invalid_argument("learning_curves: no metric named " + name);
        return static_cast<std::size_t>(it - trained.header.begin());
    };
    const std::size_t epoch = at("epoch"), loss = at("train_loss"), metric = at(column);
    Series train{"train loss", {}, {}, {200, 60, 40}}, other{label, {}, {}, {40, 90, 200}};
    for (const std::vector<double>& row : trained.history) {
        train.x.push_back(row[epoch]), train.y.push_back(row[loss]);
        other.x.push_back(row[epoch]), other.y.push_back(row[metric]);
    }
    return plot({train, other}, title, "epoch", y_label);
}

std::vector<std::size_t> first_of_each_digit(const std::vector<std::uint8_t>& labels, std::size_t n) {
    std::vector<std::size_t> rows;
    for (std::size_t d = 0; d < n; ++d) {
        const auto it = std::find(labels.begin(), labels.end(), d);
        if (it != labels.end()) rows.push_back(static_cast<std::size_t>(it - labels.begin()));
    }
    if (rows.size() == n) return rows;
    rows.clear();
    for (std::size_t i = 0; i < std::min(n, labels.size()); ++i) rows.push_back(i);
    return rows;
}

Canvas completion_grid(const Array& upper, const Array& truth, const Array& completions, std::size_t k, int scale) {
    constexpr int side = 28, half = 14 * 28;
    const std::size_t n = upper.shape()[0];
    if (upper.dimension() != 2 || upper.shape()[1] != half || truth.shape() != upper.shape() ||
        completions.dimension() != 2 || completions.shape()[0] != n * k || completions.shape()[1] != half)
        throw std::invalid_argument("completion_grid: expected upper and truth [n, 392] and completions [n * k, 392], "
                                    "got " + tg::shape_str(upper.shape()) + ", " + tg::shape_str(truth.shape()) + " and " +
                                    tg::shape_str(completions.shape()) + " with k = " + std::to_string(k));
    const int cell = side * scale, gap = 6, header = 30;
    const int columns = static_cast<int>(k) + 2;
    const Color background{40, 40, 48}, divider{200, 60, 60}, label{235, 235, 235};
    Canvas c(gap + columns * (cell + gap), header + gap + static_cast<int>(n) * (cell + gap), background);

    auto gray = [](float v) {
        const auto g = static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0f, 1.0f) * 255.0f));
        return Color{g, g, g};
    };
    // one digit: the upper half from `up`, the lower half from `low` (nullptr: left blank)
    auto draw = [&](int col, int row, const float* up, const float* low) {
        const int x0 = gap + col * (cell + gap), y0 = header + gap + row * (cell + gap);
        for (int i = 0; i < half; ++i) c.rect(x0 + (i % side) * scale, y0 + (i / side) * scale, scale, scale, gray(up[i]));
        if (low)
            for (int i = 0; i < half; ++i)
                c.rect(x0 + (i % side) * scale, y0 + (14 + i / side) * scale, scale, scale, gray(low[i]));
        c.rect(x0, y0 + 14 * scale, cell, 1, divider);
    };
    for (std::size_t i = 0; i < n; ++i) {
        const float* up = upper.data() + i * half;
        draw(0, static_cast<int>(i), up, nullptr);
        for (std::size_t j = 0; j < k; ++j)
            draw(static_cast<int>(j) + 1, static_cast<int>(i), up, completions.data() + (i * k + j) * half);
        draw(columns - 1, static_cast<int>(i), up, truth.data() + i * half);
    }
    auto caption = [&](int col_begin, int col_end, const std::string& s) {
        const int x0 = gap + col_begin * (cell + gap), x1 = gap + col_end * (cell + gap) - gap;
        c.text((x0 + x1 - Canvas::text_width(s, 2)) / 2, 8, s, label, 2);
    };
    caption(0, 1, "given");
    caption(1, columns - 1, "sampled lower halves (pixel probabilities)");
    caption(columns - 1, columns, "true");
    return c;
}

Canvas digit_grid(const Array& digits, std::size_t columns, const std::string& title, int scale) {
    constexpr int side = 28;
    if (digits.dimension() != 2 || digits.shape()[1] != side * side || digits.shape()[0] == 0 || columns == 0 ||
        scale < 1)
        throw std::invalid_argument("digit_grid: expected digits [n > 0, 784], columns > 0 and scale > 0, got " +
                                    tg::shape_str(digits.shape()) + ", " + std::to_string(columns) + " and " +
                                    std::to_string(scale));
    const std::size_t n = digits.shape()[0], rows = (n + columns - 1) / columns;
    const int cell = side * scale, gap = 4, header = 30;
    const int width = std::max(gap + static_cast<int>(columns) * (cell + gap), Canvas::text_width(title, 2) + 16);
    Canvas c(width, header + gap + static_cast<int>(rows) * (cell + gap), Color{40, 40, 48});
    for (std::size_t i = 0; i < n; ++i) {
        const int x0 = gap + static_cast<int>(i % columns) * (cell + gap);
        const int y0 = header + gap + static_cast<int>(i / columns) * (cell + gap);
        const float* digit = digits.data() + i * side * side;
        for (int p = 0; p < side * side; ++p) {
            const auto g = static_cast<std::uint8_t>(std::lround(std::clamp(digit[p], 0.0f, 1.0f) * 255.0f));
            c.rect(x0 + (p % side) * scale, y0 + (p / side) * scale, scale, scale, Color{g, g, g});
        }
    }
    c.text((width - Canvas::text_width(title, 2)) / 2, 8, title, Color{235, 235, 235}, 2);
    return c;
}

}  // namespace harness::images
