#include "autograd/tensor.hpp"

#include <sstream>
#include <stdexcept>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xnoalias.hpp>

namespace tg {

namespace {
thread_local Tape default_tape;
thread_local Tape* active_tape = &default_tape;
thread_local bool grad_mode = true;
}  // namespace

std::string shape_str(const Array::shape_type& shape) {
    std::ostringstream out;
    out << '(';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << (shape.size() == 1 ? ",)" : ")");
    return out.str();
}

Tensor::Tensor(Array value, bool requires_grad) : impl_(std::allocate_shared<TensorImpl>(CachingAllocator<TensorImpl>())) {
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
    accumulate_grad(seed, "backward (seed)");
    current_tape().backward();
    if (!retain_tape) current_tape().clear();
}

void Tape::backward() {
    for (auto it = nodes_.rbegin(); it != nodes_.rend(); ++it)
        if (it->output.impl()->has_grad) it->backward(it->inputs, it->output);
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

Tensor record(const char* name, Array value, std::vector<Tensor> inputs, BackwardFn backward) {
    const bool needed = needs_recording(inputs.data(), inputs.data() + inputs.size());
    Tensor out(std::move(value), needed);
    if (needed) current_tape().push(Node{name, std::move(inputs), out, std::move(backward)});
    return out;
}

}  // namespace tg
