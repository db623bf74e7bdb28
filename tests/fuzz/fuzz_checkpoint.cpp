// libFuzzer harness for the checkpoint loader (serialize/checkpoint.hpp). The first byte picks
// what the rest is: bit 0 clear, a whole .npz archive; set, the bytes of one .npy entry,
// zipped here with a correct CRC (mutated archives almost never pass the CRC, so this is
// what reaches the .npy parser). Whatever loads is then applied to a small model and Adam:
// only CheckpointError may come out, and a refused load must leave the model unchanged.
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <zip.h>

#include "layers/linear.hpp"
#include "optim/adam.hpp"
#include "serialize/checkpoint.hpp"

namespace {

// One stored entry named name (through libzip, as Checkpoint::save writes them).
std::string zip_one(const std::string& name, const std::uint8_t* data, std::size_t size) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* mem = zip_source_buffer_create(nullptr, 0, 0, &err);
    zip_t* za = zip_open_from_source(mem, ZIP_TRUNCATE, &err);
    zip_source_keep(mem);
    zip_source_t* src = zip_source_buffer(za, data, size, 0);
    const zip_int64_t idx = zip_file_add(za, name.c_str(), src, ZIP_FL_ENC_UTF_8);
    zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0);
    std::string out;
    if (zip_close(za) == 0 && zip_source_open(mem) == 0) {
        zip_source_seek(mem, 0, SEEK_END);
        out.resize(static_cast<std::size_t>(zip_source_tell(mem)));
        zip_source_seek(mem, 0, SEEK_SET);
        zip_source_read(mem, out.data(), out.size());
        zip_source_close(mem);
    }
    zip_source_free(mem);
    return out;
}

bool same_values(const std::vector<tg::Tensor>& a, const std::vector<tg::Array>& b) {
    for (std::size_t i = 0; i < a.size(); ++i)
        if (a[i].value().shape() != b[i].shape() ||
            std::memcmp(a[i].value().data(), b[i].data(), b[i].size() * sizeof(float)) != 0)
            return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::string bytes;
    if (data[0] & 1) {
        // Entry names a 3 -> 2 Linear with Adam reads, so that good entries get applied.
        static const char* const names[] = {"model.weight.npy", "model.bias.npy", "optim.adam.lr.npy",
                                            "optim.adam.step.weight.npy", "optim.adam.m.bias.npy", "x.npy"};
        bytes = zip_one(names[(data[0] >> 1) % 6], data + 1, size - 1);
        if (bytes.empty()) return 0;
    } else {
        bytes.assign(reinterpret_cast<const char*>(data + 1), size - 1);
    }

    tg::Generator g(1);
    tg::nn::Linear model(3, 2, {true, &g});
    tg::optim::Adam adam(model.parameters());
    std::vector<tg::Array> before;
    for (const tg::Tensor& p : model.parameters()) before.push_back(p.value());
    tg::Checkpoint ck;
    try {
        ck = tg::Checkpoint::load_bytes(bytes, "fuzz");
    } catch (const tg::CheckpointError&) {
        return 0;
    }
    for (const std::string& name : ck.names()) {  // every accessor must agree with the parse
        const tg::Shape shape = ck.shape(name);
        std::size_t n = 1;
        for (std::size_t d : shape) n *= d;
        switch (ck.dtype(name)) {
            case tg::DType::float32: if (ck.get(name).size() != n) __builtin_trap(); break;
            case tg::DType::int64: if (ck.get_ints(name).size() != n) __builtin_trap(); break;
            case tg::DType::uint64: if (ck.get_uints(name).size() != n) __builtin_trap(); break;
        }
    }
    try {
        tg::load_state_dict(ck, model, &adam);
    } catch (const tg::CheckpointError&) {
        if (!same_values(model.parameters(), before)) __builtin_trap();  // a refusal changed the model
    }
    return 0;
}
