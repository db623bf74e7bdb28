#include "layers/temperature.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "layers/detail_checks.hpp"

namespace tg::optim {

namespace {
void require_step(std::int64_t step) {
    if (step < 0) throw std::invalid_argument("TemperatureSchedule: step " + std::to_string(step) + " is negative");
}
}  // namespace

ConstantTemperature::ConstantTemperature(float tau) : tau_(tau) {
    detail::require_positive_finite(tau, "ConstantTemperature: tau");
}

float ConstantTemperature::at(std::int64_t step) const {
    require_step(step);
    return tau_;
}

ExponentialTemperature::ExponentialTemperature(float tau0, float rate, float tau_min, std::int64_t every)
    : tau0_(tau0), rate_(rate), tau_min_(tau_min), every_(every) {
    detail::require_positive_finite(tau0, "ExponentialTemperature: tau0");
    detail::require_positive_finite(tau_min, "ExponentialTemperature: tau_min");
    if (!(rate >= 0.0f) || !std::isfinite(rate))
        throw std::invalid_argument("ExponentialTemperature: rate must be >= 0, got " + std::to_string(rate));
    if (every < 1)
        throw std::invalid_argument("ExponentialTemperature: every must be at least 1, got " + std::to_string(every));
}

float ExponentialTemperature::at(std::int64_t step) const {
    require_step(step);
    const double t = double(step - step % every_);
    return std::max(tau_min_, static_cast<float>(double(tau0_) * std::exp(-double(rate_) * t)));
}

}  // namespace tg::optim
