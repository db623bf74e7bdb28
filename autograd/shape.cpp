// Shape ops. Each copies into a fresh row-major buffer (kernels/copy.hpp), so every tensor's
// value stays contiguous (the other ops rely on that).
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbroadcast.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/copy.hpp"
#include "autograd/kernels/nn_kernels.hpp"  // kernels::AxisView
#include "autograd/ops.hpp"

namespace tg {

using In = const std::vector<Tensor>&;

namespace {

// Writes the parts side by side: row o of the joined data holds part p's row o (its
// size / outer values) for each p in turn, outer the product of the lengths before the
// joined axis. concat and stack differ only in the shapes.
Tensor join(const std::vector<Tensor>& parts, std::size_t axis, const Shape& out_shape, const char* op) {
    const std::size_t outer = std::max<std::size_t>(kernels::axis_view(out_shape, axis).outer, 1);
    Array out = Array::from_shape(out_shape);
    const std::size_t row = out.size() / outer;
    std::size_t at = 0;
    for (const Tensor& p : parts) {
        const std::size_t chunk = p.size() / outer;
        kernels::copy_rows(p.value().data(), chunk, outer, chunk, 0.0f, out.data() + at, row);
        at += chunk;
    }
    const bool stacked = out_shape.size() > parts[0].dim();
    return record(op, std::move(out), parts, [axis, stacked, op](In in, const Tensor& result) {
        const Tensor g = result.grad_tensor();  // each part's gradient is its slice of the output's
        std::size_t at = 0;
        for (const Tensor& p : in) {
            const std::size_t n = stacked ? 1 : p.shape()[axis];
            if (p.requires_grad()) p.accumulate_grad(reshape(slice(g, int(axis), at, at + n), p.shape()), op);
            at += n;
        }
    });
}

// The shape of part 0 of concat or stack, once parts holds at least one tensor and no null one.
const Shape& first_shape(const std::vector<Tensor>& parts, const char* op) {
    if (parts.empty()) throw std::invalid_argument(std::string(op) + ": needs at least one tensor, got none");
    for (std::size_t i = 0; i < parts.size(); ++i)
        if (!parts[i].defined())
            throw std::invalid_argument(std::string(op) + ": part " + std::to_string(i) +
                                        " is a null Tensor (default-constructed)");
    return parts[0].shape();
}

}  // namespace

Tensor reshape(const Tensor& a, const Shape& shape) {
    detail::require_defined("reshape", {&a});
    Shape known = shape;  // size_t(-1) reads as -1; any other size must fit the count
    for (std::size_t& d : known) d = d == std::size_t(-1) ? 1 : d;
    element_count(known, "reshape");
    return detail::reshape_signed(a, std::vector<std::ptrdiff_t>(shape.begin(), shape.end()));
}

Tensor detail::reshape_signed(const Tensor& a, const std::vector<std::ptrdiff_t>& shape) {
    detail::require_defined("reshape", {&a});
    Shape to(shape.size());
    std::size_t inferred = shape.size();
    auto given = [&] {  // the shape as the caller wrote it, -1 included, for the messages
        std::string dims;
        for (std::size_t k = 0; k < shape.size(); ++k) dims += (k ? ", " : "") + std::to_string(shape[k]);
        return dims;
    };
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] < -1 || (shape[d] == -1 && inferred < shape.size()))
            throw std::invalid_argument("reshape: the shape (" + given() + ") may hold one -1 (inferred) and otherwise "
                                        "sizes >= 0, for a tensor of shape " + shape_str(a.shape()));
        if (shape[d] == -1) inferred = d;
        to[d] = shape[d] == -1 ? 1 : static_cast<std::size_t>(shape[d]);
    }
    std::size_t n = element_count(to, "reshape");
    if (inferred < shape.size()) {
        if (n == 0 || a.size() % n != 0)
            throw std::invalid_argument("reshape: cannot infer the -1 at position " + std::to_string(inferred) +
                                        " of (" + given() + ") for a tensor of shape " +
                                        shape_str(a.shape()) + " (" + std::to_string(a.size()) + " elements)");
        to[inferred] = a.size() / n;
        n = a.size();
    }
    if (n != a.size())
        throw std::invalid_argument("reshape: cannot reshape a tensor of shape " + shape_str(a.shape()) + " (" +
                                    std::to_string(a.size()) + " elements) into " + shape_str(to) + " (" +
                                    std::to_string(n) + " elements)");
    Array out = Array::from_shape(to);
    std::copy(a.value().begin(), a.value().end(), out.begin());
    return record("reshape", std::move(out), {a}, [](In in, const Tensor& result) {
        if (creating_graph()) return in[0].accumulate_grad(reshape(result.grad_tensor(), in[0].shape()), "reshape");
        const Array& g = result.grad();  // the same elements in the same order: a view, no copy
        in[0].accumulate_grad(xt::adapt(g.data(), g.size(), xt::no_ownership(), in[0].shape()), "reshape");
    });
}

Tensor transpose(const Tensor& a) {
    detail::require_defined("transpose", {&a});
    std::vector<std::size_t> perm(a.dim());
    std::iota(perm.rbegin(), perm.rend(), 0);  // the axes reversed
    return transpose(a, perm);
}

Tensor transpose(const Tensor& a, const std::vector<std::size_t>& perm) {
    detail::require_defined("transpose", {&a});
    const std::size_t nd = a.dim();
    std::vector<std::size_t> inverse(nd);
    std::iota(inverse.begin(), inverse.end(), 0);
    const bool ok = perm.size() == nd && std::is_permutation(perm.begin(), perm.end(), inverse.begin());
    for (std::size_t k = 0; ok && k < nd; ++k) inverse[perm[k]] = k;
    if (!ok)
        throw std::invalid_argument("transpose: axes " + shape_str(Shape(perm.begin(), perm.end())) +
                                    " are not a permutation of the " + std::to_string(nd) +
                                    " axes of a tensor of shape " + shape_str(a.shape()));
    Shape out_shape(nd);
    for (std::size_t k = 0; k < nd; ++k) out_shape[k] = a.shape()[perm[k]];
    Array out = Array::from_shape(out_shape);
    kernels::permute(a.value().data(), a.shape(), perm, 0.0f, out.data());
    return record("transpose", std::move(out), {a}, [inverse](In in, const Tensor& result) {
        in[0].accumulate_grad(transpose(result.grad_tensor(), inverse), "transpose");
    });
}

Tensor slice(const Tensor& a, int axis, std::size_t start, std::size_t stop) {
    detail::require_defined("slice", {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "slice");
    const kernels::AxisView v = kernels::axis_view(a.shape(), ax);
    if (start > stop || stop > v.n)
        throw std::out_of_range("slice: [" + std::to_string(start) + ", " + std::to_string(stop) +
                                ") is not within axis " + std::to_string(axis) + " of length " + std::to_string(v.n) +
                                " (shape " + shape_str(a.shape()) + "); need 0 <= start <= stop <= " +
                                std::to_string(v.n));
    // Row o of a holds n * inner values; the slice takes `chunk` of them from `skip` on.
    const std::size_t chunk = (stop - start) * v.inner, row = v.n * v.inner, skip = start * v.inner;
    Shape out_shape = a.shape();
    out_shape[ax] = stop - start;
    Array out = Array::from_shape(out_shape);
    kernels::copy_rows(a.value().data() + skip, row, v.outer, chunk, 0.0f, out.data(), chunk);
    return record("slice", std::move(out), {a}, [v, ax, start, stop](In in, const Tensor& result) {
        Shape before = in[0].shape(), after = in[0].shape();  // the gradient between zeros
        before[ax] = start;
        after[ax] = v.n - stop;
        in[0].accumulate_grad(concat({Tensor::zeros(before), result.grad_tensor(), Tensor::zeros(after)}, int(ax)),
                              "slice");
    });
}

Tensor concat(const std::vector<Tensor>& parts, int axis) {
    const Shape& first = first_shape(parts, "concat");
    const std::size_t ax = detail::normalize_axis(axis, first, "concat");
    Shape out_shape = first;
    out_shape[ax] = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        Shape s = parts[i].shape();
        if (s.size() == first.size()) s[ax] = first[ax];  // the joined axis may differ
        if (s != first)
            throw std::invalid_argument("concat: part " + std::to_string(i) + " of shape " + shape_str(parts[i].shape()) +
                                        " does not match part 0 of shape " + shape_str(first) +
                                        " on the axes other than " + std::to_string(axis));
        out_shape[ax] += parts[i].shape()[ax];
    }
    return join(parts, ax, out_shape, "concat");
}

Tensor broadcast_to(const Tensor& a, const Shape& shape) {
    detail::require_defined("broadcast_to", {&a});
    element_count(shape, "broadcast_to");
    if (broadcast_shapes(a.shape(), shape, "broadcast_to") != shape)
        throw std::invalid_argument("broadcast_to: a tensor of shape " + shape_str(a.shape()) +
                                    " does not broadcast to " + shape_str(shape));
    return record("broadcast_to", Array(xt::broadcast(a.value(), shape)), {a}, [](In in, const Tensor& out) {
        in[0].accumulate_grad(sum_to(out.grad_tensor(), in[0].shape()), "broadcast_to");
    });
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
    detail::require_defined("sum_to", {&a});
    return record("sum_to", detail::sum_to(a.value(), shape), {a}, [](In in, const Tensor& out) {
        in[0].accumulate_grad(broadcast_to(out.grad_tensor(), in[0].shape()), "sum_to");
    });
}

Tensor stack(const std::vector<Tensor>& parts, int axis) {
    const Shape& first = first_shape(parts, "stack");
    const int nd = static_cast<int>(first.size());
    const int a = axis < 0 ? axis + nd + 1 : axis;
    if (a < 0 || a > nd)
        throw std::out_of_range("stack: axis " + std::to_string(axis) + " is out of range for stacking tensors of shape " +
                                shape_str(first) + " (allowed: " + std::to_string(-nd - 1) + " to " +
                                std::to_string(nd) + ")");
    for (std::size_t i = 1; i < parts.size(); ++i)
        if (parts[i].shape() != first)
            throw std::invalid_argument("stack: part " + std::to_string(i) + " of shape " +
                                        shape_str(parts[i].shape()) + " differs from part 0 of shape " +
                                        shape_str(first) + "; stacked tensors need equal shapes");
    const std::size_t ax = static_cast<std::size_t>(a);
    Shape out_shape(first.size() + 1);
    for (std::size_t d = 0; d < out_shape.size(); ++d) out_shape[d] = d < ax ? first[d] : d == ax ? parts.size() : first[d - 1];
    return join(parts, ax, out_shape, "stack");
}

// ---- repeat and split: compositions of the ops above (so a create_graph backward needs nothing new)

namespace {

// The axis's length, or an error naming op, the axis and the shape.
std::size_t axis_length(const Tensor& a, int axis, const char* op) {
    detail::require_defined(op, {&a});
    return a.shape()[detail::normalize_axis(axis, a.shape(), op)];
}

}  // namespace

namespace {
// repeat, with the name of the op the user called in its errors (tile and repeat_interleave
// are made of it)
Tensor repeat_as(const Tensor& a, const std::vector<std::size_t>& repeats, const char* op) {
    detail::require_defined(op, {&a});
    if (repeats.size() < a.dim())
        throw std::invalid_argument(std::string(op) + ": " + std::to_string(repeats.size()) + " repeats for a tensor of shape " +
                                    shape_str(a.shape()) + "; give one per axis (at least " + std::to_string(a.dim()) +
                                    ", or use tile)");
    Shape padded(repeats.size() - a.dim(), 1);  // leading axes of length 1, as torch
    padded.insert(padded.end(), a.shape().begin(), a.shape().end());
    Shape out_shape = padded;
    for (std::size_t d = 0; d < padded.size(); ++d) out_shape[d] = padded[d] * repeats[d];
    element_count(out_shape, op);  // refuses an overflowing count before anything is copied
    Tensor out = padded == a.shape() ? a : reshape(a, padded);
    for (std::size_t d = 0; d < repeats.size(); ++d) {
        if (repeats[d] == 1) continue;
        const int axis = static_cast<int>(d);
        out = repeats[d] == 0 ? slice(out, axis, 0, 0) : concat(std::vector<Tensor>(repeats[d], out), axis);
    }
    return out;
}
}  // namespace

Tensor repeat(const Tensor& a, const std::vector<std::size_t>& repeats) { return repeat_as(a, repeats, "repeat"); }

Tensor tile(const Tensor& a, const std::vector<std::size_t>& repeats) {
    detail::require_defined("tile", {&a});
    std::vector<std::size_t> padded(a.dim() > repeats.size() ? a.dim() - repeats.size() : 0, 1);
    padded.insert(padded.end(), repeats.begin(), repeats.end());
    return repeat_as(a, padded, "tile");
}

Tensor repeat_interleave(const Tensor& a, std::size_t repeats, int axis) {
    const std::size_t n = axis_length(a, axis, "repeat_interleave");
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "repeat_interleave");
    // a new axis of length 1 after `axis`, tiled, then merged into it: [.., n, 1, ..] -> [.., n * repeats, ..]
    Shape split_shape = a.shape();
    split_shape.insert(split_shape.begin() + std::ptrdiff_t(ax) + 1, 1);
    std::vector<std::size_t> reps(split_shape.size(), 1);
    reps[ax + 1] = repeats;
    Shape out_shape = a.shape();
    out_shape[ax] = n * repeats;
    return reshape(repeat_as(reshape(a, split_shape), reps, "repeat_interleave"), out_shape);
}

std::vector<Tensor> split(const Tensor& a, std::size_t size, int axis) {
    const std::size_t n = axis_length(a, axis, "split");
    if (size == 0)
        throw std::invalid_argument("split: the size of the pieces must be positive, got 0 (axis " +
                                    std::to_string(axis) + " of shape " + shape_str(a.shape()) + ")");
    std::vector<std::size_t> sizes;
    for (std::size_t at = 0; at < n; at += size) sizes.push_back(std::min(size, n - at));
    if (sizes.empty()) sizes.push_back(0);  // torch: an empty axis gives one empty piece
    return split(a, sizes, axis);
}

std::vector<Tensor> split(const Tensor& a, const std::vector<std::size_t>& sizes, int axis) {
    const std::size_t n = axis_length(a, axis, "split");
    std::size_t total = 0;
    for (std::size_t s : sizes) total += std::min(s, n + 1);  // saturates: no wrap-around past n
    if (total != n) {
        std::string given;
        for (std::size_t s : sizes) given += (given.empty() ? "" : ", ") + std::to_string(s);
        throw std::invalid_argument("split: sizes (" + given + ") do not sum to the length " + std::to_string(n) +
                                    " of axis " + std::to_string(axis) + " of shape " + shape_str(a.shape()));
    }
    std::vector<Tensor> pieces;
    std::size_t at = 0;
    for (std::size_t s : sizes) {
        pieces.push_back(slice(a, axis, at, at + s));
        at += s;
    }
    return pieces;
}

std::vector<Tensor> chunk(const Tensor& a, std::size_t chunks, int axis) {
    const std::size_t n = axis_length(a, axis, "chunk");
    if (chunks == 0)
        throw std::invalid_argument("chunk: the number of chunks must be positive, got 0 (shape " +
                                    shape_str(a.shape()) + ")");
    return split(a, std::max<std::size_t>(1, (n + chunks - 1) / chunks), axis);
}

}  // namespace tg
