#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/broadcast.hpp"
#include "autograd/ops.hpp"

namespace tg {

Tensor matmul(const Tensor& a, const Tensor& b) {
    detail::require_defined("matmul", {&a, &b});
    const auto& as = a.shape();
    const auto& bs = b.shape();
    if (as.size() != 2 || bs.size() != 2 || as[1] != bs[0])
        throw std::invalid_argument("matmul: needs [m,k] x [k,n], got " + shape_str(as) + " x " + shape_str(bs));
    const std::size_t m = as[0], k = as[1], n = bs[1];
    Array out = Array::from_shape({m, n});
    detail::gemm(false, false, m, n, k, 1.0f, a.value().data(), k, b.value().data(), n, 0.0f, out.data(), n);
    return record("matmul", std::move(out), {a, b}, [m, k, n](const std::vector<Tensor>& in, const Tensor& o) {
        const float* g = o.grad().data();
        float beta;
        if (in[0].requires_grad()) {  // dA = G B^T
            Array& ga = detail::grad_for_accumulate(in[0], beta);
            detail::gemm(false, true, m, k, n, 1.0f, g, n, in[1].value().data(), n, beta, ga.data(), k);
        }
        if (in[1].requires_grad()) {  // dB = A^T G
            Array& gb = detail::grad_for_accumulate(in[1], beta);
            detail::gemm(true, false, k, n, m, 1.0f, in[0].value().data(), k, g, n, beta, gb.data(), n);
        }
    });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
    detail::require_defined("linear", {&x, &weight});  // the bias may be null
    const auto& xs = x.shape();
    const auto& ws = weight.shape();
    if (ws.size() != 2 || xs.size() < 1 || xs.back() != ws[1])
        throw std::invalid_argument("linear: input " + shape_str(xs) + " does not fit weight " + shape_str(ws) +
                                    " (the weight is [out, in], the input [..., in])");
    const std::size_t in_f = ws[1], out_f = ws[0];
    std::size_t rows = 1;  // not x.size() / in_f, which divides by zero when in_f is 0
    for (std::size_t i = 0; i + 1 < xs.size(); ++i) rows *= xs[i];
    if (bias.defined() && (bias.dim() != 1 || bias.shape()[0] != out_f))
        throw std::invalid_argument("linear: bias of shape " + shape_str(bias.shape()) + " does not fit weight " +
                                    shape_str(ws) + " (expected (" + std::to_string(out_f) + ",))");
    Array::shape_type out_shape = xs;
    out_shape.back() = out_f;
    Array out = Array::from_shape(out_shape);
    float* y = out.data();
    float beta = 0.0f;
    if (bias.defined()) {  // rows start as the bias, the GEMM adds x W^T onto them
        kernels::broadcast_rows(bias.value().data(), rows, out_f, y);
        beta = 1.0f;
    }
    detail::gemm(false, true, rows, out_f, in_f, 1.0f, x.value().data(), in_f, weight.value().data(), in_f, beta,
                 y, out_f);
    return record("linear", std::move(out), {x, weight, bias},
                  [rows, in_f, out_f](const std::vector<Tensor>& in, const Tensor& o) {
                      const float* g = o.grad().data();
                      float beta;
                      if (in[0].requires_grad()) {  // dx = G W
                          Array& gx = detail::grad_for_accumulate(in[0], beta);
                          detail::gemm(false, false, rows, in_f, out_f, 1.0f, g, out_f, in[1].value().data(), in_f,
                                       beta, gx.data(), in_f);
                      }
                      if (in[1].requires_grad()) {  // dW = G^T x
                          Array& gw = detail::grad_for_accumulate(in[1], beta);
                          detail::gemm(true, false, out_f, in_f, rows, 1.0f, g, out_f, in[0].value().data(), in_f,
                                       beta, gw.data(), in_f);
                      }
                      if (in[2].defined() && in[2].requires_grad()) {  // db = column sums of G
                          Array& gb = detail::grad_for_accumulate(in[2], beta);
                          kernels::column_sums(g, rows, out_f, beta, gb.data());
                      }
                  });
}

}  // namespace tg
