#include <malloc.h>
#include <sys/resource.h>

#include <xtensor/xnoalias.hpp>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

#if defined(__SANITIZE_ADDRESS__)  // GCC
#define TGTEST_ASAN 1
#elif defined(__has_feature)  // clang
#define TGTEST_ASAN __has_feature(address_sanitizer)
#else
#define TGTEST_ASAN 0
#endif

TEST_CASE("Engine: a copied handle aliases the same tensor") {
    Tensor a = Tensor::ones({2, 3});
    Tensor b = a;
    b.value()(0, 0) = 5.0f;
    CHECK(a.value()(0, 0) == 5.0f);
    CHECK(a.same(b));
}

TEST_CASE("Engine: gradients accumulate over a shared subexpression") {
    Tensor x = Tensor::scalar(3.0f, true);
    Tensor y = x * x + x;  // dy/dx = 2x + 1 = 7
    y.backward();
    CHECK(x.grad()() == doctest::Approx(7.0f));
}

TEST_CASE("Engine: backward clears the tape and a second step reuses it") {
    Tensor w = Tensor::full({3}, 2.0f, true);
    for (int step = 0; step < 3; ++step) {
        w.zero_grad();
        Tensor loss = sum(mul(w, w));
        CHECK(current_tape().size() > 0);
        loss.backward();
        CHECK(current_tape().size() == 0);
        CHECK(w.grad()(1) == doctest::Approx(4.0f));
    }
}

TEST_CASE("Engine: NoGradGuard records nothing") {
    Tensor w = Tensor::ones({2}, true);
    {
        NoGradGuard guard;
        Tensor y = w * 2.0f;
        CHECK_FALSE(y.requires_grad());
        CHECK(current_tape().size() == 0);
    }
    CHECK(grad_enabled());
}

TEST_CASE("Engine: a TapeScope records onto its own tape") {
    Tape mine;
    Tensor w = Tensor::ones({2}, true);
    {
        TapeScope scope(mine);
        Tensor y = w * 2.0f;
        CHECK(mine.size() == 1);
    }
    CHECK(current_tape().size() == 0);
}

TEST_CASE("Engine: backward of a non-scalar needs a seed") {
    Tensor w = Tensor::ones({2}, true);
    Tensor y = w * 2.0f;
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("seed"), std::logic_error);
    y.backward(Array{1.0f, 3.0f});
    CHECK(w.grad()(1) == doctest::Approx(6.0f));
}

TEST_CASE("Engine: a custom op with its own backward, written outside the library") {
    // cube(x) = x^3 with d/dx = 3x^2: the pattern a user follows for a new op.
    auto cube = [](const Tensor& x) {
        Array v = x.value() * x.value() * x.value();
        return record("cube", std::move(v), {x}, [](const std::vector<Tensor>& in, const Tensor& out) {
            const Array& xv = in[0].value();
            in[0].accumulate_grad(Array(3.0f * xv * xv * out.grad()), "cube");
        });
    };
    Tensor x = random_tensor({4, 3}, 7);
    check_gradients([&](const std::vector<Tensor>& in) { return cube(in[0]); }, {x});
}

TEST_CASE("Engine: gradcheck reports a wrong backward") {
    auto wrong = [](const Tensor& x) {
        return record("wrong", Array(x.value() * 2.0f), {x}, [](const std::vector<Tensor>& in, const Tensor& out) {
            in[0].accumulate_grad(Array(out.grad() * 3.0f), "wrong");
        });
    };
    const GradCheckResult r = gradcheck([&](const std::vector<Tensor>& in) { return wrong(in[0]); },
                                        {random_tensor({3}, 1)});
    CHECK_FALSE(r.ok);
    CHECK(r.message.find("analytic") != std::string::npos);
}

TEST_CASE("Engine: the generator is seedable and its open uniform never hits 0 or 1") {
    Generator a(42), b(42);
    for (int i = 0; i < 1000; ++i) CHECK(a.next_u64() == b.next_u64());
    Generator g(3);
    float lo = 1.0f, hi = 0.0f;
    for (int i = 0; i < 200000; ++i) {
        const float u = g.uniform_open();
        lo = std::min(lo, u);
        hi = std::max(hi, u);
    }
    CHECK(lo > 0.0f);
    CHECK(hi < 1.0f);
    CHECK(lo < 1e-3f);
    CHECK(hi > 1.0f - 1e-3f);
}

TEST_CASE("Engine: generator state round-trips") {
    Generator g(9);
    g.next_u64();
    const auto s = g.state();
    const auto x = g.next_u64();
    Generator h;
    h.set_state(s);
    CHECK(h.next_u64() == x);
}

TEST_CASE("Engine: matmul and linear gradients") {
    Tensor a = random_tensor({3, 4}, 1), b = random_tensor({4, 5}, 2);
    check_gradients([](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); }, {a, b});
    Tensor x = random_tensor({6, 4}, 3), w = random_tensor({5, 4}, 4), bias = random_tensor({5}, 5);
    check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); }, {x, w, bias});
    check_gradients([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w});
}

TEST_CASE("Engine: add, sub, mul, div broadcast and sum gradients back") {
    Tensor a = random_tensor({3, 4}, 1), row = random_tensor({4}, 2), col = random_tensor({3, 1}, 3, 0.5f, 2.0f);
    check_gradients([](const std::vector<Tensor>& in) { return add(in[0], in[1]); }, {a, row});
    check_gradients([](const std::vector<Tensor>& in) { return sub(in[0], in[1]); }, {a, col});
    check_gradients([](const std::vector<Tensor>& in) { return mul(in[1], in[0]); }, {a, row});
    check_gradients([](const std::vector<Tensor>& in) { return div(in[0], in[1]); }, {a, col});
}

TEST_CASE("Engine: mismatched shapes name the op and both shapes") {
    Tensor a = Tensor::ones({2, 3}), b = Tensor::ones({4});
    CHECK_THROWS_WITH_AS(add(a, b), "add: shapes (2, 3) and (4,) cannot be broadcast together",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(matmul(a, a), doctest::Contains("matmul"), std::invalid_argument);
}

TEST_CASE("Engine: a steady training loop takes no new memory from the system") {
    // 480 KB weights: past glibc's default mmap threshold, which tapegrad raises (memory.cpp).
    // Given back to the system after each step, they would be faulted in again on the next.
    Tensor x = random_tensor({100, 300}, 1, -1.0f, 1.0f, false), t = random_tensor({100, 200}, 2, 0.0f, 1.0f, false);
    Tensor w1 = random_tensor({400, 300}, 3), b1 = random_tensor({400}, 4), w2 = random_tensor({200, 400}, 5);
    auto step = [&] {
        for (Tensor* p : {&w1, &b1, &w2}) p->zero_grad();
        Tensor loss = binary_cross_entropy_with_logits(linear(sigmoid(linear(x, w1, b1)), w2), t);
        loss.backward();
        for (Tensor* p : {&w1, &b1, &w2}) xt::noalias(p->value()) -= 0.1f * p->grad();
    };
    const auto held = [] {  // bytes malloc holds from the system
        const struct mallinfo2 m = mallinfo2();
        return m.arena + m.hblkhd;
    };
    const auto page_faults = [] {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        return u.ru_minflt;
    };
    for (int i = 0; i < 10; ++i) step();  // until the heap's layout settles
    const std::size_t before = held();
    const long faults = page_faults();
    for (int i = 0; i < 20; ++i) step();
    CHECK(held() == before);
#if !TGTEST_ASAN  // AddressSanitizer's allocator hands out fresh memory (its quarantine)
    CHECK(page_faults() == faults);
#else
    (void)faults;
#endif
}
