// Differentiable ops. Each is one function (in the .cpp of its kind) that computes its value
// and records its backward beside it. Elementwise binary ops broadcast like NumPy; their
// gradients are summed back to each input's shape. Axes may be negative (from the end).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <type_traits>
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
Tensor div(const Tensor& a, float s);   // a / s, a true division
Tensor rsub(float s, const Tensor& a);  // s - a
Tensor rdiv(float s, const Tensor& a);  // s / a
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor log1p(const Tensor& a);
Tensor expm1(const Tensor& a);  // exp(a) - 1, exact for tiny a
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
// The condition is a tensor of the library's own type (nonzero = true; no gradient flows into
// it), so an unqualified where(c, a, b) never resolves to xt::where.
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);
Tensor where(const Tensor& condition, const Tensor& a, float b);
Tensor where(const Tensor& condition, float a, const Tensor& b);
// No gradient (constants of a's shape): the sign (-1, 0, 1) and comparisons giving 1 or 0.
Tensor sign(const Tensor& a);
Tensor operator>(const Tensor& a, float s);
Tensor operator<(const Tensor& a, float s);
Tensor operator>=(const Tensor& a, float s);
Tensor operator<=(const Tensor& a, float s);
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
inline Tensor operator/(const Tensor& a, float s) { return div(a, s); }
inline Tensor operator/(float s, const Tensor& a) { return rdiv(s, a); }

// ---- linear algebra (linalg.cpp): GEMMs go to OpenBLAS, transposes as BLAS flags
Tensor matmul(const Tensor& a, const Tensor& b);  // [m,k] x [k,n] -> [m,n]
// x [n,in] W [out,in] b [out] -> x W^T + b; b may be a null Tensor (no bias).
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// ---- reductions (reduce.cpp)
// All elements: a 0-d result, or with keepdims every axis kept with length 1.
Tensor sum(const Tensor& a, bool keepdims = false);
Tensor sum(const Tensor& a, int axis, bool keepdims = false);
Tensor mean(const Tensor& a, bool keepdims = false);
Tensor mean(const Tensor& a, int axis, bool keepdims = false);
// Maximum along an axis; the gradient goes to the first maximal element.
Tensor max(const Tensor& a, int axis, bool keepdims = false);

// ---- shape (shape.cpp)
// Same number of elements; one size may be -1 (inferred from the others): reshape(x, {-1, 3}).
Tensor reshape(const Tensor& a, const Shape& shape);
namespace detail {
Tensor reshape_signed(const Tensor& a, const std::vector<std::ptrdiff_t>& shape);
}
template <class I, class = std::enable_if_t<std::is_signed<I>::value>>  // a braced list of ints
Tensor reshape(const Tensor& a, std::initializer_list<I> shape) {
    return detail::reshape_signed(a, std::vector<std::ptrdiff_t>(shape.begin(), shape.end()));
}
Tensor transpose(const Tensor& a);                     // reverses the axes (2-D: the transpose)
Tensor transpose(const Tensor& a, const std::vector<std::size_t>& perm);
Tensor slice(const Tensor& a, int axis, std::size_t start, std::size_t stop);  // [start, stop)
Tensor concat(const std::vector<Tensor>& parts, int axis);
// NumPy's broadcast of a to shape (a copy), and its reverse: a summed down to shape over the
// axes broadcasting added or stretched. Each is the other's gradient.
Tensor broadcast_to(const Tensor& a, const Shape& shape);
Tensor sum_to(const Tensor& a, const Shape& shape);
Tensor stack(const std::vector<Tensor>& parts, int axis);

// ---- nn functions (nn.cpp); all stable for logits of any size
Tensor softmax(const Tensor& logits, int axis = -1);
Tensor log_softmax(const Tensor& logits, int axis = -1);
Tensor logsumexp(const Tensor& a, int axis = -1, bool keepdims = false);

enum class Reduction { none, sum, mean };
// Elementwise max(x,0) - x*t + log1p(exp(-|x|)); targets need no gradient.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        Reduction reduction = Reduction::mean);
// logits [n, k], one class index per row (labels [n]).
Tensor cross_entropy(const Tensor& logits, const Indices& labels, Reduction reduction = Reduction::mean);
// PyTorch's gather: out[..., j, ...] = a[..., index[..., j, ...], ...] along axis; index has a's
// rank and a's sizes on the other axes. The gradient is added back at the gathered places.
Tensor gather(const Tensor& a, int axis, const Indices& index);
// PyTorch's scatter_add: a copy of base with src[..., j, ...] added at base[..., index[..., j, ...], ...]
// along axis (index of src's shape, src of base's rank and sizes on the other axes). gather's gradient.
Tensor scatter_add(const Tensor& base, int axis, const Indices& index, const Tensor& src);

// ---- no gradient (nn.cpp)
// Index of the largest entry along axis (the first one on ties); the axis is removed.
Indices argmax(const Tensor& a, int axis = -1);
// A new trailing axis of num_classes holding a 1 at each index.
Tensor one_hot(const Indices& indices, std::size_t num_classes);

}  // namespace tg
