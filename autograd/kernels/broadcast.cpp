#include "autograd/kernels/broadcast.hpp"

#include <algorithm>
#include <vector>

namespace tg::kernels {

void sum_to(const float* src, const Array::shape_type& g_shape, const Array::shape_type& shape, float* dst) {
    // extent[r] / summed[r] describe run r of g's axes (axes of length 1 dropped)
    const std::size_t lead = g_shape.size() - shape.size();
    std::size_t size = 1, out_size = 1;
    std::vector<std::size_t> extent;
    std::vector<char> summed;
    for (std::size_t i = 0; i < g_shape.size(); ++i) {
        const std::size_t e = g_shape[i];
        const bool s = i < lead || shape[i - lead] == 1;
        size *= e;
        if (e == 1) continue;
        if (!extent.empty() && summed.back() == s) extent.back() *= e;
        else extent.push_back(e), summed.push_back(s);
    }
    for (std::size_t d : shape) out_size *= d;
    std::fill(dst, dst + out_size, 0.0f);
    if (size == 0) return;
    if (extent.empty()) {  // every axis of g has length 1
        dst[0] = src[0];
        return;
    }
    const std::size_t runs = extent.size(), inner = extent.back();
    std::vector<std::size_t> out_stride(runs), index(runs, 0);
    for (std::size_t r = runs, s = 1; r-- > 0;) {
        out_stride[r] = summed[r] ? 0 : s;
        if (!summed[r]) s *= extent[r];
    }
    std::size_t offset = 0;
    for (std::size_t row = 0, rows = size / inner; row < rows; ++row, src += inner) {
        if (summed.back()) {
            float acc = 0.0f;
            for (std::size_t j = 0; j < inner; ++j) acc += src[j];
            dst[offset] += acc;
        } else {
            float* d = dst + offset;
            for (std::size_t j = 0; j < inner; ++j) d[j] += src[j];
        }
        for (std::size_t r = runs - 1; r-- > 0;) {  // odometer over the outer runs
            offset += out_stride[r];
            if (++index[r] < extent[r]) break;
            offset -= out_stride[r] * extent[r];
            index[r] = 0;
        }
    }
}

void broadcast_rows(const float* b, std::size_t rows, std::size_t cols, float* y) {
    for (std::size_t r = 0; r < rows; ++r) std::copy(b, b + cols, y + r * cols);
}

void column_sums(const float* g, std::size_t rows, std::size_t cols, float beta, float* d) {
    if (beta == 0.0f) std::fill(d, d + cols, 0.0f);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < cols; ++j) d[j] += g[r * cols + j];
}

}  // namespace tg::kernels
