#include "autograd/debug/anomaly.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace tg {

namespace {
thread_local bool anomaly_mode = false;

// The first non-finite element of a, as "nan at index 3", or "" if there is none.
std::string first_non_finite(const Array& a) {
    if (all_finite(a)) return "";
    const float* p = a.data();
    std::size_t i = 0;
    while (std::isfinite(p[i])) ++i;
    return std::string(std::isnan(p[i]) ? "nan" : p[i] > 0 ? "inf" : "-inf") + " at index " + std::to_string(i);
}
}  // namespace

bool all_finite(const Array& a) {
    // An exponent of all ones is an infinity or a NaN. Integer ORs vectorize; float compares
    // in a reduction would not without -ffast-math.
    const float* p = a.data();
    const std::size_t n = a.size();
    std::uint32_t bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, p + i, sizeof bits);
        bad |= static_cast<std::uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

void set_anomaly_detection(bool on) { anomaly_mode = on; }
bool anomaly_detection() { return anomaly_mode; }
AnomalyGuard::AnomalyGuard(bool on) : previous_(anomaly_mode) { anomaly_mode = on; }
AnomalyGuard::~AnomalyGuard() { anomaly_mode = previous_; }

namespace detail {

void check_output(const char* name, const Array& value, const Tensor* begin, const Tensor* end) {
    const std::string bad = first_non_finite(value);
    if (bad.empty()) return;
    std::string msg = std::string("anomaly: ") + name + " produced " + bad + " of its output of shape " +
                      shape_str(value.shape());
    // A non-finite input was made outside the checks (a leaf, or before they were on).
    for (const Tensor* t = begin; t != end; ++t) {
        if (!t->defined()) continue;
        const std::string in_bad = first_non_finite(t->value());
        if (!in_bad.empty())
            throw AnomalyError(msg + "; its input " + std::to_string(t - begin) + " of shape " +
                               shape_str(t->shape()) + " already held " + in_bad);
    }
    throw AnomalyError(msg + " from finite inputs");
}

void check_seed(const Array& seed) {
    if (!all_finite(seed)) throw AnomalyError("anomaly: the backward seed holds " + first_non_finite(seed));
}

void check_gradients(const Node& node, std::size_t k, std::size_t count) {
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        const Tensor& t = node.inputs[i];
        if (!t.defined() || !t.impl()->grad.has) continue;
        const std::string bad = first_non_finite(t.impl()->grad.array);
        if (!bad.empty())
            throw AnomalyError(std::string("anomaly: the backward of ") + node.name + " (op " + std::to_string(k + 1) +
                               " of " + std::to_string(count) + " on the tape) produced " + bad +
                               " in the gradient of its input " + std::to_string(i) + " of shape " +
                               shape_str(t.shape()));
    }
}

}  // namespace detail
}  // namespace tg
