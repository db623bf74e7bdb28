// The one check of a positive, finite parameter (temperatures, Softplus's beta) for layers/.
#pragma once

#include <cmath>
#include <stdexcept>
#include <string>

namespace tg::detail {

// Throws std::invalid_argument("<what> must be positive and finite, got <v>") unless 0 < v < inf.
inline float require_positive_finite(float v, const std::string& what) {
    if (!(v > 0.0f) || !std::isfinite(v))
        throw std::invalid_argument(what + " must be positive and finite, got " + std::to_string(v));
    return v;
}

}  // namespace tg::detail
