// Central finite differences against the tape's gradients, for any function of tensors:
// the library's tests use it on every op, and users on their own ops.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg {

struct GradCheckOptions {
    float eps = 1e-2f;   // float32: truncation ~ eps^2, rounding ~ 6e-8 / eps
    float atol = 1e-3f;
    float rtol = 1e-2f;
    std::uint64_t seed = 1;  // for the random projection of the output
};

struct GradCheckResult {
    bool ok = true;
    float max_abs_error = 0.0f;
    std::string message;  // which input and element disagreed, with both values
};

// Checks d<w, f(inputs)>/d input for a fixed random w, for every input that requires grad.
// f must be deterministic. Records onto its own tape, so the caller's tape is untouched.
GradCheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradCheckOptions& options = {});

}  // namespace tg
