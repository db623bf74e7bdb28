// The README's custom op that keeps an array of its forward for its backward (captured by value,
// as PyTorch's save_for_backward).
#include <utility>

#include <xtensor/xmath.hpp>

#include "helpers.hpp"

namespace {

tg::Tensor scaled_tanh(const tg::Tensor& x, float s) {
    tg::Array t = xt::tanh(x.value());  // kept for the backward: d/dx s tanh(x) = s (1 - t^2)
    tg::Array v = s * t;
    return tg::record("scaled_tanh", std::move(v), {x}, [t, s](const std::vector<tg::Tensor>& in, const tg::Tensor& out) {
        in[0].accumulate_grad(s * (1.0f - t * t) * out.grad(), "scaled_tanh");
    });
}

}  // namespace

TEST_CASE("Custom op: an array captured by value in the backward outlives the forward's locals and is right") {
    tg::Tensor x = tgtest::random_tensor({3, 4}, 1, -2.0f, 2.0f);
    tgtest::check_gradients([](auto& in) { return scaled_tanh(in[0], 1.5f); }, {x});
    tg::Tensor y = scaled_tanh(x, 2.0f);
    const tg::Array t = xt::tanh(std::as_const(x).value());
    tg::sum(y).backward();  // the saved t, not x, gives the gradient
    for (std::size_t i = 0; i < t.size(); ++i)
        CHECK(x.grad().data()[i] == doctest::Approx(2.0f * (1.0f - t.data()[i] * t.data()[i])));
}
