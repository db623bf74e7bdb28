#include "autograd/detail.hpp"

#include <stdexcept>
#include <vector>

#include <xtensor/xbuilder.hpp>

namespace tg::detail {

std::size_t normalize_axis(int axis, const Array::shape_type& shape, const char* op) {
    const int n = static_cast<int>(shape.size());
    const int a = axis < 0 ? axis + n : axis;
    if (a < 0 || a >= n)
        throw std::out_of_range(std::string(op) + ": axis " + std::to_string(axis) +
                                " is out of range for a tensor of shape " + shape_str(shape));
    return static_cast<std::size_t>(a);
}

Array::shape_type broadcast_shapes(const Array::shape_type& a, const Array::shape_type& b, const char* op) {
    const std::size_t n = std::max(a.size(), b.size());
    Array::shape_type out(n, 1);
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
        const std::size_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
        if (da != db && da != 1 && db != 1)
            throw std::invalid_argument(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                        " cannot be broadcast together");
        out[i] = da == 1 ? db : da;
    }
    return out;
}

Array::shape_type reduced_shape(const Array::shape_type& shape, std::size_t axis, bool keepdims) {
    Array::shape_type out = shape;
    if (keepdims) out[axis] = 1;
    else out.erase(out.begin() + static_cast<std::ptrdiff_t>(axis));
    return out;
}

Array sum_to(const Array& g, const Array::shape_type& shape) {
    if (g.shape() == shape) return g;
    if (shape.size() > g.dimension())
        throw std::invalid_argument("sum_to: cannot sum a gradient of shape " + shape_str(g.shape()) +
                                    " down to the larger rank of " + shape_str(shape));
    // Axes of g merge into runs that are all summed or all kept; a plain loop then walks g
    // once (xt::sum along axes is about 12x slower). extent[r] / summed[r] describe run r.
    const std::size_t lead = g.dimension() - shape.size();
    std::vector<std::size_t> extent;
    std::vector<char> summed;
    for (std::size_t i = 0; i < g.dimension(); ++i) {
        const std::size_t e = g.shape()[i];
        const bool s = i < lead || shape[i - lead] == 1;
        if (!s && shape[i - lead] != e)
            throw std::invalid_argument("sum_to: a gradient of shape " + shape_str(g.shape()) +
                                        " does not broadcast from " + shape_str(shape));
        if (e == 1) continue;
        if (!extent.empty() && summed.back() == s) extent.back() *= e;
        else extent.push_back(e), summed.push_back(s);
    }
    Array out = xt::zeros<float>(shape);
    if (g.size() == 0) return out;
    if (extent.empty()) {  // every axis of g has length 1
        out.data()[0] = g.data()[0];
        return out;
    }
    const std::size_t runs = extent.size(), inner = extent.back();
    std::vector<std::size_t> out_stride(runs), index(runs, 0);
    for (std::size_t r = runs, s = 1; r-- > 0;) {
        out_stride[r] = summed[r] ? 0 : s;
        if (!summed[r]) s *= extent[r];
    }
    const float* src = g.data();
    float* dst = out.data();
    std::size_t offset = 0;
    for (std::size_t row = 0, rows = g.size() / inner; row < rows; ++row, src += inner) {
        if (summed.back()) {
            float acc = 0.0f;
            for (std::size_t j = 0; j < inner; ++j) acc += src[j];
            dst[offset] += acc;
        } else {
            float* d = dst + offset;
            for (std::size_t j = 0; j < inner; ++j) d[j] += src[j];
        }
        for (std::size_t r = runs - 1; r-- > 0;) {  // odometer over the outer runs
            offset += out_stride[r];
            if (++index[r] < extent[r]) break;
            offset -= out_stride[r] * extent[r];
            index[r] = 0;
        }
    }
    return out;
}

void require(bool ok, const char* op, const std::string& what, const Array::shape_type& shape) {
    if (!ok) throw std::invalid_argument(std::string(op) + ": " + what + ", got shape " + shape_str(shape));
}

void require_defined(const char* op, std::initializer_list<const Tensor*> inputs) {
    std::size_t i = 0;
    for (const Tensor* t : inputs) {
        if (!t->defined())
            throw std::invalid_argument(std::string(op) + ": " +
                                        (inputs.size() == 1 ? std::string("the input") : "input " + std::to_string(i)) +
                                        " is a null Tensor (default-constructed)");
        ++i;
    }
}

}  // namespace tg::detail

namespace tg::detail {

Array& grad_for_accumulate(const Tensor& t, float& beta) {
    TensorImpl& impl = *t.impl();
    if (impl.has_grad) {
        beta = 1.0f;
    } else {
        beta = 0.0f;
        if (impl.grad.shape() != impl.value.shape()) impl.grad = Array::from_shape(impl.value.shape());
        impl.has_grad = true;
    }
    return impl.grad;
}

}  // namespace tg::detail
