// Anomaly detection: which op made the first NaN or infinity. A debugging aid beside the
// engine: the tape calls the checks below only while it is on.
#pragma once

#include <cstddef>
#include <stdexcept>

#include "autograd/tensor.hpp"

namespace tg {

// While on (on this thread), every op's output value is checked, and backward checks the seed
// and, after each node, the gradient of each of its inputs; the first non-finite value throws
// AnomalyError naming the op, the input (for a gradient) and the shape. Off, it costs one
// branch per op; on, a pass over every value and gradient. Intentional infinities (an -inf
// mask before a softmax) are reported too.
class AnomalyError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
void set_anomaly_detection(bool on);
bool anomaly_detection();
class AnomalyGuard {  // anomaly detection on (or off) while alive, then as it was
public:
    explicit AnomalyGuard(bool on = true);
    ~AnomalyGuard();
    AnomalyGuard(const AnomalyGuard&) = delete;
    AnomalyGuard& operator=(const AnomalyGuard&) = delete;

private:
    bool previous_;
};

// No NaN and no infinity in a.
bool all_finite(const Array& a);

namespace detail {  // the tape's hooks (tensor.cpp), each throwing AnomalyError
void check_output(const char* name, const Array& value, const Tensor* begin, const Tensor* end);
void check_seed(const Array& seed);
void check_gradients(const Node& node, std::size_t k, std::size_t count);  // after node k of count
}  // namespace detail

}  // namespace tg
