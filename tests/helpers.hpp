// Shared by the test files: a one-line gradient check and small tensor makers.
#pragma once

#include <doctest/doctest.h>

#include "tapegrad.hpp"

namespace tgtest {

// A tensor of the given shape filled from a fixed seed with values in [lo, hi).
inline tg::Tensor random_tensor(const tg::Shape& shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f,
                                bool requires_grad = true) {
    tg::Generator g(seed);
    tg::Array a = tg::Array::from_shape(shape);
    for (float& v : a) v = lo + (hi - lo) * g.uniform();
    return tg::Tensor(std::move(a), requires_grad);
}

// CHECKs the tape's gradients of f at inputs against central finite differences.
inline void check_gradients(const std::function<tg::Tensor(const std::vector<tg::Tensor>&)>& f,
                            const std::vector<tg::Tensor>& inputs, tg::GradCheckOptions options = {}) {
    const tg::GradCheckResult r = tg::gradcheck(f, inputs, options);
    INFO(r.message);
    CHECK(r.ok);
}

}  // namespace tgtest
