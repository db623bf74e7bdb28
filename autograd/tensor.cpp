#include "autograd/tensor.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iostream>
#include <mutex>
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

Tensor::Tensor(Array value, bool requires_grad) : impl_(std::allocate_shared<TensorImpl>(CachingAllocator<TensorImpl>())) {
    impl_->value = std::move(value);
    impl_->requires_grad = requires_grad;
}

std::size_t element_count(const Shape& shape, const char* op) {
    std::size_t n = 1;
    for (std::size_t d : shape)
        if (d != 0 && n > SIZE_MAX / sizeof(float) / d)
            throw std::length_error(std::string(op) + ": the shape " + shape_str(shape) +
                                    " has more elements than memory can address");
        else n *= d;
    return n;
}

Tensor Tensor::scalar(float v, bool requires_grad) { return Tensor(Array(v), requires_grad); }
Tensor Tensor::zeros(const Shape& shape, bool requires_grad) { return full(shape, 0.0f, requires_grad); }
Tensor Tensor::ones(const Shape& shape, bool requires_grad) { return full(shape, 1.0f, requires_grad); }
Tensor Tensor::full(const Shape& shape, float v, bool requires_grad) {
    element_count(shape, "Tensor::full/zeros/ones");
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

bool Tensor::is_leaf() const {
    check("is_leaf");
    return impl_->tape == nullptr && !impl_->graph_freed;
}

void Tensor::backward(const Array& seed, bool retain_tape) const {
    check("backward");
    if (!impl_->requires_grad)
        throw std::logic_error("backward: the output does not require grad (no input of it did, or it was "
                               "computed under NoGradGuard)");
    if (impl_->graph_freed)
        throw std::logic_error("backward through a graph a second time: pass retain_tape to the first backward "
                               "(this output's node was freed when a backward walked it)");
    if (anomaly_mode && !all_finite(seed))
        throw AnomalyError("anomaly: the backward seed holds " + first_non_finite(seed));
    if (!impl_->tape) {  // a leaf: its own gradient is all there is
        accumulate_grad(seed, "backward (seed)");
        return;
    }
    if (impl_->tape != &current_tape())
        throw std::logic_error("backward: the output was recorded on another tape (another thread's, or a "
                               "TapeScope that is no longer current); call backward where it was recorded");
    check_grad_shape(impl_->value, seed, "backward (seed)");
    impl_->tape->backward(*this, seed, retain_tape);
}

namespace {
std::atomic<std::uint64_t> backward_passes{0};
std::atomic<std::size_t> warning_size{1000000};

// Leaf gradients may be shared by tapes on several threads (one model, two threads): a node
// whose backward adds into leaves holds their locks, striped by address, taken in order.
std::mutex leaf_locks[64];
std::uint64_t leaf_lock_mask(const Node& node) {
    std::uint64_t mask = 0;
    for (const Tensor& t : node.inputs) {
        const TensorImpl* in = t.impl();
        if (in && in->requires_grad && !in->tape && !in->graph_freed)
            mask |= std::uint64_t(1) << ((reinterpret_cast<std::uintptr_t>(in) >> 6) % 64);
    }
    return mask;
}
struct LeafLocks {
    std::uint64_t mask;
    explicit LeafLocks(std::uint64_t m) : mask(m) {
        for (unsigned i = 0; i < 64; ++i) if (mask >> i & 1) leaf_locks[i].lock();
    }
    ~LeafLocks() {
        for (unsigned i = 0; i < 64; ++i) if (mask >> i & 1) leaf_locks[i].unlock();
    }
};

void mark_freed(Node& node) {
    node.output.impl()->tape = nullptr;
    node.output.impl()->graph_freed = true;
}
}  // namespace

void set_tape_warning_size(std::size_t nodes) { warning_size = nodes; }
std::size_t tape_warning_size() { return warning_size; }

void Tape::push(Node node) {
    nodes_.push_back(std::move(node));
    const std::size_t limit = warning_size;
    if (limit && nodes_.size() > limit && !warned_) {
        warned_ = true;
        std::cerr << "tapegrad: warning: a tape holds more than " << limit << " nodes (the latest "
                  << nodes_.back().name << "): ops are recorded and no backward frees them; a forward for "
                     "evaluation outside NoGradGuard? (tg::set_tape_warning_size changes this limit)\n";
    }
}

void Tape::backward(const Tensor& root, const Array& seed, bool retain_tape) {
    const std::uint64_t pass = ++backward_passes;
    const std::size_t count = nodes_.size();
    // Mark the nodes that lead to root, newest first; each tensor made by an op starts this
    // pass with no gradient. A freed node on the way is refused before any gradient moves.
    root.impl()->pass = pass;
    root.impl()->has_grad = false;
    for (std::size_t k = count; k-- > 0;) {
        const Node& node = nodes_[k];
        if (node.output.impl()->pass != pass) continue;
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
            TensorImpl* in = node.inputs[i].impl();
            if (!in) continue;
            if (in->graph_freed)
                throw std::logic_error(std::string("backward through a graph a second time: input ") +
                                       std::to_string(i) + " of " + node.name +
                                       " was made by an op whose node an earlier backward freed; pass "
                                       "retain_tape to that backward (or backward the sum of both losses)");
            if (in->tape && in->pass != pass) {
                in->pass = pass;
                in->has_grad = false;
            }
        }
    }
    root.accumulate_grad(seed, "backward (seed)");
    try {
        for (std::size_t k = count; k-- > 0;) {
            const Node& node = nodes_[k];
            const TensorImpl* out = node.output.impl();
            if (out->pass != pass || !out->has_grad) continue;
            {
                LeafLocks locks(leaf_lock_mask(node));
                node.backward(node.inputs, node.output);
            }
            if (anomaly_mode) check_gradients(node, k, count);
        }
    } catch (...) {  // a failed step must not leave its nodes for the next one
        if (!retain_tape) clear();
        throw;
    }
    if (!retain_tape) free_walked_and_dead(pass);
}

// Frees the nodes this pass walked and those no tensor outside the tape can reach any more
// (their output's only owner is the node): newest first, so freeing a node releases its
// inputs before their own nodes are looked at.
void Tape::free_walked_and_dead(std::uint64_t pass) {
    bool all_walked = true;  // the common case: one loss per step, so clear() keeps the capacity
    for (const Node& node : nodes_) all_walked = all_walked && node.output.impl()->pass == pass;
    if (all_walked) return clear();
    bool kept = false;
    for (std::size_t k = nodes_.size(); k-- > 0;) {
        Node& node = nodes_[k];
        if (node.output.impl()->pass == pass || node.output.impl_.use_count() == 1) {
            mark_freed(node);
            node.inputs.clear();  // releases the inputs before their own nodes are looked at
            node.output = Tensor();
            node.name = nullptr;
        } else {
            kept = true;
        }
    }
    if (!kept) nodes_.clear();
    else nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(), [](const Node& n) { return n.name == nullptr; }),
                      nodes_.end());
}

void Tape::clear() {
    for (Node& node : nodes_) mark_freed(node);
    nodes_.clear();
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
    if (!needed) return out;
    Tape& tape = current_tape();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const TensorImpl* in = inputs[i].impl();
        if (in && in->tape && in->tape != &tape)
            throw std::logic_error(std::string(name) + ": input " + std::to_string(i) +
                                   " was made by an op recorded on another tape (another thread's, or another "
                                   "TapeScope's); use it on that tape, or pass detach() of it");
    }
    out.impl()->tape = &tape;
    tape.push(Node{name, std::move(inputs), out, std::move(backward)});
    return out;
}

}  // namespace tg
