// Central finite differences against the tape's gradients, for any function of tensors:
// the library's tests use it on every op, and users on their own ops.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg {

struct GradCheckOptions {
    // Richardson's extrapolation of the central differences at eps and eps / 2 cancels their
    // eps^2 error; the tolerance adds the float rounding of the outputs a step moved. With these
    // defaults a backward off by 1% fails.
    float eps = 1e-2f;
    float atol = 1e-3f;
    float rtol = 1e-3f;
    std::uint64_t seed = 1;  // for the random projection of the output
};

struct GradCheckResult {
    bool ok = true;
    float max_abs_error = 0.0f;
    std::string message;  // which input and element disagreed, with both values
};

// Checks d<w, f(inputs)>/d input for a fixed random w, for every input that requires grad.
// f must be deterministic. Records onto its own tape, so the caller's tape is untouched, and
// the inputs' gradients are as they were before the call.
GradCheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradCheckOptions& options = {});
// The same one order up: the gradient of <v, d<w, f>/d inputs> (random w, v), which tg::grad
// computes with create_graph (Hessian-vector products), against central differences of the
// first-order gradient.
GradCheckResult gradgradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                              const std::vector<Tensor>& inputs, const GradCheckOptions& options = {});

}  // namespace tg
