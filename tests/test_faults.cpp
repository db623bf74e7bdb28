// Faults: killed checkpoint writes, damaged or foreign checkpoints, empty and mismatched
// tensors, and non-finite values caught by anomaly detection.
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <thread>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zip.h>
#include <zlib.h>

#include <xtensor/xbuilder.hpp>

#include "datasets/mnist.hpp"
#include "serialize/atomic_file.hpp"
#include "helpers.hpp"

using namespace tg;
namespace fs = std::filesystem;

using tgtest::TempDir;
using tgtest::read_bytes;
using tgtest::write_bytes;
using tgtest::bitwise_equal;
using tgtest::address_sanitizer;

namespace {

std::vector<Array> values_of(const nn::Module& m) {
    std::vector<Array> out;
    for (const Tensor& p : m.parameters()) out.push_back(p.value());
    return out;
}

bool same_values(const nn::Module& m, const std::vector<Array>& values) {
    const auto params = m.parameters();
    if (params.size() != values.size()) return false;
    for (std::size_t i = 0; i < values.size(); ++i)
        if (!bitwise_equal(params[i].value(), values[i])) return false;
    return true;
}

std::shared_ptr<nn::Sequential> mlp(std::size_t in, std::size_t hidden, std::size_t out, std::uint64_t seed) {
    Generator g(seed);
    return std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::Linear>(in, hidden, nn::LinearOptions{true, &g}), std::make_shared<nn::Tanh>(),
        std::make_shared<nn::Linear>(hidden, out, nn::LinearOptions{true, &g})});
}

// The message of the exception f throws as E ("" if it throws nothing).
template <class E, class F>
std::string message_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---- checkpoints ---------------------------------------------------------------------------

TEST_CASE("Faults: a checkpoint write killed at any moment leaves the previous checkpoint loadable") {
    const TempDir dir("killed-writes");
    const std::string path = dir.file("ck.npz");
    // 8 MB: a save takes long enough that kills land inside the write, the sync and the rename.
    Array big = Array::from_shape({2048, 1024});
    const auto save_filled = [&](float v) {
        big.fill(v);
        Checkpoint ck;
        ck.put("big", big);
        ck.put_int("version", static_cast<std::int64_t>(v));
        ck.save(path);
    };
    const auto t0 = std::chrono::steady_clock::now();
    save_filled(0.0f);
    const auto save_us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();

    Generator rng(7);
    std::int64_t last_version = 0;
    int kills_with_temporary = 0;
    for (int kill = 0; kill < 8; ++kill) {
        const pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {  // saves newer versions until killed; never returns into doctest
            for (int v = static_cast<int>(last_version) + 1;; ++v) save_filled(static_cast<float>(v));
        }
        // Anywhere within the first few saves of the child.
        const auto delay = static_cast<long>(rng.uniform() * 4.0f * static_cast<float>(save_us + 1000));
        std::this_thread::sleep_for(std::chrono::microseconds(delay));
        REQUIRE(::kill(child, SIGKILL) == 0);
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        CHECK(WIFSIGNALED(status));

        for (const std::string& name : dir.names()) kills_with_temporary += contains(name, ".tmp.");
        const Checkpoint loaded = Checkpoint::load(path);  // throws if the file is torn
        const std::int64_t version = loaded.get_int("version");
        CAPTURE(kill);
        CAPTURE(delay);
        CHECK(version >= last_version);  // never an older file, never a mix
        const Array& got = loaded.get("big");
        REQUIRE(got.size() == 2048u * 1024u);
        CHECK(std::all_of(got.begin(), got.end(), [&](float x) { return x == static_cast<float>(version); }));
        last_version = version;
    }
    MESSAGE("save takes " << save_us << " us; " << kills_with_temporary
                          << " kill checks found a temporary file left by a killed save; last version " << last_version);

    // A stale temporary file is never taken for the checkpoint, and the next save removes it.
    write_bytes(path + ".tmp.AbC123", "torn");
    CHECK(Checkpoint::load(path).get_int("version") == last_version);
    save_filled(1000.0f);
    for (const std::string& name : dir.names()) CHECK_MESSAGE(!contains(name, ".tmp."), name);
    CHECK(Checkpoint::load(path).get_int("version") == 1000);
}

TEST_CASE("Checkpoint: every single flipped byte is refused with CheckpointError or loads the saved values") {
    const TempDir dir("flips");
    const std::string path = dir.file("ck.npz");
    auto saved = mlp(2, 3, 1, 1);
    optim::Adam adam(saved->parameters());
    save_checkpoint(path, *saved, &adam);
    const std::string good = read_bytes(path);
    const auto saved_values = values_of(*saved);

    auto model = mlp(2, 3, 1, 2);
    optim::Adam model_adam(model->parameters());
    const auto before = values_of(*model);
    int refused = 0, loaded = 0;
    for (std::size_t i = 0; i < good.size(); ++i) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ (1 << (i % 8)));
        write_bytes(path, bad);
        try {
            load_checkpoint(path, *model, &model_adam);
            ++loaded;  // a byte nothing depends on (a timestamp): the values must be the saved ones
            CHECK_MESSAGE(same_values(*model, saved_values), "byte " << i);
            for (std::size_t k = 0; k < before.size(); ++k) model->parameters()[k].value() = before[k];
        } catch (const CheckpointError&) {
            ++refused;
            CHECK_MESSAGE(same_values(*model, before), "byte " << i);
        }
    }
    MESSAGE(good.size() << " bytes: " << refused << " flips refused, " << loaded << " harmless");
    CHECK(refused > static_cast<int>(good.size()) * 3 / 4);
}

TEST_CASE("Checkpoint: a checkpoint of another model kind is refused naming the entry, nothing changes") {
    const TempDir dir("other-kind");
    const std::string path = dir.file("ck.npz");
    auto small = mlp(4, 8, 2, 1);
    optim::Adam small_adam(small->parameters());
    save_checkpoint(path, *small, &small_adam);

    // Same names, other shapes: a wider hidden layer.
    auto wide = mlp(4, 16, 2, 2);
    optim::Adam wide_adam(wide->parameters());
    const auto wide_before = values_of(*wide);
    std::string msg = message_of<CheckpointError>([&] { load_checkpoint(path, *wide, &wide_adam); });
    CHECK(contains(msg, "entry 'model.0.weight': shape (16, 4) expected, got (8, 4)"));
    CHECK(same_values(*wide, wide_before));
    CHECK(wide_adam.steps() == std::vector<std::int64_t>(4, 0));

    // Other names: one linear layer instead of a chain.
    Generator g(3);
    nn::Linear single(4, 2, {true, &g});
    const auto single_before = values_of(single);
    msg = message_of<CheckpointError>([&] { load_checkpoint(path, single); });
    CHECK(contains(msg, "entry 'model.weight' is missing"));
    CHECK(same_values(single, single_before));

    // A deeper chain: the file lacks its last layer.
    Generator h(4);
    nn::Sequential deeper{std::make_shared<nn::Linear>(4, 8, nn::LinearOptions{true, &h}), std::make_shared<nn::Tanh>(),
                          std::make_shared<nn::Linear>(8, 2, nn::LinearOptions{true, &h}), std::make_shared<nn::Tanh>(),
                          std::make_shared<nn::Linear>(2, 2, nn::LinearOptions{true, &h})};
    const auto deeper_before = values_of(deeper);
    msg = message_of<CheckpointError>([&] { load_checkpoint(path, deeper); });
    CHECK(contains(msg, "entry 'model.4.weight' is missing"));
    CHECK(same_values(deeper, deeper_before));
}

TEST_CASE("Checkpoint: an entry whose recorded size claims gigabytes is refused without allocating them") {
    const TempDir dir("huge-claim");
    const std::string path = dir.file("ck.npz");
    auto model = mlp(2, 3, 1, 1);
    save_checkpoint(path, *model);
    // The same entries deflated, then every entry's uncompressed size (local and central
    // headers) set to 3.75 GiB: the CRC still matches the real data.
    const Checkpoint good = Checkpoint::load(path);
    {
        int err = 0;
        zip_t* za = zip_open(path.c_str(), ZIP_TRUNCATE, &err);
        REQUIRE(za != nullptr);
        std::vector<std::string> keep;
        for (const std::string& name : good.names()) {
            Checkpoint one;
            one.put(name, good.get(name));
            one.save(dir.file("one.npz"));
            zip_t* src = zip_open(dir.file("one.npz").c_str(), ZIP_RDONLY, &err);
            zip_stat_t st;
            zip_stat_index(src, 0, 0, &st);
            std::string data(st.size, '\0');
            zip_file_t* f = zip_fopen_index(src, 0, 0);
            zip_fread(f, data.data(), data.size());
            zip_fclose(f);
            zip_discard(src);
            keep.push_back(std::move(data));
            zip_source_t* s = zip_source_buffer(za, keep.back().data(), keep.back().size(), 0);
            const zip_int64_t idx = zip_file_add(za, (name + ".npy").c_str(), s, 0);
            REQUIRE(idx >= 0);
            zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_DEFLATE, 0);
        }
        REQUIRE(zip_close(za) == 0);
    }
    std::remove(dir.file("one.npz").c_str());
    std::string bytes = read_bytes(path);
    int patched = 0;
    for (const auto& [signature, offset] : {std::pair<std::string, std::size_t>{"PK\x03\x04", 22}, {"PK\x01\x02", 24}}) {
        for (std::size_t at = bytes.find(signature); at != std::string::npos; at = bytes.find(signature, at + 4)) {
            const char claim[4] = {0, 0, 0, '\xF0'};  // 0xF0000000, little-endian
            std::memcpy(&bytes[at + offset], claim, 4);
            ++patched;
        }
    }
    REQUIRE(patched == 2 * static_cast<int>(good.size()));
    write_bytes(path, bytes);

    rusage before{}, after{};
    ::getrusage(RUSAGE_SELF, &before);
    auto other = mlp(2, 3, 1, 2);
    const auto values = values_of(*other);
    const std::string msg = message_of<CheckpointError>([&] { load_checkpoint(path, *other); });
    ::getrusage(RUSAGE_SELF, &after);
    INFO(msg);
    CHECK(contains(msg, "bytes read, 4026531840 expected"));
    CHECK(same_values(*other, values));
    CHECK(after.ru_maxrss - before.ru_maxrss < 100 * 1024);  // kilobytes: far below the claim
}

// ---- IDX files ------------------------------------------------------------------------------

TEST_CASE("Faults: an IDX header claiming more data than the file holds is refused before reading") {
    // MNIST's training header (60000 images of 28x28, 47 MB) over 10 bytes of data.
    std::vector<std::uint8_t> bytes = {0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28};
    bytes.resize(bytes.size() + 10, 7);
    std::string msg = message_of<std::runtime_error>([&] { mnist::parse_idx(bytes.data(), bytes.size(), "lying", 3); });
    CHECK(msg == "mnist: lying: truncated data: expected 47040000 bytes after the header (60000x28x28), found 10");

    const TempDir dir("idx-claim");
    const std::string path = dir.file("train-images-idx3-ubyte");
    write_bytes(path, std::string(bytes.begin(), bytes.end()));
    msg = message_of<std::runtime_error>([&] { mnist::read_idx(path, 3); });
    CHECK(contains(msg, path + ": truncated data: expected 47040000 bytes after the header (60000x28x28), found 10"));
}

namespace {

// An IDX header of unsigned bytes with these sizes.
std::string idx_header(std::uint8_t ndim, const std::vector<std::uint32_t>& dims) {
    std::string h = {0, 0, 8, static_cast<char>(ndim)};
    for (std::uint32_t d : dims)
        for (int shift = 24; shift >= 0; shift -= 8) h += static_cast<char>(d >> shift);
    return h;
}

// A gzip file of header followed by `zeros` zero bytes (compressed about 1000:1).
void write_gzip(const std::string& path, const std::string& header, std::size_t zeros) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f);
    gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
    const std::vector<char> block(1 << 20, 0);
    for (std::size_t left = zeros; left > 0;) {
        const std::size_t n = std::min(left, block.size());
        gzwrite(f, block.data(), static_cast<unsigned>(n));
        left -= n;
    }
    REQUIRE(gzclose(f) == Z_OK);
}

}  // namespace

TEST_CASE("Faults: an IDX claim past max_idx_bytes is refused at the header, even in a small gzip file") {
    // 2,000,000 images claimed (1.5 GB) over 32 MB of zeros that compress to 32 kB: the reader
    // used to decompress all of it into a buffer growing with the claim.
    const TempDir dir("idx-bomb");
    const std::string path = dir.file("train-images-idx3-ubyte.gz");
    write_gzip(path, idx_header(3, {2000000, 28, 28}), std::size_t{32} << 20);
    CHECK(fs::file_size(path) < 100000);
    const std::string msg = message_of<std::runtime_error>([&] { mnist::read_idx(path, 3); });
    INFO(msg);
    CHECK(contains(msg, path + ": dimensions 2000000x28x28 claim more than the 47040000 data bytes"));
    // in memory and raw too, and a claim whose product overflows 64 bits
    const std::string big = idx_header(3, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF});
    CHECK(contains(message_of<std::runtime_error>([&] {
                       mnist::parse_idx(reinterpret_cast<const std::uint8_t*>(big.data()), big.size(), "mem", 3);
                   }),
                   "claim more than"));
    // the largest legitimate claim is still read (here: 60,000 labels-sized rows of 784 bytes)
    write_gzip(path, idx_header(2, {60000, 784}), mnist::max_idx_bytes);
    CHECK(mnist::read_idx(path, 2).data.size() == mnist::max_idx_bytes);
}

TEST_CASE("Faults: out of memory in the IDX reader says what it was allocating and how big") {
    if (address_sanitizer) {
        MESSAGE("AddressSanitizer reserves terabytes of address space: no address-space limit here");
        return;
    }
    // The child: this test case alone in a fresh process (earlier tests of this process may have
    // left more than the file's 47 MB free in the heap, which an allocation would reuse), with
    // 16 MB of address space to spare, short of the 47 MB the file holds.
    if (const char* file = std::getenv("TAPEGRAD_TEST_IDX_OOM_FILE")) {
        long vm_kb = -1;  // the address space in use now (VmSize of /proc/self/status)
        std::ifstream status("/proc/self/status");
        for (std::string key; status >> key;)
            if (key == "VmSize:") status >> vm_kb;
        struct rlimit limit;
        limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(vm_kb + 16 * 1024) * 1024;
        if (vm_kb <= 0 || ::setrlimit(RLIMIT_AS, &limit) != 0) ::_exit(4);
        try {
            mnist::read_idx(file, 2);
            ::_exit(1);
        } catch (const std::runtime_error& e) {
            const std::string expected = std::string(file) + ": out of memory allocating 47040000 bytes for the data (60000x784)";
            ::_exit(contains(e.what(), expected) ? 0 : 2);
        } catch (...) {
            ::_exit(3);
        }
    }
    const TempDir dir("idx-oom");
    const std::string path = dir.file("big.gz");
    write_gzip(path, idx_header(2, {60000, 784}), mnist::max_idx_bytes);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::setenv("TAPEGRAD_TEST_IDX_OOM_FILE", path.c_str(), 1);
        ::execl("/proc/self/exe", "tapegrad_tests",
                "--test-case=Faults: out of memory in the IDX reader says what it was allocating and how big",
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    REQUIRE(WIFEXITED(status));
    // 1: it read the file anyway; 2: another message; 3: a bare bad_alloc; 4: no limit set
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("Faults: load_pair checks the labels header before it reads the images") {
    const TempDir dir("idx-pair");
    // 5 images claimed, their data cut short; the labels file claims 4 labels
    write_gzip(dir.file("images"), idx_header(3, {5, 28, 28}), 100);  // gzip: the data's length is unknown
    write_bytes(dir.file("labels"), idx_header(1, {4}) + std::string(4, '\1'));
    const std::string msg = message_of<std::runtime_error>([&] { mnist::load_pair(dir.file("images"), dir.file("labels")); });
    INFO(msg);
    CHECK(contains(msg, dir.file("labels") + ": expected 5 labels, one per image"));
}

TEST_CASE("Faults: a FIFO or a device is refused as an IDX file or a checkpoint, without blocking") {
    const TempDir dir("fifo");
    const std::string fifo = dir.file("train-images-idx3-ubyte");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // without O_NONBLOCK the open would wait for a writer forever
    std::string msg = message_of<std::runtime_error>([&] { mnist::read_idx(fifo, 3); });
    CHECK(contains(msg, fifo + ": cannot open: Is a FIFO, not a regular file"));
    msg = message_of<CheckpointError>([&] { Checkpoint::load(fifo); });
    CHECK(contains(msg, "checkpoint '" + fifo + "': cannot open: Is a FIFO, not a regular file"));
    msg = message_of<std::runtime_error>([&] { mnist::read_idx("/dev/zero"); });
    CHECK(contains(msg, "/dev/zero: cannot open: Is a device, not a regular file"));
    msg = message_of<CheckpointError>([&] { Checkpoint::load("/dev/zero"); });
    CHECK(contains(msg, "Is a device, not a regular file"));
}

// ---- the atomic writer ----------------------------------------------------------------------

TEST_CASE("Faults: a failed atomic write names the file, the step and errno, and keeps the old file") {
    using detail::WriteStep;
    const TempDir dir("atomic");
    const std::string path = dir.file("metrics.csv");
    write_file_atomic(path, "the good file\n");
    const struct {
        WriteStep step;
        const char* what;
    } steps[] = {{WriteStep::create, "cannot create a temporary file"}, {WriteStep::write, "write failed"},
                 {WriteStep::fsync, "fsync failed"},                    {WriteStep::close, "close failed"},
                 {WriteStep::rename, "rename failed"}};
    for (const auto& s : steps) {
        CAPTURE(s.what);
        detail::fail_next_write_at(s.step, ENOSPC, "metrics.csv");
        const std::string msg = message_of<FileWriteError>([&] { write_file_atomic(path, "a new, longer file\n"); });
        CHECK(msg == "'" + path + "': " + s.what + ": No space left on device");
        CHECK(read_bytes(path) == "the good file\n");
        CHECK(dir.names() == std::vector<std::string>{"metrics.csv"});  // no temporary left behind
    }
    // the sync of the folder is checked too: the new file is in place, but the error is reported
    detail::fail_next_write_at(WriteStep::sync_folder, EIO, "metrics.csv");
    CHECK(message_of<FileWriteError>([&] { write_file_atomic(path, "new\n"); }) ==
          "'" + path + "': written, but the sync of its folder failed: Input/output error");
    // an injected failure waits for its path, and happens once
    detail::fail_next_write_at(WriteStep::write, ENOSPC, "other.csv");
    write_file_atomic(path, "new\n");
    detail::fail_next_write_at(WriteStep::none, 0);
    // real failures: a missing folder, a directory in the way
    CHECK(contains(message_of<FileWriteError>([&] { write_file_atomic(dir.file("no/such/dir/f"), "x"); }),
                   "cannot create a temporary file: No such file or directory"));
    fs::create_directories(dir.path / "taken");
    CHECK(contains(message_of<FileWriteError>([&] { write_file_atomic(dir.file("taken"), "x"); }),
                   "rename failed: Is a directory"));
}

TEST_CASE("Faults: mnist::write_idx writes atomically and reports a full disk") {
    const TempDir dir("idx-write");
    const mnist::Idx labels{{3}, {1, 2, 3}};
    for (const std::string name : {"labels", "labels.gz"}) {
        CAPTURE(name);
        mnist::write_idx(dir.file(name), labels);
        const std::string before = read_bytes(dir.file(name));
        detail::fail_next_write_at(detail::WriteStep::write, ENOSPC, name);
        const std::string msg = message_of<std::runtime_error>([&] { mnist::write_idx(dir.file(name), {{1}, {9}}); });
        CHECK(contains(msg, "write failed: No space left on device"));
        CHECK(read_bytes(dir.file(name)) == before);
        CHECK(mnist::read_idx(dir.file(name)).data == labels.data);
    }
}

// ---- non-finite state in checkpoints ---------------------------------------------------------

TEST_CASE("Checkpoint: NaN or infinite parameters and optimizer state are never saved nor loaded") {
    const TempDir dir("nan");
    const std::string path = dir.file("ck.npz");
    auto model = mlp(3, 4, 2, 1);
    optim::Adam adam(model->parameters());
    Tensor loss = sum(square(model->forward(Tensor(Array(xt::ones<float>({2, 3}))))));
    loss.backward();
    adam.step();
    save_checkpoint(path, *model, &adam);
    const std::string good = read_bytes(path);

    // saving: refused naming the parameter, the file keeps the good state
    const auto params = model->named_parameters();
    Tensor w = params[0].second;
    const float kept = w.value()(1, 2);
    w.value()(1, 2) = std::numeric_limits<float>::quiet_NaN();
    std::string msg = message_of<NonFiniteStateError>([&] { save_checkpoint(path, *model, &adam); });
    CHECK(contains(msg, "parameter '" + params[0].first + "' holds NaN at index 5 of 12"));
    CHECK(read_bytes(path) == good);

    // loading: a file with a NaN weight (valid CRCs: written by Checkpoint::save) is refused
    Checkpoint bad = state_dict(*model, &adam);
    bad.save(path);
    w.value()(1, 2) = kept;
    const auto values = values_of(*model);
    msg = message_of<CheckpointError>([&] { load_checkpoint(path, *model, &adam); });
    CHECK(contains(msg, "checkpoint '" + path + "', entry 'model." + params[0].first + "': holds NaN at index 5"));
    CHECK(same_values(*model, values));

    // and optimizer state: an infinite second moment
    Checkpoint inf_state = state_dict(*model, &adam);
    const std::string v_name = "optim.adam.v." + params[1].first;
    Array v = inf_state.get(v_name);
    v(0) = std::numeric_limits<float>::infinity();
    inf_state.put(v_name, v);
    inf_state.save(path);
    msg = message_of<CheckpointError>([&] { load_checkpoint(path, *model, &adam); });
    CHECK(contains(msg, "entry '" + v_name + "': holds +inf at index 0"));
    msg = message_of<NonFiniteStateError>([&] {
        std::vector<Array> state = adam.state("v");
        state[1] = v;
        adam.set_state("v", std::move(state));
        save_checkpoint(path, *model, &adam);
    });
    CHECK(contains(msg, "optimizer state '" + v_name + "' holds +inf"));
}

// ---- tensor ops on empty, mismatched and out-of-range arguments ---------------------------

TEST_CASE("Faults: matmul and linear with an inner size of 0 give zeros, and zero gradients") {
    Tensor a(Array::from_shape({2, 0}), true), b(Array::from_shape({0, 3}), true);
    Tensor c = matmul(a, b);
    REQUIRE(c.shape() == Array::shape_type{2, 3});
    CHECK(std::all_of(c.value().begin(), c.value().end(), [](float x) { return x == 0.0f; }));
    sum(c).backward();
    CHECK(a.grad().shape() == a.shape());
    CHECK(b.grad().shape() == b.shape());

    // No rows: the weight's gradient sums over nothing.
    Tensor x(Array::from_shape({0, 3}), true);
    Tensor w = tgtest::random_tensor({2, 3}, 1), bias = tgtest::random_tensor({2}, 2);
    w.accumulate_grad(Array(xt::full_like(w.value(), std::numeric_limits<float>::quiet_NaN())), "test");
    w.zero_grad();  // its stale buffer stays for the next gradient to overwrite
    Tensor y = linear(x, w, bias);
    CHECK(y.shape() == Array::shape_type{0, 2});
    sum(y).backward();
    CHECK(std::all_of(w.grad().begin(), w.grad().end(), [](float v) { return v == 0.0f; }));
    CHECK(std::all_of(bias.grad().begin(), bias.grad().end(), [](float v) { return v == 0.0f; }));
    Tensor m(Array::from_shape({0, 4}), true), k = tgtest::random_tensor({4, 3}, 3);
    k.accumulate_grad(Array(xt::full_like(k.value(), std::numeric_limits<float>::quiet_NaN())), "test");
    k.zero_grad();  // its stale buffer stays for the next gradient to overwrite
    sum(matmul(m, k)).backward();
    CHECK(std::all_of(k.grad().begin(), k.grad().end(), [](float v) { return v == 0.0f; }));

    // No input features.
    Tensor x0(Array::from_shape({3, 0}), true), w0(Array::from_shape({2, 0}), true);
    Tensor y0 = linear(x0, w0, bias);
    REQUIRE(y0.shape() == Array::shape_type{3, 2});
    for (std::size_t r = 0; r < 3; ++r)
        for (std::size_t j = 0; j < 2; ++j) CHECK(y0.value()(r, j) == bias.value()(j));
}

TEST_CASE("Faults: ops on empty tensors give empty results or errors naming the op") {
    const Tensor e(Array::from_shape({0, 3}), true);
    CHECK(add(e, e).shape() == e.shape());
    CHECK(exp(e).shape() == e.shape());
    CHECK(sum(e, 0).shape() == Array::shape_type{3});
    CHECK(sum(e).item() == 0.0f);
    CHECK(reshape(e, {3, 0}).shape() == Array::shape_type{3, 0});
    CHECK(transpose(e).shape() == Array::shape_type{3, 0});
    CHECK(concat({e, e}, 0).shape() == Array::shape_type{0, 3});
    CHECK(softmax(e, 1).shape() == e.shape());
    sum(softmax(e, 1)).backward();
    CHECK(e.grad().shape() == e.shape());
    // An op that indexes along an empty axis refuses it, naming itself.
    CHECK_THROWS_WITH_AS(softmax(e, 0), doctest::Contains("softmax: the axis 0 is empty"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(log_softmax(e, 0), doctest::Contains("log_softmax"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(logsumexp(e, 0), doctest::Contains("logsumexp"), std::invalid_argument);
    // What has no value over nothing is refused.
    CHECK_THROWS_WITH_AS(max(e, 0), doctest::Contains("max: axis 0 has length 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(mean(e), doctest::Contains("mean: cannot average an empty tensor"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(argmax(e, 0), doctest::Contains("argmax"), std::invalid_argument);
    // A loss over nothing sums to 0; its mean is refused rather than a silent NaN.
    const Tensor no_targets(Array::from_shape({0, 3}));
    CHECK(binary_cross_entropy_with_logits(e, no_targets, Reduction::sum).item() == 0.0f);
    CHECK_THROWS_WITH_AS(binary_cross_entropy_with_logits(e, no_targets),
                         "binary_cross_entropy_with_logits: cannot average the loss of an empty tensor of shape (0, 3) "
                         "(use Reduction::sum or none)",
                         std::invalid_argument);
    CHECK(cross_entropy(e, Indices::from_shape({0}), Reduction::sum).item() == 0.0f);
    CHECK_THROWS_WITH_AS(cross_entropy(e, Indices::from_shape({0})), doctest::Contains("cross_entropy: cannot average the loss of an empty"),
                         std::invalid_argument);
}

TEST_CASE("Faults: bad axes and mismatched shapes throw naming the op and the shapes") {
    const Tensor a = tgtest::random_tensor({2, 3}, 1), b = tgtest::random_tensor({4, 5}, 2);
    const auto throws = [](auto f, const std::string& part) {
        const std::string msg = message_of<std::exception>(f);
        CHECK_MESSAGE(contains(msg, part), "message: " << msg);
    };
    throws([&] { add(a, b); }, "add: shapes (2, 3) and (4, 5)");
    throws([&] { matmul(a, b); }, "matmul: needs [m,k] x [k,n], got (2, 3) x (4, 5)");
    throws([&] { linear(a, b); }, "linear: input (2, 3) does not fit weight (4, 5)");
    throws([&] { reshape(a, {4, 2}); }, "reshape");
    throws([&] { reshape(a, {4, 2}); }, "(2, 3)");
    throws([&] { sum(a, 2); }, "(2, 3)");
    throws([&] { softmax(a, -3); }, "softmax");
    throws([&] { max(a, 5); }, "max");
    throws([&] { slice(a, 1, 2, 7); }, "slice");
    throws([&] { concat({a, b}, 0); }, "concat");
    throws([&] { stack({a, b}, 0); }, "stack");
    throws([&] { transpose(a, {0, 0}); }, "transpose");
    throws([&] { binary_cross_entropy_with_logits(a, b); }, "binary_cross_entropy_with_logits");
    throws([&] { cross_entropy(a, {0, 7}); }, "cross_entropy");
    throws([&] { tg::where(Tensor(Array::from_shape({3, 3})), a, a); }, "where");
    throws([&] { one_hot(xt::xarray<std::size_t>{0, 4}, 3); }, "one_hot");
    throws([&] { a.backward(); }, "(2, 3)");
}

// ---- non-finite values ---------------------------------------------------------------------

TEST_CASE("Faults: all_finite finds a NaN or an infinity anywhere") {
    Array a = xt::zeros<float>({1000});
    CHECK(all_finite(a));
    CHECK(all_finite(Array::from_shape({0})));
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()}) {
        for (std::size_t at : {0, 499, 999}) {
            Array b = a;
            b(at) = bad;
            CHECK_FALSE(all_finite(b));
        }
    }
    a(3) = std::numeric_limits<float>::max();
    a(4) = std::numeric_limits<float>::denorm_min();
    CHECK(all_finite(a));
}

TEST_CASE("Faults: anomaly detection names the op that makes a forward -inf or NaN") {
    const Tensor x(Array{1.0f, 0.0f, 2.0f}, true);
    {
        const Tensor quiet = log(x);  // off by default: the -inf goes through
        CHECK(std::isinf(quiet.value()(1)));
    }
    AnomalyGuard on;
    CHECK(anomaly_detection());
    std::string msg = message_of<AnomalyError>([&] { log(x); });
    CHECK(contains(msg, "anomaly: log produced -inf at index 1 of its output of shape (3,) from finite inputs"));

    // 0/0, and under NoGradGuard too (nothing is recorded, the value is still checked).
    const Tensor zeros(Array{0.0f, 0.0f}, false);
    msg = message_of<AnomalyError>([&] {
        NoGradGuard no_grad;
        div(zeros, zeros);
    });
    CHECK(contains(msg, "anomaly: div produced nan at index 0"));

    // A non-finite leaf is blamed on the input, not on the op.
    const Tensor leaf(Array{1.0f, std::numeric_limits<float>::infinity()}, true);
    msg = message_of<AnomalyError>([&] { exp(leaf); });
    CHECK(contains(msg, "exp produced inf at index 1"));
    CHECK(contains(msg, "its input 0 of shape (2,) already held inf at index 1"));
}

TEST_CASE("Faults: anomaly detection names the op and input whose backward makes a NaN") {
    // sqrt(x) * 0 is finite; its gradient at 0 is 0 * 1/(2 sqrt 0) = 0 * inf = nan.
    Tensor x(Array{4.0f, 0.0f}, true);
    Tensor w(Array{1.0f, 1.0f}, true);
    {
        sum(sqrt(x) * 0.0f + w).backward();  // off: the NaN reaches x's gradient silently
        CHECK(std::isnan(x.grad()(1)));
        CHECK(current_tape().size() == 0);
    }
    x.zero_grad();
    w.zero_grad();
    AnomalyGuard on;
    Tensor loss = sum(mul(sqrt(x), 0.0f) + w);
    const std::string msg = message_of<AnomalyError>([&] { loss.backward(); });
    CHECK(contains(msg, "anomaly: the backward of sqrt (op 1 of 4 on the tape) produced nan at index 1 in the "
                        "gradient of its input 0 of shape (2,)"));
    CHECK(current_tape().size() == 0);  // a failed backward leaves no nodes for the next step

    // The next step runs normally once the input is fixed.
    x.value()(1) = 1.0f;
    x.zero_grad();
    sum(sqrt(x)).backward();
    CHECK(x.grad()(1) == doctest::Approx(0.5f));

    Tensor y(Array{1.0f, 2.0f}, true);
    Tensor z = y * 2.0f;
    CHECK(contains(message_of<AnomalyError>([&] { z.backward(Array{1.0f, std::nanf("")}); }),
                   "anomaly: the backward seed holds nan at index 1"));
}

TEST_CASE("Faults: AnomalyGuard restores the previous setting") {
    CHECK_FALSE(anomaly_detection());
    {
        AnomalyGuard on;
        CHECK(anomaly_detection());
        {
            AnomalyGuard off(false);
            CHECK_FALSE(anomaly_detection());
            const Tensor x(Array{0.0f}, true);
            CHECK(std::isinf(log(x).value()(0)));
        }
        CHECK(anomaly_detection());
    }
    CHECK_FALSE(anomaly_detection());
    set_anomaly_detection(true);
    CHECK(anomaly_detection());
    set_anomaly_detection(false);
}
