#include <xtensor/xmanipulation.hpp>

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

// Exact equality: shape ops only move values.
void check_equal(const Array& actual, const Array& expected) {
    REQUIRE(shape_str(actual.shape()) == shape_str(expected.shape()));
    for (std::size_t i = 0; i < expected.size(); ++i) {
        INFO("element " << i);
        CHECK(actual.data()[i] == expected.data()[i]);
    }
}
}  // namespace

TEST_CASE("Shape: reshape keeps the row-major order and its gradient reshapes back") {
    const Tensor a(shaped({2, 3}, {1, 2, 3, 4, 5, 6}), true);
    check_equal(reshape(a, {3, 2}).value(), shaped({3, 2}, {1, 2, 3, 4, 5, 6}));
    check_equal(reshape(a, {6}).value(), Array{1, 2, 3, 4, 5, 6});
    check_equal(reshape(Tensor::scalar(4.0f), {1, 1}).value(), shaped({1, 1}, {4}));
    CHECK(reshape(Tensor::ones({1}), {}).dim() == 0);
    const Tensor x = random_tensor({2, 3, 4}, 1);
    check_gradients([](auto& in) { return reshape(in[0], {4, 6}); }, {x});
    check_gradients([](auto& in) { return mul(reshape(in[0], {6, 4}), reshape(in[0], {6, 4})); }, {x});
}

TEST_CASE("Shape: reshape to a different element count names both shapes") {
    CHECK_THROWS_WITH_AS(reshape(Tensor::ones({2, 3}), {4}),
                         "reshape: cannot reshape a tensor of shape (2, 3) (6 elements) into (4,) (4 elements)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(reshape(Tensor(), {1}), doctest::Contains("reshape: the input is a null Tensor"),
                         std::invalid_argument);
}

TEST_CASE("Shape: transpose of a matrix and permutations of a 3-D tensor") {
    const Tensor m(shaped({2, 3}, {1, 2, 3, 4, 5, 6}));
    check_equal(transpose(m).value(), shaped({3, 2}, {1, 4, 2, 5, 3, 6}));
    check_equal(transpose(m, {0, 1}).value(), m.value());
    const Tensor x = random_tensor({2, 3, 4}, 2);
    const std::vector<std::vector<std::size_t>> perms = {{2, 1, 0}, {1, 2, 0}, {0, 2, 1}, {2, 0, 1}, {0, 1, 2}};
    for (const auto& perm : perms) {
        INFO("perm " << perm[0] << perm[1] << perm[2]);
        check_equal(transpose(x, perm).value(), Array(xt::transpose(x.value(), perm)));
        check_gradients([&](auto& in) { return transpose(in[0], perm); }, {x});
    }
    check_equal(transpose(x).value(), Array(xt::transpose(x.value())));
    check_gradients([](auto& in) { return transpose(in[0]); }, {x});
    check_equal(transpose(Tensor(Array{1, 2, 3})).value(), Array{1, 2, 3});
    CHECK(transpose(Tensor::scalar(2.0f)).item() == 2.0f);
}

TEST_CASE("Shape: transpose rejects an axes list that is not a permutation") {
    const Tensor m = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_AS(transpose(m, {0, 0}),
                         "transpose: axes (0, 0) are not a permutation of the 2 axes of a tensor of shape (2, 3)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(transpose(m, {0, 1, 2}), doctest::Contains("not a permutation"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(transpose(m, {1, 2}), doctest::Contains("not a permutation"), std::invalid_argument);
    CHECK_THROWS_AS(transpose(m, {0}), std::invalid_argument);
}

TEST_CASE("Shape: slice values and gradients along positive and negative axes") {
    Tensor x(shaped({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7}), true);
    check_equal(slice(x, 1, 1, 3).value(), shaped({2, 2}, {1, 2, 5, 6}));
    check_equal(slice(x, -2, 1, 2).value(), shaped({1, 4}, {4, 5, 6, 7}));
    CHECK(slice(x, 1, 2, 2).shape() == Array::shape_type{2, 0});
    check_equal(slice(x, -1, 0, 4).value(), x.value());
    sum(slice(x, -1, 1, 3)).backward();  // ones inside the window, zeros outside
    check_equal(x.grad(), shaped({2, 4}, {0, 1, 1, 0, 0, 1, 1, 0}));

    const Tensor y = random_tensor({3, 4, 5}, 3);
    check_gradients([](auto& in) { return slice(in[0], 0, 1, 3); }, {y});
    check_gradients([](auto& in) { return slice(in[0], 1, 0, 1); }, {y});
    check_gradients([](auto& in) { return slice(in[0], -1, 2, 5); }, {y});
    // Two overlapping slices of one tensor: the gradients add up where they overlap.
    check_gradients([](auto& in) { return add(slice(in[0], 2, 0, 3), slice(in[0], 2, 1, 4)); }, {y});
}

TEST_CASE("Shape: slice bounds and axes are checked") {
    const Tensor x = Tensor::ones({2, 4});
    CHECK_THROWS_WITH_AS(slice(x, 1, 3, 2), doctest::Contains("slice: [3, 2) is not within axis 1 of length 4"),
                         std::out_of_range);
    CHECK_THROWS_WITH_AS(slice(x, 1, 0, 5), doctest::Contains("0 <= start <= stop <= 4"), std::out_of_range);
    CHECK_THROWS_WITH_AS(slice(x, 2, 0, 1), "slice: axis 2 is out of range for a tensor of shape (2, 4)",
                         std::out_of_range);
    CHECK_THROWS_AS(slice(x, -3, 0, 1), std::out_of_range);
}

TEST_CASE("Shape: concat along each axis with parts of different lengths") {
    const Tensor a(shaped({2, 1}, {1, 2})), b(shaped({2, 2}, {3, 4, 5, 6}));
    check_equal(concat({a, b}, 1).value(), shaped({2, 3}, {1, 3, 4, 2, 5, 6}));
    check_equal(concat({b, a}, -1).value(), shaped({2, 3}, {3, 4, 1, 5, 6, 2}));
    check_equal(concat({b, b}, 0).value(), shaped({4, 2}, {3, 4, 5, 6, 3, 4, 5, 6}));
    check_equal(concat({b}, 0).value(), b.value());

    const Tensor x = random_tensor({2, 3, 4}, 4), y = random_tensor({2, 1, 4}, 5), z = random_tensor({2, 2, 4}, 6);
    check_gradients([](auto& in) { return concat({in[0], in[1], in[2]}, 1); }, {x, y, z});
    check_gradients([](auto& in) { return concat({in[0], in[1]}, -1); }, {x, random_tensor({2, 3, 2}, 7)});
    check_gradients([](auto& in) { return concat({in[0], in[1]}, 0); }, {x, random_tensor({1, 3, 4}, 8)});
    check_gradients([](auto& in) { return concat({in[0], in[0]}, 2); }, {x});  // one tensor twice
    // A part that needs no gradient is skipped, the others still get theirs.
    Tensor w(Array{1, 2}, true);
    sum(concat({Tensor(Array{5}), w}, 0) * 3.0f).backward();
    check_equal(w.grad(), Array{3, 3});
}

TEST_CASE("Shape: concat errors name the parts and shapes") {
    CHECK_THROWS_WITH_AS(concat({}, 0), "concat: needs at least one tensor, got none", std::invalid_argument);
    CHECK_THROWS_WITH_AS(concat({Tensor::ones({2, 3}), Tensor::ones({3, 3})}, 1),
                         "concat: part 1 of shape (3, 3) does not match part 0 of shape (2, 3) on the axes other than 1",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(concat({Tensor::ones({2, 3}), Tensor::ones({6})}, 0), doctest::Contains("part 1 of shape (6,)"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(concat({Tensor::ones({2}), Tensor()}, 0), "concat: part 1 is a null Tensor (default-constructed)",
                         std::invalid_argument);
    CHECK_THROWS_AS(concat({Tensor::ones({2})}, 1), std::out_of_range);
    CHECK_THROWS_AS(concat({Tensor::scalar(1.0f)}, 0), std::out_of_range);
}

TEST_CASE("Shape: stack inserts a new axis anywhere in [-(n+1), n]") {
    const Tensor a(Array{1, 2, 3}), b(Array{4, 5, 6});
    check_equal(stack({a, b}, 0).value(), shaped({2, 3}, {1, 2, 3, 4, 5, 6}));
    check_equal(stack({a, b}, 1).value(), shaped({3, 2}, {1, 4, 2, 5, 3, 6}));
    check_equal(stack({a, b}, -1).value(), shaped({3, 2}, {1, 4, 2, 5, 3, 6}));
    check_equal(stack({a, b}, -2).value(), shaped({2, 3}, {1, 2, 3, 4, 5, 6}));
    check_equal(stack({Tensor::scalar(7.0f), Tensor::scalar(8.0f)}, 0).value(), Array{7, 8});

    const Tensor x = random_tensor({2, 3}, 9), y = random_tensor({2, 3}, 10), z = random_tensor({2, 3}, 11);
    for (int axis = -3; axis <= 2; ++axis) {
        INFO("axis " << axis);
        const Tensor s = stack({x, y, z}, axis);
        const std::size_t ax = std::size_t(axis < 0 ? axis + 3 : axis);
        CHECK(s.shape()[ax] == 3);
        check_equal(reshape(slice(s, axis, 1, 2), {2, 3}).value(), y.value());  // part 1 sits at index 1
        check_gradients([=](auto& in) { return stack({in[0], in[1], in[2]}, axis); }, {x, y, z});
    }
}

TEST_CASE("Shape: stack errors") {
    const Tensor a = Tensor::ones({2, 3});
    CHECK_THROWS_WITH_AS(stack({a, a}, 3),
                         "stack: axis 3 is out of range for stacking tensors of shape (2, 3) (allowed: -3 to 2)",
                         std::out_of_range);
    CHECK_THROWS_AS(stack({a, a}, -4), std::out_of_range);
    CHECK_THROWS_WITH_AS(stack({a, Tensor::ones({3, 2})}, 0),
                         "stack: part 1 of shape (3, 2) differs from part 0 of shape (2, 3); stacked tensors need "
                         "equal shapes",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(stack({}, 0), doctest::Contains("stack: needs at least one tensor"), std::invalid_argument);
}

TEST_CASE("Shape: reshape infers one -1, and refuses two or a size that does not divide") {
    Tensor x = random_tensor({4, 6}, 11);
    CHECK(reshape(x, {-1, 3}).shape() == Shape{8, 3});
    CHECK(reshape(x, {2, -1, 2}).shape() == Shape{2, 6, 2});
    CHECK(reshape(x, {std::size_t(-1)}).shape() == Shape{24});  // size_t(-1) reads as -1
    check_gradients([](const std::vector<Tensor>& in) { return reshape(in[0], {-1, 4}); }, {x});
    CHECK_THROWS_WITH_AS(reshape(x, {-1, -1}), doctest::Contains("one -1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(reshape(x, {-1, 5}), doctest::Contains("cannot infer the -1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(reshape(x, {-2, 12}), doctest::Contains("reshape"), std::invalid_argument);
    const std::size_t n = 12;
    CHECK(reshape(x, {n, 2}).shape() == Shape{12, 2});  // size_t dims still work
}

// ---- repeat, tile, repeat_interleave, split and chunk (torch's semantics, compositions of
// reshape, slice and concat), and the braced shapes of reshape

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
    // the ops made of repeat name themselves
    CHECK_THROWS_WITH_AS(tile(a, {std::size_t(1) << 62, 4}), doctest::Contains("tile: the shape"), std::exception);
    CHECK_THROWS_WITH_AS(repeat_interleave(a, std::size_t(1) << 62, 0), doctest::Contains("repeat_interleave: the shape"),
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
