// The tensor handle and the tape: the whole of tapegrad's reverse mode.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xnoalias.hpp>

#include "autograd/array.hpp"

namespace tg {

// The number of elements of shape, or std::length_error naming op and the shape when the
// product of its dimensions overflows.
std::size_t element_count(const Shape& shape, const char* op);

class Tensor;
namespace kernels { struct BinaryRows; }

// What a tensor handle points at. Shared, so copying a Tensor aliases it.
class Tape;
struct TensorImpl {
    Array value;
    struct Grad {
        Array array;  // meaningful only while `has`; the buffer outlives zero_grad
        bool has = false;
        // The gradient as a tensor that may itself be differentiated (a backward with create_graph).
        std::shared_ptr<TensorImpl> graph;
    } grad;
    bool requires_grad = false;
    // Made by an op: the tape holding that op's node (null for a leaf, which the user made).
    Tape* tape = nullptr;
    bool graph_freed = false;  // made by an op whose node was freed (by backward or Tape::clear)
    bool cleared = false;      // ... freed by Tape::clear() or the tape's end, not by a backward
    std::uint64_t pass = 0;    // the last backward pass that reached this tensor
    std::uint32_t version = 0; // bumped by every write through a leaf's Tensor::value()
    bool discrete_sample = false;  // see Tensor::mark_discrete_sample
    // a one-hot sampler's list of its ones, so that linear and matmul need not scan; dropped with the mark
    std::shared_ptr<const kernels::BinaryRows> sample_rows;
};

// A node's backward: reads output.grad() and accumulates into the inputs that require grad.
// While creating_graph() it reads output.grad_tensor() and accumulates tensors computed with ops,
// so that the gradients it makes can be differentiated again.
using BackwardFn = std::function<void(const std::vector<Tensor>& inputs, const Tensor& output)>;

// The options of tg::grad and Tensor::backward, set by chaining: GradOptions().create_graph(true).
class GradOptions {
public:
    // Keep the walked nodes for another backward (default: as create_graph).
    GradOptions& retain_graph(bool on) { retain_ = on ? 1 : 0; return *this; }
    // Record the backward's own ops, so the gradients it returns are differentiable again.
    GradOptions& create_graph(bool on) { create_ = on; return *this; }
    // tg::grad only: an input the outputs do not depend on gets a null Tensor instead of an error.
    GradOptions& allow_unused(bool on) { unused_ = on; return *this; }
    bool retain_graph() const { return retain_ < 0 ? create_ : retain_ == 1; }
    bool create_graph() const { return create_; }
    bool allow_unused() const { return unused_; }

private:
    int retain_ = -1;
    bool create_ = false, unused_ = false;
};

class Tensor {
public:
    Tensor() = default;  // a null handle; most calls on it throw
    explicit Tensor(Array value, bool requires_grad = false);

    static Tensor scalar(float v, bool requires_grad = false);
    static Tensor zeros(const Shape& shape, bool requires_grad = false);
    static Tensor ones(const Shape& shape, bool requires_grad = false);
    static Tensor full(const Shape& shape, float v, bool requires_grad = false);

    bool defined() const { return impl_ != nullptr; }
    const Array& value() const { check("value"); return impl_->value; }
    // For optimizers and initializers; not recorded. On a leaf it counts as a write (it bumps
    // version()), so a backward that reads the old value refuses to run: read a leaf between a
    // forward and its backward through a const Tensor& or item().
    Array& value();
    std::uint32_t version() const;
    const Array& grad() const;  // throws if no gradient has reached this tensor
    Array& grad();
    // The gradient as a tensor: after a backward with create_graph, one that can be
    // differentiated again; otherwise a constant copy of grad().
    Tensor grad_tensor() const;
    bool has_grad() const;
    void zero_grad();  // forgets the gradient, keeps its buffer for the next step
    bool requires_grad() const { check("requires_grad"); return impl_->requires_grad; }
    Tensor& set_requires_grad(bool on = true);
    // A hint that every entry is 0 or 1 (a discrete sample: the samplers set it on their exact
    // samples and on the forward values of straight-through ones). linear and matmul then add
    // up the weight rows a sample selects instead of a GEMM, having checked the entries (a wrong
    // hint costs a scan, never a wrong result). A write through value() drops it.
    Tensor& mark_discrete_sample(bool on = true) { check("mark_discrete_sample"); impl_->discrete_sample = on; impl_->sample_rows.reset(); return *this; }
    bool is_discrete_sample() const { return impl_ && impl_->discrete_sample; }

    const Array::shape_type& shape() const { return value().shape(); }
    std::size_t dim() const { return value().dimension(); }
    std::size_t size() const { return value().size(); }
    std::size_t shape(int axis) const;  // negative axes count from the end
    float item() const;  // the value of a one-element tensor

    // Reverse mode from this tensor: its seed flows through the nodes that lead to it, and
    // only those (PyTorch's semantics). A one-element tensor is seeded with 1; any other needs
    // a seed of its own shape. Leaf gradients accumulate; the gradients of tensors made by ops
    // start from zero in each pass. Without retain_tape the walked nodes are freed, and a
    // second backward through them throws.
    void backward(bool retain_tape = false) const;
    void backward(const Array& seed, bool retain_tape = false) const;
    // With create_graph, leaf gradients are differentiable tensors too: x.grad_tensor().
    void backward(const GradOptions& options) const;
    void backward(const Array& seed, const GradOptions& options) const;

    // Adds g to the gradient; `op` names the caller in errors. g has this tensor's shape, or one
    // that broadcasts to it (then it is summed down, as PyTorch's engine does). Custom ops call
    // this in their backward: with an array or xtensor expression (written into the gradient
    // buffer without a temporary) for first-order gradients, with a tensor computed by ops from
    // out.grad_tensor() while creating_graph(). The tensor must require grad.
    template <class E>
    void accumulate_grad(const xt::xexpression<E>& g, const char* op) const;
    void accumulate_grad(const Tensor& g, const char* op) const;

    TensorImpl* impl() const { return impl_.get(); }
    bool same(const Tensor& other) const { return impl_ == other.impl_; }
    bool is_leaf() const;  // made by the user, not by an op (PyTorch's is_leaf)

private:
    friend class Tape;
    friend std::vector<Tensor> grad(const std::vector<Tensor>&, const std::vector<Tensor>&,
                                    const std::vector<Tensor>&, const GradOptions&);
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
    // inline: every accessor passes here, and a call per accessor was measurable on the tape
    void check(const char* what) const {
        if (__builtin_expect(!impl_, 0)) null_tensor(what);
    }
    [[noreturn]] static void null_tensor(const char* what);
    std::shared_ptr<TensorImpl> impl_;
};

// One recorded op: its inputs, its output and how to push gradients back.
struct Node {
    const char* name;
    std::vector<Tensor> inputs;
    Tensor output;
    BackwardFn backward;
    // The inputs' versions when recorded (the first four each, the rest summed): a backward
    // refuses to read a value written since.
    std::array<std::uint32_t, 4> versions{};
    std::uint64_t later_versions = 0;
};

// The gradients of outputs with respect to inputs (PyTorch's torch.autograd.grad), each seeded
// with its grad_outputs entry (default: 1 for a one-element output). Inputs' own grad() is left
// untouched. With create_graph the returned tensors are differentiable again, to any order.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, const GradOptions& options = {});
// True while a backward with create_graph runs on this thread: a custom op's backward then
// accumulates tensors made with ops (see Tensor::accumulate_grad).
bool creating_graph();

// Operations in creation order, which is already topological: backward is one reverse loop.
// A tape holds every node recorded on it until a backward without retain_tape walks it (or
// it is no longer reachable from any tensor outside the tape, which that backward also frees),
// or clear() frees all of it. Freed outputs remember it: a backward through them throws.
class Tape {
public:
    Tape() = default;
    Tape(const Tape&) = delete;
    Tape& operator=(const Tape&) = delete;
    ~Tape() { clear(); }
    void push(Node node);
    // Pushes each seed from its root (recorded on this tape, or a leaf) back to the leaves, calling
    // on_leaf (if given) for each leaf on the way before any gradient moves. Returns the pass's number.
    std::uint64_t backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& seeds,
                           const GradOptions& options, const std::function<void(const Tensor&)>& on_leaf = {});
    void clear();  // frees every node; keeps the capacity for the next step
    std::size_t size() const { return nodes_.size(); }

private:
    void free_walked_and_dead(std::uint64_t pass);
    std::vector<Node> nodes_;
    bool warned_ = false;
};

// Past this many nodes a tape warns once on stderr (default 1,000,000; 0 never warns): ops
// recorded and never followed by a backward, most often a forward for evaluation outside
// NoGradGuard, make a tape grow without bound.
void set_tape_warning_size(std::size_t nodes);
std::size_t tape_warning_size();

// Each thread records onto its own default tape; TapeScope makes another one current.
Tape& current_tape();
class TapeScope {
public:
    explicit TapeScope(Tape& tape);
    ~TapeScope();
    TapeScope(const TapeScope&) = delete;
    TapeScope& operator=(const TapeScope&) = delete;

private:
    Tape* previous_;
};

// While alive on a thread, ops record nothing and their outputs require no gradient.
class NoGradGuard {
public:
    NoGradGuard();
    ~NoGradGuard();
    NoGradGuard(const NoGradGuard&) = delete;
    NoGradGuard& operator=(const NoGradGuard&) = delete;

private:
    bool previous_;
};
bool grad_enabled();

// The one way an op (the library's or a user's) enters the tape: wraps `value` as the
// output and, if grad mode is on and any input requires grad, records `backward`.
bool needs_recording(const Tensor* begin, const Tensor* end);  // grad mode on and an input requires grad
Tensor record(const char* name, Array value, std::vector<Tensor> inputs, BackwardFn backward);
// The same for a braced list of inputs: when nothing is recorded, neither the input list nor
// the std::function is built (most of an op's cost under NoGradGuard).
namespace detail {
// An output nothing records, checked for non-finite values when anomaly detection is on.
Tensor unrecorded(const char* name, Array value, const Tensor* begin, const Tensor* end);
}  // namespace detail
template <class F>
Tensor record(const char* name, Array value, std::initializer_list<Tensor> inputs, F&& backward) {
    if (!needs_recording(inputs.begin(), inputs.end()))
        return detail::unrecorded(name, std::move(value), inputs.begin(), inputs.end());
    return record(name, std::move(value), std::vector<Tensor>(inputs), BackwardFn(std::forward<F>(backward)));
}
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// "(2, 3)" for messages.
std::string shape_str(const Array::shape_type& shape);

namespace detail {
// The one way into a gradient buffer: t's, ready for a kernel that writes `beta * buffer + new`
// (beta 1 when a gradient is already there, else 0 over a reused or fresh buffer). Refuses
// (naming op) a t that does not require grad, and any array gradient while creating_graph().
Array& grad_for_accumulate(const Tensor& t, float& beta, const char* op);
// g summed down to shape (leading axes and axes of length 1), or an error naming op.
Array sum_to(const Array& g, const Shape& shape, const char* op = "sum_to");
}  // namespace detail

template <class E>
void Tensor::accumulate_grad(const xt::xexpression<E>& expr, const char* op) const {
    check("accumulate_grad");
    const E& g = expr.derived_cast();
    if (!std::equal(g.shape().begin(), g.shape().end(), shape().begin(), shape().end()))
        return accumulate_grad(detail::sum_to(Array(g), shape(), op), op);
    float beta;
    Array& buffer = detail::grad_for_accumulate(*this, beta, op);
    if (beta == 0.0f) xt::noalias(buffer) = g;
    else xt::noalias(buffer) += g;
}

}  // namespace tg
