// Limits that must end in an exception, never in memory corruption or a killed process:
// optimizer state of the wrong size, sizes whose element count overflows, a file-size limit.
#include <csignal>
#include <cstdint>
#include <functional>
#include <limits>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.hpp"
#include "serialize/atomic_file.hpp"

using namespace tg;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "(no exception)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// One step of opt on model with the gradient of sum(model(x)^2).
void train_step(nn::Layer& model, optim::Optimizer& opt) {
    opt.zero_grad();
    sum(square(model.forward(Tensor(Array(xt::ones<float>({2, 3})))))).backward();
    opt.step();
}

}  // namespace

TEST_CASE("Optimizer: set_state and set_steps refuse a count or a shape other than the parameters', naming both") {
    nn::Linear model(3, 2);  // weight (2, 3), bias (2,)
    optim::Adam adam(model.parameters());
    optim::SGD sgd(model.parameters(), {0.1f, 0.9f});
    train_step(model, adam);
    const std::vector<Array> v = adam.state("v");

    std::string msg = error_of([&] { adam.set_state("v", {v[0]}); });
    CHECK(contains(msg, "adam: set_state('v'): 1 buffers for 2 parameters"));
    msg = error_of([&] { adam.set_state("m", {v[0], v[1], v[1]}); });
    CHECK(contains(msg, "adam: set_state('m'): 3 buffers for 2 parameters"));
    msg = error_of([&] { adam.set_state("v", {Array(xt::zeros<float>({3, 2})), v[1]}); });
    CHECK(contains(msg, "adam: set_state('v'): buffer 0 has shape (3, 2), parameter 0 has shape (2, 3)"));
    msg = error_of([&] { adam.set_state("v", {v[0], Array(xt::zeros<float>({1}))}); });
    CHECK(contains(msg, "buffer 1 has shape (1,), parameter 1 has shape (2,)"));
    msg = error_of([&] { sgd.set_state("momentum", {}); });
    CHECK(contains(msg, "sgd: set_state('momentum'): 0 buffers for 2 parameters"));
    CHECK_THROWS_AS(adam.set_state("momentum", v), std::out_of_range);  // Adam has none

    msg = error_of([&] { adam.set_steps({1}); });
    CHECK(contains(msg, "adam: set_steps: 1 step counts for 2 parameters"));
    msg = error_of([&] { adam.set_steps({1, -1}); });
    CHECK(contains(msg, "the step count of parameter 1 is negative (-1)"));

    // Nothing refused was taken: the state is whole, and stepping and saving read only it.
    CHECK(adam.state("v").size() == 2);
    CHECK(adam.steps() == std::vector<std::int64_t>{1, 1});
    train_step(model, adam);
    const tgtest::TempDir dir("set-state");
    save_checkpoint(dir.file("ck.npz"), model, &adam);
    load_checkpoint(dir.file("ck.npz"), model, &adam);

    // What is accepted: the parameters' shapes, or (0,) for a buffer not used yet, even beside
    // an allocated m (step() then starts both moments again instead of writing past v).
    adam.set_state("v", {optim::detail::unallocated(), v[1]});
    train_step(model, adam);
    CHECK(adam.state("v")[0].shape() == model.weight.shape());
    CHECK(adam.steps() == std::vector<std::int64_t>{3, 3});
    adam.set_steps({0, 2});
    train_step(model, adam);
    CHECK(adam.steps() == std::vector<std::int64_t>{1, 3});
}

TEST_CASE("Engine: one_hot, Linear and the Generator refuse sizes whose element count overflows, naming themselves") {
    const Indices indices = {0, 1};
    const std::size_t huge = (std::size_t(1) << 63) + 2;  // times 2 is 4 modulo 2^64
    CHECK_THROWS_WITH_AS(one_hot(indices, std::size_t(1) << 62),
                         doctest::Contains("one_hot: the shape (2, 4611686018427387904)"), std::length_error);
    CHECK_THROWS_WITH_AS(nn::Linear(2, SIZE_MAX / 2 + 2), doctest::Contains("Linear: the shape"), std::length_error);
    CHECK_THROWS_WITH_AS(nn::Linear(huge, 2), doctest::Contains("Linear: the shape (2, 9223372036854775810)"),
                         std::length_error);
    CHECK_THROWS_AS(nn::MLP({2, huge, 2}, [] { return std::make_shared<nn::ReLU>(); }), std::length_error);
    Generator g(1);
    CHECK_THROWS_WITH_AS(g.uniform_open({huge, 2}), doctest::Contains("Generator::uniform_open"), std::length_error);
    // sizes that fit still work, the empty ones included
    CHECK(one_hot(indices, 3).shape() == Shape{2, 3});
    CHECK(one_hot(Indices::from_shape({0}), std::size_t(1) << 40).shape() == Shape{0, std::size_t(1) << 40});
}

TEST_CASE("Files: past a file-size limit (ulimit -f) a write fails with 'File too large', keeps the old file and "
          "leaves no temporary; the process lives on") {
    const tgtest::TempDir dir("fsize");
    const std::string path = dir.file("data.bin"), ck_path = dir.file("ck.npz");
    write_file_atomic(path, "old");
    Checkpoint ck;
    ck.put("x", Array(xt::ones<float>({4096})));
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {  // the child never returns into doctest; its status says what went wrong
        const rlimit limit{8192, 8192};
        if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(10);
        int code = 0;
        const std::string msg = error_of([&] { write_file_atomic(path, std::string(20000, 'x')); });
        if (!contains(msg, "'" + path + "': write failed: File too large")) code = 11;
        if (!contains(error_of([&] { ck.save(ck_path); }), "File too large")) code = 12;
        if (tgtest::read_bytes(path) != "old") code = 13;
        if (dir.names().size() != 1) code = 14;  // no temporary left, no checkpoint
        sigset_t blocked;
        ::pthread_sigmask(SIG_SETMASK, nullptr, &blocked);
        if (sigismember(&blocked, SIGXFSZ)) code = 15;  // the signal mask is as it was
        write_file_atomic(path, "new");  // below the limit: works
        if (tgtest::read_bytes(path) != "new") code = 16;
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK_FALSE(WIFSIGNALED(status));  // SIGXFSZ's default action would have killed it
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
