#include "autograd/tensor.hpp"
#include "autograd/debug/anomaly.hpp"
#include "autograd/detail.hpp"
#include "autograd/kernels/memory.hpp"
#include "autograd/kernels/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iostream>
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

Tensor::Tensor(Array value, bool requires_grad) : impl_(std::make_shared<TensorImpl>()) {
    static const bool memory_kept = detail::keep_freed_memory();
    (void)memory_kept;
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
    return value().shape()[detail::normalize_axis(axis, value().shape(), "Tensor::shape")];
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

// The first gradient of a pass reuses the buffer the last one left (or takes g's).
template <class G>
static void accumulate_into(TensorImpl& t, G&& g, const char* op) {
    check_grad_shape(t.value, g, op);
    if (t.has_grad) xt::noalias(t.grad) += g;
    else if (t.grad.shape() == g.shape()) xt::noalias(t.grad) = g;
    else t.grad = std::forward<G>(g);
    t.has_grad = true;
}
void Tensor::accumulate_grad(const Array& g, const char* op) const {
    check("accumulate_grad");
    accumulate_into(*impl_, g, op);
}
void Tensor::accumulate_grad(Array&& g, const char* op) const {
    check("accumulate_grad");
    accumulate_into(*impl_, std::move(g), op);
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
    if (anomaly_detection()) detail::check_seed(seed);
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
// whose backward adds into leaves holds their locks.
std::uint64_t leaf_lock_mask(const Node& node) {
    std::uint64_t mask = 0;
    for (const Tensor& t : node.inputs) {
        const TensorImpl* in = t.impl();
        if (in && in->requires_grad && !in->tape && !in->graph_freed) mask |= detail::StripedLocks::bit(in);
    }
    return mask;
}

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
                detail::StripedLocks locks(leaf_lock_mask(node));
                node.backward(node.inputs, node.output);
            }
            if (anomaly_detection()) detail::check_gradients(node, k, count);
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
    if (anomaly_detection()) detail::check_output(name, value, begin, end);
    return Tensor(std::move(value));
}
}  // namespace detail

Tensor record(const char* name, Array value, std::vector<Tensor> inputs, BackwardFn backward) {
    if (anomaly_detection()) detail::check_output(name, value, inputs.data(), inputs.data() + inputs.size());
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
