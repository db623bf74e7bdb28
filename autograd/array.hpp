// The array types every layer of tapegrad shares, the kernels included (which see arrays only,
// never a tensor or the tape).
#pragma once

#include <cstddef>

#include <xtensor/xarray.hpp>

#include "tapegrad_arch.hpp"  // generated: stops code compiled for other SIMD sets than the library

namespace tg {

// Plain xtensor arrays: a user's xt::xarray<float> is a tg::Array.
using Array = xt::xarray<float>;
// The one shape type: what Tensor::shape() returns and every shape parameter takes.
using Shape = Array::shape_type;
// The one index type: class labels, argmax's result, one_hot's and gather's input.
using Indices = xt::xarray<std::size_t>;

}  // namespace tg
