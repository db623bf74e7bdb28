#include "autograd/tensor.hpp"
#include "autograd/kernels/memory.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xnoalias.hpp>

namespace tg {

namespace {
thread_local Tape default_tape;
thread_local Tape* active_tape = &default_tape;
thread_local bool grad_mode = true;
thread_local bool anomaly_mode = false;

// The first non-finite element of a, as "nan at index 3", or "" if there is none.
std::string first_non_finite(const Array& a) {
    if (all_finite(a)) return "";
    const float* p = a.data();
    std::size_t i = 0;
    while (std::isfinite(p[i])) ++i;
    return std::string(std::isnan(p[i]) ? "nan" : p[i] > 0 ? "inf" : "-inf") + " at index " + std::to_string(i);
}

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

// After node k's backward: each gradient it added to must still be finite.
void check_gradients(const Node& node, std::size_t k, std::size_t count) {
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        const Tensor& t = node.inputs[i];
        if (!t.defined() || !t.impl()->has_grad) continue;
        const std::string bad = first_non_finite(t.impl()->grad);
        if (!bad.empty())
            throw AnomalyError(std::string("anomaly: the backward of ") + node.name + " (op " + std::to_string(k + 1) +
                               " of " + std::to_string(count) + " on the tape) produced " + bad +
                               " in the gradient of its input " + std::to_string(i) + " of shape " +
                               shape_str(t.shape()));
    }
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

std::string shape_str(const Array::shape_type& shape) {
    std::ostringstream out;
    out << '(';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << (shape.size() == 1 ? ",)" : ")");
    return out.str();
}

Tensor::Tensor(Array value, bool requires_grad) : impl_(std::make_shared<TensorImpl>()) {
    static const bool memory_kept = detail::keep_freed_memory();
    (void)memory_kept;
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
}

Tensor Tensor::scalar(float v, bool requires_grad) { return Tensor(Array(v), requires_grad); }
Tensor Tensor::zeros(const Shape& shape, bool requires_grad) {
    return Tensor(Array(xt::zeros<float>(shape)), requires_grad);
}
Tensor Tensor::ones(const Shape& shape, bool requires_grad) {
    return Tensor(Array(xt::ones<float>(shape)), requires_grad);
}
Tensor Tensor::full(const Shape& shape, float v, bool requires_grad) {
    Array a = Array::from_shape(shape);
    a.fill(v);
    return Tensor(std::move(a), requires_grad);
}

void Tensor::check(const char* what) const {
    if (!impl_) throw std::logic_error(std::string("Tensor::") + what + ": the tensor is null (default-constructed)");
}
const Array& Tensor::value() const { check("value"); return impl_->value; }
Array& Tensor::value() { check("value"); return impl_->value; }
bool Tensor::has_grad() const { check("has_grad"); return impl_->has_grad; }
bool Tensor::requires_grad() const { check("requires_grad"); return impl_->requires_grad; }

const Array& Tensor::grad() const {
    check("grad");
    if (!impl_->has_grad)
        throw std::logic_error("Tensor::grad: no gradient has reached this tensor of shape " +
                               shape_str(impl_->value.shape()) +
                               " (does it require grad, and did backward run through it?)");
    return impl_->grad;
}
Array& Tensor::grad() { return const_cast<Array&>(static_cast<const Tensor*>(this)->grad()); }

void Tensor::zero_grad() { check("zero_grad"); impl_->has_grad = false; }
Tensor& Tensor::set_requires_grad(bool on) { check("set_requires_grad"); impl_->requires_grad = on; return *this; }

std::size_t Tensor::shape(int axis) const {
    const int n = static_cast<int>(dim());
    const int a = axis < 0 ? axis + n : axis;
    if (a < 0 || a >= n)
        throw std::out_of_range("Tensor::shape: axis " + std::to_string(axis) + " is out of range for shape " +
                                shape_str(value().shape()));
    return value().shape()[static_cast<std::size_t>(a)];
}

float Tensor::item() const {
    if (size() != 1)
        throw std::logic_error("Tensor::item: the tensor has shape " + shape_str(value().shape()) +
                               ", not exactly one element");
    return *value().data();
}

static void check_grad_shape(const Array& value, const Array& g, const char* op) {
    if (g.shape() != value.shape())
        throw std::logic_error(std::string(op) + ": gradient of shape " + shape_str(g.shape()) +
                               " does not match its tensor of shape " + shape_str(value.shape()));
}

void Tensor::accumulate_grad(const Array& g, const char* op) const {
    check("accumulate_grad");
    check_grad_shape(impl_->value, g, op);
    if (!impl_->has_grad) {
        if (impl_->grad.shape() == g.shape()) xt::noalias(impl_->grad) = g;  // reuse the buffer
        else impl_->grad = g;
        impl_->has_grad = true;
    } else {
        xt::noalias(impl_->grad) += g;
    }
}

void Tensor::accumulate_grad(Array&& g, const char* op) const {
    check("accumulate_grad");
    check_grad_shape(impl_->value, g, op);
    if (!impl_->has_grad) {
        if (impl_->grad.shape() == g.shape()) xt::noalias(impl_->grad) = g;
        else impl_->grad = std::move(g);
        impl_->has_grad = true;
    } else {
        xt::noalias(impl_->grad) += g;
    }
}

void Tensor::backward(bool retain_tape) const {
    check("backward");
    if (size() != 1)
        throw std::logic_error("backward: the output has shape " + shape_str(value().shape()) +
                               "; only a one-element output is seeded with 1, pass a seed gradient "
                               "of that shape: t.backward(seed)");
    backward(Array(xt::ones<float>(value().shape())), retain_tape);
}

void Tensor::backward(const Array& seed, bool retain_tape) const {
    check("backward");
    if (!impl_->requires_grad)
        throw std::logic_error("backward: the output does not require grad (no input of it did, or it was "
                               "computed under NoGradGuard)");
    if (anomaly_mode && !all_finite(seed))
        throw AnomalyError("anomaly: the backward seed holds " + first_non_finite(seed));
    accumulate_grad(seed, "backward (seed)");
    try {
        current_tape().backward();
    } catch (...) {  // a failed step must not leave its nodes for the next one
        if (!retain_tape) current_tape().clear();
        throw;
    }
    if (!retain_tape) current_tape().clear();
}

void Tape::backward() {
    const std::size_t count = nodes_.size();
    for (std::size_t k = count; k-- > 0;) {
        const Node& node = nodes_[k];
        if (!node.output.impl()->has_grad) continue;
        node.backward(node.inputs, node.output);
        if (anomaly_mode) check_gradients(node, k, count);
    }
}

Tape& current_tape() { return *active_tape; }
TapeScope::TapeScope(Tape& tape) : previous_(active_tape) { active_tape = &tape; }
TapeScope::~TapeScope() { active_tape = previous_; }

NoGradGuard::NoGradGuard() : previous_(grad_mode) { grad_mode = false; }
NoGradGuard::~NoGradGuard() { grad_mode = previous_; }
bool grad_enabled() { return grad_mode; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
    for (const Tensor* t : inputs)
        if (t->defined() && t->requires_grad()) return true;
    return false;
}

bool needs_recording(const Tensor* begin, const Tensor* end) {
    if (!grad_mode) return false;
    for (const Tensor* t = begin; t != end; ++t)
        if (t->defined() && t->impl()->requires_grad) return true;
    return false;
}

namespace detail {
Tensor unrecorded(const char* name, Array value, const Tensor* begin, const Tensor* end) {
    if (anomaly_mode) check_output(name, value, begin, end);
    return Tensor(std::move(value));
}
}  // namespace detail

Tensor record(const char* name, Array value, std::vector<Tensor> inputs, BackwardFn backward) {
    if (anomaly_mode) check_output(name, value, inputs.data(), inputs.data() + inputs.size());
    const bool needed = needs_recording(inputs.data(), inputs.data() + inputs.size());
    Tensor out(std::move(value), needed);
    if (needed) current_tape().push(Node{name, std::move(inputs), out, std::move(backward)});
    return out;
}

}  // namespace tg
