// repeat, tile, repeat_interleave, split and chunk (torch's semantics, compositions of
// reshape, slice and concat), and the braced shapes of reshape.
#include <cstdint>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {
Array shaped(const Shape& shape, const std::vector<float>& values) {
    Array a = Array::from_shape(shape);
    REQUIRE(a.size() == values.size());
    std::copy(values.begin(), values.end(), a.begin());
    return a;
}

void check_equal(const Array& actual, const Array& expected) {
    REQUIRE(shape_str(actual.shape()) == shape_str(expected.shape()));
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("element " << i);
        CHECK(actual.data()[i] == expected.data()[i]);
    }
}
}  // namespace

TEST_CASE("Shape: repeat tiles as torch.Tensor.repeat, with leading axes when given more repeats") {
    const Tensor a(shaped({2, 2}, {1, 2, 3, 4}));
    check_equal(repeat(a, {2, 1}).value(), shaped({4, 2}, {1, 2, 3, 4, 1, 2, 3, 4}));
    check_equal(repeat(a, {1, 2}).value(), shaped({2, 4}, {1, 2, 1, 2, 3, 4, 3, 4}));
    check_equal(repeat(a, {2, 1, 1}).value(), shaped({2, 2, 2}, {1, 2, 3, 4, 1, 2, 3, 4}));
    check_equal(repeat(Tensor(Array{5, 6}), {2}).value(), Array{5, 6, 5, 6});
    CHECK(shape_str(repeat(a, {0, 3}).shape()) == "(0, 6)");
    // tile pads short repeats with 1s: tile(a, {3}) is repeat(a, {1, 3})
    check_equal(tile(a, {3}).value(), repeat(a, {1, 3}).value());
    check_equal(tile(a, {2, 1, 1}).value(), repeat(a, {2, 1, 1}).value());
    CHECK_THROWS_WITH_AS(repeat(a, {2}),
                         "repeat: 1 repeats for a tensor of shape (2, 2); give one per axis (at least 2, or use tile)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(repeat(Tensor(), {1}), doctest::Contains("repeat"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(repeat(a, {std::size_t(1) << 62, 4}), doctest::Contains("repeat: the shape"),
                         std::exception);
    const Tensor x = random_tensor({2, 3}, 1);
    check_gradients([](auto& in) { return repeat(in[0], {3, 2}); }, {x});
    check_gradients([](auto& in) { return repeat(in[0], {2, 1, 2}); }, {x});
    check_gradients([](auto& in) { return mul(tile(in[0], {2}), tile(in[0], {2})); }, {x});
}

TEST_CASE("Shape: repeat_interleave repeats each entry in place along an axis") {
    const Tensor a(shaped({2, 2}, {1, 2, 3, 4}));
    check_equal(repeat_interleave(a, 2, 0).value(), shaped({4, 2}, {1, 2, 1, 2, 3, 4, 3, 4}));
    check_equal(repeat_interleave(a, 3, -1).value(), shaped({2, 6}, {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4}));
    CHECK_THROWS_WITH_AS(repeat_interleave(a, 2, 2), doctest::Contains("repeat_interleave"), std::out_of_range);
    const Tensor x = random_tensor({3, 2}, 2);
    check_gradients([](auto& in) { return repeat_interleave(in[0], 3, 0); }, {x});
    check_gradients([](auto& in) { return repeat_interleave(in[0], 2, 1); }, {x});
}

TEST_CASE("Shape: split and chunk cut an axis into pieces as torch does, and their gradients join back") {
    const Tensor a(shaped({5, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
    const std::vector<Tensor> twos = split(a, 2);
    REQUIRE(twos.size() == 3);
    check_equal(twos[0].value(), shaped({2, 2}, {0, 1, 2, 3}));
    check_equal(twos[2].value(), shaped({1, 2}, {8, 9}));  // the last piece is shorter
    const std::vector<Tensor> cols = split(a, std::vector<std::size_t>{1, 1}, 1);
    check_equal(cols[1].value(), shaped({5, 1}, {1, 3, 5, 7, 9}));
    const std::vector<Tensor> parts = split(a, std::vector<std::size_t>{1, 0, 4}, 0);
    REQUIRE(parts.size() == 3);
    CHECK(shape_str(parts[1].shape()) == "(0, 2)");
    check_equal(parts[2].value(), shaped({4, 2}, {2, 3, 4, 5, 6, 7, 8, 9}));
    // chunk: pieces of ceil(5 / 3) = 2 rows; torch gives 2 pieces for chunk(6 rows, 4)
    CHECK(chunk(a, 3).size() == 3);
    check_equal(chunk(a, 3)[2].value(), shaped({1, 2}, {8, 9}));
    CHECK(chunk(Tensor::zeros({6}), 4).size() == 3);
    CHECK(chunk(a, 10).size() == 5);
    CHECK_THROWS_WITH_AS(split(a, std::vector<std::size_t>{2, 2}),
                         "split: sizes (2, 2) do not sum to the length 5 of axis 0 of shape (5, 2)", std::invalid_argument);
    CHECK_THROWS_WITH_AS(split(a, std::vector<std::size_t>{std::size_t(-1), 6}), doctest::Contains("do not sum"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(split(a, 0), doctest::Contains("split: the size of the pieces must be positive, got 0"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(chunk(a, 0), doctest::Contains("chunk: the number of chunks must be positive"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(split(a, 1, 2), doctest::Contains("split"), std::out_of_range);
    // a VAE's mean and log-variance from one output, each used in its own way
    const Tensor x = random_tensor({3, 4}, 3);
    check_gradients([](auto& in) {
        const std::vector<Tensor> mu_logvar = chunk(in[0], 2, -1);
        return add(square(mu_logvar[0]), exp(mu_logvar[1]));
    }, {x});
    check_gradients([](auto& in) {
        const std::vector<Tensor> p = split(in[0], std::vector<std::size_t>{1, 2}, 0);
        return concat({mul(p[1], 3.0f), p[0]}, 0);
    }, {x});
}

TEST_CASE("Shape: reshape takes a braced shape of any integer types, -1 among them") {
    const Tensor a = Tensor::zeros({2, 3, 4});
    const std::size_t n = 3, k = 4;
    const std::int64_t m = 2;
    const unsigned u = 12;
    CHECK(shape_str(reshape(a, {-1, n, k}).shape()) == "(2, 3, 4)");
    CHECK(shape_str(reshape(a, {m, -1}).shape()) == "(2, 12)");
    CHECK(shape_str(reshape(a, {u, m}).shape()) == "(12, 2)");
    CHECK(shape_str(reshape(a, {24}).shape()) == "(24,)");
    CHECK(shape_str(reshape(a, a.shape()).shape()) == "(2, 3, 4)");
    // the message shows the shape as given, -1 included
    CHECK_THROWS_WITH_AS(reshape(Tensor::zeros({1, 7}), {-1, 5}),
                         "reshape: cannot infer the -1 at position 0 of (-1, 5) for a tensor of shape (1, 7) (7 elements)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(reshape(a, {-1, n, -1}), doctest::Contains("may hold one -1"), std::invalid_argument);
}
