#include <xtensor/xbuilder.hpp>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"

namespace tg {

Tensor sum(const Tensor& a) {
    double s = 0.0;  // a long float sum loses digits; the accumulator is double
    for (float v : a.value()) s += v;
    return record("sum", Array(static_cast<float>(s)), {a}, [](const std::vector<Tensor>& in, const Tensor& out) {
        Array g = Array::from_shape(in[0].shape());
        g.fill(out.grad()());
        in[0].accumulate_grad(std::move(g), "sum");
    });
}

}  // namespace tg
