// Shape ops. Each copies into a fresh row-major buffer with plain loops, so every tensor's
// value stays contiguous (the other ops rely on that).
#include <algorithm>
#include <stdexcept>
#include <string>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"

namespace tg {

using In = const std::vector<Tensor>&;

namespace {

std::size_t product(const Array::shape_type& shape, std::size_t from, std::size_t to) {
    std::size_t p = 1;
    for (std::size_t d = from; d < to; ++d) p *= shape[d];
    return p;
}

std::string list_str(const std::vector<std::size_t>& v) {
    return shape_str(Array::shape_type(v.begin(), v.end()));
}

// dst[0..n) = src (beta 0) or += src (beta 1).
void copy_or_add(const float* src, std::size_t n, float beta, float* dst) {
    if (beta == 0.0f) std::copy(src, src + n, dst);
    else
        for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
}

// dst (row-major, axes permuted: dst axis k is src axis perm[k]) := or += src.
void permute(const float* src, const Array::shape_type& src_shape, const std::vector<std::size_t>& perm, float beta,
             float* dst) {
    const std::size_t nd = perm.size();
    std::size_t total = product(src_shape, 0, nd);
    if (total == 0) return;
    std::vector<std::size_t> src_stride(nd), extent(nd), stride(nd), index(nd, 0);
    for (std::size_t d = nd, s = 1; d-- > 0; s *= src_shape[d]) src_stride[d] = s;
    for (std::size_t k = 0; k < nd; ++k) extent[k] = src_shape[perm[k]], stride[k] = src_stride[perm[k]];
    if (nd == 0) {
        copy_or_add(src, 1, beta, dst);
        return;
    }
    // Walk dst in order; the last dst axis is the inner loop, an odometer runs the others.
    const std::size_t inner = extent[nd - 1], step = stride[nd - 1];
    std::size_t offset = 0;
    for (std::size_t row = 0, rows = total / inner; row < rows; ++row, dst += inner) {
        const float* s = src + offset;
        if (beta == 0.0f)
            for (std::size_t i = 0; i < inner; ++i) dst[i] = s[i * step];
        else
            for (std::size_t i = 0; i < inner; ++i) dst[i] += s[i * step];
        for (std::size_t k = nd - 1; k-- > 0;) {
            offset += stride[k];
            if (++index[k] < extent[k]) break;
            offset -= stride[k] * extent[k];
            index[k] = 0;
        }
    }
}

// Writes the parts side by side: row o of the joined data holds part p's row o (its
// size / outer values) for each p in turn. concat and stack differ only in the shapes.
Tensor join(const std::vector<Tensor>& parts, std::size_t outer, Array::shape_type out_shape, const char* op) {
    Array out = Array::from_shape(out_shape);
    std::size_t row = 0;
    for (const Tensor& p : parts) row += outer ? p.size() / outer : 0;
    std::size_t at = 0;
    for (const Tensor& p : parts) {
        const std::size_t chunk = outer ? p.size() / outer : 0;
        const float* src = p.value().data();
        for (std::size_t o = 0; o < outer; ++o) std::copy(src + o * chunk, src + (o + 1) * chunk, out.data() + o * row + at);
        at += chunk;
    }
    return record(op, std::move(out), parts, [outer](In in, const Tensor& result) {
        const std::size_t row = outer ? result.size() / outer : 0;
        const float* g = result.grad().data();
        std::size_t at = 0;
        for (const Tensor& p : in) {
            const std::size_t chunk = outer ? p.size() / outer : 0;
            if (p.requires_grad()) {
                float beta;
                float* d = detail::grad_for_accumulate(p, beta).data();
                for (std::size_t o = 0; o < outer; ++o) copy_or_add(g + o * row + at, chunk, beta, d + o * chunk);
            }
            at += chunk;
        }
    });
}

void require_parts(const std::vector<Tensor>& parts, const char* op) {
    if (parts.empty()) throw std::invalid_argument(std::string(op) + ": needs at least one tensor, got none");
    for (std::size_t i = 0; i < parts.size(); ++i)
        if (!parts[i].defined())
            throw std::invalid_argument(std::string(op) + ": part " + std::to_string(i) +
                                        " is a null Tensor (default-constructed)");
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
    Array::shape_type to(shape.size());
    std::size_t inferred = shape.size();
    for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == -1 && inferred == shape.size()) {
            inferred = d;
            to[d] = 1;
        } else if (shape[d] < 0) {
            std::string dims;
            for (std::size_t k = 0; k < shape.size(); ++k) dims += (k ? ", " : "") + std::to_string(shape[k]);
            throw std::invalid_argument("reshape: the shape (" + dims + ") may hold one -1 (inferred) and otherwise "
                                        "sizes >= 0, for a tensor of shape " + shape_str(a.shape()));
        } else {
            to[d] = static_cast<std::size_t>(shape[d]);
        }
    }
    std::size_t n = element_count(to, "reshape");
    if (inferred < shape.size()) {
        if (n == 0 || a.size() % n != 0)
            throw std::invalid_argument("reshape: cannot infer the -1 at position " + std::to_string(inferred) +
                                        " of " + shape_str(to) + " (1 there) for a tensor of shape " +
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
        float beta;
        Array& g = detail::grad_for_accumulate(in[0], beta);
        copy_or_add(result.grad().data(), g.size(), beta, g.data());
    });
}

Tensor transpose(const Tensor& a) {
    detail::require_defined("transpose", {&a});
    std::vector<std::size_t> perm(a.dim());
    for (std::size_t k = 0; k < perm.size(); ++k) perm[k] = perm.size() - 1 - k;
    return transpose(a, perm);
}

Tensor transpose(const Tensor& a, const std::vector<std::size_t>& perm) {
    detail::require_defined("transpose", {&a});
    const std::size_t nd = a.dim();
    std::vector<std::size_t> inverse(nd, nd);  // nd marks an axis not seen yet
    bool ok = perm.size() == nd;
    for (std::size_t k = 0; ok && k < nd; ++k) {
        ok = perm[k] < nd && inverse[perm[k]] == nd;
        if (ok) inverse[perm[k]] = k;
    }
    if (!ok)
        throw std::invalid_argument("transpose: axes " + list_str(perm) + " are not a permutation of the " +
                                    std::to_string(nd) + " axes of a tensor of shape " + shape_str(a.shape()));
    Array::shape_type out_shape(nd);
    for (std::size_t k = 0; k < nd; ++k) out_shape[k] = a.shape()[perm[k]];
    Array out = Array::from_shape(out_shape);
    permute(a.value().data(), a.shape(), perm, 0.0f, out.data());
    return record("transpose", std::move(out), {a}, [inverse](In in, const Tensor& result) {
        float beta;
        Array& g = detail::grad_for_accumulate(in[0], beta);
        permute(result.grad().data(), result.shape(), inverse, beta, g.data());
    });
}

Tensor slice(const Tensor& a, int axis, std::size_t start, std::size_t stop) {
    detail::require_defined("slice", {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "slice");
    const std::size_t dim = a.shape()[ax];
    if (start > stop || stop > dim)
        throw std::out_of_range("slice: [" + std::to_string(start) + ", " + std::to_string(stop) +
                                ") is not within axis " + std::to_string(axis) + " of length " +
                                std::to_string(dim) + " (shape " + shape_str(a.shape()) + "); need 0 <= start <= stop <= " +
                                std::to_string(dim));
    const std::size_t outer = product(a.shape(), 0, ax), inner = product(a.shape(), ax + 1, a.dim());
    const std::size_t chunk = (stop - start) * inner, row = dim * inner, skip = start * inner;
    Array::shape_type out_shape = a.shape();
    out_shape[ax] = stop - start;
    Array out = Array::from_shape(out_shape);
    const float* src = a.value().data();
    for (std::size_t o = 0; o < outer; ++o) std::copy(src + o * row + skip, src + o * row + skip + chunk, out.data() + o * chunk);
    return record("slice", std::move(out), {a}, [outer, chunk, row, skip](In in, const Tensor& result) {
        float beta;
        Array& ga = detail::grad_for_accumulate(in[0], beta);
        if (beta == 0.0f) std::fill(ga.begin(), ga.end(), 0.0f);
        const float* g = result.grad().data();
        for (std::size_t o = 0; o < outer; ++o) copy_or_add(g + o * chunk, chunk, 1.0f, ga.data() + o * row + skip);
    });
}

Tensor concat(const std::vector<Tensor>& parts, int axis) {
    require_parts(parts, "concat");
    const Array::shape_type& first = parts[0].shape();
    const std::size_t ax = detail::normalize_axis(axis, first, "concat");
    Array::shape_type out_shape = first;
    out_shape[ax] = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        const Array::shape_type& s = parts[i].shape();
        bool ok = s.size() == first.size();
        for (std::size_t d = 0; ok && d < s.size(); ++d) ok = d == ax || s[d] == first[d];
        if (!ok)
            throw std::invalid_argument("concat: part " + std::to_string(i) + " of shape " + shape_str(s) +
                                        " does not match part 0 of shape " + shape_str(first) +
                                        " on the axes other than " + std::to_string(axis));
        out_shape[ax] += s[ax];
    }
    return join(parts, product(first, 0, ax), out_shape, "concat");
}

Tensor stack(const std::vector<Tensor>& parts, int axis) {
    require_parts(parts, "stack");
    const Array::shape_type& first = parts[0].shape();
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
    Array::shape_type out_shape(first.size() + 1);
    for (std::size_t d = 0; d < out_shape.size(); ++d)
        out_shape[d] = d < ax ? first[d] : d == ax ? parts.size() : first[d - 1];
    return join(parts, product(first, 0, ax), out_shape, "stack");
}

}  // namespace tg
