// The one check of a positive, finite parameter (temperatures, Softplus's beta) for layers/.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace tg::detail {

// Throws std::invalid_argument naming `what` and v unless FLT_MIN <= v < inf. Such parameters
// divide (x / tau, log1p(exp(beta x)) / beta): below the smallest normal float (a denormal such
// as 1e-45) 1 / v overflows, and values and gradients would be NaN.
inline float require_positive_finite(float v, const std::string& what) {
    if (v >= FLT_MIN && std::isfinite(v)) return v;
    char text[32];
    std::snprintf(text, sizeof text, "%.9g", double(v));
    if (v > 0.0f && v < FLT_MIN)
        throw std::invalid_argument(what + " must be at least FLT_MIN = 1.17549435e-38 (below it 1 / " + text +
                                    " overflows), got " + text);
    throw std::invalid_argument(what + " must be positive and finite, got " + text);
}

}  // namespace tg::detail
