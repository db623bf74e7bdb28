#include "autograd/detail.hpp"

#include <stdexcept>

#include "autograd/kernels/broadcast.hpp"
#include "autograd/ops.hpp"

namespace tg::detail {

std::size_t normalize_axis(int axis, const Array::shape_type& shape, const char* op) {
    const int n = static_cast<int>(shape.size());
    const int a = axis < 0 ? axis + n : axis;
    if (a < 0 || a >= n)
        throw std::out_of_range(std::string(op) + ": axis " + std::to_string(axis) +
                                " is out of range for a tensor of shape " + shape_str(shape));
    return static_cast<std::size_t>(a);
}

Array::shape_type reduced_shape(const Array::shape_type& shape, std::size_t axis, bool keepdims) {
    Array::shape_type out = shape;
    if (keepdims) out[axis] = 1;
    else out.erase(out.begin() + static_cast<std::ptrdiff_t>(axis));
    return out;
}

void require_sums_to(const Shape& from, const Shape& shape, const char* op) {
    bool ok = shape.size() <= from.size();
    for (std::size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] == 1 || shape[i] == from[from.size() - shape.size() + i];
    if (!ok)
        throw std::invalid_argument(std::string(op) + ": a gradient of shape " + shape_str(from) +
                                    " does not sum down to its tensor's shape " + shape_str(shape));
}

Array sum_to(const Array& g, const Shape& shape, const char* op) {
    if (g.shape() == shape) return g;
    require_sums_to(g.shape(), shape, op);
    Array out = Array::from_shape(shape);
    kernels::sum_to(g.data(), g.shape(), shape, out.data());
    return out;
}

void require(bool ok, const char* op, const std::string& what, const Array::shape_type& shape) {
    if (!ok) throw std::invalid_argument(std::string(op) + ": " + what + ", got shape " + shape_str(shape));
}

void require_defined(const char* op, std::initializer_list<const Tensor*> inputs) {
    for (std::size_t i = 0; i < inputs.size(); ++i)
        if (!inputs.begin()[i]->defined())
            throw std::invalid_argument(std::string(op) + ": " +
                                        (inputs.size() == 1 ? std::string("the input") : "input " + std::to_string(i)) +
                                        " is a null Tensor (default-constructed)");
}

void require_grad(const Tensor& t, const char* op) {
    if (!t.requires_grad())
        throw std::logic_error(std::string(op) + ": a gradient for a tensor of shape " + shape_str(t.shape()) +
                               " that does not require grad (check requires_grad() before accumulating)");
}

Array& grad_for_accumulate(const Tensor& t, float& beta, const char* op) {
    if (creating_graph())
        throw std::logic_error(std::string(op) + " has no differentiable backward: its backward accumulates an "
                               "array during a backward with create_graph (a custom op's backward reads "
                               "out.grad_tensor() and accumulates tensors made with ops while creating_graph())");
    require_grad(t, op);
    TensorImpl::Grad& g = t.impl()->grad;
    g.graph.reset();
    beta = g.has ? 1.0f : 0.0f;
    if (!g.has && g.array.shape() != t.shape()) g.array = Array::from_shape(t.shape());
    g.has = true;
    return g.array;
}

}  // namespace tg::detail

namespace tg {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
    const std::size_t n = std::max(a.size(), b.size()), pad_a = n - a.size(), pad_b = n - b.size();
    Shape out(n, 1);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t da = i < pad_a ? 1 : a[i - pad_a], db = i < pad_b ? 1 : b[i - pad_b];
        if (da != db && da != 1 && db != 1)
            throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                        " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

}  // namespace tg
