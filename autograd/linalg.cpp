#include <functional>
#include <numeric>

#include "autograd/detail.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/broadcast.hpp"
#include "autograd/kernels/sparse.hpp"
#include "autograd/ops.hpp"

namespace tg {

namespace {

// t's gradient := beta * itself + op(A) op(B), [m, n] row-major, beta 1 when one is there.
void gemm_into_grad(const Tensor& t, bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k,
                    const float* a, std::size_t lda, const float* b, std::size_t ldb) {
    float beta;
    float* c = detail::grad_for_accumulate(t, beta, "matmul/linear").data();
    kernels::gemm(trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, beta, c, n);
}

// The rows of a [rows, cols] marked as a discrete sample (mark_discrete_sample), or null when it
// is not marked, holds an entry other than 0 and 1, or is dense enough for the GEMM to win.
// A sampler's own list is taken as it is (the library made both), anything else is scanned.
const kernels::BinaryRows* sample_rows(const Tensor& a, std::size_t rows, std::size_t cols) {
    thread_local kernels::BinaryRows r;
    if (!a.is_discrete_sample() || !kernels::sparse_samples()) return nullptr;
    if (const kernels::BinaryRows* own = a.impl()->sample_rows.get(); own && own->rows == rows && own->cols == cols)
        return own->start[rows] <= kernels::sparse_max_fraction * float(rows) * float(cols) ? own : nullptr;
    return kernels::binary_rows(a.value().data(), rows, cols, kernels::sparse_max_fraction, r) ? &r : nullptr;
}

// t's gradient := beta * itself + a^T G (transposed: its transpose), a a discrete sample.
void scatter_into_grad(const Tensor& t, const kernels::BinaryRows& a, const float* g, std::size_t n, bool transposed) {
    float beta;
    float* d = detail::grad_for_accumulate(t, beta, "matmul/linear").data();
    kernels::binary_transpose_times(a, g, n, transposed, beta, d);
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
    detail::require_defined("matmul", {&a, &b});
    const auto &as = a.shape(), &bs = b.shape();
    if (as.size() != 2 || bs.size() != 2 || as[1] != bs[0])
        throw std::invalid_argument("matmul: needs [m,k] x [k,n], got " + shape_str(as) + " x " + shape_str(bs));
    const std::size_t m = as[0], k = as[1], n = bs[1];
    element_count({m, n}, "matmul");  // [2^40, 0] x [0, 2^40] has no input elements but a huge output
    Array out = Array::from_shape({m, n});
    if (const kernels::BinaryRows* s = sample_rows(a, m, k))
        kernels::binary_times(*s, b.value().data(), n, false, 0.0f, out.data());
    else
        kernels::gemm(false, false, m, n, k, 1.0f, a.value().data(), k, b.value().data(), n, 0.0f, out.data(), n);
    return record("matmul", std::move(out), {a, b}, [m, k, n](const std::vector<Tensor>& in, const Tensor& o) {
        if (creating_graph()) {
            const Tensor g = o.grad_tensor();
            if (in[0].requires_grad()) in[0].accumulate_grad(matmul(g, transpose(in[1])), "matmul");
            if (in[1].requires_grad()) in[1].accumulate_grad(matmul(transpose(in[0]), g), "matmul");
            return;
        }
        const float* g = o.grad().data();
        if (in[0].requires_grad()) gemm_into_grad(in[0], false, true, m, k, n, g, n, in[1].value().data(), n);  // G B^T
        if (!in[1].requires_grad()) return;  // A^T G
        if (const kernels::BinaryRows* s = sample_rows(in[0], m, k)) scatter_into_grad(in[1], *s, g, n, false);
        else gemm_into_grad(in[1], true, false, k, n, m, in[0].value().data(), k, g, n);
    });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
    detail::require_defined("linear", {&x, &weight});  // the bias may be null
    const auto &xs = x.shape(), &ws = weight.shape();
    if (ws.size() != 2 || xs.size() < 1 || xs.back() != ws[1])
        throw std::invalid_argument("linear: input " + shape_str(xs) + " does not fit weight " + shape_str(ws) +
                                    " (the weight is [out, in], the input [..., in])");
    const std::size_t in_f = ws[1], out_f = ws[0];
    // not x.size() / in_f, which divides by zero when in_f is 0
    const std::size_t rows = std::accumulate(xs.begin(), xs.end() - 1, std::size_t{1}, std::multiplies<>());
    if (bias.defined() && (bias.dim() != 1 || bias.shape()[0] != out_f))
        throw std::invalid_argument("linear: bias of shape " + shape_str(bias.shape()) + " does not fit weight " +
                                    shape_str(ws) + " (expected (" + std::to_string(out_f) + ",))");
    Array::shape_type out_shape = xs;
    out_shape.back() = out_f;
    element_count(out_shape, "linear");
    Array out = Array::from_shape(out_shape);
    // rows start as the bias, the GEMM adds x W^T onto them
    if (bias.defined()) kernels::broadcast_rows(bias.value().data(), rows, out_f, out.data());
    const float beta = bias.defined() ? 1.0f : 0.0f;
    if (const kernels::BinaryRows* s = sample_rows(x, rows, in_f))
        kernels::binary_times(*s, weight.value().data(), out_f, true, beta, out.data());
    else
        kernels::gemm(false, true, rows, out_f, in_f, 1.0f, x.value().data(), in_f, weight.value().data(), in_f, beta,
                      out.data(), out_f);
    return record("linear", std::move(out), {x, weight, bias},
                  [rows, in_f, out_f](const std::vector<Tensor>& in, const Tensor& o) {
                      if (creating_graph()) {  // on the rows of x and of the output's gradient as matrices
                          const Tensor g = reshape(o.grad_tensor(), Shape{rows, out_f});
                          const Tensor x = reshape(in[0], Shape{rows, in_f});
                          if (in[0].requires_grad())
                              in[0].accumulate_grad(reshape(matmul(g, in[1]), in[0].shape()), "linear");
                          if (in[1].requires_grad()) in[1].accumulate_grad(matmul(transpose(g), x), "linear");
                          if (in[2].defined() && in[2].requires_grad()) in[2].accumulate_grad(sum(g, 0), "linear");
                          return;
                      }
                      const float* g = o.grad().data();
                      if (in[0].requires_grad())  // dx = G W
                          gemm_into_grad(in[0], false, false, rows, in_f, out_f, g, out_f, in[1].value().data(), in_f);
                      if (in[1].requires_grad()) {  // dW = G^T x
                          if (const kernels::BinaryRows* s = sample_rows(in[0], rows, in_f))
                              scatter_into_grad(in[1], *s, g, out_f, true);
                          else
                              gemm_into_grad(in[1], true, false, out_f, in_f, rows, g, out_f, in[0].value().data(), in_f);
                      }
                      if (in[2].defined() && in[2].requires_grad()) {  // db = column sums of G
                          float beta;
                          float* d = detail::grad_for_accumulate(in[2], beta, "linear").data();
                          kernels::column_sums(g, rows, out_f, beta, d);
                      }
                  });
}

}  // namespace tg
