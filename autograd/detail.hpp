// Helpers shared by the op implementations (and by users writing their own ops).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "autograd/tensor.hpp"

namespace tg::detail {

// Maps a possibly negative axis into [0, ndim) or throws naming the op and the shape.
std::size_t normalize_axis(int axis, const Array::shape_type& shape, const char* op);

// The shape after reducing `axis`: kept with length 1 (keepdims) or removed.
Array::shape_type reduced_shape(const Array::shape_type& shape, std::size_t axis, bool keepdims);

// Throws (naming op) unless a gradient of shape `from` sums down to `shape` (over leading axes
// and axes of length 1).
void require_sums_to(const Shape& from, const Shape& shape, const char* op);

// Throws std::invalid_argument("<op>: <what>, got shape (..)") unless ok.
void require(bool ok, const char* op, const std::string& what, const Array::shape_type& shape);

// Throws std::invalid_argument naming the op and the position of the first null input.
void require_defined(const char* op, std::initializer_list<const Tensor*> inputs);

// Throws unless t requires grad, naming op.
void require_grad(const Tensor& t, const char* op);

}  // namespace tg::detail
