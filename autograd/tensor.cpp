#include "autograd/tensor.hpp"
#include "autograd/debug/anomaly.hpp"
#include "autograd/detail.hpp"
#include "autograd/kernels/memory.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/ops.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <utility>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xnoalias.hpp>

namespace tg {

namespace {
thread_local Tape default_tape;
thread_local Tape* active_tape = &default_tape;
thread_local bool grad_mode = true;
thread_local bool graph_mode = false;  // a backward with create_graph runs
}  // namespace

bool creating_graph() { return graph_mode; }

std::string shape_str(const Array::shape_type& shape) {
    std::ostringstream out;
    out << '(';
    for (std::size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << (shape.size() == 1 ? ",)" : ")");
    return out.str();
}

Tensor::Tensor(Array value, bool requires_grad) : impl_(std::make_shared<TensorImpl>()) {
    static const bool memory_kept = kernels::keep_freed_memory();
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

void Tensor::null_tensor(const char* what) {
    throw std::logic_error(std::string("Tensor::") + what + ": the tensor is null (default-constructed)");
}
Array& Tensor::value() {
    check("value");
    if (!impl_->tape) ++impl_->version;  // only leaves are written: an op's output is read, its node never rewrites it
    impl_->discrete_sample = false;  // the writer may store anything
    impl_->sample_rows.reset();
    return impl_->value;
}
std::uint32_t Tensor::version() const { check("version"); return impl_->version; }
bool Tensor::has_grad() const { check("has_grad"); return impl_->grad.has; }

const Array& Tensor::grad() const {
    check("grad");
    if (!impl_->grad.has)
        throw std::logic_error("Tensor::grad: no gradient has reached this tensor of shape " +
                               shape_str(impl_->value.shape()) +
                               " (does it require grad, and did backward run through it?)");
    return impl_->grad.array;
}
Array& Tensor::grad() { return const_cast<Array&>(static_cast<const Tensor*>(this)->grad()); }

Tensor Tensor::grad_tensor() const {
    grad();  // the same error when there is none
    return impl_->grad.graph ? Tensor(impl_->grad.graph) : Tensor(impl_->grad.array);
}

void Tensor::zero_grad() { check("zero_grad"); impl_->grad.has = false; impl_->grad.graph.reset(); }
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

void Tensor::accumulate_grad(const Tensor& g, const char* op) const {
    check("accumulate_grad");
    if (!graph_mode) return accumulate_grad(g.value(), op);
    detail::require_grad(*this, op);
    if (g.shape() != shape()) detail::require_sums_to(g.shape(), shape(), op);
    const Tensor fit = g.shape() == shape() ? g : sum_to(g, shape());
    TensorImpl& t = *impl_;
    const Tensor sum = !t.grad.has ? fit : add(t.grad.graph ? Tensor(t.grad.graph) : Tensor(t.grad.array), fit);
    t.grad = {sum.value(), true, sum.impl_};
}

void Tensor::backward(bool retain_tape) const { backward(GradOptions().retain_graph(retain_tape)); }
void Tensor::backward(const Array& seed, bool retain_tape) const {
    backward(seed, GradOptions().retain_graph(retain_tape));
}

void Tensor::backward(const GradOptions& options) const {
    check("backward");
    if (size() != 1)
        throw std::logic_error("backward: the output has shape " + shape_str(value().shape()) +
                               "; only a one-element output is seeded with 1, pass a seed gradient "
                               "of that shape: t.backward(seed)");
    backward(Array(xt::ones<float>(value().shape())), options);
}

bool Tensor::is_leaf() const {
    check("is_leaf");
    return impl_->tape == nullptr && !impl_->graph_freed;
}

namespace {
// Throws unless t can start a backward on the current tape.
void check_root(const Tensor& t, const char* op) {
    const TensorImpl& impl = *t.impl();
    if (!impl.requires_grad)
        throw std::logic_error(std::string(op) + ": the output does not require grad (no input of it did, or it was "
                               "computed under NoGradGuard)");
    if (impl.graph_freed)
        throw std::logic_error(std::string(op) + (impl.cleared ? ": the output's node was freed by Tape::clear() (or "
                                                                "its tape was destroyed); run the forward again"
                                                              : ": backward through a graph a second time: pass "
                                                                "retain_tape to the first backward (this output's "
                                                                "node was freed when a backward walked it)"));
    if (impl.tape && impl.tape != &current_tape())
        throw std::logic_error(std::string(op) + ": the output was recorded on another tape (another thread's, or a "
                               "TapeScope that is no longer current); call it where it was recorded");
}
}  // namespace

void Tensor::backward(const Array& seed, const GradOptions& options) const {
    check("backward");
    check_root(*this, "backward");
    check_grad_shape(impl_->value, seed, "backward (seed)");
    if (anomaly_detection()) detail::check_seed(seed);
    current_tape().backward({*this}, {Tensor(seed)}, options);
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
        if (in && in->requires_grad && !in->tape && !in->graph_freed) mask |= kernels::StripedLocks::bit(in);
    }
    return mask;
}

void mark_freed(Node& node, bool cleared) {
    node.output.impl()->tape = nullptr;
    node.output.impl()->graph_freed = true;
    node.output.impl()->cleared = cleared;
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

namespace {
std::uint64_t input_versions(const std::vector<Tensor>& inputs, std::array<std::uint32_t, 4>& first) {
    std::uint64_t later = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const std::uint32_t v = inputs[i].defined() ? inputs[i].impl()->version : 0;
        if (i < first.size()) first[i] = v;
        else later += v;
    }
    return later;
}

// A node's backward reads its inputs' values: refuse one written since it was recorded.
void check_versions(const Node& node) {
    std::array<std::uint32_t, 4> now{};
    const std::uint64_t later = input_versions(node.inputs, now);
    std::string which;
    for (std::size_t i = 0; i < now.size() && which.empty(); ++i)
        if (now[i] != node.versions[i]) which = "input " + std::to_string(i);
    if (which.empty() && later != node.later_versions) which = "one of inputs 4 to " + std::to_string(node.inputs.size() - 1);
    if (!which.empty())
        throw std::logic_error("backward: " + which + " of " + node.name +
                               " was modified after the op was recorded (a write through value(), where a "
                               "non-const value() call counts as one, or an optimizer step): its gradient would "
                               "be wrong. Write after the backward, or read through a const Tensor& "
                               "(std::as_const(t).value()) or item()");
}

// creating_graph() while alive; as in PyTorch, grad mode follows it, so a first-order backward
// records nothing and an op's tensor formula serves it too
struct GraphMode {
    bool previous, previous_grad;
    explicit GraphMode(bool on) : previous(graph_mode), previous_grad(grad_mode) { graph_mode = grad_mode = on; }
    ~GraphMode() {
        graph_mode = previous;
        grad_mode = previous_grad;
    }
};
}  // namespace

std::uint64_t Tape::backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
                             const GradOptions& options, const std::function<void(const Tensor&)>& on_leaf) {
    const std::uint64_t pass = ++backward_passes;
    const std::size_t count = nodes_.size();
    const bool graph = options.create_graph(), retain = options.retain_graph();
    // Mark the nodes that lead to the roots, newest first; each tensor made by an op starts this
    // pass with no gradient. A freed node on the way is refused before any gradient moves.
    auto start = [pass](TensorImpl* t) {
        t->pass = pass;
        t->grad.has = false;
        t->grad.graph.reset();
    };
    for (const Tensor& root : roots)
        if (root.impl()->tape) start(root.impl());
        else if (on_leaf) on_leaf(root);
    for (std::size_t k = count; k-- > 0;) {
        const Node& node = nodes_[k];
        if (node.output.impl()->pass != pass) continue;
        for (std::size_t i = 0; i < node.inputs.size(); ++i) {
            TensorImpl* in = node.inputs[i].impl();
            if (!in) continue;
            if (in->graph_freed)
                throw std::logic_error(std::string("backward: input ") + std::to_string(i) + " of " + node.name +
                                       (in->cleared ? " was made by an op whose node Tape::clear() freed (or its "
                                                      "tape was destroyed); run the forward again"
                                                    : " was made by an op whose node an earlier backward freed: "
                                                      "backward through a graph a second time; pass retain_tape "
                                                      "to that backward (or backward the sum of both losses)"));
            if (in->tape && in->pass != pass) start(in);
            else if (!in->tape && on_leaf && in->requires_grad) on_leaf(node.inputs[i]);
        }
    }
    GraphMode mode(graph);
    try {
        for (std::size_t i = 0; i < roots.size(); ++i) roots[i].accumulate_grad(seeds[i], "backward (seed)");
        for (std::size_t k = count; k-- > 0;) {
            const TensorImpl* out = nodes_[k].output.impl();
            if (out->pass != pass || !out->grad.has) continue;
            check_versions(nodes_[k]);
            auto run = [](const Node& node) {
                kernels::StripedLocks locks(leaf_lock_mask(node));
                node.backward(node.inputs, node.output);
            };
            if (!graph) {
                run(nodes_[k]);
            } else {  // the backward records onto this tape, which may move its nodes as it grows
                Node node = std::move(nodes_[k]);
                try {
                    run(node);
                } catch (...) {
                    nodes_[k] = std::move(node);
                    throw;
                }
                nodes_[k] = std::move(node);
            }
            if (anomaly_detection()) detail::check_gradients(nodes_[k], k, count);
        }
    } catch (...) {  // a failed step must not leave its nodes for the next one
        if (!retain) clear();
        throw;
    }
    if (!retain) free_walked_and_dead(pass);
    return pass;
}

// Frees the nodes this pass walked and those no tensor outside the tape can reach any more
// (their output's only owner is the node): newest first, so freeing a node releases its
// inputs before their own nodes are looked at.
void Tape::free_walked_and_dead(std::uint64_t pass) {
    bool all_walked = true;  // the common case: one loss per step, so clear() keeps the capacity
    for (const Node& node : nodes_) all_walked = all_walked && node.output.impl()->pass == pass;
    if (all_walked) {  // keeps the capacity, like clear()
        for (Node& node : nodes_) mark_freed(node, false);
        return nodes_.clear();
    }
    bool kept = false;
    for (std::size_t k = nodes_.size(); k-- > 0;) {
        Node& node = nodes_[k];
        if (node.output.impl()->pass == pass || node.output.impl_.use_count() == 1) {
            mark_freed(node, false);
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
    for (Node& node : nodes_) mark_freed(node, true);
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
    Node node{name, std::move(inputs), out, std::move(backward)};
    node.later_versions = input_versions(node.inputs, node.versions);
    tape.push(std::move(node));
    return out;
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, const GradOptions& options) {
    if (outputs.empty()) throw std::invalid_argument("grad: needs at least one output");
    if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
        throw std::invalid_argument("grad: " + std::to_string(grad_outputs.size()) + " grad_outputs for " +
                                    std::to_string(outputs.size()) + " outputs (give one per output, or none)");
    std::vector<Tensor> seeds(outputs.size());
    for (std::size_t i = 0; i < outputs.size(); ++i) {
        const std::string which = "grad: output " + std::to_string(i);
        if (!outputs[i].defined()) throw std::invalid_argument(which + " is a null Tensor");
        check_root(outputs[i], which.c_str());
        if (!grad_outputs.empty() && grad_outputs[i].defined()) {
            check_grad_shape(outputs[i].value(), grad_outputs[i].value(), (which + " (grad_outputs)").c_str());
            seeds[i] = grad_outputs[i];
        } else if (outputs[i].size() == 1) {
            seeds[i] = Tensor(Array(xt::ones<float>(outputs[i].shape())));
        } else {
            throw std::invalid_argument(which + " has shape " + shape_str(outputs[i].shape()) +
                                        ": only a one-element output is seeded with 1, pass grad_outputs");
        }
    }
    for (std::size_t i = 0; i < inputs.size(); ++i)
        if (!inputs[i].defined() || !inputs[i].requires_grad())
            throw std::invalid_argument("grad: input " + std::to_string(i) +
                                        (inputs[i].defined() ? " does not require grad" : " is a null Tensor"));
    // The leaves' own gradients step aside for the pass and come back after it, so that only the
    // returned tensors carry what it computed. Each leaf is held: the pass may free its last owners.
    std::vector<std::pair<Tensor, TensorImpl::Grad>> saved;
    auto set_aside = [&saved](const Tensor& leaf) {
        for (const auto& s : saved)
            if (s.first.same(leaf)) return;
        saved.emplace_back(leaf, std::exchange(leaf.impl()->grad, {}));
    };
    struct Restore {
        std::vector<std::pair<Tensor, TensorImpl::Grad>>& saved;
        ~Restore() {
            for (auto& [leaf, g] : saved) leaf.impl()->grad = std::move(g);
        }
    } restore{saved};
    for (const Tensor& t : inputs)
        if (!t.impl()->tape) set_aside(t);
    const std::uint64_t pass = current_tape().backward(outputs, seeds, options, set_aside);
    std::vector<Tensor> result(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        TensorImpl* t = inputs[i].impl();
        if ((!t->tape || t->pass == pass) && t->grad.has)
            result[i] = t->grad.graph ? Tensor(t->grad.graph) : Tensor(Array(t->grad.array));  // a copy: inputs may repeat
        else if (!options.allow_unused())
            throw std::invalid_argument("grad: input " + std::to_string(i) + " of shape " + shape_str(t->value.shape()) +
                                        " was not used to compute the outputs (pass GradOptions().allow_unused(true) "
                                        "for a null Tensor instead)");
    }
    return result;
}

}  // namespace tg
