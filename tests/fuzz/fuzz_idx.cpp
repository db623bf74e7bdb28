// libFuzzer harness for the IDX reader (datasets/mnist.hpp). The first byte picks the path:
// bit 0 clear parses the rest in memory, set writes it to a file and reads it through zlib
// (raw or gzip); bits 1-2 give expected_ndim (0: any). Bit 3 set builds a large gzip file
// from a small input, so that claims near and past mnist::max_idx_bytes meet as many bytes
// as they ask for (within -max_len, a gzip input decompresses to at most about 8 MB): the
// next byte is a count k (0-64, see max_expansion_mib), the one after a fill byte, the rest the start of the file
// (header and first bytes), followed by k MiB of the fill byte as further gzip members.
// The reader may only throw std::runtime_error; anything else (a crash, another exception, a
// leak, an allocation above -malloc_limit_mb) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>
#include <zlib.h>

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
    if (idx.dims.empty() || total != idx.data.size() || total > tg::mnist::max_idx_bytes)
        __builtin_trap();  // the reader's promise
}

// bytes as one gzip member.
std::string gzip_member(const std::uint8_t* bytes, std::size_t size) {
    z_stream zs{};
    deflateInit2(&zs, 1, Z_DEFLATED, 9 + 16, 1, Z_DEFAULT_STRATEGY);  // a small window and state: cheap per input
    std::string out(deflateBound(&zs, static_cast<uLong>(size)), '\0');
    zs.next_in = const_cast<Bytef*>(bytes);
    zs.avail_in = static_cast<uInt>(size);
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

// 1 MiB of one byte value as a gzip member (about 1 kB), made once per value.
const std::string& mebibyte_of(std::uint8_t fill) {
    static std::map<std::uint8_t, std::string> made;
    auto it = made.find(fill);
    if (it == made.end()) {
        const std::vector<std::uint8_t> block(1 << 20, fill);
        it = made.emplace(fill, gzip_member(block.data(), block.size())).first;
    }
    return it->second;
}

// The largest k: 64, or TAPEGRAD_FUZZ_IDX_MIB. Reading tens of MB costs tens of ms, so a
// fuzzing run that must reach many executions (scripts/fuzz with TAPEGRAD_FUZZ_RUNS) may lower it.
std::size_t max_expansion_mib() {
    static const std::size_t mib = [] {
        const char* v = std::getenv("TAPEGRAD_FUZZ_IDX_MIB");
        return v ? static_cast<std::size_t>(std::strtoul(v, nullptr, 10) % 256) : std::size_t{64};
    }();
    return mib;
}

void write_file(const std::string& path, const std::string& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return;
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const bool from_file = data[0] & 1, expanded = data[0] & 8;
    const int expected_ndim = (data[0] >> 1) & 3;
    static ScratchFile file;
    try {
        if (expanded) {
            if (size < 3) return 0;
            const std::size_t mebibytes = data[1] % (max_expansion_mib() + 1);
            std::string bytes = gzip_member(data + 3, size - 3);
            for (std::size_t i = 0; i < mebibytes; ++i) bytes += mebibyte_of(data[2]);
            write_file(file.path, bytes);
            check(tg::mnist::read_idx(file.path, expected_ndim));
        } else if (!from_file) {
            check(tg::mnist::parse_idx(data + 1, size - 1, "fuzz", expected_ndim));
        } else {
            write_file(file.path, std::string(reinterpret_cast<const char*>(data + 1), size - 1));
            check(tg::mnist::read_idx(file.path, expected_ndim));
        }
    } catch (const std::runtime_error&) {
    }
    return 0;
}
