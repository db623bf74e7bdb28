// Differentiable ops. Each is one function (in the .cpp of its kind) that computes its value
// and records its backward beside it. Elementwise binary ops broadcast like NumPy; their
// gradients are summed back to each input's shape. Axes may be negative (from the end).
#pragma once

#include <cstddef>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg {

// ---- elementwise (elementwise.cpp)
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, float s);
Tensor mul(const Tensor& a, float s);
Tensor rsub(float s, const Tensor& a);  // s - a
Tensor rdiv(float s, const Tensor& a);  // s / a
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor log1p(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor square(const Tensor& a);
Tensor pow(const Tensor& a, float p);
Tensor abs(const Tensor& a);
Tensor sigmoid(const Tensor& a);
Tensor log_sigmoid(const Tensor& a);  // log(sigmoid(a)), stable for any a
Tensor tanh(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor softplus(const Tensor& a);     // log(1 + exp(a)), stable for any a
Tensor clamp(const Tensor& a, float lo, float hi);  // gradient 1 inside [lo, hi], 0 outside
// Picks a where condition is nonzero, else b; condition broadcasts with both.
Tensor where(const Array& condition, const Tensor& a, const Tensor& b);
Tensor detach(const Tensor& a);  // same value, no gradient flows back (stop_gradient)

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, float s) { return add(a, s); }
inline Tensor operator+(float s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(const Tensor& a, float s) { return add(a, -s); }
inline Tensor operator-(float s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(const Tensor& a, float s) { return mul(a, s); }
inline Tensor operator*(float s, const Tensor& a) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, float s) { return mul(a, 1.0f / s); }
inline Tensor operator/(float s, const Tensor& a) { return rdiv(s, a); }

// ---- linear algebra (linalg.cpp): GEMMs go to OpenBLAS, transposes as BLAS flags
Tensor matmul(const Tensor& a, const Tensor& b);  // [m,k] x [k,n] -> [m,n]
// x [n,in] W [out,in] b [out] -> x W^T + b; b may be a null Tensor (no bias).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- reductions (reduce.cpp)
Tensor sum(const Tensor& a);  // all elements, 0-d result
Tensor sum(const Tensor& a, int axis, bool keepdims = false);
Tensor mean(const Tensor& a);
Tensor mean(const Tensor& a, int axis, bool keepdims = false);
// Maximum along an axis; the gradient goes to the first maximal element.
Tensor max(const Tensor& a, int axis, bool keepdims = false);

// ---- shape (shape.cpp)
Tensor reshape(const Tensor& a, const Shape& shape);  // same number of elements
Tensor transpose(const Tensor& a);                     // reverses the axes (2-D: the transpose)
Tensor transpose(const Tensor& a, const std::vector<std::size_t>& perm);
Tensor slice(const Tensor& a, int axis, std::size_t start, std::size_t stop);  // [start, stop)
Tensor concat(const std::vector<Tensor>& parts, int axis);
Tensor stack(const std::vector<Tensor>& parts, int axis);

// ---- nn functions (nn.cpp); all stable for logits of any size
Tensor softmax(const Tensor& logits, int axis = -1);
Tensor log_softmax(const Tensor& logits, int axis = -1);
Tensor logsumexp(const Tensor& a, int axis = -1, bool keepdims = false);

enum class Reduction { none, sum, mean };
// Elementwise max(x,0) - x*t + log1p(exp(-|x|)); targets need no gradient.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::mean);
// logits [n, k], one class index per row.
Tensor cross_entropy(const Tensor& logits, const std::vector<std::size_t>& labels,
                     Reduction reduction = Reduction::mean);

// ---- no gradient (nn.cpp)
// Index of the largest entry along axis (the first one on ties); the axis is removed.
xt::xarray<std::size_t> argmax(const Tensor& a, int axis = -1);
// A new trailing axis of num_classes holding a 1 at each index.
Tensor one_hot(const xt::xarray<std::size_t>& indices, std::size_t num_classes);
Tensor one_hot(const std::vector<std::size_t>& labels, std::size_t num_classes);  // [n, num_classes]

}  // namespace tg
