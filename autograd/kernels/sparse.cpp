#include "autograd/kernels/sparse.hpp"

#include <algorithm>
#include <atomic>

#include "autograd/kernels/parallel.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg::kernels {

namespace {

std::atomic<bool> sparse_on{true};

// Below this many additions a product stays on one thread (as kernels::gemm does).
constexpr std::size_t parallel_work = std::size_t(1) << 18;

// The rows of b listed for row r, summed into acc[0 .. w) (w <= block) for columns j0 ..;
// blocks of 8 batches stay in registers while the listed rows stream past.
constexpr std::size_t block = 8 * simd::lanes;

void sum_listed(const std::uint32_t* list, std::size_t count, const float* b, std::size_t n, std::size_t j0,
                std::size_t w, float* acc) {
    if (w == block) {
        simd::Batch s[8];
        for (auto& x : s) x = simd::Batch(0.0f);
        for (std::size_t t = 0; t < count; ++t) {
            const float* row = b + std::size_t(list[t]) * n + j0;
            for (std::size_t q = 0; q < 8; ++q) s[q] += simd::Batch::load_unaligned(row + q * simd::lanes);
        }
        for (std::size_t q = 0; q < 8; ++q) s[q].store_unaligned(acc + q * simd::lanes);
        return;
    }
    std::fill(acc, acc + w, 0.0f);
    for (std::size_t t = 0; t < count; ++t) {
        const float* row = b + std::size_t(list[t]) * n + j0;
        for (std::size_t j = 0; j < w; ++j) acc[j] += row[j];
    }
}

// The right operand as [k, n] row-major: b itself, or b [n, k] transposed into a buffer that
// lives as long as the thread (a fresh large block each call would fault its pages in anew).
const float* rows_of(const float* b, std::size_t k, std::size_t n, bool transposed, std::vector<float>& buffer) {
    if (!transposed) return b;
    buffer.resize(k * n);
    for (std::size_t j = 0; j < n; ++j)
        for (std::size_t i = 0; i < k; ++i) buffer[i * n + j] = b[j * k + i];
    return buffer.data();
}

}  // namespace

void set_sparse_samples(bool on) { sparse_on = on; }
bool sparse_samples() { return sparse_on; }

bool binary_rows(const float* a, std::size_t rows, std::size_t cols, float max_fraction, BinaryRows& out) {
    out.rows = rows;
    out.cols = cols;
    out.start.resize(rows + 1);
    out.ones_minus.assign(rows, 0);
    out.any_ones_minus = false;
    const std::size_t limit = static_cast<std::size_t>(max_fraction * float(rows) * float(cols));
    // room for a whole row past the limit: each row is written in full, then cut to its list
    out.index.resize(limit + cols + 1);
    std::uint32_t* index = out.index.data();
    std::size_t used = 0;
    out.start[0] = 0;
    // branch-free: random Bernoulli units would mispredict half of the branches
    for (std::size_t r = 0; r < rows; ++r) {
        const float* row = a + r * cols;
        std::uint32_t* list = index + used;
        std::size_t ones = 0;
        bool binary = true;
        for (std::size_t j = 0; j < cols; ++j) {
            const float v = row[j];
            list[ones] = static_cast<std::uint32_t>(j);
            ones += v == 1.0f;
            binary &= (v == 0.0f) | (v == 1.0f);  // NaN fails both
        }
        if (!binary) return false;
        std::size_t count = ones;
        if (2 * ones > cols) {  // more ones than zeros: list the zeros
            count = 0;
            for (std::size_t j = 0; j < cols; ++j) {
                list[count] = static_cast<std::uint32_t>(j);
                count += row[j] == 0.0f;
            }
            out.ones_minus[r] = 1;
            out.any_ones_minus = true;
        }
        used += count;
        // a dense matrix shows itself within the first rows: stop scanning early
        if (used > limit || used > static_cast<std::size_t>(max_fraction * float((r + 1) * cols)) + 4 * cols)
            return false;
        out.start[r + 1] = used;
    }
    return true;
}

void one_hot_rows(const float* z, std::size_t groups, std::size_t classes, std::size_t cols, float* out,
                  BinaryRows& rows) {
    const std::size_t per_row = cols / classes;
    rows.cols = cols;
    rows.rows = groups / per_row;
    rows.index.resize(groups);
    rows.start.resize(rows.rows + 1);
    for (std::size_t r = 0; r <= rows.rows; ++r) rows.start[r] = r * per_row;
    rows.ones_minus.assign(rows.rows, 0);
    rows.any_ones_minus = false;
    for (std::size_t s = 0; s < groups; ++s) {
        const float* p = z + s * classes;
        std::size_t best = 0;
        float top = p[0];
        for (std::size_t j = 1; j < classes; ++j) {
            const bool above = p[j] > top;
            best = above ? j : best;
            top = above ? p[j] : top;
        }
        out[s * classes + best] = 1.0f;
        rows.index[s] = static_cast<std::uint32_t>((s % per_row) * classes + best);
    }
}

void binary_times(const BinaryRows& a, const float* b, std::size_t n, bool b_transposed, float beta, float* c) {
    const std::size_t k = a.cols;
    thread_local std::vector<float> buffer;
    b = rows_of(b, k, n, b_transposed, buffer);
    std::vector<float> all;  // the sum of every row of b, for the rows listed by their zeros
    if (a.any_ones_minus) {
        all.assign(n, 0.0f);
        for (std::size_t i = 0; i < k; ++i)
            for (std::size_t j = 0; j < n; ++j) all[j] += b[i * n + j];
    }
    const bool split = a.start[a.rows] * n >= parallel_work;
    parallel_range(a.rows, split ? 1 : a.rows + 1, [&](std::size_t lo, std::size_t hi) {
        alignas(64) float acc[block];
        for (std::size_t r = lo; r < hi; ++r) {
            const std::uint32_t* list = a.index.data() + a.start[r];
            const std::size_t count = a.start[r + 1] - a.start[r];
            float* out = c + r * n;
            for (std::size_t j0 = 0; j0 < n; j0 += block) {
                const std::size_t w = std::min(block, n - j0);
                sum_listed(list, count, b, n, j0, w, acc);
                if (a.ones_minus[r])
                    for (std::size_t j = 0; j < w; ++j) acc[j] = all[j0 + j] - acc[j];
                for (std::size_t j = 0; j < w; ++j) out[j0 + j] = beta == 0.0f ? acc[j] : beta * out[j0 + j] + acc[j];
            }
        }
    });
}

void binary_transpose_times(const BinaryRows& a, const float* g, std::size_t n, bool d_transposed, float beta,
                            float* d) {
    const std::size_t k = a.cols;
    // a's columns as lists of rows, by a counting sort of the row lists: column i is the sum of
    // g's rows r that list i (plus) and, minus those, of the rows listed by their zeros that do
    // not (every such row, minus the ones that list i). Then each row of d is a sum of g's rows
    // kept in registers, as in binary_times, instead of scattered adds through memory.
    // (the caller's buffers, named by reference: inside a lambda run on a worker, a thread_local
    // named directly would be the worker's own)
    thread_local std::vector<std::size_t> start_buffer;
    thread_local std::vector<std::uint32_t> column_buffer;
    std::vector<std::size_t>& start = start_buffer;  // column i: plus [start[2i], start[2i+1]), minus [.., start[2i+2])
    std::vector<std::uint32_t>& by_column = column_buffer;
    start.assign(2 * k + 1, 0);
    for (std::size_t r = 0; r < a.rows; ++r)
        for (std::size_t t = a.start[r]; t < a.start[r + 1]; ++t) ++start[2 * a.index[t] + a.ones_minus[r] + 1];
    for (std::size_t c = 1; c <= 2 * k; ++c) start[c] += start[c - 1];
    by_column.resize(start[2 * k]);
    {
        std::vector<std::size_t> next(start.begin(), start.end() - 1);
        for (std::size_t r = 0; r < a.rows; ++r)
            for (std::size_t t = a.start[r]; t < a.start[r + 1]; ++t)
                by_column[next[2 * a.index[t] + a.ones_minus[r]]++] = static_cast<std::uint32_t>(r);
    }
    std::vector<float> all;  // the sum of g's rows listed by their zeros
    if (a.any_ones_minus) {
        all.assign(n, 0.0f);
        for (std::size_t r = 0; r < a.rows; ++r)
            if (a.ones_minus[r])
                for (std::size_t j = 0; j < n; ++j) all[j] += g[r * n + j];
    }
    thread_local std::vector<float> buffer;
    float* rows = d;  // d [k, n], or a buffer transposed into d [n, k] at the end
    if (d_transposed) {
        buffer.resize(k * n);
        rows = buffer.data();
    }
    const float beta_rows = d_transposed ? 0.0f : beta;
    const bool split = a.start[a.rows] * n >= parallel_work;
    parallel_range(k, split ? 1 : k + 1, [&](std::size_t lo, std::size_t hi) {
        alignas(64) float plus[block], minus[block];
        for (std::size_t i = lo; i < hi; ++i) {
            const std::uint32_t* list = by_column.data();
            float* out = rows + i * n;
            for (std::size_t j0 = 0; j0 < n; j0 += block) {
                const std::size_t w = std::min(block, n - j0);
                sum_listed(list + start[2 * i], start[2 * i + 1] - start[2 * i], g, n, j0, w, plus);
                if (a.any_ones_minus) {
                    sum_listed(list + start[2 * i + 1], start[2 * i + 2] - start[2 * i + 1], g, n, j0, w, minus);
                    for (std::size_t j = 0; j < w; ++j) plus[j] += all[j0 + j] - minus[j];
                }
                for (std::size_t j = 0; j < w; ++j)
                    out[j0 + j] = beta_rows == 0.0f ? plus[j] : beta_rows * out[j0 + j] + plus[j];
            }
        }
    });
    if (!d_transposed) return;
    for (std::size_t j = 0; j < n; ++j)
        for (std::size_t i = 0; i < k; ++i) d[j * k + i] = beta == 0.0f ? rows[i * n + j] : beta * d[j * k + i] + rows[i * n + j];
}

}  // namespace tg::kernels
