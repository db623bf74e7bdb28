#include "autograd/kernels/copy.hpp"

#include <algorithm>

namespace tg::kernels {

void copy_or_add(const float* src, std::size_t n, float beta, float* dst) {
    if (beta == 0.0f) std::copy(src, src + n, dst);
    else
        for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
}

void copy_rows(const float* src, std::size_t src_stride, std::size_t rows, std::size_t len, float beta, float* dst,
               std::size_t dst_stride) {
    if (beta == 0.0f)  // the test outside the loop: a slice's rows can be short
        for (std::size_t r = 0; r < rows; ++r) std::copy(src + r * src_stride, src + r * src_stride + len, dst + r * dst_stride);
    else
        for (std::size_t r = 0; r < rows; ++r)
            for (std::size_t k = 0; k < len; ++k) dst[r * dst_stride + k] += src[r * src_stride + k];
}

void permute(const float* src, const Shape& src_shape, const std::vector<std::size_t>& perm, float beta, float* dst) {
    const std::size_t nd = perm.size();
    std::size_t total = 1;
    for (std::size_t d : src_shape) total *= d;
    if (total == 0) return;
    std::vector<std::size_t> src_stride(nd), extent(nd), stride(nd), index(nd, 0);
    for (std::size_t d = nd, s = 1; d-- > 0; s *= src_shape[d]) src_stride[d] = s;
    for (std::size_t k = 0; k < nd; ++k) extent[k] = src_shape[perm[k]], stride[k] = src_stride[perm[k]];
    if (nd == 0) {
        copy_or_add(src, 1, beta, dst);
        return;
    }
    // The last dst axis is the inner loop, an odometer runs the others.
    const std::size_t inner = extent[nd - 1], step = stride[nd - 1];
    std::size_t offset = 0;
    for (std::size_t row = 0, rows = total / inner; row < rows; ++row, dst += inner) {
        const float* s = src + offset;
        if (beta == 0.0f)
            for (std::size_t i = 0; i < inner; ++i) dst[i] = s[i * step];
        else
            for (std::size_t i = 0; i < inner; ++i) dst[i] += s[i * step];
        for (std::size_t k = nd - 1; k-- > 0;) {
            offset += stride[k];
            if (++index[k] < extent[k]) break;
            offset -= stride[k] * extent[k];
            index[k] = 0;
        }
    }
}

}  // namespace tg::kernels
