// Shared by the test files: a one-line gradient check and small tensor makers.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "tapegrad.hpp"

namespace tgtest {

// A tensor of the given shape filled from a fixed seed with values in [lo, hi).
inline tg::Tensor random_tensor(const tg::Shape& shape, std::uint64_t seed, float lo = -1.0f, float hi = 1.0f,
                                bool requires_grad = true) {
    tg::Generator g(seed);
    tg::Array a = tg::Array::from_shape(shape);
    for (float& v : a) v = lo + (hi - lo) * g.uniform();
    return tg::Tensor(std::move(a), requires_grad);
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

inline bool bitwise_equal(const tg::Array& a, const tg::Array& b) {
    // memcmp must not see the null data pointer of an empty array, even for 0 bytes
    return a.shape() == b.shape() && (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace tgtest
