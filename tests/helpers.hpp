// Shared by the test files: a one-line gradient check and small tensor makers.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "tapegrad.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TAPEGRAD_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TAPEGRAD_TEST_ASAN 1
#endif

namespace tgtest {

// AddressSanitizer reserves terabytes of address space: no test can limit it (ulimit -v) there.
#ifdef TAPEGRAD_TEST_ASAN
constexpr bool address_sanitizer = true;
#else
constexpr bool address_sanitizer = false;
#endif

// A tensor of the given shape filled from a fixed seed with values in [lo, hi).
inline tg::Tensor random_tensor(const tg::Shape& shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f,
                                bool requires_grad = true) {
    tg::Generator g(seed);
    tg::Array a = tg::Array::from_shape(shape);
    for (float& v : a) v = lo + (hi - lo) * g.uniform();
    return tg::Tensor(std::move(a), requires_grad);
}

// Values in [lo, hi) kept at least `gap` away from each kink, for the ops with a corner.
inline tg::Tensor away_from(const std::vector<float>& kinks, const tg::Shape& shape, std::uint64_t seed, float lo, float hi,
                 float gap = 0.05f) {
    tg::Tensor t = random_tensor(shape, seed, lo, hi);
    for (float& v : t.value())
        for (float k : kinks)
            if (std::abs(v - k) < gap) v = v < k ? k - gap : k + gap;
    return t;
}
// CHECKs the tape's gradients of f at inputs against central finite differences.
inline void check_gradients(const std::function<tg::Tensor(const std::vector<tg::Tensor>&)>& f,
                            const std::vector<tg::Tensor>& inputs, tg::GradCheckOptions options = {}) {
    const tg::GradCheckResult r = tg::gradcheck(f, inputs, options);
    INFO(r.message);
    CHECK(r.ok);
}

// A fresh directory under the system's temp dir, removed with everything in it.
struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& name = "tmp") {
        static std::atomic<int> counter{0};
        path = std::filesystem::temp_directory_path() /
               ("tapegrad-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }
    std::string operator/(const std::string& name) const { return file(name); }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
        return out;
    }
};

inline std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An example program under a memory limit (ulimit -v) of 100 MB, short of the 128 MB buffer
// OpenBLAS takes for a GEMM (which it used to retry forever), and of 300 MB, which may fit the
// run: it ends, with status 0 or with status 2 and one line "<program>: out of memory while ...".
// run(shell_prefix) runs it after shell_prefix and returns its status and stderr; a timeout
// turns a hang into a failure instead of stalling the suite.
inline void check_memory_limits(const std::string& program,
                                const std::function<std::pair<int, std::string>(const std::string&)>& run) {
    if (address_sanitizer) {
        MESSAGE("AddressSanitizer reserves terabytes of address space: no address-space limit here");
        return;
    }
    for (const std::string kb : {"100000", "300000"}) {
        CAPTURE(kb);
        const std::pair<int, std::string> result = run("ulimit -v " + kb + " && exec timeout -s KILL 120 ");
        const int status = result.first;
        const std::string& err = result.second;  // not a structured binding: clang 14 cannot INFO one
        INFO(err);
        if (kb == "100000") CHECK(status == 2);
        CHECK((status == 0 || status == 2));
        if (status == 2) {
            CHECK(err.rfind(program + ": out of memory while ", 0) == 0);
            CHECK(std::count(err.begin(), err.end(), '\n') == 1);
        }
    }
}

inline bool bitwise_equal(const tg::Array& a, const tg::Array& b) {
    // memcmp must not see the null data pointer of an empty array, even for 0 bytes
    return a.shape() == b.shape() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace tgtest
