#include <tapegrad.hpp>

#include <cmath>
#include <cstdio>

int main() {
    tg::Tensor x(tg::Array{{1.0f, 2.0f}, {3.0f, 4.0f}}, true);
    tg::Tensor y = tg::sum(tg::matmul(x, x));
    y.backward();
    // d/dx sum(x x) = 1 x^T + x^T 1: row sums of x^T plus column sums of x^T.
    const float expected = 1.0f + 3.0f + 1.0f + 2.0f;  // element (0, 0)
    if (std::abs(x.grad()(0, 0) - expected) > 1e-5f) {
        std::printf("wrong gradient %f\n", x.grad()(0, 0));
        return 1;
    }
    std::printf("consumer ok: loss %g\n", y.item());
    return 0;
}
