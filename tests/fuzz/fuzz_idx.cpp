// libFuzzer harness for the IDX reader (datasets/mnist.hpp). The first byte picks the path:
// bit 0 clear parses the rest in memory, set writes it to a file and reads it through zlib
// (raw or gzip); bits 1-2 give expected_ndim (0: any). The reader may only throw
// std::runtime_error; anything else (a crash, another exception, a leak) is a finding.
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <unistd.h>

#include "datasets/mnist.hpp"

namespace {

// One file per fuzzing process, rewritten for each input, removed at exit. In memory
// (/dev/shm) where there is one: ext4 flushes a file rewritten after a truncation on close,
// which made disk-backed /tmp ten times slower.
struct ScratchFile {
    std::string path = std::string(::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/tapegrad-fuzz-idx-" +
                       std::to_string(::getpid());
    ~ScratchFile() { std::remove(path.c_str()); }
};

void check(const tg::mnist::Idx& idx) {
    std::size_t total = 1;
    for (std::size_t d : idx.dims) total *= d;
    if (idx.dims.empty() || total != idx.data.size()) __builtin_trap();  // the reader's promise
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const bool from_file = data[0] & 1;
    const int expected_ndim = (data[0] >> 1) & 3;
    try {
        if (!from_file) {
            check(tg::mnist::parse_idx(data + 1, size - 1, "fuzz", expected_ndim));
        } else {
            static ScratchFile file;
            std::FILE* f = std::fopen(file.path.c_str(), "wb");
            if (!f) return 0;
            std::fwrite(data + 1, 1, size - 1, f);
            std::fclose(f);
            check(tg::mnist::read_idx(file.path, expected_ndim));
        }
    } catch (const std::runtime_error&) {
    }
    return 0;
}
