#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>
#include <zip.h>

#include "helpers.hpp"

using namespace tg;
namespace fs = std::filesystem;

using tgtest::read_bytes;
using tgtest::write_bytes;
using tgtest::bitwise_equal;

namespace {

// Removed when the test process ends.
struct TempFiles {
    std::vector<std::string> paths;
    ~TempFiles() {
        std::error_code ignored;
        for (const auto& p : paths) fs::remove(p, ignored);
    }
};

// A fresh path under the build tree, unique per test name and process.
std::string temp_path(const std::string& name) {
    static TempFiles files;
    const fs::path dir = fs::path(TAPEGRAD_BINARY_DIR) / "test-tmp";
    fs::create_directories(dir);
    const fs::path p = dir / (std::to_string(::getpid()) + "-" + name);
    fs::remove(p);
    files.paths.push_back(p.string());
    return p.string();
}

// A .npy file with the header text given (padded as numpy pads it) and raw data.
std::string npy(const std::string& dict, const std::string& data) {
    std::string header = dict;
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out("\x93NUMPY\x01\x00", 8);
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    return out + header + data;
}

// A zip written directly with libzip, for archives the library would never write.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& files) {
    int err = 0;
    zip_t* za = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
    REQUIRE(za != nullptr);
    for (const auto& f : files) {
        zip_source_t* src = zip_source_buffer(za, f.second.data(), f.second.size(), 0);
        REQUIRE(zip_file_add(za, f.first.c_str(), src, 0) >= 0);
    }
    REQUIRE(zip_close(za) == 0);
}

struct Mlp : nn::Module {
    std::shared_ptr<nn::Sequential> body;
    Tensor temperature;
    explicit Mlp(std::uint64_t seed, std::size_t hidden = 5) {
        Generator g(seed);
        body = register_module("body", std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
                                           std::make_shared<nn::Linear>(3, hidden, nn::LinearOptions{true, &g}),
                                           std::make_shared<nn::Linear>(hidden, 2, nn::LinearOptions{true, &g})}));
        temperature = register_parameter("temperature", Tensor::full({1}, 1.5f));
    }
    Tensor forward(const Tensor& x) { return (*body)(x) * temperature; }
};

// One step on a batch drawn from `data`: the generator's state is part of what must resume.
void train_step(Mlp& m, optim::Optimizer& opt, Generator& data) {
    const Tensor x(data.normal({8, 3}));
    const Tensor y(data.normal({8, 2}));
    opt.zero_grad();
    Tensor d = m.forward(x) - y;
    sum(d * d).backward();
    opt.step();
}

struct Snapshot {
    std::vector<Array> params;
    std::vector<std::int64_t> steps;
    std::vector<std::vector<Array>> state;
    float lr = 0.0f;
    Snapshot(const nn::Module& m, const optim::Optimizer* opt) {
        for (const auto& p : m.parameters()) params.push_back(p.value());
        if (!opt) return;
        steps = opt->steps();
        lr = opt->lr();
        for (const auto& name : opt->state_names()) state.push_back(opt->state(name));
    }
};

void check_same(const Snapshot& a, const Snapshot& b) {
    REQUIRE(a.params.size() == b.params.size());
    for (std::size_t i = 0; i < a.params.size(); ++i) CHECK(bitwise_equal(a.params[i], b.params[i]));
    CHECK(a.steps == b.steps);
    CHECK(a.lr == b.lr);
    REQUIRE(a.state.size() == b.state.size());
    for (std::size_t k = 0; k < a.state.size(); ++k)
        for (std::size_t i = 0; i < a.state[k].size(); ++i) CHECK(bitwise_equal(a.state[k][i], b.state[k][i]));
}

// Resuming from a checkpoint gives the same numbers as never stopping.
template <class Opt, class Options>
void check_resume(const Options& options, const std::string& file) {
    const std::string path = temp_path(file);
    Mlp a(1);
    Opt opt_a(a.parameters(), options);
    Generator data_a(99);
    for (int i = 0; i < 3; ++i) train_step(a, opt_a, data_a);
    Checkpoint extra;
    extra.put_generator("data_rng", data_a);
    extra.put_int("epoch", 3);
    save_checkpoint(path, a, &opt_a, extra);
    for (int i = 0; i < 4; ++i) train_step(a, opt_a, data_a);

    Mlp b(2);  // other initial values, overwritten by the load
    Opt opt_b(b.parameters(), options);
    Generator data_b(0);
    const Checkpoint ck = load_checkpoint(path, b, &opt_b);
    ck.get_generator("data_rng", data_b);
    CHECK(ck.get_int("epoch") == 3);
    for (int i = 0; i < 4; ++i) train_step(b, opt_b, data_b);
    check_same(Snapshot(a, &opt_a), Snapshot(b, &opt_b));
}

// Loading must fail with a message containing each of `parts`, and change nothing.
void check_refused(const std::string& path, Mlp& m, optim::Optimizer* opt, const std::vector<std::string>& parts) {
    const Snapshot before(m, opt);
    std::string message;
    try {
        load_checkpoint(path, m, opt);
    } catch (const CheckpointError& e) {
        message = e.what();
    }
    INFO("message: " << message);
    REQUIRE_FALSE(message.empty());
    for (const auto& p : parts) CHECK(message.find(p) != std::string::npos);
    check_same(before, Snapshot(m, opt));
}

// A model and Adam optimizer that have trained a step, and a checkpoint of them on disk.
struct Saved {
    std::string path;
    Mlp model{1};
    optim::Adam adam{model.parameters(), {0.01f}};
    explicit Saved(const std::string& file) : path(temp_path(file)) {
        Generator data(5);
        train_step(model, adam, data);
        save_checkpoint(path, model, &adam);
    }
};

}  // namespace

TEST_CASE("Checkpoint: float32, int64 and uint64 entries round-trip bitwise and in order") {
    const std::string path = temp_path("entries.npz");
    Checkpoint ck;
    Array weird{{-0.0f, NAN, INFINITY}, {1e-45f, -3.4e38f, 0.1f}};
    ck.put("w", weird);
    ck.put("scalar", Array(2.5f));
    ck.put("empty", Array::from_shape({0, 3}));
    ck.put_int("step", -42);
    ck.put_ints("counts", {1, 2, INT64_MAX});
    ck.put_uints("state", {0, UINT64_MAX, 123});
    ck.put("w", Array{1.0f});  // replaces, keeps the place
    ck.put("w", weird);
    ck.save(path);

    const Checkpoint back = Checkpoint::load(path);
    CHECK(back.names() == std::vector<std::string>{"w", "scalar", "empty", "step", "counts", "state"});
    CHECK(bitwise_equal(back.get("w"), weird));
    CHECK(back.get("scalar").dimension() == 0);
    CHECK(back.get("scalar")() == 2.5f);
    CHECK(back.shape("empty") == Shape{0, 3});
    CHECK(back.get_int("step") == -42);
    CHECK(back.shape("step").empty());
    CHECK(back.get_ints("counts") == std::vector<std::int64_t>{1, 2, INT64_MAX});
    CHECK(back.get_uints("state") == std::vector<std::uint64_t>{0, UINT64_MAX, 123});
    CHECK(back.dtype("state") == DType::uint64);
    CHECK_THROWS_WITH_AS(back.get("step"), "Checkpoint: entry 'step' has dtype <i8, not <f4", CheckpointError);
    CHECK_THROWS_WITH_AS(back.get("nope"), "Checkpoint: no entry named 'nope'", CheckpointError);
}

TEST_CASE("Checkpoint: the file is a zip of stored .npy v1.0 entries that numpy can read") {
    const std::string path = temp_path("format.npz");
    Checkpoint ck;
    ck.put("layer.weight", Array{{1.0f, 2.0f, 3.0f}, {4.0f, 5.0f, 6.0f}});
    ck.put_int("step", 7);
    ck.save(path);
    CHECK(read_bytes(path).compare(0, 4, "PK\x03\x04") == 0);

    int err = 0;
    zip_t* za = zip_open(path.c_str(), ZIP_RDONLY, &err);
    REQUIRE(za != nullptr);
    REQUIRE(zip_get_num_entries(za, 0) == 2);
    zip_stat_t st;
    REQUIRE(zip_stat_index(za, 0, 0, &st) == 0);
    CHECK(std::string(st.name) == "layer.weight.npy");
    CHECK(st.comp_method == ZIP_CM_STORE);  // what numpy.savez writes
    std::string data(st.size, '\0');
    zip_file_t* zf = zip_fopen_index(za, 0, 0);
    REQUIRE(zf != nullptr);
    CHECK(zip_fread(zf, data.data(), st.size) == static_cast<zip_int64_t>(st.size));
    zip_fclose(zf);
    zip_stat_index(za, 1, 0, &st);
    CHECK(std::string(st.name) == "step.npy");
    zip_discard(za);

    CHECK(data.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
    const std::size_t header_len = static_cast<unsigned char>(data[8]) | static_cast<unsigned char>(data[9]) << 8;
    CHECK((10 + header_len) % 64 == 0);  // data aligned as numpy aligns it
    const std::string header = data.substr(10, header_len);
    CHECK(header.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 0) == 0);
    CHECK(header.back() == '\n');
    float values[6];
    REQUIRE(data.size() == 10 + header_len + sizeof values);
    std::memcpy(values, data.data() + 10 + header_len, sizeof values);
    CHECK(values[5] == 6.0f);
}

TEST_CASE("Checkpoint: model and Adam state round-trip bitwise, training resumes with identical numbers") {
    optim::AdamOptions o;
    o.lr = 0.01f;
    o.weight_decay = 0.01f;
    check_resume<optim::Adam>(o, "resume-adam.npz");
    check_resume<optim::AdamW>(optim::AdamWOptions{0.02f}, "resume-adamw.npz");

    Saved s("adam-names.npz");
    const Checkpoint ck = Checkpoint::load(s.path);
    for (const char* name : {"model.body.0.weight", "model.body.1.bias", "model.temperature", "optim.adam.lr",
                             "optim.adam.step.body.0.weight", "optim.adam.m.body.1.weight", "optim.adam.v.temperature"})
        CHECK_MESSAGE(ck.contains(name), name);
    CHECK(ck.get_int("optim.adam.step.temperature") == 1);
    CHECK(ck.get("optim.adam.lr")() == 0.01f);
    // Without an optimizer the optim. entries are ignored: inference loads the weights alone.
    Mlp fresh(3);
    load_checkpoint(s.path, fresh);
    check_same(Snapshot(fresh, nullptr), Snapshot(s.model, nullptr));
}

TEST_CASE("Checkpoint: SGD momentum state round-trips, training resumes with identical numbers") {
    optim::SGDOptions o;
    o.lr = 0.05f;
    o.momentum = 0.9f;
    o.dampening = 0.1f;  // the first update differs from later ones: the step counts must resume too
    check_resume<optim::SGD>(o, "resume-sgd.npz");
    o.dampening = 0.0f;
    o.nesterov = true;
    check_resume<optim::SGD>(o, "resume-nesterov.npz");
}

TEST_CASE("Checkpoint: a parameter that never had a gradient keeps its fresh optimizer state") {
    const std::string path = temp_path("fresh-state.npz");
    Mlp a(1);
    optim::Adam adam(a.parameters());
    save_checkpoint(path, a, &adam);  // before any step: zeros and step 0 everywhere
    Mlp b(1);
    optim::Adam adam_b(b.parameters());
    load_checkpoint(path, b, &adam_b);
    CHECK(adam_b.steps() == std::vector<std::int64_t>(5, 0));
    CHECK(adam_b.state("m")[0].size() == 0);
    Generator d1(4), d2(4);
    train_step(a, adam, d1);
    train_step(b, adam_b, d2);
    check_same(Snapshot(a, &adam), Snapshot(b, &adam_b));
}

TEST_CASE("Checkpoint: a missing file or a directory is refused naming the path") {
    Mlp m(1);
    const std::string path = temp_path("does-not-exist.npz");
    check_refused(path, m, nullptr, {"checkpoint '" + path + "'", "cannot open", "No such file"});
    const std::string dir = fs::path(path).parent_path().string();
    check_refused(dir, m, nullptr, {"checkpoint '" + dir + "'", "Is a directory"});
}

TEST_CASE("Checkpoint: a truncated file is refused and nothing changes") {
    Saved s("truncated.npz");
    const std::string full = read_bytes(s.path);
    Mlp m(7);
    optim::Adam adam(m.parameters());
    for (std::size_t keep : {full.size() / 2, full.size() - 10, std::size_t{0}}) {
        CAPTURE(keep);
        write_bytes(s.path, full.substr(0, keep));
        check_refused(s.path, m, &adam, {"checkpoint '" + s.path + "'", "not a readable zip archive"});
    }
}

TEST_CASE("Checkpoint: a flipped byte in an entry's data is caught by its CRC, nothing changes") {
    Saved s("corrupt.npz");
    std::string bytes = read_bytes(s.path);
    // Flip a byte of model.body.0.weight's float data, past its .npy header.
    const std::size_t magic = bytes.find("\x93NUMPY", bytes.find("model.body.0.weight.npy"));
    REQUIRE(magic != std::string::npos);
    const std::size_t data_start = bytes.find('\n', magic) + 1;
    bytes[data_start + 5] ^= 0x40;
    write_bytes(s.path, bytes);
    Mlp m(7);
    optim::Adam adam(m.parameters());
    check_refused(s.path, m, &adam, {"checkpoint '" + s.path + "'", "entry 'model.body.0.weight.npy'", "CRC error"});
}

TEST_CASE("Checkpoint: a checkpoint of another model (missing or extra names) is refused, nothing changes") {
    Saved s("other-model.npz");
    struct Smaller : Mlp {
        Smaller() : Mlp(3) {}
    };
    // Extra: the file has a parameter this model lacks.
    struct NoTemperature : nn::Module {
        std::shared_ptr<nn::Sequential> body;
        NoTemperature() {
            Generator g(4);
            body = register_module("body", std::make_shared<nn::Sequential>(std::initializer_list<std::shared_ptr<nn::Layer>>{
                                               std::make_shared<nn::Linear>(3, 5, nn::LinearOptions{true, &g}),
                                               std::make_shared<nn::Linear>(5, 2, nn::LinearOptions{true, &g})}));
        }
    };
    NoTemperature nt;
    const Snapshot before(nt, nullptr);
    CHECK_THROWS_WITH_AS(load_checkpoint(s.path, nt),
                         ("checkpoint '" + s.path + "': entry 'model.temperature' is not a parameter of the model").c_str(),
                         CheckpointError);
    check_same(before, Snapshot(nt, nullptr));

    // Missing: the model has a parameter the file lacks.
    struct WithExtra : Mlp {
        Tensor gate = register_parameter("gate", Tensor::ones({2}));
        WithExtra() : Mlp(3) {}
    };
    WithExtra we;
    optim::Adam adam(we.parameters());
    check_refused(s.path, we, &adam, {"checkpoint '" + s.path + "'", "entry 'model.gate' is missing"});
}

TEST_CASE("Checkpoint: a shape mismatch names the file, the entry, expected and got, nothing changes") {
    Saved s("shapes.npz");
    Mlp wider(3, 6);  // hidden 6 instead of 5
    optim::Adam adam(wider.parameters());
    check_refused(s.path, wider, &adam,
                  {"checkpoint '" + s.path + "', entry 'model.body.0.weight': shape (6, 3) expected, got (5, 3)"});
    check_refused(s.path, wider, nullptr, {"shape (6, 3) expected, got (5, 3)"});
}

TEST_CASE("Checkpoint: optimizer state of another kind, or none, is refused, nothing changes") {
    Saved s("kinds.npz");
    Mlp m(3);
    optim::SGDOptions o;
    o.momentum = 0.9f;
    optim::SGD sgd(m.parameters(), o);
    Generator data(1);
    train_step(m, sgd, data);
    check_refused(s.path, m, &sgd, {"holds no state of the sgd optimizer", "optim.adam."});

    const std::string model_only = temp_path("model-only.npz");
    save_checkpoint(model_only, m);
    optim::Adam adam(m.parameters());
    check_refused(model_only, m, &adam, {"holds no state of the adam optimizer (no entry starts with 'optim.adam.')"});

    // A stray optim.adam. entry that this optimizer does not have.
    Checkpoint ck = Checkpoint::load(s.path);
    ck.put("optim.adam.exp_avg.temperature", Array{0.0f});
    const std::string stray = temp_path("stray.npz");
    ck.save(stray);
    Mlp m2(1);
    optim::Adam adam2(m2.parameters());
    check_refused(stray, m2, &adam2, {"entry 'optim.adam.exp_avg.temperature' is not state of the adam optimizer"});

    // The optimizer's parameters must belong to the model.
    Mlp other(4);
    CHECK_THROWS_WITH_AS(save_checkpoint(temp_path("foreign.npz"), other, &adam2),
                         "checkpoint: parameter 0 of the adam optimizer is not a parameter of the model",
                         std::invalid_argument);
}

TEST_CASE("Checkpoint: damaged .npy entries are refused with the entry named") {
    Mlp m(1);
    const std::string path = temp_path("npy.npz");
    const std::string floats(4 * 2, '\0');
    const auto refused = [&](const std::vector<std::pair<std::string, std::string>>& files, const std::string& part) {
        write_zip(path, files);
        check_refused(path, m, nullptr, {"checkpoint '" + path + "', entry '" + files.back().first + "'", part});
    };
    refused({{"a.npy", npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0'))}},
            "dtype '<f8' is not supported");
    refused({{"a.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", floats)}},
            "fortran_order True is not supported");
    refused({{"a.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", floats)}},
            "shape (3,) of <f4 does not fit the 8 data bytes");
    refused({{"a.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", floats)}},
            "shape holds a non-integer");
    refused({{"a.npy", npy("{'descr': '<f4', 'shape': (2,), }", floats)}}, "lacks descr, fortran_order or shape");
    // an empty array whose other dimensions overflow: xtensor's strides would overflow (fuzzer finding)
    refused({{"a.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1073740000000000000, 1073741824), }", "")}},
            "shape (0, 1073740000000000000, 1073741824) of <f4 does not fit the 0 data bytes");
    refused({{"a.npy", "not numpy at all"}}, "not a .npy file (bad magic string)");
    refused({{"a.txt", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", floats)}}, "not a .npy file");
    // A well-formed file still loads (the parser takes numpy's own spelling, any key order).
    write_zip(path, {{"a.npy", npy("{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", floats)}});
    CHECK(Checkpoint::load(path).shape("a") == Shape{2});
}

TEST_CASE("Checkpoint: extra entries round-trip, reserved prefixes are refused") {
    const std::string path = temp_path("extras.npz");
    Mlp m(1);
    Generator g(123);
    g.next_u64();
    Checkpoint extra;
    extra.put_generator("rng", g);
    extra.put_int("epoch", 12);
    extra.put("best_loss", Array(0.25f));
    save_checkpoint(path, m, nullptr, extra);
    Mlp n(2);
    const Checkpoint ck = load_checkpoint(path, n);
    Generator h(0);
    ck.get_generator("rng", h);
    CHECK(h.next_u64() == g.next_u64());
    CHECK(ck.get_int("epoch") == 12);
    CHECK(ck.get("best_loss")() == 0.25f);

    Checkpoint bad;
    bad.put("model.body.0.weight", Array{1.0f});
    CHECK_THROWS_WITH_AS(save_checkpoint(path, m, nullptr, bad), doctest::Contains("reserved prefix"),
                         std::invalid_argument);
    Checkpoint zero;
    zero.put_uints("rng", {0, 0, 0, 0});
    CHECK_THROWS_WITH_AS(zero.get_generator("rng", h), doctest::Contains("all-zero"), CheckpointError);
}

TEST_CASE("Checkpoint: save replaces the old file atomically and leaves no temporary file") {
    const std::string path = temp_path("atomic.npz");
    Mlp m(1);
    save_checkpoint(path, m);
    const auto before = read_bytes(path);
    m.temperature.value()(0) = 9.0f;
    save_checkpoint(path, m);
    CHECK(read_bytes(path) != before);
    CHECK(Checkpoint::load(path).get("model.temperature")(0) == 9.0f);
    const fs::path dir = fs::path(path).parent_path();
    for (const auto& entry : fs::directory_iterator(dir))
        CHECK_MESSAGE(entry.path().string().find("atomic.npz.tmp") == std::string::npos, entry.path().string());
    CHECK(fs::status(path).permissions() == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                             fs::perms::others_read));

    const std::string nowhere = (dir / "no-such-dir" / "x.npz").string();
    const std::string expected = "checkpoint '" + nowhere + "': cannot create a temporary file";
    CHECK_THROWS_WITH_AS(save_checkpoint(nowhere, m), doctest::Contains(expected.c_str()), CheckpointError);
}
