// Helpers shared by the op implementations (and by users writing their own ops).
#pragma once

#include <algorithm>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include <xtensor/xnoalias.hpp>

#include "autograd/tensor.hpp"

namespace tg::detail {

// Maps a possibly negative axis into [0, ndim) or throws naming the op and the shape.
std::size_t normalize_axis(int axis, const Array::shape_type& shape, const char* op);

// The NumPy broadcast of two shapes, or an error naming the op and both shapes.
Array::shape_type broadcast_shapes(const Array::shape_type& a, const Array::shape_type& b, const char* op);

// The shape after reducing `axis`: kept with length 1 (keepdims) or removed.
Array::shape_type reduced_shape(const Array::shape_type& shape, std::size_t axis, bool keepdims);

// Sums a broadcast gradient back down to `shape` (leading axes and axes of length 1).
Array sum_to(const Array& g, const Array::shape_type& shape);

// Throws std::invalid_argument("<op>: <what>, got shape (..)") unless ok.
void require(bool ok, const char* op, const std::string& what, const Array::shape_type& shape);

// Throws std::invalid_argument naming the op and the position of the first null input.
void require_defined(const char* op, std::initializer_list<const Tensor*> inputs);

// The one way into a gradient: the buffer of t ready for a kernel that writes
// `beta * buffer + new` (beta 1 when a gradient is already there, else 0 over a reused or fresh
// buffer). Refuses (naming op) a t that does not require grad, and any array gradient while
// creating_graph(): there a backward must accumulate tensors.
Array& grad_for_accumulate(const Tensor& t, float& beta, const char* op = "backward");
// Throws unless t requires grad, naming op.
void require_grad(const Tensor& t, const char* op);

// Row-major C[m,n] = alpha op(A) op(B) + beta C through OpenBLAS (blas.cpp keeps <cblas.h>
// away from xtensor-blas, whose declarations clash with it).
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);

// Adds the expression e (t's shape) into t's gradient without a temporary: the buffer is
// overwritten on the first gradient of a step and added to afterwards.
template <class E>
void accumulate_expr(const Tensor& t, const E& e, const char* op) {
    const auto& es = e.shape();
    if (!std::equal(es.begin(), es.end(), t.shape().begin(), t.shape().end()))
        throw std::logic_error(std::string(op) + ": gradient of shape " +
                               shape_str(Array::shape_type(es.begin(), es.end())) +
                               " does not match its tensor of shape " + shape_str(t.shape()));
    float beta;
    Array& g = grad_for_accumulate(t, beta, op);
    if (beta == 0.0f) xt::noalias(g) = e;
    else xt::noalias(g) += e;
}

}  // namespace tg::detail
