#include <atomic>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "autograd/detail.hpp"
#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/threads.hpp"
#include "examples/structured_output.hpp"
#include "helpers.hpp"
#include "optim/adam.hpp"

using namespace tg;
using tgtest::random_tensor;

namespace {
// Sets the thread count for one test and back to 1 after it.
struct Threads {
    explicit Threads(int n) { set_num_threads(n); }
    ~Threads() { set_num_threads(1); }
};
}  // namespace

TEST_CASE("Parallel: every part runs once, nested regions and single parts serially") {
    Threads two(2);
    CHECK(num_threads() == 2);
    for (int round = 0; round < 200; ++round) {  // many regions: the workers' spin, sleep and wake paths
        std::vector<std::atomic<int>> runs(2);
        std::atomic<int> nested{0};
        kernels::parallel_for(2, [&](std::size_t p) {
            runs[p].fetch_add(1);
            kernels::parallel_for(2, [&](std::size_t) { nested.fetch_add(1); });
        });
        REQUIRE(runs[0].load() == 1);
        REQUIRE(runs[1].load() == 1);
        REQUIRE(nested.load() == 4);
    }
    int serial = 0;
    kernels::parallel_for(1, [&](std::size_t p) { serial += static_cast<int>(p) + 1; });
    CHECK(serial == 1);
    std::vector<std::atomic<int>> many(7);  // more parts than threads
    kernels::parallel_for(7, [&](std::size_t p) { many[p].fetch_add(1); });
    for (auto& r : many) CHECK(r.load() == 1);
}

TEST_CASE("Parallel: a region started while the pool is busy runs on its own thread") {
    Threads two(2);
    std::vector<std::thread::id> ran(2);
    kernels::parallel_for(2, [&](std::size_t p) {
        if (p != 0) return;
        std::thread other([&] { kernels::parallel_for(2, [&](std::size_t q) { ran[q] = std::this_thread::get_id(); }); });
        const std::thread::id id = other.get_id();
        other.join();
        CHECK(ran[0] == id);
        CHECK(ran[1] == id);
    });
}

TEST_CASE("Parallel: set_num_threads while other threads run regions, and num_threads tells the truth") {
    {
        Threads t(3);
        CHECK(num_threads() == 3);
    }
    CHECK(num_threads() == 1);
    std::atomic<bool> stop{false};
    std::atomic<long> wrong{0};
    std::vector<std::thread> users;
    for (int u = 0; u < 3; ++u)
        users.emplace_back([&] {
            while (!stop.load()) {
                std::vector<std::atomic<int>> runs(3);
                kernels::parallel_for(3, [&](std::size_t p) { runs[p].fetch_add(1); });
                for (auto& r : runs) wrong += r.load() != 1;
            }
        });
    for (int round = 0; round < 40; ++round) {
        set_num_threads(1 + round % 3);
        CHECK(num_threads() == 1 + round % 3);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    stop = true;
    for (std::thread& t : users) t.join();
    set_num_threads(1);
    CHECK(wrong.load() == 0);
    // from inside a part it would wait for its own region
    Threads two(2);
    CHECK_THROWS_AS(kernels::parallel_for(2, [](std::size_t) { set_num_threads(1); }), std::logic_error);
}

TEST_CASE("Parallel: idle workers go to sleep") {
    Threads three(3);
    for (int round = 0; round < 3; ++round) {
        // Each part waits for the other two to start: both workers are awake and take one.
        std::atomic<int> started{0};
        kernels::parallel_for(3, [&](std::size_t) {
            started.fetch_add(1);
            while (started.load() < 3) std::this_thread::yield();
        });
        // they spin ~0.2 ms; allow a busy machine 5 s
        for (int k = 0; k < 5000 && kernels::pool_sleepers() < 2; ++k)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        CHECK(kernels::pool_sleepers() == 2);
    }
}
TEST_CASE("Parallel: an exception in a worker's part reaches the caller, and the pool still works") {
    Threads two(2);
    CHECK_THROWS_WITH_AS(kernels::parallel_for(2,
                                              [&](std::size_t p) {
                                                  if (p == 1) throw std::runtime_error("part 1 failed");
                                              }),
                         "part 1 failed", std::runtime_error);
    std::atomic<int> runs{0};
    kernels::parallel_for(2, [&](std::size_t) { runs.fetch_add(1); });
    CHECK(runs.load() == 2);
}

TEST_CASE("Parallel: part_range cuts 0 .. n into aligned pieces that cover it") {
    for (std::size_t n : {0u, 1u, 15u, 16u, 17u, 100u, 392u, 1000u})
        for (std::size_t parts : {1u, 2u, 3u}) {
            std::size_t expect = 0;
            for (std::size_t p = 0; p < parts; ++p) {
                std::size_t lo, hi;
                kernels::part_range(n, parts, p, 16, lo, hi);
                CHECK(lo == expect);
                CHECK(hi >= lo);
                if (p + 1 < parts && hi < n) CHECK(hi % 16 == 0);
                expect = hi;
            }
            CHECK(expect == n);
        }
}

TEST_CASE("Parallel: GEMMs split over two threads give the single-threaded result") {
    // shapes of the structured-output step: all four transpose cases, rows or columns split
    struct Case {
        bool ta, tb;
        std::size_t m, n, k;
    };
    for (const Case& c : {Case{false, true, 100, 200, 392}, Case{false, true, 100, 392, 200},
                          Case{true, false, 392, 200, 100}, Case{false, false, 100, 200, 392},
                          Case{true, true, 200, 150, 64}, Case{false, false, 33, 517, 70}}) {
        const Array a = random_tensor(c.ta ? Shape{c.k, c.m} : Shape{c.m, c.k}, 1, -1.0f, 1.0f, false).value();
        const Array b = random_tensor(c.tb ? Shape{c.n, c.k} : Shape{c.k, c.n}, 2, -1.0f, 1.0f, false).value();
        Array one = random_tensor({c.m, c.n}, 3, -1.0f, 1.0f, false).value(), two = one;
        const std::size_t lda = c.ta ? c.m : c.k, ldb = c.tb ? c.k : c.n;
        set_num_threads(1);
        kernels::gemm(c.ta, c.tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, 1.0f, one.data(), c.n);
        {
            Threads t(2);
            kernels::gemm(c.ta, c.tb, c.m, c.n, c.k, 0.5f, a.data(), lda, b.data(), ldb, 1.0f, two.data(), c.n);
        }
        INFO("gemm ", c.ta, c.tb, " ", c.m, "x", c.n, "x", c.k);
        CHECK(xt::allclose(one, two, 1e-4, 1e-4));  // rounding only: some kernels sum the pieces differently
    }
}

TEST_CASE("Parallel: training steps with two threads repeat bit for bit and match one thread closely") {
    // The structured-output step (batch 100, 392-200-200-392): its GEMMs and Adam's updates of
    // the weights are large enough to be split.
    auto train = [](int threads) {
        Threads t(threads);
        Generator data(5), init(1), noise(2);
        Tensor upper(Array::from_shape({100, 392})), lower(Array::from_shape({100, 392}));
        for (float& v : upper.value()) v = data.uniform() < 0.3f ? 1.0f : 0.0f;
        for (float& v : lower.value()) v = data.uniform() < 0.3f ? 1.0f : 0.0f;
        structured::Model model(structured::Latent::categorical, 200, init);
        optim::Adam adam(model.parameters());
        structured::Estimator gs("gs");
        for (int step = 0; step < 3; ++step) {
            structured::training_loss(model, upper, lower, gs, 1.0f, 1, noise).objective.backward();
            adam.step();
            adam.zero_grad();
        }
        std::vector<Array> values;
        for (const Tensor& p : model.parameters()) values.push_back(p.value());
        return values;
    };
    const std::vector<Array> one = train(1), two = train(2), again = train(2);
    REQUIRE(one.size() == two.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
        REQUIRE(two[i].size() == again[i].size());
        CHECK(std::memcmp(two[i].data(), again[i].data(), two[i].size() * sizeof(float)) == 0);
        CHECK(xt::allclose(one[i], two[i], 1e-3, 1e-5));
    }
}

TEST_CASE("Parallel: parallel_tasks runs each task once, ops inside stay on their thread, errors reach the caller") {
    for (const int threads : {1, 2}) {
        CAPTURE(threads);
        set_num_threads(threads);
        for (const std::size_t count : {0, 1, 2, 7}) {
            std::vector<std::atomic<int>> runs(count);
            parallel_tasks(count, [&](std::size_t i) { ++runs[i]; });
            for (std::size_t i = 0; i < count; ++i) CHECK(runs[i] == 1);
        }
        // a GEMM large enough to split, inside a task: the whole product, as on one thread
        const Tensor a = tgtest::random_tensor({200, 100}, 1), b = tgtest::random_tensor({100, 150}, 2);
        set_num_threads(1);
        const Array alone = matmul(a, b).value();
        set_num_threads(threads);
        std::vector<Array> inside(3);
        parallel_tasks(3, [&](std::size_t i) {
            NoGradGuard no_grad;
            inside[i] = matmul(a, b).value();
        });
        for (const Array& x : inside) CHECK(tgtest::bitwise_equal(x, alone));
        CHECK_THROWS_WITH_AS(parallel_tasks(4, [](std::size_t i) {
                                 if (i == 2) throw std::runtime_error("task 2 failed");
                             }),
                             "task 2 failed", std::runtime_error);
    }
    set_num_threads(1);
}
