// An outside program on both installed libraries: a gradient through tapegrad::tapegrad and an
// IDX file parsed by tapegrad::datasets.
#include <datasets/mnist.hpp>
#include <tapegrad.hpp>

#include <cmath>
#include <cstdint>
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
    // A one-dimensional IDX file of three bytes: magic 0x00000801, size 3, data.
    const std::uint8_t idx_bytes[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
    const tg::mnist::Idx idx = tg::mnist::parse_idx(idx_bytes, sizeof idx_bytes, "consumer", 1);
    if (idx.dims.size() != 1 || idx.dims[0] != 3 || idx.data[2] != 9) {
        std::printf("wrong IDX parse\n");
        return 1;
    }
    std::printf("consumer ok: loss %g, IDX of %zu bytes\n", y.item(), idx.data.size());
    return 0;
}
